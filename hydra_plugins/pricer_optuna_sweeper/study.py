"""Open (or join) a study, keep its running trials' heartbeats, share one value among joiners.

Used by the sweeper and by whatever tracks the sweep (pricer.tracking.sweep), so both open a
database study with the same heartbeat settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hydra.errors import HydraException

from hydra_plugins.pricer_optuna_sweeper.settings import SETTINGS_ATTR, differences, refusal

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

# Set in every trial's process (through hydra.job.env_set, which any launcher honours, remote
# ones included): the Optuna trial number, unique in its study across processes and reruns.
TRIAL_ENV = "PRICER_OPTUNA_TRIAL"
_SCHEMA_TRIES = 5
# A trial user attr, set by the sweeper on the trials of a batch it fails because the batch did
# not come back (an interrupt, a broken launcher): {"status": KILLED or FAILED, "error": why}.
# A trial failed for want of a heartbeat has none: its process is gone, no one saw why.
STOPPED_ATTR = "pricer.stopped"


def storage(url: str | None, heartbeat_interval: int | None, grace_period: int | None) -> Any:
    """An RDB storage with heartbeats for a database URL; None (in memory) for None."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    if not url:
        return None
    if _in_memory(url):
        raise UnusableStorage(
            f"hydra.sweeper.storage: {url} is a SQLite database in memory, which no other "
            "process sees (nor this one's next connection: each trial made a new study in one): "
            "name a file (sqlite:///optuna.db) to share the study, or leave storage null for a "
            "study of this process alone"
        )
    # A database server restarted mid-sweep drops every pooled connection: without a ping
    # before each use, a trial's first write after it failed (PostgreSQL, 22 s after the
    # restart: "could not tell trial 15 its result"). Optuna sets it for MySQL only.
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        # Several processes write one SQLite file: wait for the lock instead of failing at once.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    # Processes that start together on a new database race to create Optuna's tables: seen on
    # PostgreSQL ("duplicate key ... (studydirection) already exists" from CREATE TYPE) and on
    # SQLite ("UNIQUE constraint failed: alembic_version.version_num"). The loser's transaction
    # is rolled back; on a retry the tables exist and creation is skipped.
    for attempt in range(_SCHEMA_TRIES):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval or None,
                    grace_period=grace_period,
                )
        except Exception as error:
            if not _lost_a_race(error) or attempt == _SCHEMA_TRIES - 1:
                if isinstance(error, SQLAlchemyError):  # refused or unreachable: a setting
                    raise UnusableStorage(f"hydra.sweeper.storage: {said(error, url)}") from None
                raise
            log.info("another process is creating the study tables: trying again")
            time.sleep(0.2 + random.random())
    raise AssertionError("unreachable")


def absolute(url: str | None, folder: str | None) -> str | None:
    """``url`` with a relative SQLite file made absolute against ``folder`` (where the user
    started the sweep: Hydra's ``hydra.runtime.cwd``); any other URL as it is.

    SQLite reads a relative file against the current folder of whichever process opens it:
    processes started in two folders used two studies, each recording ``sqlite:///optuna.db``,
    and a trial run in its own output folder (``hydra.job.chdir=true``) told its result to an
    empty study of its own there.
    """
    from sqlalchemy.engine import make_url

    if not url or not folder:
        return url
    try:
        parsed = make_url(url)
    except Exception:  # storage() says what is wrong with it
        return url
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return url
    if database.startswith("file:") or os.path.isabs(database):  # a SQLite URI names its own
        return url
    return parsed.set(database=os.path.join(folder, database)).render_as_string(hide_password=False)


def _in_memory(url: str) -> bool:
    """Whether ``url`` names a SQLite database held in memory (``sqlite://``, ``:memory:``)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # RDBStorage says what is wrong with it
        return False
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    return database in ("", ":memory:") or parsed.query.get("mode") == "memory"


def said(error: BaseException, url: str | None = None) -> str:
    """A database error as one line: the driver's own words (a server that refused, a file
    that cannot be opened), without SQLAlchemy's "(Background on this error at:
    https://sqlalche.me/...)" line, its "(psycopg.OperationalError)" prefix or its SQL."""
    from optuna.exceptions import StorageInternalError

    if isinstance(error, StorageInternalError) and error.__cause__ is not None:
        # Optuna's words for any database error ("... e.g. exceeding max length"): they hid
        # "connection refused" through a 90 s PostgreSQL outage. The database's own are below.
        error = error.__cause__
    cause = getattr(error, "orig", None)  # the driver's error, for a DBAPIError
    lines = [line.strip() for line in str(cause or error).splitlines()]
    text = (
        " ".join(line for line in lines if line and not line.startswith(_SQLALCHEMY_TRAILERS))
        or type(error).__name__
    )
    where = safe_url(url)
    return f"cannot open {where}: {text}" if where else text


# What SQLAlchemy adds after a database's message: a link to its docs, the statement sent.
_SQLALCHEMY_TRAILERS = ("(Background on this error at:", "[SQL:", "[parameters:")


class UnusableStorage(HydraException, ValueError):
    """A study storage that cannot be opened: a server that refuses or is not there, a folder
    that does not exist, a scheme no driver reads. A setting to change: one line, exit 2."""


class StudyUnreachable(HydraException, RuntimeError):
    """The study's database stopped answering mid-sweep (a server stopped or restarted, the
    network gone): one line, exit 2, as a tracking store that stops answering is; a rerun of
    the same command continues the study."""


def database_errors() -> tuple[type[BaseException], ...]:
    """What a study's database failing raises: Optuna's wrapping of a database error, a
    database error SQLAlchemy raised itself, a storage that cannot be opened again."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    return (StorageInternalError, SQLAlchemyError, UnusableStorage)


@contextlib.contextmanager
def answering(url: str | None) -> Iterator[None]:
    """The sweeper's calls to its study: a database that stops answering is ``StudyUnreachable``.

    It was Optuna's traceback (exit 1) from whichever call came first, e.g. the sweeper
    reading which trials were told as a batch came back, PostgreSQL stopped meanwhile.
    """
    try:
        yield
    except database_errors() as error:
        raise StudyUnreachable(
            f"hydra.sweeper.storage: the study's database {safe_url(url) or ''} stopped "
            f"answering ({said(error)}): this process stops; a trial it could not record there "
            "stays RUNNING in the study until another process of the study fails it (no "
            "heartbeat); run the same command again to continue the study"
        ) from None


def _lost_a_race(error: Exception) -> bool:
    """Whether creating the tables failed because another process was creating them too."""
    from sqlalchemy.exc import IntegrityError

    return isinstance(error, IntegrityError) or "already exists" in str(error)


class IncomparableStudy(HydraException, ValueError):
    """A process whose trials would not compare with those of the study it names.

    A HydraException: a setting to change, which an app reports as a config error (pricer:
    ``error: ...``, exit 2), not a bug.
    """


def open_study(
    store: Any,
    study_name: str | None,
    direction: str,
    sampler: Any = None,
    settings: Mapping[str, Any] | None = None,
    wait: float = 30.0,
) -> tuple[optuna.Study, bool]:
    """The named study, created if absent; True if THIS call created it.

    Creating is atomic in a database (the study name is unique), so among processes that start
    together exactly one is told it created the study. ``settings`` (``settings.study_settings``)
    are recorded in a study this call creates, and compared with those recorded in a study it
    joins: ``IncomparableStudy`` if they differ. None: neither (a process that only reads or
    tells an existing study).
    """
    import optuna

    try:
        study = optuna.create_study(
            storage=store, study_name=study_name, direction=direction, sampler=sampler
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(storage=store, study_name=study_name, sampler=sampler)
        # Every study has a direction; settings only those created since they are recorded.
        checks = [
            ({"hydra.sweeper.direction": study.direction.name.lower()},
             {"hydra.sweeper.direction": direction}),
        ]  # fmt: skip
        if settings is not None:
            recorded = _recorded_settings(study, settings, wait)
            if recorded is not None:
                checks.append((recorded, dict(settings)))
        for recorded, ours in checks:
            if differences(recorded, ours):
                where = safe_url(getattr(store, "url", None)) or "its storage"
                raise IncomparableStudy(refusal(study.study_name, where, recorded, ours)) from None
        return study, False
    if settings is not None:
        # First thing after creating it: a study that holds anything else (a user attr, a
        # trial) but no settings was created before they were recorded (see _recorded_settings).
        study.set_user_attr(SETTINGS_ATTR, dict(settings))
    _created_here.add((getattr(store, "url", None), study.study_name))
    return study, True


# Studies this process created: pricer's sweep callback creates a shared study before the
# sweeper opens it again, and the sweeper, told "not created", reseeded its sampler as a
# joiner must, so that `seed` changed nothing in any sweep with a storage.
_created_here: set[tuple[str | None, str]] = set()


def created_here(study: optuna.Study, store: Any) -> bool:
    """Whether this process created ``study`` (by ``open_study``)."""
    return (getattr(store, "url", None), study.study_name) in _created_here


def _recorded_settings(
    study: optuna.Study, ours: Mapping[str, Any], wait: float
) -> dict[str, Any] | None:
    """The settings the study was started with; None for a study created before they were
    recorded, which is joined as it always was.

    Its creator records them a moment after creating it: a study with nothing in it yet is
    waited for (``wait`` seconds). Still empty after that, its creator died in between: this
    process records its own settings, as the creator would have.
    """
    deadline = time.monotonic() + wait
    while True:
        attrs = study.user_attrs
        if SETTINGS_ATTR in attrs:
            return dict(attrs[SETTINGS_ATTR])
        if attrs or study.get_trials(deepcopy=False):
            log.warning(
                "study %s holds no record of the settings it was started with (created by an "
                "older version): joined without checking that its trials compare",
                study.study_name,
            )
            return None
        if time.monotonic() >= deadline:
            study.set_user_attr(SETTINGS_ATTR, dict(ours))
            return dict(ours)
        time.sleep(0.2)


def safe_url(url: str | None) -> str | None:
    """A database URL without its password, fit for a message or a tag; None for none, or for
    one SQLAlchemy does not read (say nothing of it then)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True) if url else None
    except Exception:
        return None


def shared_attr(
    study: optuna.Study,
    key: str,
    created: bool,
    make: Callable[[], str],
    usable: Callable[[str], bool] = lambda value: True,
    wait: float = 60.0,
) -> str:
    """One value for every process of a study (pricer: the parent MLflow run's id).

    The process that created the study makes it and stores it in the study's user attrs; the
    others wait for it there. A value that is missing after ``wait`` seconds (its maker died)
    or no longer ``usable`` (say, the run was deleted) is made again by whoever finds it so.
    A creator whose ``make`` fails (the tracking server refused it the run) stores an empty
    value, which the next process makes again at once: it waited ``wait`` seconds in silence.
    """
    deadline = time.monotonic() + (0.0 if created else wait)
    while True:
        value = study.user_attrs.get(key)
        if value and usable(value):
            return str(value)
        if created or value is not None or time.monotonic() >= deadline:
            try:
                value = make()
            except BaseException:
                if created and key not in study.user_attrs:
                    with contextlib.suppress(Exception):  # its own error is what is said
                        study.set_user_attr(key, "")
                raise
            study.set_user_attr(key, value)
            return value
        time.sleep(0.5)


def tell(study: optuna.Study, trial: optuna.Trial | int, *args: Any, **kwargs: Any) -> None:
    """``study.tell``, for a sweeper that asks and tells (no ``study.optimize``).

    Optuna's GridSampler calls ``study.stop()`` as the grid's last trial is told, and Optuna
    allows that only inside ``study.optimize``: a RuntimeError, raised after the trial was
    told (stored in a ``finally``). A grid search that covered its grid ended in a traceback,
    exit 1, its parent run FAILED, every trial run and told. There is nothing left to stop: the
    sweeper asks no more trials than the grid has.
    """
    try:
        study.tell(trial, *args, **kwargs)
    except RuntimeError as error:
        if "Study.stop" not in str(error):
            raise


def stopped(error: BaseException) -> dict[str, str]:
    """What ``STOPPED_ATTR`` records for trials whose batch ``error`` ended."""
    if isinstance(error, KeyboardInterrupt):  # pricer's SIGTERM and SIGINT unwind as one too
        return {
            "status": "KILLED",
            "error": str(error) or "interrupted by SIGINT (KeyboardInterrupt)",
        }
    return {"status": "FAILED", "error": f"its launcher failed: {type(error).__name__}: {error}"}


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail the running trials whose process stopped sending heartbeats (SIGKILL, lost host)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def running_heartbeats(study: optuna.Study) -> dict[int, tuple[datetime, float]] | None:
    """Each running trial's last heartbeat and the seconds since, by trial number, by the
    database's clock (the one Optuna's stale check reads); None for a study without
    heartbeats. A running trial that has never beaten is left out: nothing tells its process
    alive or dead."""
    import sqlalchemy
    from optuna.storages import RDBStorage
    from optuna.trial import TrialState

    try:  # Optuna's own tables, read as its stale check reads them; no public reader exists
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
    except ImportError:  # another Optuna's layout: no wait, the sweep ends as it did before
        return None

    store = getattr(study._storage, "_backend", study._storage)  # under Optuna's cache
    if not isinstance(store, RDBStorage) or not store.heartbeat_interval:
        return None
    with _create_scoped_session(store.scoped_session) as session:
        now = session.execute(sqlalchemy.func.now()).scalar_one().replace(tzinfo=None)
        rows = (
            session.query(models.TrialModel.number, models.TrialHeartbeatModel.heartbeat)
            .join(models.TrialHeartbeatModel)
            .filter(models.TrialModel.study_id == study._study_id)
            .filter(models.TrialModel.state == TrialState.RUNNING)
            .all()
        )
    beats = {number: beat.replace(tzinfo=None) for number, beat in rows}
    return {number: (beat, (now - beat).total_seconds()) for number, beat in beats.items()}


def grace_period(study: optuna.Study) -> float | None:
    """How long a trial may be silent before Optuna fails it as stale; None: never."""
    store = getattr(study._storage, "_backend", study._storage)
    interval = getattr(store, "heartbeat_interval", None)
    if not interval:
        return None
    return float(getattr(store, "grace_period", None) or 2 * interval)


def settle_running(
    study: optuna.Study, say: Callable[[str], None], poll: float = 0.5
) -> dict[int, float]:
    """Wait until each running trial is seen alive or is failed as stale; the running ones
    seen alive, with their silence in seconds.

    For the last process of a study as it ends: a trial still running may be another
    process's (its heartbeat moves within a heartbeat interval: stop waiting, that process
    ends the study's parent run) or one whose process died less than the grace period ago
    (a rerun started right after a crash: its heartbeat does not move, and Optuna fails it
    once its silence passes the grace period). Bounded by what is left of the grace period,
    said once through ``say`` before waiting.
    """
    fail_stale_trials(study)
    first = running_heartbeats(study)
    grace = grace_period(study)
    if not first or grace is None:
        return {}
    ages = [age for _, age in first.values()]
    left = max(grace - min(ages), 0.0) + 1.0  # SQLite's clock counts whole seconds
    say(
        f"trial {', '.join(map(str, sorted(first)))} of study {study.study_name} is running "
        f"with no heartbeat for {max(ages):.0f} s: waiting up to {left:.0f} s (its grace "
        f"period, {grace:.0f} s) to tell a live process from a dead one"
    )
    deadline = time.monotonic() + left
    while True:
        fail_stale_trials(study)
        now = running_heartbeats(study) or {}
        # A heartbeat that moved (or a trial asked meanwhile): a process is alive, and it
        # ends the study's parent as the last one; none left running: all were dead.
        if not now or any(first.get(n, (None,))[0] != beat for n, (beat, _) in now.items()):
            return {number: age for number, (_, age) in now.items()}
        if time.monotonic() >= deadline:
            return {number: age for number, (_, age) in now.items()}
        time.sleep(poll)


class Heartbeat:
    """Records a heartbeat for the given trials every ``interval`` seconds, in a thread.

    Optuna beats only inside ``study.optimize``; a Hydra sweeper asks and tells, and its trials
    run in launcher jobs, so the sweeping process beats for them while the batch runs.
    """

    def __init__(self, study: optuna.Study, trials: Iterable[optuna.Trial]) -> None:
        store = study._storage
        beats = hasattr(store, "record_heartbeat")
        self._interval = store.get_heartbeat_interval() if beats else None
        self._store = store
        self._ids = [trial._trial_id for trial in trials]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="optuna-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        if self._interval:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _beat(self) -> None:
        while True:
            try:
                for trial_id in self._ids:
                    self._store.record_heartbeat(trial_id)
            except Exception as error:  # the database is briefly away: beat again next time
                log.warning("optuna heartbeat failed: %s", said(error))
            if self._stop.wait(self._interval):
                return
