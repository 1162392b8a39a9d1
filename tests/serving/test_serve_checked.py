"""pricer serve: the model's files are checked against their logged digest before a server
starts, and the server runs on the checked copy, which is removed when it stops."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import TextIO

import mlflow
import numpy as np
import pandas as pd
import psutil
import pytest

from pricer.paths import PROJECT_ROOT
from tests.serving.conftest import constant_champion
from tests.serving.test_serve import STARTUP_SECONDS, free_port, post, wait_until_up

TEXTS = ["Cordless drill driver, 20V, two batteries", "Replacement cap for a water bottle"]


@pytest.fixture(autouse=True)
def _global_tracking_uri_put_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve sets MLflow's global tracking URI, as predict does (see test_predict)."""
    uris = mlflow.tracking._tracking_service.utils
    monkeypatch.setattr(uris, "_tracking_uri", uris._tracking_uri)


def test_a_champion_whose_pricer_file_was_swapped_is_not_served(
    tracking_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # mlflow models serve served another valid pricer put in place of the champion's file.
    from pricer import serve
    from pricer.models.constant import ConstantPricer
    from pricer.tracking.model import MODEL_FILE
    from pricer.tracking.model_files import save_pricer

    model_id = str(constant_champion(20.0).model_id)
    folder = Path(mlflow.artifacts.download_artifacts("models:/pricer-synthetic/1"))
    other = ConstantPricer("mean").fit(pd.DataFrame({"text": TEXTS}), np.array([999.0, 999.0]))
    save_pricer(other, tmp_path / "other")
    (folder / "artifacts" / MODEL_FILE).write_bytes((tmp_path / "other").read_bytes())
    downloads = tmp_path / "downloads"
    abandoned = abandoned_copy(downloads)
    started: list[list[str]] = []
    monkeypatch.setattr(serve.subprocess, "Popen", lambda command, **_: started.append(command))
    monkeypatch.setattr(serve.tempfile, "tempdir", str(downloads))
    capsys.readouterr()  # what logging the model printed

    assert serve.main(["--data", "synthetic", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "error: refusing models:/pricer-synthetic@champion: its files are not the ones logged "
        f"as {model_id}"
    )
    assert err.count("\n") == 1
    assert started == []  # no server
    assert not abandoned.exists()  # a SIGKILLed pricer serve's copy, removed at the start
    assert list(downloads.iterdir()) == []  # nor the refused copy


class StandInServer:
    """What serve waits on: a server that runs until told to stop, moving the champion alias
    to version 2 (another promotion) after its first wait and back to 1 after its third."""

    stderr = None  # nothing said while it starts

    def __init__(self, client: mlflow.MlflowClient) -> None:
        self.client, self.waits, self.code = client, 0, None

    def wait(self, timeout: float | None = None) -> int:
        self.waits += 1
        if self.waits == 5 or timeout is None:
            self.code = 0
            return 0
        moves = {1: "2", 3: "1"}
        if self.waits in moves:
            self.client.set_registered_model_alias(
                "pricer-synthetic", "champion", moves[self.waits]
            )
        raise subprocess.TimeoutExpired("mlflow models serve", timeout)

    def poll(self) -> int | None:
        return self.code


def test_a_champion_that_moves_while_serving_is_said_once_per_move(
    tracking_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The server went on answering with version 1 after promote made version 2 champion, and
    # nothing said so: callers of "the champion's server" got the old champion's prices.
    from pricer import serve

    constant_champion(20.0)
    info = constant_champion(30.0)  # version 2, champion for the moment
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("pricer-synthetic", "champion", "1")
    server = StandInServer(client)
    monkeypatch.setattr(serve.subprocess, "Popen", lambda command, **_: server)
    monkeypatch.setattr(serve, "answers", lambda url: True)  # it answers /ping at once
    monkeypatch.setattr(serve, "listens", lambda server, port: True)
    monkeypatch.setattr(serve, "WATCH_SECONDS", 0.01, raising=False)
    monkeypatch.setattr(serve.tempfile, "tempdir", str(tmp_path))
    capsys.readouterr()
    assert info.model_id and serve.main(["--data", "synthetic", "--port", str(free_port())]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("serving pricer-synthetic version 1 (champion): ")
    assert lines[1:] == [
        "pricer serve: pricer-synthetic@champion is now version 2; this server still answers "
        "with version 1: restart pricer serve to serve version 2",
        "pricer serve: pricer-synthetic@champion is version 1 again, the version this server "
        "answers with",
    ]


@pytest.mark.e2e
def test_pricer_serve_answers_from_the_checked_copy_and_removes_it_when_stopped(
    tracking_uri: str, tmp_path: Path
) -> None:
    constant_champion(20.0)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    server, url, log = start_serve(tmp_path, downloads)
    try:
        # It said "serving" before its server had started (seconds before /ping answered).
        wait_for_serving_line(tmp_path / "serve.log", server)
        assert answers(f"{url}/ping"), "said it was serving before /ping answered"
        copies = list(downloads.glob("pricer-serve-*"))
        status, answer = post(url, [{"text": text} for text in TEXTS])
        server.send_signal(signal.SIGTERM)
        code = server.wait(60)
    finally:
        if server.poll() is None:
            server.kill()
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert status == 200, answer
    assert answer["predictions"] == [20.0, 20.0]
    assert "serving pricer-synthetic version 1 (champion): " in output
    assert f"at {url}/invocations" in output
    assert len(copies) == 1  # the server ran on the copy checked, in a folder of its own
    assert code == 128 + signal.SIGTERM, output[-3000:]
    assert not copies[0].exists()
    with pytest.raises(AssertionError):  # nothing listens any more
        post_or_fail(url)


def wait_for_serving_line(log: Path, server: subprocess.Popen[bytes]) -> None:
    """Return as soon as ``log`` holds pricer serve's "serving ... at ..." line."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while "serving " not in log.read_text():
        assert server.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no serving line in {STARTUP_SECONDS}s"
        time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


BROKEN_MODEL = """
import mlflow


class NeedsAMissingLibrary(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import pricer_no_such_library  # noqa: F401

    def predict(self, context, model_input, params=None):
        return model_input


mlflow.models.set_model(NeedsAMissingLibrary())
"""


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("workers", "ended"),
    [
        ("1", "mlflow models serve exited with 1"),
        # uvicorn starts a new worker for each that dies: it never answered, nor ended.
        ("2", "its workers died as they started"),
    ],
)
def test_a_server_that_fails_to_start_is_one_line_and_not_said_to_serve(
    tracking_uri: str, tmp_path: Path, workers: str, ended: str
) -> None:
    # "serving ... at ...", then uvicorn's traceback and MLflow's around it, exit 1: its files
    # pass pricer serve's check (this one has no digest to check), its code fails in the
    # server, as a model needing a library the serving environment lacks does.
    code = tmp_path / "broken_model.py"
    code.write_text(BROKEN_MODEL)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="broken", python_model=str(code))
    mlflow.register_model(info.model_uri, "pricer-synthetic")
    mlflow.MlflowClient().set_registered_model_alias("pricer-synthetic", "champion", "1")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    port = free_port()
    command = [sys.executable, "-m", "pricer.serve", "--data", "synthetic", "--port", str(port)]
    served = subprocess.run(
        [*command, "--", "--workers", workers],
        cwd=PROJECT_ROOT, env={**os.environ, "TMPDIR": str(downloads)},
        capture_output=True, text=True, timeout=STARTUP_SECONDS,
    )  # fmt: skip
    assert (served.returncode, served.stderr) == (
        2,
        f"error: the server did not start ({ended}): "
        "ModuleNotFoundError: No module named 'pricer_no_such_library'\n",
    )
    assert list(downloads.iterdir()) == []  # its copy removed
    assert not answers(f"http://127.0.0.1:{port}/ping")
    # Nothing left running: not mlflow, nor uvicorn or its workers.
    left = [
        " ".join(process.info["cmdline"] or [])
        for process in psutil.process_iter(["cmdline"])
        if f"--port {port} " in " ".join(process.info["cmdline"] or []) + " "
        or str(downloads) in " ".join(process.info["cmdline"] or [])
    ]
    assert left == []


class PingAnswers(http.server.BaseHTTPRequestHandler):
    """Another server's answer to /ping: 200, as MLflow's scoring server gives."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.e2e
@pytest.mark.parametrize("taker", ["a socket that never answers", "a server answering /ping"])
def test_a_port_taken_after_the_check_is_one_line_and_not_said_to_serve(
    tracking_uri: str, tmp_path: Path, taker: str
) -> None:
    # The port is checked free before the model is fetched; taken in between (here as soon as
    # the copy's folder exists, after the check and seconds before the server binds), uvicorn
    # said "address already in use" under a line claiming to serve there. Taken by a server
    # that answers /ping, its answer must not pass for this server's.
    constant_champion(20.0)
    server, url, log = start_serve(tmp_path, tmp_path)
    port = int(url.rsplit(":", 1)[1])
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not list(tmp_path.glob("pricer-serve-*")):
            assert server.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        if taker == "a server answering /ping":
            with http.server.HTTPServer(("127.0.0.1", port), PingAnswers) as other:
                threading.Thread(target=other.serve_forever, daemon=True).start()
                code = server.wait(STARTUP_SECONDS)
                assert answers(f"{url}/ping")  # it was there all along
                other.shutdown()
        else:
            with socket.socket() as taken:  # accepts connections and never answers one
                taken.bind(("127.0.0.1", port))
                taken.listen()
                code = server.wait(STARTUP_SECONDS)
    finally:
        if server.poll() is None:
            server.kill()
        log.close()
    said = (tmp_path / "serve.log").read_text()
    assert code == 2, said
    assert said.startswith("error: the server did not start (mlflow models serve exited with 1)")
    assert "address already in use" in said
    assert said.count("\n") == 1
    assert list(tmp_path.glob("pricer-serve-*")) == []


def abandoned_copy(parent: Path) -> Path:
    """A copy as a SIGKILLed pricer serve leaves it: its owner's pid names an ended process."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    folder = parent / "pricer-serve-abandoned"
    (folder / "model").mkdir(parents=True)
    (folder / "owner").write_text(f"{socket.gethostname()} {ended.stdout.strip()}")
    return folder


def test_only_the_copies_of_ended_pricer_serves_are_removed(tmp_path: Path) -> None:
    from pricer.serve import remove_abandoned_copies

    abandoned = abandoned_copy(tmp_path)
    running = tmp_path / "pricer-serve-running"
    running.mkdir()
    (running / "owner").write_text(f"{socket.gethostname()} {os.getppid()}")  # alive
    starting = tmp_path / "pricer-serve-starting"  # no owner written yet
    starting.mkdir()
    elsewhere = tmp_path / "pricer-serve-elsewhere"  # another host's: its pids are not ours
    elsewhere.mkdir()
    (elsewhere / "owner").write_text("another-host " + (abandoned / "owner").read_text().split()[1])
    other = tmp_path / "other-abandoned"
    (other / "model").mkdir(parents=True)
    (other / "owner").write_text((abandoned / "owner").read_text())

    assert remove_abandoned_copies(tmp_path) == [abandoned]
    assert not abandoned.exists()
    assert running.exists() and starting.exists() and elsewhere.exists() and other.exists()


def start_serve(
    tmp_path: Path, downloads: Path, host: str = "127.0.0.1"
) -> tuple[subprocess.Popen[bytes], str, TextIO]:
    """``pricer serve`` of pricer-synthetic's champion on a free port of ``host``, with
    ``downloads`` as its temporary folder and its output in ``serve.log``: the process, its
    URL, the open log."""
    ipv6 = ":" in host
    port = free_ipv6_port() if ipv6 else free_port()
    env = {**os.environ, "TMPDIR": str(downloads)}
    log = (tmp_path / "serve.log").open("w")
    command = ["--data", "synthetic", "--host", host, "--port", str(port)]
    server = subprocess.Popen(
        [sys.executable, "-m", "pricer.serve", *command],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    return server, f"http://{f'[{host}]' if ipv6 else host}:{port}", log


def free_ipv6_port() -> int:
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        return int(probe.getsockname()[1])


def ipv6_loopback() -> bool:
    try:
        free_ipv6_port()
    except OSError:
        return False
    return True


@pytest.mark.e2e
@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_an_ipv6_address_is_served_and_named_as_a_url_names_it(
    tracking_uri: str, tmp_path: Path
) -> None:
    # --host ::1 was refused ("Address family for hostname not supported"): the port check
    # opened an IPv4 socket, whatever the address.
    constant_champion(20.0)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    server, url, log = start_serve(tmp_path, downloads, host="::1")
    try:
        wait_for_serving_line(tmp_path / "serve.log", server)
        status, answer = post(url, [{"text": TEXTS[0]}])
    finally:
        server.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(60)
        if server.poll() is None:
            server.kill()
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert status == 200 and answer["predictions"] == [20.0], output[-3000:]
    assert f" at {url}/invocations\n" in output  # http://[::1]:<port>, a URL one can paste


def post_or_fail(url: str) -> None:
    try:
        post(url, [{"text": TEXTS[0]}])
    except OSError as error:
        raise AssertionError(str(error)) from error


@pytest.mark.e2e
def test_a_sigkilled_pricer_serve_takes_its_server_with_it(
    tracking_uri: str, tmp_path: Path
) -> None:
    # SIGKILL runs no finally: the mlflow process and its uvicorn went on serving, orphaned.
    constant_champion(20.0)
    server, url, log = start_serve(tmp_path, tmp_path)  # the copy SIGKILL leaves: not in /tmp
    tree: list[psutil.Process] = []
    try:
        wait_until_up(url, server)
        tree = psutil.Process(server.pid).children(recursive=True)
        assert tree  # mlflow, and the uvicorn it starts
        server.send_signal(signal.SIGKILL)
        server.wait(30)
        _, alive = psutil.wait_procs(tree, timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
        for process in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        log.close()
    assert [" ".join(process.cmdline()) for process in alive] == []
    with pytest.raises(AssertionError):  # nothing listens any more
        post_or_fail(url)
    # No cleanup ran, so its copy is left; the next pricer serve removes it before it starts.
    (left,) = tmp_path.glob("pricer-serve-*")
    assert (left / "owner").read_text() == f"{socket.gethostname()} {server.pid}"
    restarted, url, log = start_serve(tmp_path, tmp_path)
    try:
        wait_until_up(url, restarted)
        copies = list(tmp_path.glob("pricer-serve-*"))
    finally:
        restarted.terminate()
        restarted.wait(60)
        log.close()
    assert not left.exists()
    assert len(copies) == 1  # the restarted server's own


@pytest.mark.parametrize("port", ["99999", "0", "-1", "http"])
def test_a_port_no_server_can_listen_on_is_refused_before_anything_is_fetched(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # It said "serving ... at http://127.0.0.1:99999/invocations", then uvicorn's traceback.
    from pricer import serve

    with pytest.raises(SystemExit) as stopped:
        serve.main(["--data", "synthetic", "--port", port])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    # One line, as the README says (argparse printed its usage block above it).
    assert err == (
        f"error: argument -p/--port: {port} is not a port (1 to 65535) (see pricer serve --help)\n"
    )


@pytest.mark.parametrize("host", ["", " "])
def test_a_blank_host_is_refused_before_anything_is_fetched(
    host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # MLflow passed no --host on: uvicorn listened on 127.0.0.1, the port was checked on every
    # address, and the line said "serving ... at http://:5001/invocations".
    from pricer import serve

    with pytest.raises(SystemExit) as stopped:
        serve.main(["--data", "synthetic", "--host", host])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == (
        "error: argument --host: an empty address: give one, e.g. 127.0.0.1 or 0.0.0.0 "
        "(see pricer serve --help)\n"
    )


def test_a_port_in_use_is_one_line_before_the_model_is_fetched(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # uvicorn's traceback, exit 1, after the download and the "serving ..." line.
    from pricer import serve

    fetched: list[object] = []
    monkeypatch.setattr(serve, "load_config", lambda args: fetched.append(args))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert serve.main(["--data", "synthetic", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert err.count("\n") == 1
    assert fetched == []


@pytest.mark.e2e
def test_options_the_server_would_refuse_are_one_line_before_serving(
    tracking_uri: str, tmp_path: Path
) -> None:
    # "serving ... at ...", then uvicorn's usage block and MLflow's traceback, exit 1.
    constant_champion(20.0)
    port = str(free_port())
    command = [sys.executable, "-m", "pricer.serve", "--data", "synthetic", "--port", port]
    served = subprocess.run(
        [*command, "--", "--workers", "abc"],
        cwd=PROJECT_ROOT, env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (served.returncode, served.stderr) == (
        2,
        "error: an option for mlflow models serve (after --, or its MLFLOW_* variable): "
        "Invalid value for '--workers': 'abc' is not a valid integer.\n",
    )
    assert list(tmp_path.glob("pricer-serve-*")) == []  # nothing was downloaded


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        # Refused by MLflow's own parser: its types, options and values.
        (["--timeout", "abc"], "Invalid value for '--timeout' / '-t': 'abc' is not a valid"),
        (["--wokers", "2"], "No such option '--wokers'"),
        (["-w"], "Option '-w' requires an argument"),
        (["2"], "Got unexpected extra argument (2)"),
        (["--help"], "No such option '--help'"),  # MLflow's help, exit 0, after "serving"
        # Values MLflow hands on unchecked: uvicorn's parser, then their range.
        (["-w", "two"], "Invalid value for '--workers': 'two' is not a valid integer"),
        (["--workers", "0"], "--workers for mlflow models serve must be at least 1, not 0"),
        (["--timeout=-5"], "--timeout for mlflow models serve must be at least 1, not -5"),
        # pricer serve's own: the last one wins in MLflow, so these served elsewhere than
        # pricer serve said, or a model it never checked.
        (["--port", "5003"], "--port after --: give the port before --"),
        (["-h0.0.0.0"], "--host after --: give the address before --"),
        (["-m", "models:/other/1"], "--model-uri after --: pricer serve serves the copy"),
        (["--env-manager", "conda"], "--env-manager after --: pricer serve runs the server"),
    ],
)
def test_server_options_are_refused_in_one_line_before_the_model_is_fetched(
    extra: list[str],
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pricer import serve

    fetched: list[object] = []
    monkeypatch.setattr(serve, "load_config", lambda args: fetched.append(args))
    started: list[list[str]] = []
    monkeypatch.setattr(serve.subprocess, "Popen", lambda command, **_: started.append(command))
    assert serve.main(["--data", "synthetic", "--port", str(free_port()), "--", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and said in err, err
    assert err.count("\n") == 1
    assert fetched == started == []


def test_an_environment_setting_the_server_would_refuse_is_one_line_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # mlflow models serve reads its options from the environment as well.
    from pricer import serve

    monkeypatch.setenv("MLFLOW_MODELS_WORKERS", "many")
    monkeypatch.setattr(serve, "load_config", lambda args: pytest.fail("fetched"))
    assert serve.main(["--data", "synthetic", "--port", str(free_port())]) == 2
    assert capsys.readouterr().err == (
        "error: an option for mlflow models serve (after --, or its MLFLOW_* variable): "
        "Invalid value for '--workers': 'many' is not a valid integer.\n"
    )


def test_options_the_server_takes_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    from pricer.tracking.serving import check_server_options

    monkeypatch.delenv("MLFLOW_MODELS_WORKERS", raising=False)
    for extra in ([], ["--workers", "2"], ["-w2", "-t", "30"], ["--install-mlflow"]):
        check_server_options(extra)  # nothing raised
