"""A throwaway PostgreSQL cluster and the README's ``mlflow server`` on it (tests, benchmarks).

The server's ini, environment and command are read from the README's team section and run
with only the throwaway parts substituted, so a flag the README loses or breaks fails here.

Both run on 127.0.0.1 in a temporary folder and are stopped when their ``with`` block ends,
even on an error. PostgreSQL's ``initdb`` refuses to run as root: as root (CI) the cluster
belongs to the ``postgres`` user Debian's package creates, and its commands run through
``runuser``.
"""

from __future__ import annotations

import configparser
import contextlib
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PG_PASSWORD = "pg-secret-for-tests"


class Unavailable(RuntimeError):
    """What a throwaway PostgreSQL needs is not on this machine (the reason says what)."""


def postgres_bin() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<v>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str = "pricer"
    password: str = PG_PASSWORD

    def url(self, database: str) -> str:
        """A SQLAlchemy URL: +psycopg names the driver (psycopg 3) explicitly."""
        return f"postgresql+psycopg://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        import psycopg

        conninfo = f"host=127.0.0.1 port={self.port} user={self.user} password={self.password}"
        with psycopg.connect(f"{conninfo} dbname=postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster of its own on a free port; password authentication over TCP."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise Unavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) are absent: install Debian's "
            "`postgresql` package (.ci/run does) to run the team-server tests"
        )
    prefix: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable(
                "running as root with no `postgres` user to own the cluster (initdb refuses root)"
            ) from None
        prefix = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="pricer-pg-"))
    password_file = folder / "password"
    password_file.write_text(PG_PASSWORD)
    if owner is not None:
        for path in (folder, password_file):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    data, log, port = folder / "data", folder / "postgres.log", free_port()

    def run(*args: str) -> None:
        result = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            logged = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{Path(args[0]).name} failed: {result.stderr[-2000:]}\n{logged}")

    try:
        run(
            str(bin_dir / "initdb"), "-D", str(data), "-U", "pricer", f"--pwfile={password_file}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        run(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "120",
            "-o", f"-h 127.0.0.1 -p {port} -k {folder}", "start",
        )  # fmt: skip
        yield Postgres(port=port)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class TrackingServer:
    uri: str
    artifacts: Path
    postgres: Postgres
    admin: tuple[str, str]
    # The address the README's clients use (http://mlflow-host:<port>): the test's requests go
    # to ``uri`` and name this one in their Host and Origin headers.
    readme_uri: str


README = Path(__file__).resolve().parents[2] / "README.md"
# The README's PostgreSQL role, host and port; the throwaway cluster has its own.
README_DATABASE = re.compile(r"postgresql\+psycopg://mlflow:change-me@localhost:5432/(\w+)")


def readme_team_blocks(readme: Path = README) -> list[str]:
    """The ```bash blocks of the README's team section, continuation lines joined."""
    text = readme.read_text()
    if "\n## A team server\n" not in text:
        raise RuntimeError(f"{readme} has no '## A team server' section")
    section = text.split("\n## A team server\n", 1)[1].split("\n## ", 1)[0]
    return [block.replace("\\\n", " ") for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def _substituted(text: str, pattern: str | re.Pattern[str], new: Any, what: str) -> str:
    """``text`` with ``pattern`` replaced; an error naming ``what`` where the README lost it."""
    replaced, count = re.subn(pattern, new, text)
    if not count:
        raise RuntimeError(f"the README's team server block no longer has {what}")
    return replaced


def readme_server(postgres: Postgres, folder: Path, port: int) -> tuple[dict[str, str], list[str]]:
    """(the variables the README exports, the README's ``mlflow server`` command), throwaway.

    Substituted, nothing else: the PostgreSQL URLs (the throwaway cluster's), the artifacts
    folder, the port, and the host to listen on. The shell lines between the PostgreSQL set-up
    (made here with initdb and CREATE DATABASE) and the command run as written, with HOME in
    ``folder`` (the ini the README writes under ~/.config lands there) and ``python`` the
    interpreter of these tests (the README's commands run in pricer's environment).
    """
    found = [
        (block.splitlines(), n)
        for block in readme_team_blocks()
        for n, line in enumerate(block.splitlines())
        if line.startswith("mlflow server ")
    ]
    if len(found) != 1:
        raise RuntimeError(f"the README's team section has {len(found)} mlflow server commands")
    lines, server_line = found[0]
    setup_starts = 1 + max(
        (n for n, line in enumerate(lines[:server_line]) if "sudo -u postgres" in line),
        default=-1,
    )
    text = "\n".join(lines[setup_starts : server_line + 1])
    found = re.search(r"--port (\d+)", text)
    if found is None:
        raise RuntimeError("the README's mlflow server command no longer has --port")
    readme_port = found.group(1)
    # Every address of the server names its port (--port, --allowed-hosts, the UI's origin).
    text = re.sub(rf"(?<=[\w\]]):{readme_port}\b", f":{port}", text)
    text = text.replace(f"--port {readme_port}", f"--port {port}")
    text = _substituted(
        text,
        README_DATABASE,
        lambda match: postgres.url(match.group(1)),
        "a postgresql+psycopg://mlflow:change-me@localhost:5432/... URL",
    )
    # The README listens on every interface (0.0.0.0) for remote clients; a throwaway server
    # with a known admin password listens on loopback only, where the tests' clients are.
    text = _substituted(text, r"--host \S+", "--host 127.0.0.1", "--host")
    text = _substituted(
        text,
        r"--artifacts-destination \S+",
        f"--artifacts-destination {shlex.quote(str(folder / 'artifacts'))}",
        "--artifacts-destination",
    )
    *setup, command = text.splitlines()
    exported = re.findall(r"^export (\w+)=", "\n".join(setup), re.M)
    home = folder / "home"
    home.mkdir()
    shell_env = {
        **os.environ,
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join([*setup, "env -0"])],
        cwd=folder, env=shell_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if ran.returncode != 0:
        raise RuntimeError(f"the README's server set-up failed: {ran.stderr[-2000:]}")
    variables = dict(item.split("=", 1) for item in ran.stdout.split("\0") if "=" in item)
    args = shlex.split(command)
    # The README's clients on the server host are told to add their own address to
    # --allowed-hosts: the tests' clients are on it, at 127.0.0.1.
    if "--allowed-hosts" in args:
        at = args.index("--allowed-hosts") + 1
        args[at] = f"{args[at]},127.0.0.1:{port}"
    args[:2] = [str(Path(sys.executable).parent / "mlflow"), "server"]
    return {name: variables[name] for name in exported}, args


def readme_client_uri(port: int) -> str:
    """The README's MLFLOW_TRACKING_URI for its clients, on ``port``."""
    for block in readme_team_blocks():
        found = re.search(r"^export MLFLOW_TRACKING_URI=http://([^:/\s]+):\d+\s*$", block, re.M)
        if found:
            return f"http://{found.group(1)}:{port}"
    raise RuntimeError("the README's team section no longer exports MLFLOW_TRACKING_URI")


@contextlib.contextmanager
def mlflow_server(postgres: Postgres, folder: Path, workers: int = 1) -> Iterator[TrackingServer]:
    """The README's ``mlflow server`` on PostgreSQL, its ini and environment (readme_server).

    Creates the databases ``mlflow``, ``mlflow_auth`` and ``optuna`` (for sweeps' studies).
    """
    for database in ("mlflow", "mlflow_auth", "optuna"):
        postgres.create_database(database)
    port = free_port()
    exported, command = readme_server(postgres, folder, port)
    env = {**os.environ, **exported}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(name, None)
    auth = configparser.ConfigParser()
    auth.read(env["MLFLOW_AUTH_CONFIG_PATH"])
    admin = (auth["mlflow"]["admin_username"], env["MLFLOW_AUTH_ADMIN_PASSWORD"])
    log = folder / "server.log"
    # The README leaves uvicorn's 4 workers; one serves the tests, in a quarter of the memory.
    command += ["--workers", str(workers)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its workers
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, process, log, timeout=180)
        yield TrackingServer(
            uri=url,
            artifacts=folder / "artifacts",
            postgres=postgres,
            admin=admin,
            readme_uri=readme_client_uri(port),
        )
    finally:
        stop_group(process)


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"mlflow server not up after {timeout} s: {log.read_text()[-3000:]}")


def stop_group(process: subprocess.Popen[bytes], grace: float = 20) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(15)


def create_users(server: TrackingServer, users: dict[str, str]) -> None:
    """Create users as the admin, with the REST call the README's curl command makes."""
    import requests

    for user, password in users.items():
        answer = requests.post(
            f"{server.uri}/api/2.0/mlflow/users/create",
            json={"username": user, "password": password},
            auth=server.admin,
            timeout=60,
        )
        if answer.status_code != 200:
            raise RuntimeError(f"cannot create user {user}: {answer.status_code} {answer.text}")
