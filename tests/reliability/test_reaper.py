"""A run SIGKILL left RUNNING ends KILLED, its half-logged model FAILED, at the next pricer run.

SIGKILL cannot be caught: the run stayed RUNNING and its LoggedModel PENDING for good in the
MLflow UI, which people decide from. The first run a pricer process starts in an experiment
ends those there whose process is provably gone (of this host, pid gone or reused), and
nothing else: another host's run, one without process tags and a live one are left RUNNING.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException

from benchmarks.common import store_env
from pricer.paths import PROJECT_ROOT
from pricer.tracking import reaper
from pricer.tracking import tags as tag_names
from pricer.tracking.liveness import (
    HOST_TAG,
    PID_SPACE_TAG,
    PID_TAG,
    pid_space,
    process_tags,
    shared_process_tag,
)
from pricer.tracking.run import tracked_run
from tests.conftest import compose_config
from tests.e2e.conftest import pricer_app, run_cli

# The real train app, run as `python -m pricer.train` runs it, its model's logging made to
# hang once MLflow has stored the files and before it marks the LoggedModel READY: where a
# SIGKILL leaves it PENDING.
STUCK_LOGGING = """
import runpy, sys, time
import mlflow.tracking.fluent as fluent

def stuck(model_id, status):
    print(f"logging {model_id}", flush=True)
    time.sleep(600)

fluent.finalize_logged_model = stuck
sys.argv = ["pricer.train", *sys.argv[1:]]
runpy.run_module("pricer.train", run_name="__main__", alter_sys=True)
"""


def _train_overrides(tmp_path: Path, name: str) -> list[str]:
    return [
        "model=constant",
        "data.n_records=4000",
        "curation.split.test_size=200",
        f"curation.cache_dir={tmp_path / 'cache'}",
        f"+tracking.tags.name={name}",
    ]


def _signalled_while_logging(
    tracking_uri: str, tmp_path: Path, signum: int, name: str
) -> tuple[str, int, int]:
    """Start the train app, send it ``signum`` while it logs its model; its run id (tagged
    ``name``), its pid and its exit code."""
    log_path = tmp_path / f"{name}.log"
    with log_path.open("w") as log:
        app = subprocess.Popen(
            [
                sys.executable, "-c", STUCK_LOGGING, *_train_overrides(tmp_path, name),
                f"hydra.run.dir={tmp_path / f'hydra-{name}'}",
            ],
            cwd=PROJECT_ROOT, env=store_env(tracking_uri), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while "logging m-" not in log_path.read_text():
                assert app.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.1)
            app.send_signal(signum)
            code = app.wait(60)
        finally:
            if app.poll() is None:
                app.kill()
    [run] = mlflow.search_runs(
        search_all_experiments=True, filter_string=f"tags.name = '{name}'", output_format="list"
    )
    return run.info.run_id, app.pid, code


def _sigkilled_while_logging(tracking_uri: str, tmp_path: Path) -> tuple[str, int]:
    """Start the train app, SIGKILL it while it logs its model; its run id and its pid."""
    run_id, pid, code = _signalled_while_logging(tracking_uri, tmp_path, signal.SIGKILL, "killed")
    assert code == -signal.SIGKILL
    return run_id, pid


@pytest.mark.e2e
def test_the_next_run_ends_a_sigkilled_run_killed_and_its_pending_model_failed(
    tracking_uri: str, tmp_path: Path
) -> None:
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(compose_config("train").tracking.experiment)
    ids = experiment.experiment_id
    # Left alone: a run of another host (it may be alive: only its host can tell), one of a
    # version without process tags (however old), and one whose process lives (this one).
    elsewhere = client.create_run(ids, tags={HOST_TAG: "elsewhere", PID_TAG: "1"}).info.run_id
    untagged = client.create_run(ids, start_time=0).info.run_id
    alive = client.create_run(ids, tags=process_tags()).info.run_id

    killed, pid = _sigkilled_while_logging(tracking_uri, tmp_path)
    dead = client.get_run(killed)
    assert dead.info.status == "RUNNING"  # what SIGKILL leaves in the store
    [model] = client.search_logged_models([ids], filter_string=f"source_run_id = '{killed}'")
    assert model.status == LoggedModelStatus.PENDING

    second = run_cli(
        pricer_app("train", *_train_overrides(tmp_path, "next"), workdir=tmp_path),
        tracking_uri,
        tmp_path,
    )
    assert second.returncode == 0, second.stderr[-3000:]

    ended = client.get_run(killed)
    assert ended.info.status == "KILLED"
    host = socket.gethostname()
    why = f"process {pid} on {host} is gone"
    assert ended.data.tags[tag_names.ERROR] == reaper.ERROR.format(why=why)
    by, _, said = ended.data.tags[tag_names.ENDED_BY].partition(" at ")
    [next_run] = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.name = 'next'", output_format="list"
    )
    assert by == f"{host}/{next_run.data.tags[PID_TAG]}"  # the second run's process
    assert said.endswith(f"UTC: {why}")
    assert next_run.info.status == "FINISHED"
    failed = client.get_logged_model(model.model_id)
    assert failed.status == LoggedModelStatus.FAILED
    assert failed.tags[tag_names.ENDED_BY] == ended.data.tags[tag_names.ENDED_BY]
    for left in (elsewhere, untagged, alive):
        assert client.get_run(left).info.status == "RUNNING"
    assert f"ended run {killed} (" in second.stdout + second.stderr  # said on the terminal


@pytest.mark.e2e
def test_a_run_stopped_by_sigterm_while_logging_its_model_fails_the_model_too(
    tracking_uri: str, tmp_path: Path
) -> None:
    # SIGTERM (or Ctrl-C) is a KeyboardInterrupt, on which MLflow leaves the model PENDING: the
    # run ended KILLED, and no reaper looks at a run that is no longer RUNNING.
    client = mlflow.MlflowClient()
    stopped, _, code = _signalled_while_logging(tracking_uri, tmp_path, signal.SIGTERM, "stopped")
    assert code == 128 + signal.SIGTERM
    run = client.get_run(stopped)
    assert run.info.status == "KILLED"
    assert run.data.tags[tag_names.ERROR] == "interrupted by SIGTERM"
    [model] = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{stopped}'"
    )
    assert model.status == LoggedModelStatus.FAILED
    assert model.tags[tag_names.ERROR] == "interrupted by SIGTERM"


def _dead_process() -> dict[str, str]:
    """Process tags of a process of this host that is gone."""
    child = subprocess.Popen(["true"])
    child.wait()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(child.pid)}


def _experiment_id() -> str:
    return mlflow.get_experiment_by_name(compose_config("train").tracking.experiment).experiment_id


def test_a_shared_run_ends_only_once_every_process_it_names_is_gone_here(
    tracking_uri: str,
) -> None:
    client = mlflow.MlflowClient()
    ids = _experiment_id()
    here = socket.gethostname()
    gone = json.dumps({"host": here, "pid": int(_dead_process()[PID_TAG]), "start": None})
    key, value = shared_process_tag()  # this process, alive
    # A study's parent: one process gone, one alive; another joined from elsewhere days ago.
    parent = client.create_run(
        ids, tags={"pricer.process.gone": gone, key: value, tag_names.SWEEP_STUDY: "s"}
    ).info.run_id
    abroad = json.dumps({"host": "elsewhere", "pid": 7, "start": "1", "joined": 0})
    joined_abroad = client.create_run(
        ids, tags={"pricer.process.gone": gone, "pricer.process.elsewhere.7": abroad}
    ).info.run_id
    # The study's trial whose process died: the study's next process ends it (FINISHED if
    # its trial is COMPLETE), not this.
    trial = client.create_run(
        ids,
        tags={
            **_dead_process(),
            "mlflow.parentRunId": parent,
            tag_names.SWEEP_TRIAL: "0",
            tag_names.SWEEP_STUDY: "s",
        },
    ).info.run_id
    # One named a trial only (a version that did not tag trials with the study): its parent
    # says whose it is.
    trial_tags = {**_dead_process(), "mlflow.parentRunId": parent, tag_names.SWEEP_TRIAL: "1"}
    older_trial = client.create_run(ids, tags=trial_tags).info.run_id

    assert reaper.reap(ids) == []
    client.delete_tag(parent, key)  # this process left the study, as a sweep process does
    assert reaper.reap(ids) == [parent]
    assert client.get_run(parent).info.status == "KILLED"
    assert client.get_run(joined_abroad).info.status == "RUNNING"  # may live: another host's
    assert client.get_run(trial).info.status == "RUNNING"
    assert client.get_run(older_trial).info.status == "RUNNING"
    assert reaper.reap(ids) == []  # a run already ended is left alone


def test_a_dead_parent_s_nested_runs_end_with_it_but_a_live_one_s_do_not(
    tracking_uri: str,
) -> None:
    client = mlflow.MlflowClient()
    ids = _experiment_id()
    parent = client.create_run(ids, tags=_dead_process()).info.run_id
    nested = {"mlflow.parentRunId": parent}
    family = client.create_run(ids, tags={**nested, **_dead_process()}).info.run_id
    untagged = client.create_run(ids, tags=nested).info.run_id
    grandchild = client.create_run(ids, tags={"mlflow.parentRunId": untagged}).info.run_id
    elsewhere = client.create_run(ids, tags={**nested, HOST_TAG: "elsewhere", PID_TAG: "1"})
    live_parent = client.create_run(ids, tags=process_tags()).info.run_id
    live_child = client.create_run(ids, tags={"mlflow.parentRunId": live_parent}).info.run_id

    ended = reaper.reap(ids)
    assert set(ended) == {parent, family, untagged, grandchild}
    assert ended.index(grandchild) < ended.index(untagged) < ended.index(parent)  # deepest first
    assert (
        f"its parent run {parent} was ended: process"
        in (client.get_run(untagged).data.tags[tag_names.ERROR])
    )
    for left in (elsewhere.info.run_id, live_parent, live_child):
        assert client.get_run(left).info.status == "RUNNING"


def test_a_run_whose_pid_numbers_another_set_of_processes_is_left_running(
    tracking_uri: str,
) -> None:
    # Another container with this host's name (docker --network host), or another machine
    # named alike, or the boot before a restart: its pid is absent here, alive or not.
    client = mlflow.MlflowClient()
    ids = _experiment_id()
    here = socket.gethostname()
    space = pid_space()
    assert space is not None  # Linux
    other = f"another-boot/{space.split('/', 1)[1]}"
    tags = {**_dead_process(), PID_SPACE_TAG: other}
    container = client.create_run(ids, tags=tags).info.run_id
    process = {"host": here, "pid": int(tags[PID_TAG]), "start": None, "space": other}
    shared = client.create_run(ids, tags={"pricer.process.x": json.dumps(process)}).info.run_id
    ours = client.create_run(ids, tags={**_dead_process(), PID_SPACE_TAG: space}).info.run_id
    assert reaper.reap(ids) == [ours]
    for left in (container, shared):
        assert client.get_run(left).info.status == "RUNNING"
    assert client.get_run(ours).info.status == "KILLED"


def test_a_child_left_by_a_reap_cut_short_is_ended_by_the_next_one(tracking_uri: str) -> None:
    client = mlflow.MlflowClient()
    ids = _experiment_id()
    parent = client.create_run(ids, tags=_dead_process()).info.run_id
    child = client.create_run(ids, tags={"mlflow.parentRunId": parent}).info.run_id
    finished = client.create_run(ids).info.run_id
    client.set_terminated(finished, "FINISHED")
    orphan = client.create_run(ids, tags={"mlflow.parentRunId": finished}).info.run_id
    reaper._end(client, client.get_run(parent), "gone")  # its child not reached
    assert reaper.reap(ids) == [child]
    assert client.get_run(orphan).info.status == "RUNNING"  # its parent ended as runs do


REAP = """
import json, sys, time
import mlflow
from pricer.tracking import reaper
mlflow.set_tracking_uri(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))
print(json.dumps(reaper.reap(sys.argv[2])))
"""


def test_two_processes_reaping_at_once_end_each_run_once(tracking_uri: str, tmp_path: Path) -> None:
    client = mlflow.MlflowClient()
    ids = _experiment_id()
    dead = {client.create_run(ids, tags=_dead_process()).info.run_id for _ in range(4)}
    start = str(time.time() + 8)  # both past their imports: they reap at the same instant
    command = [sys.executable, "-c", REAP, tracking_uri, ids, start]
    env = store_env(tracking_uri)
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    reapers = [subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, **pipes) for _ in range(2)]
    ended = []
    for process in reapers:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-3000:]
        ended.append(json.loads(out.splitlines()[-1]))
    assert sorted(ended[0] + ended[1]) == sorted(dead)  # every run ended, none twice
    for run_id in dead:
        assert client.get_run(run_id).info.status == "KILLED"


def test_a_reap_removes_its_lock_file_and_its_turn_still_excludes_others(
    tracking_uri: str, tmp_path: Path
) -> None:
    # Each store and experiment left its lock file beside the store (or in the temporary
    # folder) for good.
    ids = _experiment_id()
    locks = "mlflow.db.reap-*.lock"
    reaper.reap(ids)
    assert list(tmp_path.glob(locks)) == []
    # A waiter that opened the file before its holder removed it must not hold the turn on a
    # file no one else opens: a third process would then take the turn beside it.
    held, release, turns = threading.Event(), threading.Event(), []

    def waiter() -> None:
        with reaper._turn(ids, wait=10) as mine:
            turns.append(mine)
            held.set()
            release.wait(10)

    thread = threading.Thread(target=waiter)
    with reaper._turn(ids) as first:
        assert first
        thread.start()
        time.sleep(0.3)  # it has the file open and waits for the lock
    assert held.wait(10)
    with reaper._turn(ids) as third:
        assert not third  # the waiter holds the turn
    release.set()
    thread.join(10)
    assert turns == [True]
    assert list(tmp_path.glob(locks)) == []


def test_a_store_error_while_reaping_is_a_warning_and_the_run_goes_on(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = mlflow.MlflowClient()
    dead = client.create_run(_experiment_id(), tags=_dead_process()).info.run_id

    class Refusing(mlflow.MlflowClient):  # the reaper's client: the new run's own ends well
        def set_terminated(self, *args: object, **kwargs: object) -> None:
            raise MlflowException("database is locked")

    with monkeypatch.context() as patched, caplog.at_level(logging.WARNING):
        patched.setattr(reaper, "MlflowClient", Refusing)
        with tracked_run(compose_config("train").tracking, run_name="new", tags={}) as run:
            pass
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert f"could not end run {dead} of a dead process: database is locked" in caplog.text
    assert client.get_run(dead).info.status == "RUNNING"
    assert reaper.reap(_experiment_id()) == [dead]  # a later process ends it


def test_the_run_a_process_takes_up_by_mlflow_run_id_is_not_ended_by_its_own_reap(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run a SIGKILL left RUNNING, taken up again by its id (``mlflow run --run-id``, or
    # MLFLOW_RUN_ID=... as MLflow resumes a run): this process runs it now. Its own reap, just
    # before the resume, ended it KILLED as dead; resumed, it ran and ended FINISHED with the
    # reaper's "its process stopped" error and pricer.ended_by on it.
    client = mlflow.MlflowClient()
    ids = _experiment_id()
    resumed = client.create_run(ids, tags=_dead_process()).info.run_id
    other = client.create_run(ids, tags=_dead_process()).info.run_id  # dead, not taken up
    monkeypatch.setenv("MLFLOW_RUN_ID", resumed)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", ids)  # as mlflow run sets both
    with tracked_run(compose_config("train").tracking, run_name="resumed", tags={}) as run:
        assert run.info.run_id == resumed
        assert client.get_run(resumed).data.tags[PID_TAG] == str(os.getpid())
    ended = client.get_run(resumed)
    assert ended.info.status == "FINISHED"
    assert tag_names.ENDED_BY not in ended.data.tags
    assert tag_names.ERROR not in ended.data.tags
    assert client.get_run(other).info.status == "KILLED"  # the reap itself still ran
