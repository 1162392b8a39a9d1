"""Fixtures: a throwaway PostgreSQL cluster and a real ``mlflow server`` on it (servers.py).

Session-scoped and stopped at teardown, even when a test fails; skipped, with the reason, only
where PostgreSQL's server binaries are absent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.server.servers import (
    Postgres,
    TrackingServer,
    Unavailable,
    mlflow_server,
    throwaway_postgres,
)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(throwaway_postgres())
        except Unavailable as reason:
            pytest.skip(str(reason))
        yield cluster


@pytest.fixture(scope="session")
def tracking_server(
    postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrackingServer]:
    with mlflow_server(postgres, tmp_path_factory.mktemp("mlflow_server")) as server:
        yield server
