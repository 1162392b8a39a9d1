"""The interrupt mechanics in-process: KILLED runs with the reason, signals held back."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import mlflow
import pytest

from pricer import interrupt
from pricer.tracking.run import tracked_run
from tests.conftest import compose_config


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The app's handlers, as ``cli.run`` installs them; pytest's own restored after."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    for name, value in (("_mode", None), ("_received", None), ("_pending", None)):
        monkeypatch.setattr(interrupt, name, value)
    monkeypatch.setattr(interrupt, "_callbacks", [])
    monkeypatch.delenv(interrupt.APP_PID_ENV, raising=False)
    interrupt.install()
    yield
    interrupt.cancel_watchdog()  # this process goes on after its interrupts
    for signum, handler in saved.items():
        signal.signal(signum, handler)


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
