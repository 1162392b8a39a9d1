"""A run left RUNNING by a process that died (SIGKILL) is recognisable as stale."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import mlflow
import pytest

from pricer.paths import PROJECT_ROOT
from pricer.tracking.liveness import (
    FINISHED_FILTER,
    HOST_TAG,
    PID_TAG,
    PROCESS_START_TAG,
    finished,
    is_stale,
    shared_process_tag,
    stale_reason,
)
from pricer.tracking.run import tracked_run
from tests.conftest import compose_config

# Starts a tracked run through the real config and waits to be killed.
CHILD = """
import sys, time
from pricer.tracking.run import tracked_run
from tests.conftest import compose_config
cfg = compose_config("train")
with tracked_run(cfg.tracking, run_name="doomed", tags={}) as run:
    print(run.info.run_id, flush=True)
    time.sleep(600)
"""


def test_a_sigkilled_run_is_stale_and_no_latest_run_lookup_picks_it(tracking_uri: str) -> None:
    cfg = compose_config("train")
    with tracked_run(cfg.tracking, run_name="done", tags={}) as done:
        pass
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}  # for tests.conftest
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        run_id = child.stdout.readline().strip()  # type: ignore[union-attr]
        alive = mlflow.get_run(run_id)
        assert alive.info.status == "RUNNING" and not is_stale(alive)
        assert alive.data.tags[PID_TAG] == str(child.pid) and alive.data.tags[HOST_TAG]
        assert alive.data.tags[PROCESS_START_TAG].isdigit()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    dead = mlflow.get_run(run_id)
    assert dead.info.status == "RUNNING"  # SIGKILL cannot be caught...
    assert is_stale(dead)  # ...but the run says whose it was, and that process is gone
    assert not is_stale(mlflow.get_run(done.info.run_id))  # not RUNNING
    every = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [r.info.run_id for r in finished(every)] == [done.info.run_id]
    found = mlflow.search_runs(
        search_all_experiments=True, filter_string=FINISHED_FILTER, output_format="list"
    )
    assert [r.info.run_id for r in found] == [done.info.run_id]


def test_a_run_of_another_host_is_stale_only_after_the_age_limit(tracking_uri: str) -> None:
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(compose_config("train").tracking.experiment)
    run = client.create_run(
        experiment.experiment_id, tags={HOST_TAG: "elsewhere", PID_TAG: str(os.getpid())}
    )
    run = client.get_run(run.info.run_id)
    started = run.info.start_time / 1000
    assert not is_stale(run, max_age_hours=1, now=started + 3500)
    assert is_stale(run, max_age_hours=1, now=started + 3700)
    assert not is_stale(run, now=time.time())  # default limit: a day
    # What `pricer runs` shows beside STALE: how long, and where it ran.
    assert stale_reason(run, max_age_hours=1, now=started + 3500) is None
    assert stale_reason(run, max_age_hours=1, now=started + 30 * 3600) == (
        "RUNNING for 30 h, started on elsewhere"
    )


def test_a_run_processes_share_is_stale_once_every_one_of_them_is_gone(tracking_uri: str) -> None:
    # A shared study's parent run, joined by each sweep process of the study: it starts when
    # the study does, so its age says nothing (a study resumed two days later is live), and
    # it had no process tags, so a study whose every process was SIGKILLed showed RUNNING.
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(compose_config("train").tracking.experiment)
    child = subprocess.Popen(["true"])
    child.wait()  # a process of this host that is gone
    here = socket.gethostname()
    gone = {"host": here, "pid": child.pid, "start": None, "joined": time.time()}
    key, value = shared_process_tag()  # this process, alive
    run = client.create_run(
        experiment.experiment_id,
        tags={"pricer.process.gone": json.dumps(gone), key: value},
    )
    started = client.get_run(run.info.run_id).info.start_time / 1000
    days_later = started + 48 * 3600
    assert stale_reason(client.get_run(run.info.run_id), now=days_later) is None
    client.delete_tag(run.info.run_id, key)  # this process left, as a sweep process does
    assert stale_reason(client.get_run(run.info.run_id)) == f"process {child.pid} on {here} is gone"
    # A process of another host: taken for alive until it joined over max_age_hours ago.
    joined = time.time()
    elsewhere = {"host": "elsewhere", "pid": 7, "start": "1", "joined": joined}
    client.set_tag(run.info.run_id, "pricer.process.elsewhere.7", json.dumps(elsewhere))
    shared = client.get_run(run.info.run_id)
    assert stale_reason(shared, max_age_hours=1, now=joined + 3500) is None
    assert stale_reason(shared, max_age_hours=1, now=joined + 30 * 3600) == (
        f"processes {child.pid} on {here}; 7 on elsewhere, joined 30 h ago are gone"
    )


@pytest.mark.parametrize(
    "host",
    [
        # A fully qualified name (macOS's hostname may be one) as long as DNS allows: its key
        # was over 270 characters, MLflow's limit 250, and a process joining the study failed.
        f"{'node-' * 48}a.example.org",
        "büro rechner",  # a space (no tag key takes it) and a letter beyond ASCII
    ],
)
def test_a_process_of_any_host_name_can_join_a_shared_run(
    host: str, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: host)
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(compose_config("train").tracking.experiment)
    run = client.create_run(experiment.experiment_id)
    key, value = shared_process_tag()
    client.set_tag(run.info.run_id, key, value)  # as a process joining the study does
    assert stale_reason(client.get_run(run.info.run_id)) is None  # this process, alive
    # The key tells hosts apart however far alike their names run.
    monkeypatch.setattr(socket, "gethostname", lambda: host[:-1] + "x")
    assert shared_process_tag()[0] != key
    client.delete_tag(run.info.run_id, key)
    assert key not in client.get_run(run.info.run_id).data.tags
