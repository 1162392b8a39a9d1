"""A run left RUNNING by a process that died (SIGKILL) is recognisable as stale."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import mlflow

from pricer.paths import PROJECT_ROOT
from pricer.tracking.liveness import (
    FINISHED_FILTER,
    HOST_TAG,
    PID_TAG,
    PROCESS_START_TAG,
    finished,
    is_stale,
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
