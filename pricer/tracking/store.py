"""Open the tracking store once per process; create a new SQLite store under a file lock.

MLflow creates a SQLite store's schema (Alembic migrations, ~2 s) in the first client that
opens it. Two processes doing that at once both see an empty database and both migrate: in
one of three tries both died and the file could never be opened again
(``table _alembic_tmp_tags already exists``); a process that opens the file while another
is still migrating fails on the half-made schema. So the first open of a SQLite store in
each process (tracking store, registry store, and the experiment lookup or creation the
caller does inside the block) holds an exclusive ``fcntl.flock`` on ``<db>.lock`` beside
the database. A store that exists already costs one lock and one schema check per process.
Other stores (a tracking server, PostgreSQL) migrate on the server side and are not locked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from mlflow import MlflowClient
from sqlalchemy.engine import make_url

from pricer import interrupt

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent first starts stay unprotected there
    fcntl = None  # type: ignore[assignment]

_opened: set[str] = set()  # store URIs this process has opened


def sqlite_path(uri: str | None) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for other stores and in-memory ones."""
    if not uri or not uri.startswith("sqlite:"):
        return None
    database = make_url(uri).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).absolute()


@contextlib.contextmanager
def open_store(uri: str | None) -> Iterator[None]:
    """Make sure the store at ``uri`` exists and is migrated, then run the block.

    For a SQLite store opened the first time in this process, the block runs under the same
    lock, so what it creates (an experiment) is not raced either.
    """
    path = sqlite_path(uri)
    if path is None or uri in _opened:
        yield
        return
    # Deferred: a SIGTERM during the migrations could leave the store unopenable.
    with interrupt.deferred(), _locked(path.with_name(path.name + ".lock")):
        # MLflow roots a SQLite store's artifacts at ./mlruns, resolved against the working
        # folder when it builds the store (once per process): a store started from elsewhere
        # kept its runs' files there, apart from the database. Built from the database's
        # folder, a new experiment's artifacts go to <that folder>/mlruns/<id>: the layout of a
        # store used from its own folder, the project's included. An experiment that exists
        # keeps the location it was created with.
        folder = path.parent
        with contextlib.chdir(folder) if folder.is_dir() else contextlib.nullcontext():
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # builds the store
            client.search_experiments(max_results=1)  # its migrations
        client.search_registered_models(max_results=1)  # and the registry's tables
        yield
    _opened.add(uri)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    if fcntl is None or not lock_path.parent.is_dir():  # no folder: MLflow says so itself
        yield
        return
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # released by close, also if the process dies
        yield
    finally:
        os.close(descriptor)
