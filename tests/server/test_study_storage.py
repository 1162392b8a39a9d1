"""A study in PostgreSQL across a database restart: its connections are dropped, not its work."""

from __future__ import annotations

import optuna
import psycopg

from hydra_plugins.pricer_optuna_sweeper import study as studies
from tests.server.servers import Postgres


def test_a_study_outlives_its_database_dropping_its_connections(postgres: Postgres) -> None:
    # PostgreSQL restarted mid-sweep (team server, 2026-12-06): a trial's result teller kept a
    # pooled connection from before, and its first write 22 s after the restart failed ("could
    # not tell trial 15 its result: ... invalid data in the commit, e.g. exceeding max length").
    # Here the server ends every connection to the database, as a restart does.
    postgres.create_database("optuna_restart")
    store = studies.storage(postgres.url("optuna_restart"), 10, None)
    study, _ = studies.open_study(store, "restart", "minimize")
    trial = study.ask()
    conninfo = (
        f"host=127.0.0.1 port={postgres.port} user={postgres.user} "
        f"password={postgres.password} dbname=postgres"
    )
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = 'optuna_restart' AND pid <> pg_backend_pid()"
        )
    study.tell(trial, 1.5)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
