"""SIGTERM / SIGINT through the real CLI: runs end KILLED with the reason, workers exit, fast.

Each test starts a real app as a subprocess on a real store, waits until its runs are
RUNNING (and its worker processes up), sends the signal and checks the store and the
process tree.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import psutil
import pytest

from benchmarks.common import store_env
from pricer.paths import PROJECT_ROOT

pytestmark = pytest.mark.e2e

EXIT_WITHIN = 10.0  # seconds from the signal to the exit (measured 0.3-3.4 s on 2 busy cores)


def start_app(args: list[str], tracking_uri: str, tmp_path: Path) -> subprocess.Popen:
    # PYTHONFAULTHANDLER: an app that hangs is sent SIGABRT and prints where it hung.
    env = {**store_env(tracking_uri), "PYTHONFAULTHANDLER": "1"}
    log = (tmp_path / "app.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=log,
        # As from a terminal: a test run in the background inherits an ignored SIGINT.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def running_runs(tracking_uri: str) -> int:
    """RUNNING runs in the store, read with sqlite3 (no MLflow client in the way)."""
    with sqlite3.connect(tracking_uri.removeprefix("sqlite:///")) as db:
        return db.execute("SELECT COUNT(*) FROM runs WHERE status = 'RUNNING'").fetchone()[0]


def workers(app: psutil.Process) -> list[psutil.Process]:
    """The app's worker processes: spawn pool and loky workers (not resource trackers)."""
    return [
        child
        for child in app.children(recursive=True)
        if "resource_tracker" not in " ".join(child.cmdline())
    ]


def wait_until(app: subprocess.Popen, ready, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert app.poll() is None, "the app ended before it could be interrupted"
        assert time.monotonic() < deadline, "the app never got there"
        time.sleep(0.2)


def interrupt(app: subprocess.Popen, signum: int, tmp_path: Path) -> tuple[int, float, list]:
    """Send ``signum``; the exit code, seconds to exit, and every process of the app's tree."""
    tree = psutil.Process(app.pid).children(recursive=True)
    sent = time.monotonic()
    app.send_signal(signum)
    try:
        code = app.wait(timeout=60)
    except subprocess.TimeoutExpired:
        app.send_signal(signal.SIGABRT)
        app.wait(timeout=30)
        raise AssertionError((tmp_path / "app.log").read_text()[-6000:]) from None
    return code, time.monotonic() - sent, tree


def interrupt_cleanly(app: subprocess.Popen, signum: int, tmp_path: Path) -> None:
    """Send ``signum``: the app exits 128 + signal within ``EXIT_WITHIN`` s, leaving no process."""
    code, seconds, tree = interrupt(app, signum, tmp_path)
    assert code == 128 + signum, (tmp_path / "app.log").read_text()[-2000:]
    assert seconds < EXIT_WITHIN
    assert_no_survivor(tree)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # reaped between the two calls
        return False


def assert_no_survivor(tree: list[psutil.Process]) -> None:
    """Every process of ``tree`` ends within 30 s (an orphan would clean on for minutes).

    Resource trackers exit once their pipe closes. A cleaning worker gets its parent-death
    signal only from its initializer, which runs after the spawned worker has imported the
    app's module; one killed before that exits when the initializer finds it orphaned. With
    the app's module light (``tests/apps/test_startup.py``) the last process ends 0.2-0.4 s
    after the SIGKILL; when the module imported MLflow and scikit-learn it took 3-4 s, 11 s
    cold, and the old 5 s deadline failed CI once. The deadline keeps that margin for a
    loaded machine. Each check follows the sleep, so a process that ends during the last
    sleep is not reported.
    """
    commands = {p.pid: _command(p) for p in tree}  # read now: a zombie has none
    deadline = time.monotonic() + 30
    alive = [p for p in tree if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if _alive(p)]
    assert not alive, [commands[p.pid] for p in alive]


def _command(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # already gone or a zombie
        return f"pid {process.pid}"


def all_runs(tracking_uri: str) -> list[mlflow.entities.Run]:
    return mlflow.MlflowClient(tracking_uri).search_runs(
        [e.experiment_id for e in mlflow.MlflowClient(tracking_uri).search_experiments()]
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_train_interrupted_while_curating_with_workers(
    tracking_uri: str, tmp_path: Path, signum: int
) -> None:
    app = start_app(
        [
            "pricer.train",
            "model=constant",
            "data.n_records=400000",  # above PARALLEL_MIN_RECORDS: 2 cleaning workers
            "data.num_proc=2",
            f"curation.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
        ],
        tracking_uri,
        tmp_path,
    )
    process = psutil.Process(app.pid)
    wait_until(app, lambda: running_runs(tracking_uri) == 1 and len(workers(process)) >= 2)
    interrupt_cleanly(app, signum, tmp_path)
    name = signal.Signals(signum).name
    [run] = all_runs(tracking_uri)
    assert run.info.status == "KILLED"
    assert run.data.tags["error"] == f"interrupted by {name}"
    assert f"pricer: interrupted by {name}" in (tmp_path / "app.log").read_text()
    assert not list((tmp_path / "cache").glob("*/train.parquet"))  # no half-saved cache entry


def test_leaderboard_sigterm_kills_the_parent_and_the_family_running(
    tracking_uri: str, tmp_path: Path
) -> None:
    app = start_app(
        [
            "pricer.leaderboard",
            "data.n_records=20000",
            "tracking.log_model=false",
            f"curation.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
        ],
        tracking_uri,
        tmp_path,
    )
    wait_until(app, lambda: running_runs(tracking_uri) == 2)  # the parent and one family
    interrupt_cleanly(app, signal.SIGTERM, tmp_path)
    runs = all_runs(tracking_uri)
    assert {run.info.status for run in runs} == {"KILLED"}
    assert {run.data.tags["error"] for run in runs} == {"interrupted by SIGTERM"}
    [parent] = [run for run in runs if run.data.tags.get("pricer.kind") == "leaderboard"]
    assert all(
        run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        for run in runs
        if run is not parent
    )


def test_sweep_on_the_joblib_launcher_kills_the_trials_in_its_workers(
    tracking_uri: str, tmp_path: Path
) -> None:
    app, _ = start_grid_on_two_workers(tracking_uri, tmp_path, "mean,median,mean,median")
    interrupt_cleanly(app, signal.SIGTERM, tmp_path)  # no loky worker survives either
    runs = all_runs(tracking_uri)
    trials = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert len(trials) == 2
    for trial in trials:
        assert trial.info.status == "KILLED", trial.data.tags.get("pricer.pid")
        assert trial.data.tags["error"] == "interrupted by SIGTERM"
    [parent] = [run for run in runs if run not in trials]
    assert parent.info.status in ("KILLED", "FAILED")  # the sweep parent closes at exit
    assert parent.data.tags.get("error")


def test_cleaning_workers_end_with_an_app_killed_by_sigkill(
    tracking_uri: str, tmp_path: Path
) -> None:
    """SIGKILL cannot be handled; the workers still end (Linux: parent-death signal)."""
    app = start_app(
        [
            "pricer.train",
            "model=constant",
            "data.n_records=400000",
            "data.num_proc=2",
            f"curation.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
        ],
        tracking_uri,
        tmp_path,
    )
    process = psutil.Process(app.pid)
    wait_until(app, lambda: running_runs(tracking_uri) == 1 and len(workers(process)) >= 2)
    tree = process.children(recursive=True)
    app.send_signal(signal.SIGKILL)
    app.wait(timeout=30)
    assert_no_survivor(tree)
    assert running_runs(tracking_uri) == 1  # left RUNNING: what liveness.is_stale is for


def start_grid_on_two_workers(
    tracking_uri: str, tmp_path: Path, statistics: str = "mean,median,mean"
) -> tuple[subprocess.Popen, list]:
    """A grid sweep (a trial per statistic, three by default) on the joblib launcher's two
    workers, both running a trial; the app and every process of its tree."""
    app = start_app(
        [
            "pricer.train",
            "-m",
            "model=constant",
            f"model.statistic={statistics}",
            "data.n_records=60000",
            "validation.size=200",
            "tracking.log_model=false",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            f"curation.cache_dir={tmp_path / 'cache'}",
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
        ],
        tracking_uri,
        tmp_path,
    )
    wait_until(app, lambda: running_runs(tracking_uri) == 3)  # the parent and two trials
    return app, psutil.Process(app.pid).children(recursive=True)


def running_trial(tracking_uri: str) -> mlflow.entities.Run:
    return next(
        run
        for run in all_runs(tracking_uri)
        if "mlflow.parentRunId" in run.data.tags and run.info.status == "RUNNING"
    )


def wait_for_end(app: subprocess.Popen, tree: list, tmp_path: Path) -> tuple[int, str]:
    """The app's exit code and log; every process of its tree killed if it does not end."""
    try:
        code = app.wait(timeout=180)
    except subprocess.TimeoutExpired:
        for process in [psutil.Process(app.pid), *tree]:
            with contextlib.suppress(psutil.Error):
                process.kill()
        raise AssertionError("the sweep waited for its worker for good") from None
    return code, (tmp_path / "app.log").read_text()


def test_sigterm_to_one_joblib_worker_fails_its_trial_and_the_sweep_ends(
    tracking_uri: str, tmp_path: Path
) -> None:
    """A worker signalled alone (not its app) used to stop itself for the app to kill, which
    never came: the sweep waited for its trial for good, the parent RUNNING."""
    app, tree = start_grid_on_two_workers(tracking_uri, tmp_path)
    victim = running_trial(tracking_uri)
    psutil.Process(int(victim.data.tags["pricer.pid"])).send_signal(signal.SIGTERM)
    code, log = wait_for_end(app, tree, tmp_path)
    assert code == 2, log[-3000:]
    assert "Traceback" not in log
    assert_no_survivor(tree)
    runs = {run.info.run_id: run for run in all_runs(tracking_uri)}
    killed = runs.pop(victim.info.run_id)
    assert killed.info.status == "KILLED"
    assert killed.data.tags["error"] == "interrupted by SIGTERM"
    [parent] = [run for run in runs.values() if "mlflow.parentRunId" not in run.data.tags]
    assert parent.info.status == "FAILED"
    assert "SIGTERM" in parent.data.tags["error"]
    others = [run for run in runs.values() if run is not parent]
    assert len(others) == 2  # the worker went on to the sweep's last trial
    assert {run.info.status for run in others} == {"FINISHED"}


def test_a_joblib_worker_killed_outright_stops_the_sweep_in_one_line_and_ends_its_runs(
    tracking_uri: str, tmp_path: Path
) -> None:
    """SIGKILL (the out-of-memory killer) to one worker: loky kills the other with it. It was
    joblib's traceback, exit 1, and both trials' runs stayed RUNNING after the sweep."""
    app, tree = start_grid_on_two_workers(tracking_uri, tmp_path)
    victim = running_trial(tracking_uri)
    psutil.Process(int(victim.data.tags["pricer.pid"])).send_signal(signal.SIGKILL)
    code, log = wait_for_end(app, tree, tmp_path)
    assert code == 2, log[-3000:]
    assert "Traceback" not in log
    # After the killed worker's progress bar, which it left without a line break.
    [line] = [line[line.index("error: ") :] for line in log.splitlines() if "error: " in line]
    assert line.startswith("error: a worker process of the sweep's launcher died"), line
    assert "SIGKILL" in line
    assert_no_survivor(tree)
    runs = all_runs(tracking_uri)
    assert running_runs(tracking_uri) == 0, [(run.info.run_name, run.info.status) for run in runs]
    [parent] = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert parent.info.status == "FAILED"
    assert parent.data.tags["error"] == line.removeprefix("error: ")
    trials = [run for run in runs if run is not parent]
    assert len(trials) == 2 and {run.info.status for run in trials} == {"KILLED"}
