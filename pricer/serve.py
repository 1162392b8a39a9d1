"""pricer serve: a registered pricer over HTTP, its files checked before anything runs them.

    pricer serve --data real                      # pricer-real@champion on 127.0.0.1:5001
    pricer serve --model-uri models:/pricer-real/3 --port 5002
    pricer serve --data real -- --workers 2       # after --: options of mlflow models serve

``mlflow models serve -m models:/pricer-real@champion`` downloads the model and imports its
code: a file changed in the artifact store since the model was logged is served as if it were
the one logged (a skops file of trusted types, with other weights, loads). This command
chooses the model as predict does (conf/predict.yaml), downloads it into a folder of its own,
refuses it in one line (exit 2) unless its files hash to the digest recorded when it was
logged, and only then starts ``mlflow models serve`` on that verified copy, never on the URI
again (an alias that moves, or a file changed, after the check cannot change what is served;
when the alias it was chosen by moves on, a line on stderr says so, see ``WATCH_SECONDS``).
"serving ... at ..." is said once the server answers ``/ping`` itself, listening there (the
model loaded, the port bound); a server that ends before it answers (its model does not load in
it, a library missing there, the port taken after the check) is one line, exit 2, naming the
error it ended on (``ServerOutput``). The folder is removed when the server stops. Ctrl-C or
SIGTERM stops the server: MLflow's scoring process gets SIGTERM when the ``mlflow`` process
ends. A SIGKILLed pricer serve runs no cleanup: its server stops with it, and the next pricer
serve removes the copy it left.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

import psutil

from pricer import interrupt
from pricer.cli import CommandParser, report, run_command
from pricer.errors import UserError
from pricer.files import ended_here
from pricer.predict import add_model_options, check_model_options, load_config, model_settings

if TYPE_CHECKING:
    from pricer.tracking.champions import Chosen

# For the server to stop on SIGTERM before it is killed: inside the interrupt watchdog's
# deadline, which would end this process before the kill and the copy's removal.
STOP_SECONDS = interrupt.UNWIND_DEADLINE_SECONDS / 2
COPY_PREFIX = "pricer-serve-"
# How often a server chosen by alias asks whether the alias still names the version it serves:
# it serves that version to the end (the checked copy), and promote moving the alias on is
# said on stderr rather than left for its callers to find out from the prices.
WATCH_SECONDS = 60.0
OWNER_FILE = "owner"  # in a copy's folder: "<host> <pid>" of the pricer serve it belongs to
# The server is said to serve once its /ping answers: asked every PING_SECONDS, each question
# given PING_TIMEOUT (a socket that accepts and never answers, not the server, costs no more).
PING_SECONDS = 0.25
PING_TIMEOUT = 2.0
# How long the server's last output may take to arrive once it has exited (its pipe is closed
# then, unless a process it started still holds it).
READ_SECONDS = 5.0
# MLflow's exception when uvicorn exits non-zero: under uvicorn's own error, which says why.
MLFLOW_SERVER_EXIT = "Exception: Command "
# uvicorn's supervisor (--workers 2 or more) on a worker that ended, before it starts another.
WORKER_DIED = re.compile(rb"Child process \[\d+\] died")


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    arguments = list(argv)
    cut = arguments.index("--") if "--" in arguments else len(arguments)
    parser = CommandParser(
        prog="pricer serve",
        description="Serve a registered pricer model over HTTP (default: the champion), its "
        "files checked against the digest logged with them first.",
        epilog="Options after -- go to mlflow models serve (e.g. -- --workers 2).",
    )
    add_model_options(parser)
    parser.add_argument(
        "--host",
        type=host_address,
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1)",
    )
    parser.add_argument(
        "-p", "--port", type=port_number, default=5001, help="port to listen on (default: 5001)"
    )
    args = parser.parse_args(arguments[:cut])
    check_model_options(parser, args)
    return args, arguments[cut + 1 :]


def host_address(text: str) -> str:
    """An address to listen on, never blank: MLflow passes no --host on for "", so uvicorn
    listened on 127.0.0.1 while the port was checked on every address and the line said
    "serving ... at http://:5001/invocations"."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty address: give one, e.g. 127.0.0.1 or 0.0.0.0")
    return text


def port_number(text: str) -> int:
    """A TCP port a server can be asked to listen on (0, "any free port", would be served
    somewhere this command could not name)."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (1 to 65535)")
    return int(text)


def require_free(host: str, port: int) -> None:
    """Refuse a port something already listens on, before the model is fetched: uvicorn said so
    in a traceback, after the download and a line claiming to serve there."""
    # The family uvicorn binds ("::1" on an IPv4 socket, create_server's default, was refused
    # for its family, though uvicorn listens there).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_server((host, port), family=family):
            pass
    except OSError as error:
        said = f"{address(host)}:{port}"
        raise UserError(f"cannot listen on {said}: {error.strerror or error}") from None


def address(host: str) -> str:
    """``host`` as a URL writes it: an IPv6 literal in brackets (``[::1]``)."""
    return f"[{host}]" if ":" in host else host


def serve_command(local: Path, args: argparse.Namespace, extra: Sequence[str]) -> list[str]:
    """``mlflow models serve`` on the downloaded, verified copy (with this interpreter's
    packages: the model's own environment would be another download)."""
    return [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", str(local),
        "--env-manager", "local", "--host", args.host, "--port", str(args.port), *extra,
    ]  # fmt: skip


def server_env() -> dict[str, str]:
    """This interpreter's scripts first on the PATH: MLflow starts ``uvicorn`` by name, which
    an environment that is not activated (``.venv/bin/pricer serve``) does not have there."""
    scripts = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")])}


def remove_abandoned_copies(parent: Path) -> list[Path]:
    """Remove the copies in ``parent`` whose pricer serve has ended without removing them (a
    SIGKILL runs no cleanup); the folders removed. A folder without its owner yet (one being
    created) is left alone, as is one whose pid now names another process."""
    removed = []
    for folder in parent.glob(f"{COPY_PREFIX}*"):
        try:
            host, pid = (folder / OWNER_FILE).read_text().split()
        except (OSError, ValueError):
            continue
        # Another host's (a temporary folder shared between machines or containers) stays.
        if pid.isdigit() and ended_here(host, int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class ServerDidNotStart(UserError):
    """The server ended before it answered: the model did not load in it, a dependency is
    missing there, the port was taken after ``require_free``..."""


def ping_url(host: str, port: int) -> str:
    """The scoring server's health check, reached where it listens (a wildcard address is
    answered on loopback)."""
    reachable = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://{address(reachable)}:{port}/ping"


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 within ``PING_TIMEOUT`` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=PING_TIMEOUT) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):  # refused, reset, timed out, an HTTP error, not HTTP at all
        return False


def wait_until_answering(
    server: subprocess.Popen[bytes], url: str, port: int, output: ServerOutput | None = None
) -> None:
    """Return once ``url`` answers and the server listens on ``port``; raise
    ``ServerDidNotStart`` if the server ends first, or if ``output`` saw one of its workers die
    before it answered.

    No deadline of its own: a big model takes as long as it takes to load, and Ctrl-C or
    SIGTERM stop the wait as they stop the server (``Interrupted`` from the handler)."""
    while server.poll() is None:
        if output is not None and output.worker_died.is_set():
            # With --workers 2 or more, uvicorn starts a new worker for each that dies, and
            # one whose model fails to load dies again: the server never answers, nor ends.
            raise ServerDidNotStart("the server did not start (its workers died as they started)")
        # Another server that took the port after the check answers /ping too (this one then
        # fails to bind it): only an answer while this one listens there is its own.
        if listens(server, port) and answers(url):
            if server.poll() is None:  # a server ending as it answered did not start
                return
            break
        time.sleep(PING_SECONDS)
    raise ServerDidNotStart(
        f"the server did not start (mlflow models serve exited with {server.returncode})"
    )


def listens(server: subprocess.Popen[bytes], port: int) -> bool:
    """Whether the server's process, or one it started (uvicorn, its workers), listens on
    ``port``."""
    try:
        root = psutil.Process(server.pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    for process in processes:
        try:
            connections = process.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):  # ended meanwhile
            continue
        for connection in connections:
            if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
                return True
    return False


class ServerOutput:
    """The server's stderr, held back until it answers and passed on from then.

    While it starts, a failure is a traceback (or two: uvicorn's, then MLflow's around it)
    under nothing that said it served; held back, the one line that says it did not start
    names the error it ended on (``last_error``). Once it answers, what it said so far is
    written, then the line that says it serves, then everything it says as it says it.
    """

    def __init__(self, server: subprocess.Popen[bytes]) -> None:
        self._lock = threading.Lock()
        self._held: list[bytes] = []
        self._passing = False
        self.worker_died = threading.Event()  # uvicorn said so before the server answered
        self._reader = threading.Thread(target=self._read, args=(server.stderr,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        for line in iter(stream.readline, b""):
            with self._lock:
                if self._passing:
                    _write_stderr(line)
                else:
                    self._held.append(line)
                    if WORKER_DIED.search(line):
                        self.worker_died.set()

    def pass_through(self, said: str) -> None:
        """Write what the server said so far, then ``said``; then pass its lines on."""
        with self._lock:
            for line in self._held:
                _write_stderr(line)
            self._held = []
            _write_stderr(said.encode())
            self._passing = True

    def last_error(self) -> str:
        """The error the server ended on, in one line (its exit read to the end of its output)."""
        self._reader.join(READ_SECONDS)  # its last lines may still be in the pipe
        with self._lock:
            lines = [line.decode(errors="replace").rstrip() for line in self._held]
        return last_error_line(lines)


def last_error_line(lines: Sequence[str]) -> str:
    """The line of a failed server's output that says why: the last exception line or uvicorn
    ``ERROR:`` line, not MLflow's own exception about uvicorn's exit (it names the command, not
    the cause); the last line said if none is; "no output" if there is none."""
    errors = []
    in_traceback = False
    for line in lines:
        if line.startswith("Traceback (most recent call last)"):
            in_traceback = True
        elif in_traceback and line and not line[0].isspace():
            in_traceback = False
            if not line.startswith(MLFLOW_SERVER_EXIT):
                errors.append(line)
        elif line.startswith("ERROR:") and "Child process [" not in line:  # not its cause
            errors.append(line.removeprefix("ERROR:").strip())
    said = [line.strip() for line in lines if line.strip()]
    return errors[-1] if errors else said[-1] if said else "no output"


def _write_stderr(data: bytes) -> None:
    sys.stderr.write(data.decode(errors="replace"))
    sys.stderr.flush()


def wait_watching(server: subprocess.Popen[bytes], chosen: Chosen | None) -> int:
    """Wait for the server to end; meanwhile say, once per move, when the alias it was chosen
    by names another version than the one it answers with (or that version again)."""
    from pricer.tracking.champions import alias_version

    if chosen is None:  # a version or a model id: nothing to move
        return server.wait()
    said = chosen.version
    while True:
        try:
            return server.wait(WATCH_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        now = alias_version(chosen)
        if now is None or now == said:  # the store did not answer, or nothing new to say
            continue
        said = now
        named = f"{chosen.name}@{chosen.alias}"
        if now == chosen.version:
            line = f"{named} is version {now} again, the version this server answers with"
        elif now:
            line = (
                f"{named} is now version {now}; this server still answers with version "
                f"{chosen.version}: restart pricer serve to serve version {now}"
            )
        else:
            line = (
                f"{named} names no version any more; this server still answers with version "
                f"{chosen.version}"
            )
        print(f"pricer serve: {line}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    from pricer.tracking.champions import fetch_verified  # imports MLflow: after the options
    from pricer.tracking.serving import check_server_options

    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        check_server_options(extra)  # before the download and the line saying it serves
        require_free(args.host, args.port)
    except UserError as error:
        return report(error)
    remove_abandoned_copies(Path(tempfile.gettempdir()))
    folder = Path(tempfile.mkdtemp(prefix=COPY_PREFIX))
    try:
        (folder / OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}")
        try:
            cfg = load_config(args)
            verified = fetch_verified(cfg.tracking.uri, model_settings(cfg), folder / "model")
        except UserError as error:
            return report(error)
        # A SIGKILLed pricer serve runs no finally: the server then stops with it (SIGTERM).
        server = subprocess.Popen(
            serve_command(verified.local, args, extra),
            env=server_env(),
            preexec_fn=interrupt.parent_death_hook(),
            stderr=subprocess.PIPE,
        )
        try:
            output = ServerOutput(server)
            try:
                wait_until_answering(server, ping_url(args.host, args.port), args.port, output)
            except ServerDidNotStart as error:
                stop_server(server)  # its last lines come as it ends
                return report(ServerDidNotStart(f"{error}: {output.last_error()}"))
            url = f"http://{address(args.host)}:{args.port}/invocations"
            # Said only now that /ping answers (the model loaded, the port bound), after what
            # the server said while it started.
            output.pass_through(f"serving {verified.description} at {url}\n")
            return wait_watching(server, verified.chosen)
        finally:
            stop_server(server)  # interrupted: stop the server before its files go
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM a server still running, SIGKILL after ``STOP_SECONDS``."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def cli(argv: Sequence[str] | None = None) -> int:
    """``main`` as a command: SIGTERM and Ctrl-C stop the server and remove its copy."""
    return run_command(main, argv, "serve", "the server is stopped")


if __name__ == "__main__":
    sys.exit(cli())
