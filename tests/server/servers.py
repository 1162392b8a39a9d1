"""A throwaway PostgreSQL cluster and a real ``mlflow server`` on it (tests, benchmarks).

Both run on 127.0.0.1 in a temporary folder and are stopped when their ``with`` block ends,
even on an error. PostgreSQL's ``initdb`` refuses to run as root: as root (CI) the cluster
belongs to the ``postgres`` user Debian's package creates, and its commands run through
``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
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

PG_PASSWORD = "pg-secret-for-tests"
ADMIN_PASSWORD = "admin-secret-for-tests"


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
    admin: tuple[str, str] = ("admin", ADMIN_PASSWORD)


@contextlib.contextmanager
def mlflow_server(postgres: Postgres, folder: Path, workers: int = 1) -> Iterator[TrackingServer]:
    """``mlflow server`` on PostgreSQL, artifacts proxied, users and permissions by basic-auth.

    Creates the databases ``mlflow``, ``mlflow_auth`` and ``optuna`` (for sweeps' studies).
    """
    for database in ("mlflow", "mlflow_auth", "optuna"):
        postgres.create_database(database)
    auth_config = folder / "basic_auth.ini"
    auth_config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {postgres.url('mlflow_auth')}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Remember a verified password for 60 s: without it every request pays a PBKDF2 hash
        # (about 1.5 s per request on this loaded 2-core machine, a leaderboard makes ~200).
        "auth_cache_ttl_seconds = 60\n"
    )
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,  # the admin's first password
        # basic-auth's CSRF protection signs forms with it (the same on every server process)
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-secret-for-tests",
        # MLflow's background job runner (GenAI jobs; pricer uses none) starts ~8 processes
        # of ~250 MB each: off.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(name, None)
    log = folder / "server.log"
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(mlflow_cli), "server",
                "--backend-store-uri", postgres.url("mlflow"),
                "--artifacts-destination", str(folder / "artifacts"), "--serve-artifacts",
                "--app-name", "basic-auth",
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            ],
            cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its workers
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, process, log, timeout=180)
        yield TrackingServer(uri=url, artifacts=folder / "artifacts", postgres=postgres)
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
