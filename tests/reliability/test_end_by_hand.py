"""pricer runs RUN --end: a RUNNING run its user knows has stopped ends KILLED, its models FAILED.

The reaper ends only what this host can prove dead; a run of another host (a laptop gone, a
CI machine recycled) stayed RUNNING for good, shown in progress in the MLflow UI. Its user
can end it by hand, but not a run whose process is alive here, and not one this host cannot
judge without saying so (--force).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import mlflow
import pytest
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException

from pricer import console
from pricer.tracking import reaper
from pricer.tracking import tags as tag_names
from pricer.tracking.liveness import (
    HOST_TAG,
    PID_SPACE_TAG,
    PID_TAG,
    PROCESS_START_TAG,
    pid_space,
    process_tags,
    shared_process_tag,
)

PARENT = "mlflow.parentRunId"


def _gone_pid() -> int:
    """A pid of this host whose process has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _dead_process_tags() -> dict[str, str]:
    """The process tags of a run whose process, of this host, has ended (no start time: its
    pid is checked alone)."""
    dead = {**process_tags(), PID_TAG: str(_gone_pid())}
    dead.pop(PROCESS_START_TAG, None)
    return dead


def _run(experiment_id: str, name: str, tags: dict[str, str]) -> str:
    tags = {**tags, "mlflow.runName": name}
    return mlflow.MlflowClient().create_run(experiment_id, tags=tags).info.run_id


def _experiment() -> str:
    return mlflow.set_experiment("pricer").experiment_id


def _ends(run_id: str) -> tuple[str, str | None]:
    run = mlflow.get_run(run_id)
    return run.info.status, run.data.tags.get(tag_names.ERROR)


def test_a_run_of_a_gone_process_ends_killed_with_its_nested_runs_and_models(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = _experiment()
    dead = _dead_process_tags()
    parent = _run(experiment, "leaderboard", dead)
    child = _run(experiment, "family", {PARENT: parent})
    pending = mlflow.initialize_logged_model(name="pricer", source_run_id=child)
    alive = _run(experiment, "own live process", {PARENT: parent, **process_tags()})
    unrelated = _run(experiment, "another run", dead)

    assert console.main(["runs", parent[:8], "--end"]) == 0

    said = capsys.readouterr().out.splitlines()
    gone = f"process {dead[PID_TAG]} on {dead[HOST_TAG]} is gone"
    why = f"ended by hand (pricer runs --end): {gone}"
    assert said == [
        f"ended run {child} (family) KILLED: its parent run {parent} was {why}",
        f"ended run {parent} (leaderboard) KILLED: {why}",
        f"left run {alive} (own live process) RUNNING: process {process_tags()[PID_TAG]} on "
        f"{dead[HOST_TAG]} is alive",
    ]
    assert _ends(parent) == ("KILLED", why)
    assert _ends(child) == ("KILLED", f"its parent run {parent} was {why}")
    assert mlflow.get_logged_model(pending.model_id).status == LoggedModelStatus.FAILED
    assert mlflow.get_run(alive).info.status == "RUNNING"
    assert mlflow.get_run(unrelated).info.status == "RUNNING"  # only the run asked for
    # Who ended it, shown with the run: on a team server, a teammate, from where and when.
    assert console.main(["runs", parent]) == 0
    shown = capsys.readouterr().out
    ended_by = mlflow.get_run(parent).data.tags[tag_names.ENDED_BY]
    assert ended_by.endswith(why) and f"ended by  {ended_by}" in shown.splitlines()


def test_a_run_this_host_cannot_judge_ends_only_with_force(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    other = _run(_experiment(), "laptop", {HOST_TAG: "elsewhere", PID_TAG: "1"})

    assert console.main(["runs", other, "--end"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: run {other} (laptop) is RUNNING on elsewhere, started ")
    assert err.endswith("cannot tell whether its process is gone; if you know it is, add --force")
    assert _ends(other) == ("RUNNING", None)

    assert console.main(["runs", other, "--end", "--force"]) == 0
    assert _ends(other) == (
        "KILLED",
        "ended by hand (pricer runs --end): its process was not checked (--force)",
    )


def test_a_live_run_or_an_ended_one_is_refused_in_one_line(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = _experiment()
    live = _run(experiment, "training", process_tags())
    done = _run(experiment, "done", {})
    mlflow.MlflowClient().set_terminated(done)

    # Even with --force: ended KILLED under it, the run's own end later said FINISHED over
    # the error that it was ended.
    assert console.main(["runs", live, "--end", "--force"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: run {live} (training) is running: process {process_tags()[PID_TAG]} on "
        f"{process_tags()[HOST_TAG]} is alive; stop that process (Ctrl-C, or kill -TERM) and "
        "it ends its run KILLED itself"
    )
    assert console.main(["runs", done, "--end"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: run {done} (done) has ended already (FINISHED): nothing to end"
    )
    assert _ends(live) == ("RUNNING", None) and _ends(done) == ("FINISHED", None)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["runs", "--end"], "--end needs a RUN to end"),
        (["runs", "abc", "--force"], "--force goes with --end RUN"),
        (["runs", "abc", "--limit", "3"], "--limit is for the listing, not with a RUN"),
    ],
)
def test_end_and_force_without_their_run_are_usage_errors(
    tracking_uri: str, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    with pytest.raises(SystemExit) as stopped:  # argparse's usage error
        console.main(argv)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {said} (see pricer runs --help)"


def test_a_run_of_another_container_of_this_host_s_name_ends_only_with_force(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Another container with this host's name (docker --network host) numbers its own
    # processes: its live run's pid is absent here. Looked up here anyway, it was "process
    # 1234 on box1 is gone", and --end ended that live run without --force.
    experiment = _experiment()
    space = pid_space()
    assert space is not None  # Linux
    other = f"{space.split('/', 1)[0]}/pid:[1]"  # this boot, another PID namespace
    pid = _gone_pid()
    tags = {**process_tags(), PID_TAG: str(pid), PID_SPACE_TAG: other}
    tags.pop(PROCESS_START_TAG, None)
    own = _run(experiment, "in a container", tags)
    process = {"host": tags[HOST_TAG], "pid": pid, "start": None, "space": other}
    study = _run(
        experiment,
        "study",
        {"pricer.process.box.1": json.dumps({**process, "joined": time.time()})},
    )

    for run_id in (own, study):
        assert console.main(["runs", run_id, "--end"]) == 2
        assert "cannot tell whether its process is gone" in capsys.readouterr().err
        assert _ends(run_id) == ("RUNNING", None)
        assert console.main(["runs", run_id]) == 0
        assert "is gone" not in capsys.readouterr().out  # nor shown STALE as checked

    assert console.main(["runs", own, "--end", "--force"]) == 0
    assert _ends(own)[0] == "KILLED"


def _meanwhile(monkeypatch: pytest.MonkeyPatch, happen: Callable[[], None]) -> None:
    """Make ``happen`` take place after --end has read the run, before it writes."""
    looked = reaper._nested

    def nested(*args: Any) -> Any:
        found = looked(*args)
        happen()
        return found

    monkeypatch.setattr(reaper, "_nested", nested)


def test_a_run_that_ends_meanwhile_is_said_so_not_ended_in_silence(
    tracking_uri: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its own end (or the reaper's) landing between the read and the writes: --end wrote
    # nothing, rightly, and said nothing, exiting 0 as if it had ended it.
    experiment = _experiment()
    dead = _dead_process_tags()
    run = _run(experiment, "train", dead)
    _meanwhile(monkeypatch, lambda: mlflow.MlflowClient().set_terminated(run))

    assert console.main(["runs", run, "--end"]) == 2
    said = capsys.readouterr()
    assert said.out == ""
    assert said.err.strip() == f"error: run {run} (train) ended FINISHED meanwhile: nothing to end"
    assert _ends(run) == ("FINISHED", None)


def test_a_study_parent_a_process_joins_meanwhile_is_said_to_run_again(
    tracking_uri: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sweep process resuming the study names itself on the parent as --end ends it: the
    # parent runs again (reaper.reopen_if_joined), and --end said nothing, exiting 0.
    experiment = _experiment()
    gone = {"host": process_tags()[HOST_TAG], "pid": _gone_pid(), "start": None}
    parent = _run(
        experiment,
        "study",
        {"pricer.process.gone": json.dumps(gone), tag_names.SWEEP_STUDY: "s"},
    )
    key, value = shared_process_tag()  # this process, joining
    _meanwhile(monkeypatch, lambda: mlflow.MlflowClient().set_tag(parent, key, value))

    assert console.main(["runs", parent, "--end"]) == 2
    said = capsys.readouterr()
    assert said.out == ""
    assert said.err.strip() == (
        f"error: run {parent} (study) runs again: process {process_tags()[PID_TAG]} on "
        f"{gone['host']} joined it meanwhile (its study resumed); left RUNNING"
    )
    assert _ends(parent) == ("RUNNING", None)


def test_a_refusal_names_where_the_run_may_still_run(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A shared study's parent names its processes in tags of their own, not pricer.host: it
    # was "RUNNING on a host it does not name, started <the study's age> ago". One of another
    # container of this host's name was "RUNNING on <this host>", as if checked here.
    experiment = _experiment()
    laptop = {"host": "laptop", "pid": 7, "start": None, "joined": time.time() - 3 * 3600}
    study = _run(experiment, "study", {"pricer.process.laptop.7": json.dumps(laptop)})
    here, space = process_tags()[HOST_TAG], pid_space()
    assert space is not None  # Linux
    other = f"{space.split('/', 1)[0]}/pid:[1]"  # this boot, another PID namespace
    container = _run(experiment, "container", {HOST_TAG: here, PID_TAG: "1", PID_SPACE_TAG: other})
    cannot = "this host cannot tell whether its process is gone; if you know it is, add --force"

    assert console.main(["runs", study, "--end"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: run {study} (study) is RUNNING in process 7 on laptop, joined 3 h ago: {cannot}"
    )
    assert console.main(["runs", container, "--end"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: run {container} (container) is RUNNING on {here} in another container or boot, "
        f"started 0 min ago: {cannot}"
    )


def test_a_run_nested_deeper_is_judged_by_its_own_parent(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A sweep of leaderboards: each family run is nested in its leaderboard, nested in the
    # sweep. A family run's error named the sweep as its parent; and one under a leaderboard
    # whose process is alive here was ended with the sweep, though it stops with that process.
    experiment = _experiment()
    dead = _dead_process_tags()
    sweep = _run(experiment, "sweep", dead)
    board = _run(experiment, "leaderboard", {PARENT: sweep})
    family = _run(experiment, "family", {PARENT: board})
    live_board = _run(experiment, "live leaderboard", {PARENT: sweep, **process_tags()})
    live_family = _run(experiment, "its family", {PARENT: live_board})

    assert console.main(["runs", sweep, "--end"]) == 0

    why = f"ended by hand (pricer runs --end): process {dead[PID_TAG]} on {dead[HOST_TAG]} is gone"
    assert _ends(family) == (
        "KILLED",
        f"its parent run {board} was ended with run {sweep}: {why}",
    )
    assert _ends(board) == ("KILLED", f"its parent run {sweep} was {why}")
    assert _ends(live_family) == ("RUNNING", None)
    assert (
        f"left run {live_family} (its family) RUNNING: its parent run {live_board} is left RUNNING"
    ) in capsys.readouterr().out.splitlines()


def test_a_reap_ending_the_run_at_that_moment_goes_first_and_is_said(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A pricer run starting on this host reaps the experiment as --end ends the same run:
    # each read it RUNNING before the other wrote, and both ended it, each with its own error
    # and ended_by (the last writer's kept), and --end said it had ended it.
    experiment = _experiment()
    dead = _dead_process_tags()
    run = _run(experiment, "train", dead)
    codes: list[int] = []
    hand = threading.Thread(target=lambda: codes.append(console.main(["runs", run, "--end"])))
    with reaper._turn(experiment) as mine:  # the reap's turn: it decides and writes
        assert mine
        hand.start()
        hand.join(3)
        assert hand.is_alive()  # waiting for its turn
        reaper._end(mlflow.MlflowClient(), mlflow.get_run(run), "process gone")  # the reap's end
    hand.join(60)

    assert codes == [2]
    assert capsys.readouterr().err.strip() == (
        f"error: run {run} (train) has ended already (KILLED): nothing to end"
    )
    assert _ends(run) == ("KILLED", reaper.ERROR.format(why="process gone"))
    ended_by = mlflow.get_run(run).data.tags[tag_names.ENDED_BY]
    assert ended_by.endswith(": process gone") and "by hand" not in ended_by


def test_a_reap_that_holds_its_turn_too_long_is_said_not_waited_for_forever(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A reap paused (Ctrl-Z) or on a stalled store holds its turn: --end waited for it with no
    # end, a terminal that hung saying nothing.
    monkeypatch.setattr(reaper, "HAND_WAIT_SECONDS", 0.5)
    experiment = _experiment()
    dead = _dead_process_tags()
    run = _run(experiment, "train", dead)
    codes: list[int] = []
    hand = threading.Thread(target=lambda: codes.append(console.main(["runs", run, "--end"])))
    with reaper._turn(experiment) as mine:
        assert mine
        hand.start()
        hand.join(10)
        assert not hand.is_alive()  # it gave up, while the turn was still held
    assert codes == [2]
    assert capsys.readouterr().err.strip() == (
        f"error: run {run} was not ended: another pricer process of this host has been ending "
        "runs of its experiment for over 0.5 s (paused, or its store slow); try again once it "
        "has finished"
    )
    assert _ends(run) == ("RUNNING", None)


def test_a_shared_study_s_trial_ends_only_with_force(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its study's next process ends it FINISHED if its trial is COMPLETE (its result told just
    # before its process was killed); ended KILLED by hand, that best trial was no run promote
    # takes. Nested, --end left it; asked for by its id, it ended it.
    experiment = _experiment()
    parent = _run(experiment, "study", {tag_names.SWEEP_STUDY: "s"})
    dead = _dead_process_tags()
    trial_tags = {PARENT: parent, tag_names.SWEEP_STUDY: "s", tag_names.SWEEP_TRIAL: "3"}
    trial = _run(experiment, "trial", {**dead, **trial_tags})

    assert console.main(["runs", trial, "--end"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: run {trial} (trial) is a trial of shared study 's': its next sweep process "
        "ends it, FINISHED if the study has its result; to end it KILLED now, add --force"
    )
    assert _ends(trial) == ("RUNNING", None)
    assert console.main(["runs", trial]) == 0  # and its summary says so
    assert (
        "(the store says RUNNING; its study's next sweep process ends it, or pricer runs "
        f"{trial[:8]} --end --force ends it KILLED)"
    ) in capsys.readouterr().out
    assert console.main(["runs", trial, "--end", "--force"]) == 0
    assert _ends(trial)[0] == "KILLED"


def test_a_store_failing_midway_is_one_line_and_the_next_end_finishes_it(
    tracking_uri: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store error was MLflow's traceback, and the runs ended before it went unsaid.
    experiment = _experiment()
    dead = _dead_process_tags()
    parent = _run(experiment, "leaderboard", dead)
    child = _run(experiment, "family", {PARENT: parent})

    class Failing(mlflow.MlflowClient):  # the store goes away after the nested run's end
        def set_terminated(self, run_id: str, *args: Any, **kwargs: Any) -> None:
            if run_id == parent:
                raise MlflowException("database is locked")
            super().set_terminated(run_id, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(reaper, "MlflowClient", Failing)
        assert console.main(["runs", parent, "--end"]) == 2
    said = capsys.readouterr()
    assert said.out.splitlines() == [
        f"ended run {child} (family) KILLED: its parent run {parent} was ended by hand (pricer "
        f"runs --end): process {dead[PID_TAG]} on {dead[HOST_TAG]} is gone"
    ]
    assert said.err.strip() == (
        f"error: run {parent} (leaderboard) was not ended: the tracking store failed (database "
        f"is locked); pricer runs {parent} --end again ends what is left"
    )
    assert _ends(child)[0] == "KILLED" and _ends(parent)[0] == "RUNNING"

    assert console.main(["runs", parent, "--end"]) == 0  # what is left
    assert _ends(parent)[0] == "KILLED"


def test_a_live_pid_without_a_start_time_is_not_taken_for_the_run_s_process_with_force(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A run recorded without its process's start time (before pricer tagged it; a system
    # without /proc) whose pid is alive: it may be the run's process, or another that took the
    # pid since. Told to kill it (and refused even with --force), the user could only stop a
    # process that may have nothing to do with pricer.
    tags = process_tags()
    tags.pop(PROCESS_START_TAG, None)
    run = _run(_experiment(), "old run", tags)

    assert console.main(["runs", run, "--end"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: run {run} (old run) records no start time for its process {tags[PID_TAG]} on "
        f"{tags[HOST_TAG]}, which is alive: if that is the run's process, stop it (Ctrl-C, or "
        "kill -TERM) and it ends its run KILLED itself; if its pid was taken by another process "
        "since, add --force"
    )
    assert _ends(run) == ("RUNNING", None)
    assert console.main(["runs", run, "--end", "--force"]) == 0
    assert _ends(run)[0] == "KILLED"
