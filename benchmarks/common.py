"""What every benchmark shares: machine facts, honest timing and memory, tables, JSON reports.

Peak memory is measured on a fresh child process per stage (``measure_child``): the tree's
resident memory (the child and every process it starts) is sampled every 100 ms with psutil,
and the child's own ``ru_maxrss`` is read when it exits. A figure taken inside a long-lived
process would include whatever earlier stages left behind.

Machine load matters on a 2-core machine: each report records the load average before and
after every measurement, so a figure taken on a busy machine says so.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from pricer.files import replaced_atomically

BENCHMARKS_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCHMARKS_DIR.parent
RESULTS_DIR = BENCHMARKS_DIR / "results"
KEY_PACKAGES = (
    "pricer",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "xgboost-cpu",
    "xgboost",
    "mlflow",
    "hydra-core",
    "openai",
    "datasets",
    "psutil",
)
MiB = 1024 * 1024


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def machine_info() -> dict[str, Any]:
    """Cores, memory, CPU model, Python and key package versions, load, code revision."""
    memory = psutil.virtual_memory()
    return {
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_total_gib": round(memory.total / 1024**3, 1),
        "memory_available_gib": round(memory.available / 1024**3, 1),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": _package_versions(),
        "load_average_1_5_15": load_average(),
        "git_revision": _git(["rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(_git(["status", "--porcelain", "--untracked-files=no"])),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in KEY_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def _git(arguments: list[str]) -> str:
    """Read-only git queries; an empty answer when git or the repository is absent."""
    try:
        result = subprocess.run(
            ["git", *arguments], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip()


# -- timing -----------------------------------------------------------------------------------
@dataclass
class Timing:
    """Wall and CPU seconds of a block (CPU of this process and of children it waited for)."""

    wall: float = 0.0
    cpu: float = 0.0


@contextlib.contextmanager
def timed() -> Iterator[Timing]:
    timing = Timing()
    wall, cpu = time.perf_counter(), _cpu_seconds()
    try:
        yield timing
    finally:
        timing.wall = time.perf_counter() - wall
        timing.cpu = _cpu_seconds() - cpu


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_rss_mib() -> dict[str, float]:
    """This process's peak resident memory and the largest of its finished children's."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self_peak_rss_mib": round(own, 1), "children_peak_rss_mib": round(children, 1)}


# -- fresh child processes --------------------------------------------------------------------
@dataclass
class ChildResult:
    """What a measured child process did: its JSON answer, time, memory, exit, load."""

    payload: dict[str, Any]
    wall_seconds: float
    tree_peak_rss_mib: float  # sampled sum over the child and its descendants
    child_peak_rss_mib: float  # ru_maxrss of the child itself (exact, not sampled)
    returncode: int
    timed_out: bool
    load_before: list[float]
    load_after: list[float]
    stderr_tail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "returncode": self.returncode,
            "timed_out": self.timed_out,
            "wall_seconds": round(self.wall_seconds, 3),
            "tree_peak_rss_mib": round(self.tree_peak_rss_mib, 1),
            "child_peak_rss_mib": round(self.child_peak_rss_mib, 1),
            "load_before": self.load_before,
            "load_after": self.load_after,
            **({"stderr_tail": self.stderr_tail} if not self.ok else {}),
            **self.payload,
        }


# Ids that name things in one tracking store: a child given a store of its own must not
# inherit them from this process (an MLFLOW_EXPERIMENT_ID of the user's store, or one that
# mlflow.set_experiment exported, names no experiment there: "No Experiment with id=1").
STORE_BOUND = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")


def store_env(uri: str | None = None) -> dict[str, str]:
    """This process's environment for a child on its own tracking store (``uri``, if given)."""
    env = {name: value for name, value in os.environ.items() if name not in STORE_BOUND}
    if uri is not None:
        env["MLFLOW_TRACKING_URI"] = uri
    return env


def measure_child(
    command: Sequence[str],
    *,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    answer_file: bool = True,
) -> ChildResult:
    """Run ``command`` in a fresh process; sample its tree's memory until it exits.

    ``env`` is the child's whole environment (default: this process's).

    With ``answer_file`` the command gets ``--answer PATH`` appended and is expected to write
    its JSON figures there (stdout stays free for progress bars and logs).
    """
    with tempfile.TemporaryDirectory(prefix="pricer-bench-") as scratch:
        answer = Path(scratch) / "answer.json"
        full = [*command, "--answer", str(answer)] if answer_file else list(command)
        stderr_path = Path(scratch) / "stderr.txt"
        load_before = load_average()
        started = time.perf_counter()
        with open(stderr_path, "w") as stderr:
            process = subprocess.Popen(
                full,
                cwd=cwd or PROJECT_ROOT,
                env=os.environ if env is None else env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # its own process group: a timeout stops all of it
            )
            sampler = _TreeSampler(process.pid)
            sampler.start()
            timed_out = False
            try:
                _, status, usage = _wait4(process, timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _, status, usage = _stop_group(process)
            finally:
                sampler.stop()
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        payload = json.loads(answer.read_text()) if answer_file and answer.is_file() else {}
        return ChildResult(
            payload=payload,
            wall_seconds=wall,
            tree_peak_rss_mib=sampler.peak / MiB,
            child_peak_rss_mib=usage.ru_maxrss / 1024,
            returncode=process.returncode,
            timed_out=timed_out,
            load_before=load_before,
            load_after=load_average(),
            stderr_tail=stderr_path.read_text()[-3000:],
        )


def _wait4(process: subprocess.Popen, timeout: float | None) -> tuple[int, int, Any]:
    """os.wait4 (which returns the child's rusage) with a deadline."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            return pid, status, usage
        if deadline is not None and time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(process.args, timeout or 0)
        time.sleep(0.02)


def _stop_group(process: subprocess.Popen) -> tuple[int, int, Any]:
    """Stop the child's process group (TERM, then KILL after 5 s); reap the child."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            return pid, status, usage
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return os.wait4(process.pid, 0)


class _TreeSampler:
    """Samples the summed RSS of a process and all its descendants in a background thread."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total = 0
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for process in processes:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    total += process.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)


def write_answer(path: str | None, payload: dict[str, Any]) -> None:
    """A child's figures, for ``measure_child`` to read."""
    if path:
        Path(path).write_text(json.dumps(payload, default=_jsonable))


# -- reports ----------------------------------------------------------------------------------
def write_report(name: str, figures: dict[str, Any], results_dir: Path | None = None) -> Path:
    """``results/<name>.json``: the figures plus the machine and its load, as measured."""
    folder = results_dir or RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": name,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        **figures,
    }
    path = folder / f"{name}.json"
    with replaced_atomically(path) as temporary:  # a killed benchmark keeps the last report
        temporary.write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str = "") -> None:
    """A plain fixed-width table (numbers right-aligned, thousands separated)."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max(len(column), *(len(line[i]) for line in cells)) if cells else len(column)
        for i, column in enumerate(columns)
    ]
    if title:
        print(f"\n{title}")
    print("  ".join(column.rjust(width) for column, width in zip(columns, widths, strict=True)))
    print("  ".join("-" * width for width in widths))
    for line in cells:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:
            return "nan"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.2f}"
    if isinstance(value, list):
        return "/".join(_cell(item) for item in value)
    return str(value)


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where the JSON report goes (default: benchmarks/results)",
    )
    return parser


def child_command(module: str, *arguments: str) -> list[str]:
    """``python -m benchmarks.<module> ...`` with this interpreter."""
    return [sys.executable, "-m", f"benchmarks.{module}", *arguments]


# The benchmarks cache their curated splits where the apps do (curation.cache_dir, the
# project's data_cache/), so a second run skips the curation; this variable sends them
# elsewhere, in this process and the children it starts (the smoke tests: a temporary folder,
# not the checkout). An override given to compose still wins.
CACHE_DIR_ENV = "PRICER_BENCHMARK_CACHE_DIR"


def compose(config_name: str, overrides: Sequence[str] = ()) -> Any:
    """A config exactly as the Hydra app would see it (Hydra's compose API, real conf/)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from pricer import configs  # noqa: F401  (config schemas, as the apps register them)
    from pricer.paths import CONFIG_DIR

    cache = os.environ.get(CACHE_DIR_ENV)
    moved = [f"curation.cache_dir={cache}"] if cache else []
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=[*moved, *overrides])
