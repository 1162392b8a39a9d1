"""The interrupt mechanics in-process: KILLED runs with the reason, signals held back."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import LoggedModelStatus
from sqlalchemy import event
from sqlalchemy.engine import Engine

from pricer import cli, interrupt
from pricer.paths import PROJECT_ROOT
from pricer.tracking import run as run_module
from pricer.tracking.run import tracked_run
from tests.conftest import compose_config


def test_sigterm_ends_nested_runs_killed_with_the_reason_and_runs_callbacks(
    tracking_uri: str, installed: None
) -> None:
    tracking = compose_config("train").tracking
    seen: list[str] = []
    with (
        pytest.raises(interrupt.Interrupted) as stopped,
        interrupt.on_interrupt(lambda stop: seen.append(str(stop))),
        tracked_run(tracking, run_name="parent", tags={}) as parent,
        tracked_run(tracking, run_name="child", tags={}, nested=True) as child,
    ):
        os.kill(os.getpid(), signal.SIGTERM)
    assert stopped.value.exit_code == 143 and seen == ["interrupted by SIGTERM"]
    for run in (parent, child):
        ended = mlflow.get_run(run.info.run_id)
        assert ended.info.status == "KILLED"
        assert ended.data.tags["error"] == "interrupted by SIGTERM"


def test_a_signal_inside_deferred_waits_for_the_end_of_the_block(installed: None) -> None:
    done = []
    with pytest.raises(interrupt.Interrupted, match="SIGINT"), interrupt.deferred():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("the block ran to its end")
    assert done == ["the block ran to its end"]


def test_an_error_still_ends_the_run_failed(tracking_uri: str, installed: None) -> None:
    with (
        pytest.raises(ValueError),
        tracked_run(compose_config("train").tracking, run_name="x", tags={}) as run,
    ):
        raise ValueError("bad input")
    ended = mlflow.get_run(run.info.run_id)
    assert ended.info.status == "FAILED" and ended.data.tags["error"] == "ValueError: bad input"


def test_an_error_raised_while_an_interrupt_unwinds_does_not_replace_it(
    tracking_uri: str, installed: None
) -> None:
    """Seen in a sweep: SIGTERM landed inside OmegaConf, whose cleanup then failed; the trial's
    run ended FAILED with OmegaConf's error, and its process went on as if not stopped."""
    with (
        pytest.raises(interrupt.Interrupted) as stopped,
        tracked_run(compose_config("train").tracking, run_name="x", tags={}) as run,
    ):
        try:
            print(time.time(), flush=True)  # when the signal is sent
            os.kill(os.getpid(), signal.SIGTERM)
        finally:  # a library's cleanup failing half-way: its error replaces the interrupt
            raise AttributeError("'NoneType' object has no attribute '_invalidate_flags_cache'")
    assert isinstance(stopped.value.__cause__, AttributeError)
    ended = mlflow.get_run(run.info.run_id)
    assert ended.info.status == "KILLED"
    assert ended.data.tags["error"] == "interrupted by SIGTERM"


def test_a_signal_during_a_store_write_waits_until_the_write_is_done(
    tracking_uri: str, installed: None
) -> None:
    """SIGTERM just after a SQLite INSERT, before its commit, inside MLflow's store.

    Raised there, the interrupt left the write transaction open on a connection its traceback
    kept alive: ending the run then waited 20 s for the lock and failed with "database is
    locked", and that error replaced the interrupt (a leaderboard took it for a family's
    failure and went on to the next family). Held back until the store call returned, the
    parameters are all written and the run ends KILLED at once.
    """
    sent: list[str] = []

    def after_insert(*args: object) -> None:  # SQLAlchemy's (conn, cursor, statement, ...)
        statement = str(args[2])
        if statement.startswith("INSERT INTO params") and not sent:
            sent.append(statement)
            os.kill(os.getpid(), signal.SIGTERM)

    params = {f"p{i}": i for i in range(50)}
    event.listen(Engine, "after_cursor_execute", after_insert)
    started = time.monotonic()
    try:
        with (
            pytest.raises(interrupt.Interrupted),
            tracked_run(compose_config("train").tracking, run_name="x", tags={}) as run,
        ):
            mlflow.log_params(params)
            time.sleep(2)  # the app's next step, where the interrupt lands
    finally:
        event.remove(Engine, "after_cursor_execute", after_insert)
    assert sent and time.monotonic() - started < 10
    ended = mlflow.get_run(run.info.run_id)
    assert ended.info.status == "KILLED" and ended.data.tags["error"] == "interrupted by SIGTERM"
    assert ended.data.params == {key: str(value) for key, value in params.items()}


def _send_then_work(writer: Connection, size: int) -> None:
    """A joblib-launcher worker: a trial's run opened and ended (so SIGTERM is its own to
    handle), then its result sent back to the app, then on to the next task."""
    with interrupt.guarded():
        pass
    writer.send_bytes(b"x" * size)
    time.sleep(10)


def test_a_signal_while_a_worker_sends_its_result_waits_until_the_message_is_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGTERM in a worker half-way through writing a message to the app's pipe.

    Handled there, the worker ended (or stopped, to be killed) with half its message written:
    the app's loky thread read the rest of it forever, the app's unwinding hung until the
    watchdog exited it 30 s later, and its sweep's parent run stayed RUNNING. Held back until
    the write has ended, the message arrives whole and the worker then ends as interrupted.
    """
    monkeypatch.delenv(interrupt.APP_PID_ENV, raising=False)  # no app parent: it exits
    size = 16 << 20  # far more than a pipe holds: the write waits for its reader
    context = multiprocessing.get_context("spawn")
    reader, writer = context.Pipe(duplex=False)
    worker = context.Process(target=_send_then_work, args=(writer, size))
    worker.start()
    writer.close()
    try:
        assert reader.poll(60), "the worker never started writing"
        time.sleep(0.5)  # the pipe is full: the worker is inside its write
        os.kill(worker.pid, signal.SIGTERM)
        time.sleep(0.5)
        message = reader.recv_bytes()  # EOFError when the worker ended part-way
        worker.join(60)  # a bound for a hang, not a speed: 5 s was not enough at load 4+
        assert len(message) == size
        assert worker.exitcode == 128 + signal.SIGTERM
    finally:
        if worker.is_alive():
            worker.kill()
        worker.join()


def test_a_store_failing_while_a_run_ends_does_not_hide_the_interrupt(
    tracking_uri: str, installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the store's error replaced the interrupt: a leaderboard caught it as a family's
    failure (``except Exception``) and started the next family instead of stopping."""

    def store_down(*args: object, **kwargs: object) -> None:
        raise mlflow.exceptions.MlflowException("database is locked")

    with (
        pytest.raises(interrupt.Interrupted),
        monkeypatch.context() as patch,
        tracked_run(compose_config("train").tracking, run_name="x", tags={}),
    ):
        patch.setattr(mlflow, "end_run", store_down)
        os.kill(os.getpid(), signal.SIGTERM)
    mlflow.end_run()  # the store is back: the run this test left open


def _run_app(main: object, monkeypatch: pytest.MonkeyPatch) -> int:
    """``cli.run(main)`` as an app runs it, but exiting through SystemExit, not os._exit."""
    monkeypatch.setattr(sys, "argv", ["promote"])
    monkeypatch.setattr(interrupt, "exit_process", sys.exit)
    with pytest.raises(SystemExit) as exited:
        cli.run(main)  # type: ignore[arg-type]
    return int(exited.value.code)  # type: ignore[arg-type]


def test_a_signal_held_until_the_run_finished_does_not_say_it_was_killed(
    tracking_uri: str,
    installed: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SIGTERM during a promotion: held back while the run ended (``deferred``), raised after.

    The run ended FINISHED and the champion had moved, yet the last line said "its runs ended
    KILLED".
    """
    ending = run_module._end
    ended: list[str] = []

    def end_signalled(run: mlflow.ActiveRun, status: int, *, error: str | None = None) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # lands while the run ends: held till it has
        ending(run, status, error=error)
        ended.append(run.info.run_id)

    monkeypatch.setattr(run_module, "_end", end_signalled)

    def main() -> None:
        with tracked_run(
            compose_config("promote").tracking, run_name="promote · synthetic", tags={}
        ):
            pass

    assert _run_app(main, monkeypatch) == 143  # the process was signalled all the same
    [run_id] = ended
    assert mlflow.get_run(run_id).info.status == "FINISHED"
    assert capsys.readouterr().err.splitlines()[-1] == (
        "pricer: interrupted by SIGTERM after its work was done: promote · synthetic ended FINISHED"
    )


def test_a_signal_while_a_run_is_open_still_says_its_runs_ended_killed(
    tracking_uri: str,
    installed: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tracking = compose_config("train").tracking

    def main() -> None:
        with tracked_run(tracking, run_name="parent", tags={}):
            with tracked_run(tracking, run_name="first", tags={}, nested=True):
                pass  # ends FINISHED: only the parent is open when the signal comes
            os.kill(os.getpid(), signal.SIGTERM)

    assert _run_app(main, monkeypatch) == 143
    statuses = {r.info.run_name: r.info.status for r in mlflow.search_runs(output_format="list")}
    assert statuses == {"parent": "KILLED", "first": "FINISHED"}
    assert capsys.readouterr().err.splitlines()[-1] == (
        "pricer: interrupted by SIGTERM: its runs ended KILLED"
    )


def test_a_signal_before_any_run_says_nothing_was_recorded(
    tracking_uri: str,
    installed: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It said "its runs ended KILLED" of a process that had opened none."""
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)

    def main() -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # e.g. while the data loads, before the run

    assert _run_app(main, monkeypatch) == 143
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
    assert capsys.readouterr().err.splitlines()[-1] == (
        "pricer: interrupted by SIGTERM before it opened a run: nothing was recorded"
    )


def test_a_signal_before_mlflow_runs_run_was_taken_up_names_that_run(
    tracking_uri: str,
    installed: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under ``mlflow run`` the run exists before the app starts; mlflow run ends it."""
    monkeypatch.setenv("MLFLOW_RUN_ID", "0123abcd")

    def main() -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    assert _run_app(main, monkeypatch) == 143
    assert capsys.readouterr().err.splitlines()[-1] == (
        "pricer: interrupted by SIGTERM before it took up run 0123abcd, "
        "which mlflow run ends FAILED"
    )


# -- the watchdog's exit ---------------------------------------------------------------------------
UNWINDING_HANGS = """
import os, signal, sqlite3, sys, threading, time
import mlflow
from pricer import interrupt
from pricer.tracking.run import tracked_run
from tests.conftest import compose_config

interrupt.UNWIND_DEADLINE_SECONDS = float(sys.argv[2])  # 30 s in an app
interrupt.install()
with tracked_run(compose_config("train").tracking, run_name="hung", tags={}) as run:
    with tracked_run(compose_config("train").tracking, run_name="inner", tags={}, nested=True):
        mlflow.initialize_logged_model(name="pricer")  # being logged: PENDING
        print(run.info.run_id, flush=True)
        if sys.argv[1] == "store":  # the stuck thread holds the database's lock
            store = sqlite3.connect(os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"))
            store.execute("BEGIN EXCLUSIVE")
        try:
            print(time.time(), flush=True)  # when the signal is sent
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(60)
        finally:  # a cleanup that never returns: the stand-in for unwinding that hangs
            threading.Event().wait()
"""
HANG_AFTER_SECONDS = 1.0


def hung_app(tracking_uri: str, tmp_path: Path, hang: str) -> tuple[int, float, str]:
    """Run ``UNWINDING_HANGS``: (its exit code, seconds from its signal to its exit, stderr)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PYTHONPATH": str(PROJECT_ROOT)}
    app = subprocess.run(
        [sys.executable, "-c", UNWINDING_HANGS, hang, str(HANG_AFTER_SECONDS)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    exited = time.time()
    signalled = float(app.stdout.split()[-1])
    return app.returncode, exited - signalled, app.stderr


def test_runs_left_open_by_unwinding_that_hangs_end_killed_as_the_watchdog_exits(
    tracking_uri: str, tmp_path: Path
) -> None:
    # The watchdog exited with os._exit and the runs stayed RUNNING, shown STALE.
    code, took, stderr = hung_app(tracking_uri, tmp_path, "cleanup")
    assert code == 128 + signal.SIGTERM, stderr
    assert took < HANG_AFTER_SECONDS + interrupt.FAREWELL_SECONDS, took
    assert "pricer: 2 runs left open: ended KILLED" in stderr
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert sorted(run.info.run_name for run in runs) == ["hung", "inner"]
    why = "interrupted by SIGTERM; unwinding hung, so the run was ended as the process exited"
    for run in runs:
        assert run.info.status == "KILLED"
        assert run.data.tags["error"] == why
    # The model "inner" was logging: left PENDING, it showed in progress for good.
    [model] = mlflow.search_logged_models([runs[0].info.experiment_id], output_format="list")
    assert model.status == LoggedModelStatus.FAILED and model.tags["error"] == why


def test_a_store_that_hangs_too_does_not_keep_the_watchdog_from_exiting(
    tracking_uri: str, tmp_path: Path
) -> None:
    # The stuck main thread holds the database's write lock: ending the runs waits for it
    # (SQLite's busy timeout is 20 s), and the process still exits within the farewell's bound.
    code, took, stderr = hung_app(tracking_uri, tmp_path, "store")
    assert code == 128 + signal.SIGTERM, stderr
    assert "2 runs left open: stay RUNNING: the store did not answer within 3 s" in stderr
    slack = 3.0  # the dump of every thread's stack, and the exit, on 2 busy cores
    assert took < HANG_AFTER_SECONDS + interrupt.FAREWELL_SECONDS + slack, took
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [run.info.status for run in runs] == ["RUNNING", "RUNNING"]
    # Left with its run for the next run's reap, which ends both.
    [model] = mlflow.search_logged_models([runs[0].info.experiment_id], output_format="list")
    assert model.status == LoggedModelStatus.PENDING


def test_the_watchdog_fails_the_models_a_run_it_ends_left_pending(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # Every other KILLED end fails them first (MLflow fails a model only on an Exception in its
    # logging); ended by the watchdog, a run stopped while logging its model left it PENDING,
    # shown in progress in the MLflow UI for good: no reaper looks at a run no longer RUNNING.
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(compose_config("train").tracking.experiment)
    run_id = client.create_run(experiment.experiment_id).info.run_id
    pending = client.create_logged_model(experiment.experiment_id, "pricer", run_id)
    ready = client.create_logged_model(experiment.experiment_id, "other", run_id)
    client.finalize_logged_model(ready.model_id, LoggedModelStatus.READY)
    monkeypatch.setattr(interrupt, "_runs", {run_id: ("hung", "RUNNING")})

    interrupt._end_runs_left(128 + signal.SIGTERM)  # the watchdog's farewell, its hook real

    assert "pricer: 1 run left open: ended KILLED" in capfd.readouterr().err
    why = "interrupted by SIGTERM; unwinding hung, so the run was ended as the process exited"
    run = client.get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags["error"] == why
    failed = client.get_logged_model(pending.model_id)
    assert failed.status == LoggedModelStatus.FAILED and failed.tags["error"] == why
    assert client.get_logged_model(ready.model_id).status == LoggedModelStatus.READY
