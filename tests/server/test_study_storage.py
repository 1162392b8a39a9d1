"""A study in PostgreSQL across a database restart: its connections are dropped, not its work."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import mlflow
import optuna
import psycopg
import pytest

from hydra_plugins.pricer_optuna_sweeper import study as studies
from pricer.paths import PROJECT_ROOT
from tests.e2e.conftest import files_holding, runs
from tests.server.servers import Postgres
from tests.sweep.test_shared_study import sweep_command


def test_a_study_outlives_its_database_dropping_its_connections(postgres: Postgres) -> None:
    # PostgreSQL restarted mid-sweep (team server, 2026-12-06): a trial's result teller kept a
    # pooled connection from before, and its first write 22 s after the restart failed ("could
    # not tell trial 15 its result: ... invalid data in the commit, e.g. exceeding max length").
    # Here the server ends every connection to the database, as a restart does.
    postgres.create_database("optuna_restart")
    store = studies.storage(postgres.url("optuna_restart"), 10, None)
    study, _ = studies.open_study(store, "restart", "minimize")
    trial = study.ask()
    with psycopg.connect(_admin(postgres), autocommit=True) as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = 'optuna_restart' AND pid <> pg_backend_pid()"
        )
    study.tell(trial, 1.5)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE


def _admin(postgres: Postgres) -> str:
    """A libpq connection string to the cluster's maintenance database."""
    return (
        f"host=127.0.0.1 port={postgres.port} user={postgres.user} "
        f"password={postgres.password} dbname=postgres"
    )


@pytest.mark.server
@pytest.mark.e2e
def test_a_study_database_that_stops_answering_mid_sweep_is_one_line_and_a_rerun_continues(
    postgres: Postgres, tracking_uri: str, tmp_path: Path
) -> None:
    # PostgreSQL stopped mid-sweep (pg_ctl stop -m fast, team server, 2026-12-06): the sweeper
    # read the study as the batch came back and ended in Optuna's StorageInternalError, a
    # traceback and exit 1, then "Exception ignored in atexit callback" and another one. Here
    # only the study's database goes away (the runs are in SQLite): it refuses connections.
    postgres.create_database("optuna_away")
    storage = postgres.url("optuna_away")

    def connections(allowed: bool) -> None:
        with psycopg.connect(_admin(postgres), autocommit=True) as connection:
            connection.execute(f"ALTER DATABASE optuna_away ALLOW_CONNECTIONS {allowed}")
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = 'optuna_away' AND pid <> pg_backend_pid()"
            )

    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    log_path = tmp_path / "first.log"
    with log_path.open("w") as log:
        first = subprocess.Popen(
            sweep_command(tmp_path, storage, 2, "first"), cwd=PROJECT_ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 240
            while "trial 0: fit" not in log_path.read_text() and first.poll() is None:
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.01)
            connections(False)
            returncode = first.wait(120)
        finally:
            if first.poll() is None:
                first.kill()
            connections(True)
    said = log_path.read_text()
    assert returncode == 2, said[-3000:]
    assert "Traceback" not in said, said[-3000:]
    [line] = [line for line in said.splitlines() if line.startswith("error: ")]
    assert line.startswith(
        "error: hydra.sweeper.storage: the study's database postgresql+psycopg://pricer:***@"
    )
    assert "stopped answering" in line and "run the same command again" in line
    assert postgres.password not in said
    table = runs(tracking_uri)
    [parent_id] = table.loc[table["tags.pricer.kind"] == "sweep", "run_id"]
    parent_run = mlflow.get_run(parent_id)
    assert parent_run.info.status == "FAILED"
    assert "the study's database" in parent_run.data.tags["error"]
    # Nothing stands as finished that did not finish: a FINISHED trial has its figure.
    trials = table[table["tags.mlflow.parentRunId"] == parent_id]
    finished = trials[trials["status"] == "FINISHED"]
    assert finished["metrics.validation.mae"].notna().all()

    # The database back, the same command continues the study under the same parent.
    again = subprocess.run(
        sweep_command(tmp_path, storage, 1, "second"), cwd=PROJECT_ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    study = optuna.load_study(study_name="resumed", storage=storage)
    states = [trial.state.name for trial in study.trials]
    assert states[-1] == "COMPLETE" and "RUNNING" not in states
    after = mlflow.get_run(parent_id)
    assert after.info.status == "FINISHED" and "error" not in after.data.tags
    assert after.data.metrics["trials.total"] == len(states)


@pytest.mark.server
@pytest.mark.e2e
def test_a_password_in_the_study_storages_query_reaches_no_tag_artifact_or_line(
    postgres: Postgres, tracking_uri: str, tmp_path: Path
) -> None:
    # libpq takes the password as a query parameter too (?password=...): the parent run's
    # pricer.sweep.storage tag and its config/sweeper.yaml artifact kept it, hiding only a
    # password written before the host.
    postgres.create_database("optuna_query")
    storage = (
        f"postgresql+psycopg://{postgres.user}@127.0.0.1:{postgres.port}/optuna_query"
        f"?password={postgres.password}"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    result = subprocess.run(
        sweep_command(tmp_path, f"'{storage}'", 1, "sweep"), cwd=PROJECT_ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    table = runs(tracking_uri)
    [parent_id] = table.loc[table["tags.pricer.kind"] == "sweep", "run_id"]
    tag = mlflow.get_run(parent_id).data.tags["pricer.sweep.storage"]
    assert tag == storage.replace(postgres.password, "***")
    assert postgres.password not in result.stdout + result.stderr
    assert not files_holding(postgres.password, tmp_path)  # the store, artifacts, Hydra's files
