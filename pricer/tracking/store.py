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
import re
import socket
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mlflow import MlflowClient
from mlflow.environment_variables import (
    MLFLOW_ALLOW_FILE_STORE,
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
)
from mlflow.exceptions import MlflowException
from mlflow.tracking._tracking_service.utils import _tracking_store_registry
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from pricer import interrupt
from pricer.errors import UserError, one_line
from pricer.schemas import HttpRetriesConfig
from pricer.tracking.redaction import redact_text

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent first starts stay unprotected there
    fcntl = None  # type: ignore[assignment]

_opened: set[str] = set()  # store URIs this process has opened

# Seconds to wait for a tracking server to accept a connection before saying it is not there.
PROBE_SECONDS = 5.0


# A store's own failures, as opposed to a bug's: the server's, the database's, the disk's.
STORE_ERRORS = (MlflowException, SQLAlchemyError, OSError)


def server_failure(error: BaseException) -> str | None:
    """Why MLflow could not reach a tracking server, or gave up on one that kept failing past
    its retries (``too many 503 error responses``): a ``requests`` error under its
    ``MlflowException``. None for any other error: the server refusing what it was asked (a
    bug's) answered."""
    from requests.exceptions import RequestException

    if not isinstance(error, MlflowException):
        return None
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, RequestException):
            text = str(cause)
            inner = re.search(r"Caused by \w+\(['\"]([^'\"]+)", text)
            return inner.group(1) if inner and "Errno" not in text else store_cause(cause)
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def store_cause(error: BaseException) -> str:
    """What a store's failure comes down to: the socket's "[Errno 111] Connection refused"
    at the end of a requests error a screen long, else its first line."""
    text = one_line(error)
    found = re.findall(r"\[Errno -?\d+\] [^\"'()\]]+", text)
    return found[-1].strip() if found else text.splitlines()[0][:200]


class StoreUnreachable(UserError):
    """The tracking store does not answer: a server down, a mistyped URI, a database away."""


def quiet_run_links() -> None:
    """Keep MLflow's own lines out of the terminal when a run ends against a server ("View
    run ... at", "View experiment at"): pricer prints its own link to each run (the classic
    view), MLflow's open the GenAI view, two per run (after every sweep trial too, and after
    each run ``pricer runs --end`` ends). ``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT=false``
    has them back."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def limit_http_retries(settings: Mapping[str, Any] | None) -> None:
    """Retry a tracking server that stops answering for as long as ``tracking.http`` says,
    not MLflow's default (7 retries backing off to 2 minutes: about 4 minutes a request, and a
    leaderboard whose server died mid-run said so after 12 minutes of silence). Through
    MLflow's own variables, which it reads at every request and which a sweep's workers and
    ``mlflow models serve`` inherit; one the user set is left as it is."""
    if not settings:
        return
    checked = HttpRetriesConfig.from_config(settings)
    os.environ.setdefault(MLFLOW_HTTP_REQUEST_MAX_RETRIES.name, str(checked.max_retries))
    os.environ.setdefault(MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.name, str(checked.backoff_factor))


def safe_uri(uri: str) -> str:
    """A store URI without its password, fit for a message: the one before the host, and
    any query parameter named for a credential (a database also takes ``?password=...``)."""
    try:
        safe = make_url(uri).render_as_string(hide_password=True)
    except Exception:  # not a database URL: an http(s) server's, or something MLflow reads
        parts = urlsplit(uri)
        safe = uri
        if parts.password is not None:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            safe = urlunsplit(parts._replace(netloc=netloc))
    return redact_text(safe)


# Ports a database URL may leave out: its server's default.
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


def check_reachable(uri: str) -> None:
    """Fail in one line within seconds when nothing answers at the store's address.

    MLflow retries a refused connection for minutes in silence, then ends in a traceback: a
    tracking server 7 times, backing off up to 2 minutes (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``);
    a database 15 times, backing off to 1.6 s (108 s measured against PostgreSQL's port with
    nothing behind it). A TCP connection is all that is tried (no request, no credentials);
    behind a proxy from the environment, a server is MLflow's to reach; a database on a local
    socket is left to MLflow too.
    """
    check_usable(uri)
    kind, address = _address(uri)
    if address is None:
        return
    try:
        socket.create_connection(address, timeout=PROBE_SECONDS).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise StoreUnreachable(
            f"cannot reach the tracking {kind} at {safe_uri(uri)} ({reason}): start it, or "
            "point MLFLOW_TRACKING_URI elsewhere"
        ) from None  # the reason is in the line already


class StoreUnusable(UserError):
    """A tracking URI MLflow will not open, whatever answers there."""


def check_usable(uri: str) -> None:
    """Refuse, in one line, a URI MLflow will not open: a folder (its file store, which
    MLflow 3.17 refuses unless ``MLFLOW_ALLOW_FILE_STORE`` is set) or a scheme no tracking store
    is registered for (``sqlit:///x.db``). MLflow raised both from the first client made, a
    traceback of 50 to 80 lines."""
    if not uri.strip():
        # MLFLOW_TRACKING_URI exported empty (a script's "MLFLOW_TRACKING_URI=$UNSET") is the
        # URI, not "unset": it read as the working folder, " names a folder, MLflow's file
        # store ...", the subject missing and a database beside the folder suggested.
        raise StoreUnusable(
            "the tracking URI is empty (MLFLOW_TRACKING_URI is set to nothing, or tracking.uri "
            "is): unset the variable to track to the project's store, or give it a URI"
        )
    scheme = urlsplit(uri).scheme
    if scheme in ("", "file"):
        if not MLFLOW_ALLOW_FILE_STORE.get():
            raise StoreUnusable(
                f"{uri} names a folder, MLflow's file store, which MLflow 3 refuses: track to a "
                f"database (sqlite:///{Path(uri.removeprefix('file://')).absolute()}.db), or "
                "set MLFLOW_ALLOW_FILE_STORE=true to use the folder"
            )
        return
    # MLflow's own registry of store builders, plugins' schemes included (private: MLflow has
    # no public lookup, and a list kept here would refuse a plugin's scheme).
    try:
        _tracking_store_registry.get_store_builder(uri)
    except MlflowException:
        raise StoreUnusable(
            f"unknown scheme {scheme!r} in the tracking URI {safe_uri(uri)}: MLflow stores "
            "are sqlite:///PATH, postgresql://..., mysql://..., mssql://... or an "
            "http(s):// tracking server"
        ) from None


def _address(uri: str) -> tuple[str, tuple[str, int] | None]:
    """("server" or "database", (host, port)) of a store behind the network; None to skip."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        if not parts.hostname or (
            urllib.request.getproxies() and not urllib.request.proxy_bypass(parts.hostname)
        ):
            return "server", None
        return "server", (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    try:
        url = make_url(uri)
    except Exception:  # a scheme MLflow resolves itself (databricks, a plugin's)
        return "database", None
    port = url.port or DEFAULT_PORTS.get(url.get_backend_name())
    if not url.host or port is None:  # SQLite, a local socket
        return "database", None
    return "database", (url.host, port)


class StoreRefused(UserError):
    """A tracking server that answered and said no: a login it does not know, an address it
    does not serve, a permission the user lacks."""


# MLflow 3.17's answer to a Host header its --allowed-hosts does not list.
INVALID_HOST = "Invalid Host header"


def refused(uri: str, what: str) -> str:
    """The line for a request the tracking server at ``uri`` refused: ``what``, why and what
    to do."""
    return f"the tracking server at {safe_uri(uri)} refused {what}"


def refusal(error: BaseException, uri: str) -> str | None:
    """The line (``refused``) for the login (its 401) or the address (its 403 for a Host
    header it does not serve) the tracking server at ``uri`` refused. None for any other
    error, a permission denied included: what was refused is the caller's to say
    (``permission_denied``)."""
    if not isinstance(error, MlflowException):
        return None
    if error.error_code == "UNAUTHENTICATED":
        return refused(
            uri,
            "the login (401): MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD must name "
            "a user the server's admin created, and that user's password",
        )
    if error.error_code == "PERMISSION_DENIED" and INVALID_HOST in str(error):
        address = urlsplit(uri).netloc.rsplit("@", 1)[-1]
        return refused(
            uri,
            f"requests addressed to {address} (403 {INVALID_HOST}): its mlflow server "
            f"--allowed-hosts must name {address}, or MLFLOW_TRACKING_URI an address it names",
        )
    return None


def permission_denied(error: BaseException) -> bool:
    """Whether a tracking server refused a request for the user's permissions (its 403)."""
    return (
        isinstance(error, MlflowException)
        and error.error_code == "PERMISSION_DENIED"
        and INVALID_HOST not in str(error)
    )


def refused_writing(uri: str, experiment: str, what: str) -> str:
    """The line for a write into ``experiment`` the server refused for the user's permissions:
    a reader's (the team server's default permission is READ)."""
    return refused(
        uri,
        f"{what} in experiment {experiment} (403 permission denied): you may read it, not "
        "write to it; its manager must grant you EDIT on it, or send runs to an experiment of "
        "your own (tracking.experiment=NAME)",
    )


@contextlib.contextmanager
def unreachable_as_one_line(uri: str) -> Iterator[None]:
    """A store that fails as it is opened (a database that refuses the connection, a server
    that refuses the login, the address or the experiment): one line naming the store without
    its password, not SQLAlchemy's or MLflow's traceback."""
    try:
        yield
    except (MlflowException, SQLAlchemyError) as error:
        line = refusal(error, uri)
        if line is None and permission_denied(error):
            line = refused(
                uri,
                "to open the experiment (403 permission denied): its manager must grant you "
                "READ on it, or send runs to another (tracking.experiment=NAME)",
            )
        if line is not None:
            raise StoreRefused(line) from None
        if isinstance(error, MlflowException) and not _cannot_connect(error):
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        message = f"cannot open the tracking store at {safe_uri(uri)}: {first}"
        raise StoreUnreachable(message) from None  # its first line says why; the rest is noise


def _cannot_connect(error: MlflowException) -> bool:
    cause = error.__cause__ or error.__context__
    return isinstance(cause, SQLAlchemyError) or "connect" in str(error).lower()


def store_address(uri: str) -> str:
    """``uri`` in one form per store: a SQLite file by its absolute path (``sqlite:///x.db``
    names another file in each folder a process starts in)."""
    path = sqlite_path(uri)
    return f"sqlite:///{path}" if path is not None else uri


def sqlite_path(uri: str | None) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for other stores and in-memory ones."""
    if not uri or not uri.startswith("sqlite:"):
        return None
    database = make_url(uri).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).absolute()


class StoreNotFound(UserError):
    """The store to read from does not exist."""


def require_existing(uri: str) -> None:
    """Refuse a SQLite store whose file does not exist, rather than create it.

    For commands that only read (runs, compare, predict, serve): a mistyped path would
    otherwise leave an empty store behind, and the command would list nothing or find no
    champion in it.
    """
    path = sqlite_path(uri)
    if path is not None and not path.exists():
        raise StoreNotFound(
            f"no MLflow store at {path}: nothing was tracked there (a leaderboard or a train "
            "run creates it; MLFLOW_TRACKING_URI names another store)"
        )


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
