"""The MLflow run lifecycle and what every run logs about its own configuration.

- ``configure_tracking`` opens the store: a new SQLite store is created under a file lock, so
  processes starting together do not race MLflow's schema migrations.
- ``tracked_run`` ends a run FAILED on an error and KILLED on SIGTERM/SIGINT
  (``pricer.interrupt``), with the reason in the ``error`` tag, secrets redacted
  (``pricer.tracking.redaction``), and the LoggedModels it left PENDING FAILED; it tags the
  process that ran it, so a run left RUNNING by a SIGKILL can be told from a live one
  (``pricer.tracking.liveness``), and the first run a process starts in an experiment ends
  KILLED those there whose process is provably gone (``pricer.tracking.reaper``).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mlflow
from mlflow.entities import LifecycleStage, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.utils.file_utils import local_file_uri_to_path
from mlflow.utils.uri import is_local_uri, resolve_uri_if_local
from omegaconf import DictConfig, OmegaConf

from pricer import interrupt
from pricer.errors import ConfigError, one_line
from pricer.files import folder_problem
from pricer.paths import PROJECT_ROOT
from pricer.tracking import tags as tag_names
from pricer.tracking.liveness import process_tags
from pricer.tracking.mlflow3 import enable_system_metrics
from pricer.tracking.reaper import fail_pending_models, reap_once
from pricer.tracking.redaction import REDACTED, redact_tags, redact_text, redact_tree
from pricer.tracking.store import (
    STORE_ERRORS,
    StoreRefused,
    StoreUnreachable,
    check_reachable,
    limit_http_retries,
    open_store,
    permission_denied,
    quiet_run_links,
    refused_writing,
    safe_uri,
    server_failure,
    store_cause,
    unreachable_as_one_line,
)

__all__ = ["REDACTED", "redact_text"]  # re-exported: callers log through this module

MAX_PARAM_LENGTH = 6000  # MLflow's limit for a param value
# Set by the sweep callback (pricer.tracking.sweep) in every process that runs a sweep trial:
# the parent run to nest the trial's run under, and tags (JSON) that say which trial it is.
# Tags that say what a run is; the registry and sweeps search runs by them (names: tags.py).
FAMILY_TAG = tag_names.FAMILY
KIND_TAG = tag_names.KIND

SWEEP_PARENT_ENV = "PRICER_SWEEP_PARENT_RUN_ID"
SWEEP_TAGS_ENV = "PRICER_SWEEP_TAGS"

# Called with a sweep trial's run id just before that run ends FINISHED, in the block that
# holds signals back while it ends: the sweep tells its study the trial's result there. Told
# after the run had ended, a SIGTERM landing in between left the run FINISHED and the trial
# failed in Optuna (seen in CI). Set by the sweep callback in the process that runs the trial.
_trial_finishing: Callable[[str], str | None] | None = None


def on_trial_finishing(hook: Callable[[str], str | None] | None) -> None:
    """Set (or, with None, clear) what runs as a sweep trial's run is about to end FINISHED.
    The hook returns None, or why the run must end FAILED instead."""
    global _trial_finishing
    _trial_finishing = hook


EXPERIMENT_NAME_LIMIT = 500  # characters, MLflow's limit on an experiment's name


def configure_tracking(tracking_cfg: Mapping[str, Any]) -> str | None:
    """Point MLflow at the configured store and experiment; the experiment's id (None when a
    run taken up by its id, without ``MLFLOW_EXPERIMENT_ID``, finds none of the configured name).

    Under ``mlflow run`` the run, and so its experiment, already exist (``MLFLOW_RUN_ID``,
    ``MLFLOW_EXPERIMENT_ID``); choosing another experiment would conflict with them.
    """
    uri = tracking_cfg["uri"]
    quiet_run_links()
    limit_http_retries(tracking_cfg.get("http"))
    mlflow.set_tracking_uri(uri)
    enable_system_metrics(tracking_cfg.get("system_metrics"))
    if tracking_cfg["trace_llm"]:
        from mlflow import openai as openai_flavor  # imports the openai SDK: only when asked

        openai_flavor.autolog()
    if not str(tracking_cfg["experiment"]).strip():
        raise ConfigError("tracking.experiment is empty: name the experiment runs go to")
    # The store's own limit: beyond it, MLflow's traceback as the experiment was created.
    if len(str(tracking_cfg["experiment"])) > EXPERIMENT_NAME_LIMIT:
        raise ConfigError(
            f"tracking.experiment has {len(str(tracking_cfg['experiment']))} characters: "
            f"MLflow takes up to {EXPERIMENT_NAME_LIMIT}"
        )
    check_reachable(uri)
    # A new SQLite store: created by one process, the others wait.
    with unreachable_as_one_line(uri), open_store(uri):
        if "MLFLOW_RUN_ID" in os.environ or "MLFLOW_EXPERIMENT_ID" in os.environ:
            _check_given_experiment(tracking_cfg["artifact_location"])
            return os.environ.get("MLFLOW_EXPERIMENT_ID") or _experiment_id(tracking_cfg)
        return _choose_experiment(tracking_cfg["experiment"], tracking_cfg["artifact_location"])


def _choose_experiment(name: str, artifact_location: str | None) -> str:
    """Set the experiment, creating it if needed (another process may create it meanwhile);
    its id.

    Its artifact location is checked before any run starts, the one configured for a new
    experiment before it is created with it, an existing experiment's (or a new one's default)
    once it is chosen: an experiment keeps its location for good, and one that cannot hold files
    failed every run at its first artifact, each with the error MLflow raised there.
    """
    for attempt in range(3):
        try:
            checked = None
            found = mlflow.get_experiment_by_name(name)
            if found is not None and found.lifecycle_stage == LifecycleStage.DELETED:
                # MLflow's refusal was a traceback (exit 1), from every app that logs.
                raise ConfigError(
                    f"experiment {name!r} was deleted: restore it (mlflow experiments restore "
                    f"--experiment-id {found.experiment_id}) to log to it again, or send runs "
                    "to another (tracking.experiment=NAME)"
                )
            if found is None and artifact_location:
                checked = artifact_location
                _require_local_folder(
                    artifact_location,
                    f"tracking.artifact_location={artifact_location}",
                    "point it at a folder run files can be written in",
                )
                mlflow.create_experiment(name, artifact_location=artifact_location)
            experiment = mlflow.set_experiment(name)
            break
        except MlflowException as error:
            # Both saw no experiment, the other created it first: it exists now, use it.
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS) or attempt == 2:
                raise
    # Also when another process created it meanwhile, with a location of its own.
    if artifact_location and not same_location(artifact_location, experiment.artifact_location):
        raise ConfigError(
            f"tracking.artifact_location={artifact_location}: experiment {name!r} already "
            f"keeps its run files at {experiment.artifact_location} (an experiment's location "
            "is set when it is created): name another experiment (tracking.experiment=NAME) "
            "for runs to go there, or drop tracking.artifact_location"
        )
    if experiment.artifact_location != checked:
        _require_local_folder(
            experiment.artifact_location,
            f"experiment {name!r} keeps its run files at {experiment.artifact_location}",
            "fix that place, or send runs to another experiment "
            "(tracking.experiment=NAME, tracking.artifact_location=FOLDER)",
        )
    return str(experiment.experiment_id)


def _check_given_experiment(artifact_location: str | None) -> None:
    """Under ``mlflow run`` the experiment is chosen already (``MLFLOW_EXPERIMENT_ID``): it
    gets the checks ``_choose_experiment`` gives a chosen one, before any run. Its location
    must be a folder that can hold files (one that could not failed the run at its first
    artifact, with MLflow's traceback), and ``artifact_location``, when set, must be that
    location: another was silently ignored, the run's files going to the experiment's own."""
    experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    if not experiment_id:
        return
    try:
        experiment = mlflow.get_experiment(experiment_id)
    except MlflowException:  # no such experiment: the run's start says so, as it did
        return
    if artifact_location and not same_location(artifact_location, experiment.artifact_location):
        raise ConfigError(
            f"tracking.artifact_location={artifact_location}: experiment {experiment.name!r} "
            f"(MLFLOW_EXPERIMENT_ID={experiment_id}) already keeps its run files at "
            f"{experiment.artifact_location} (an experiment's location is set when it is "
            "created): send runs to an experiment created there (mlflow experiments create "
            "--experiment-name NAME --artifact-location LOCATION, then mlflow run "
            "--experiment-name NAME), or drop tracking.artifact_location"
        )
    _require_local_folder(
        experiment.artifact_location,
        f"experiment {experiment.name!r} (MLFLOW_EXPERIMENT_ID={experiment_id}) keeps its run "
        f"files at {experiment.artifact_location}",
        "fix that place, or send runs to another experiment (mlflow run --experiment-name NAME)",
    )


def same_location(configured: str, recorded: str) -> bool:
    """Whether an artifact location as configured is the one an experiment records: a path
    and its file: URI are one, a relative path is read from here as MLflow reads it when it
    creates the experiment, and a trailing slash or ``.`` changes nothing."""

    def normal(location: str) -> str:
        resolved = str(resolve_uri_if_local(location))
        if is_local_uri(resolved, is_tracking_or_registry_uri=False):
            return os.path.normpath(local_file_uri_to_path(resolved))
        return resolved.rstrip("/")

    return normal(configured) == normal(recorded)


def _require_local_folder(location: str, setting: str, remedy: str) -> None:
    """A local artifact location must be a folder files can be written in (``ConfigError``
    naming ``setting`` and ``remedy`` otherwise): one under a file failed every run's first
    artifact (its traceback, a FAILED run). Other stores' locations (s3://, mlflow-artifacts:)
    are theirs to check: they are not probed here."""
    parsed = urlsplit(location)
    if parsed.scheme not in ("", "file") and len(parsed.scheme) > 1:  # "C:" is a drive
        return
    folder = Path(local_file_uri_to_path(location))  # a file: URI's %20 is a space
    why = folder_problem(folder)  # a file in the way, a folder not writable
    if why is None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # a place no folder can be made (/proc, a full disk)
            why = error.strerror or str(error)
    if why is not None:
        raise ConfigError(f"{setting}: {why}; {remedy}")


def _experiment_label(experiment_id: str | None, configured: str) -> str:
    """The experiment's name, quoted, for a message (its id when the store cannot say)."""
    if experiment_id is None:
        return repr(configured)
    try:
        return repr(mlflow.get_experiment(experiment_id).name)
    except MlflowException:
        return experiment_id


@contextmanager
def tracked_run(
    tracking_cfg: Mapping[str, Any],
    *,
    run_name: str,
    tags: Mapping[str, str],
    nested: bool = False,
) -> Iterator[mlflow.ActiveRun]:
    """Start (or, under ``mlflow run``, resume) a run; end it FAILED on an error, KILLED on
    SIGTERM/SIGINT, with the reason (secrets redacted) in its ``error`` tag.

    In a sweep trial, a run started outside any other run is nested under the sweep's parent.
    """
    experiment_id = configure_tracking(tracking_cfg)
    # Runs a SIGKILL left RUNNING (and their models PENDING) end KILLED (FAILED) here, the
    # first time this process opens a run in the experiment; a store error is only a warning.
    # Not the run start_run takes up by its id (mlflow run's, or one resumed): this process
    # runs it, whatever process its tags still name.
    reap_once(experiment_id, keep=os.environ.get("MLFLOW_RUN_ID"))
    parent_run_id, trial_tags = sweep_trial()
    all_tags = {
        **git_tags(),
        **machine_tags(),
        **thread_tags(),
        **process_tags(),
        **{str(k): str(v) for k, v in (tracking_cfg["tags"] or {}).items()},
        **trial_tags,
        **tags,
    }
    all_tags = redact_tags(all_tags)
    with interrupt.guarded():  # in a launcher's worker process: SIGTERM ends this run too
        # A signal while the run is being created or ended would leave it RUNNING: it waits
        # until the run can be ended (raised at ``release_pending``) or has been.
        with interrupt.deferred(release=False):
            try:
                run = mlflow.start_run(
                    run_name=run_name,
                    nested=nested or parent_run_id is not None,
                    parent_run_id=parent_run_id,
                    tags=all_tags,
                )
            except MlflowException as error:
                if not permission_denied(error):
                    raise
                # A reader of the experiment: MLflow's traceback (exit 1) said only "403".
                experiment = _experiment_label(experiment_id, tracking_cfg["experiment"])
                line = refused_writing(mlflow.get_tracking_uri(), experiment, "to start a run")
                raise StoreRefused(line) from None
            interrupt.note_run(run.info.run_id, run_name, "RUNNING")
        try:
            interrupt.release_pending()
            yield run
        except BaseException as error:
            # An interrupt can come back as another error: a library's cleanup that fails while
            # the interrupt unwinds it replaces the interrupt (seen: SIGTERM inside OmegaConf
            # ended a sweep trial FAILED with "'NoneType' object has no attribute ..."). A
            # process that received one was stopped, whatever error reaches here.
            received = interrupt.received()
            stopped = interrupt.reason(error) or (str(received) if received else None)
            message = stopped or f"{type(error).__name__}: {one_line(error)}"
            with interrupt.deferred():
                try:
                    status = RunStatus.KILLED if stopped else RunStatus.FAILED
                    # Not after the store's own error: it would only fail again, a line more
                    # above the one that says the store stopped answering.
                    store_failed = isinstance(error, StoreUnreachable) or (
                        not stopped and isinstance(error, STORE_ERRORS)
                    )
                    _end(run, status, error=message, models=not store_failed)
                    interrupt.note_run(run.info.run_id, run_name, RunStatus.to_string(status))
                except Exception as failure:  # the store failing too must not hide the cause
                    if isinstance(error, StoreUnreachable):
                        raise error from None  # a nested run's line said so already
                    if not stopped and isinstance(error, STORE_ERRORS):
                        # The store's error, then the store refusing the end: it went away
                        # mid-run (a server stopped, a database gone). Its traceback and
                        # "could not end run" read as a bug.
                        raise StoreUnreachable(
                            f"the tracking store stopped answering while run "
                            f"{run.info.run_id} was logged ({type(error).__name__}: "
                            f"{store_cause(error)}): its end was not recorded, so it stays "
                            "RUNNING, and pricer runs shows it STALE once this process has ended"
                        ) from None
                    print(
                        f"pricer: could not end run {run.info.run_id} ({failure!r}); it may "
                        "stay RUNNING until, this process gone, the next pricer run on this host "
                        "in its experiment ends it KILLED (pricer.tracking.reaper)",
                        file=sys.stderr,
                        flush=True,
                    )
            if received is not None and not isinstance(error, KeyboardInterrupt):
                raise received from error  # callers (a leaderboard's except) must see it
            failure = None if stopped else server_failure(error)
            if failure is not None:
                # A server that failed for minutes (its database restarting: 503s past MLflow's
                # retries) and answered again as the run ended: its traceback read as a bug.
                raise StoreUnreachable(
                    f"the tracking server failed while run {run.info.run_id} was logged "
                    f"({failure}): the run ended FAILED; run it again once the server answers"
                ) from None
            raise
        with interrupt.deferred():
            refused = None
            if parent_run_id is not None and _trial_finishing is not None:
                refused = _trial_finishing(run.info.run_id)  # the study failed the trial
            status = RunStatus.FAILED if refused else RunStatus.FINISHED
            try:
                _end(run, status, error=refused)
            except STORE_ERRORS as failure:
                # The work is done and logged; only its end was not recorded. One line, not
                # the store's traceback: the run stays RUNNING until liveness calls it stale.
                # Named by its address and the socket's reason: MLflow's whole message (its
                # URL, the pool, the retries) read as five errors on one line.
                store = safe_uri(mlflow.get_tracking_uri())
                raise StoreUnreachable(
                    f"the work was done, but the tracking store at {store} did not record the "
                    f"end of run {run.info.run_id} ({store_cause(failure)}): it stays RUNNING, "
                    "and pricer runs shows it STALE once this process has ended; start the "
                    "store again, then run what did not finish again"
                ) from None
            # Noted before this block lets a held signal go: its message can then say so.
            interrupt.note_run(run.info.run_id, run_name, RunStatus.to_string(status))


def _experiment_id(tracking_cfg: Mapping[str, Any]) -> str | None:
    """The configured experiment's id, for a run taken up by its id (``MLFLOW_RUN_ID``)
    without ``MLFLOW_EXPERIMENT_ID``; None if the store has none by that name."""
    try:
        experiment = mlflow.get_experiment_by_name(str(tracking_cfg["experiment"]))
    except STORE_ERRORS:  # the run's own start says what is wrong with the store
        return None
    return None if experiment is None else experiment.experiment_id


def end_left_running(run_ids: list[str], reason: str) -> None:
    """End KILLED, with ``reason`` as their error, the runs that are still RUNNING in the store,
    their LoggedModels still PENDING FAILED first (as ``_end`` does): what the interrupt
    watchdog does with the runs this process left open when unwinding hung
    (``interrupt.on_give_up``; its cost, within ``interrupt.FAREWELL_SECONDS``, is measured
    there). A client of its own: the fluent API's active runs belong to the main thread, stuck
    where it is."""
    client = mlflow.MlflowClient()
    for run_id in run_ids:
        # Read first: a run whose end the main thread recorded before it hung keeps it.
        run = client.get_run(run_id)
        if run.info.status != RunStatus.to_string(RunStatus.RUNNING):
            continue
        # Its models first, as ``_end`` does: an end cut short here (the farewell's bound, the
        # exit) leaves the run RUNNING, which the next run's reap ends whole, models too.
        _fail_unfinished_models(client, run.info.experiment_id, run_id, reason)
        client.set_tag(run_id, tag_names.ERROR, reason)
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))


# Every process that opens runs imports this module (tracked_run, a sweep's parent).
interrupt.on_give_up(end_left_running)


def _end(
    run: mlflow.ActiveRun, status: int, *, error: str | None = None, models: bool = True
) -> None:
    """End ``run`` with ``status`` (and an ``error`` tag) if it is still the active run; one
    that does not end FINISHED fails its LoggedModels still PENDING first (``models``).

    As ``with mlflow.start_run()`` does: a run the body ended itself is left alone.
    """
    active = mlflow.active_run()
    if active is None or active.info.run_id != run.info.run_id:
        return
    if models and status != RunStatus.FINISHED and error is not None:
        # Before the run's end, as the reaper does: an end cut short (a second Ctrl-C exits
        # at once) leaves the run RUNNING, which the next run's reap ends whole, models too.
        _fail_unfinished_models(
            mlflow.MlflowClient(), run.info.experiment_id, run.info.run_id, error
        )
    try:
        if error is not None:
            mlflow.set_tag(tag_names.ERROR, redact_text(error)[:MAX_PARAM_LENGTH])
    finally:  # the store refusing the tag: the run still leaves MLflow's active-run stack
        mlflow.end_run(RunStatus.to_string(status))


def _fail_unfinished_models(
    client: mlflow.MlflowClient, experiment_id: str, run_id: str, error: str
) -> None:
    """Finalize FAILED, ``error`` in their ``error`` tag, the LoggedModels run ``run_id`` left
    PENDING (the reaper's ``fail_pending_models``, with the run's own reason).

    A SIGTERM or Ctrl-C while the run logged its model is a ``KeyboardInterrupt``, on which
    MLflow does not mark the model FAILED (only on an ``Exception``): it stayed PENDING for
    good, the run ended KILLED, and the reaper looks only at runs still RUNNING. A store error
    here is one line on stderr, never in the way of the run's own end.
    """
    why = {tag_names.ERROR: redact_text(error)[:MAX_PARAM_LENGTH]}
    try:
        fail_pending_models(client, experiment_id, run_id, why)
    except Exception as failure:
        print(
            f"pricer: could not mark the models run {run_id} left unfinished FAILED "
            f"({type(failure).__name__}: {one_line(failure)}); they stay PENDING",
            file=sys.stderr,
            flush=True,
        )


def sweep_trial() -> tuple[str | None, dict[str, str]]:
    """The sweep parent run and trial tags for a new top-level run; (None, {}) outside a sweep.

    A run started inside another run (a leaderboard's families) nests under that one as usual.
    """
    parent_run_id = os.environ.get(SWEEP_PARENT_ENV)
    if not parent_run_id or mlflow.active_run() is not None:
        return None, {}
    return parent_run_id, json.loads(os.environ.get(SWEEP_TAGS_ENV) or "{}")


def redacted_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config as plain containers, with secret-looking values redacted."""
    tree = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    return redact_tree(tree)


def flatten_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, str]:
    """Dotted keys to strings, resolved, secrets redacted, values cut to MLflow's limit."""
    flat: dict[str, str] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key, child in value.items():
                visit(f"{prefix}.{key}" if prefix else str(key), child)
        else:
            flat[prefix] = str(value)[:MAX_PARAM_LENGTH]

    visit("", redacted_config(cfg))
    return flat


def log_config(cfg: DictConfig, artifact_file: str = "config/config.yaml") -> None:
    """Log the composed config: flattened as params (searchable) and whole as YAML."""
    mlflow.log_params(flatten_config(cfg))
    mlflow.log_text(OmegaConf.to_yaml(OmegaConf.create(redacted_config(cfg))), artifact_file)


@functools.cache
def machine_tags() -> dict[str, str]:
    """The CPU, the BLAS kernels and numpy's SIMD extensions the figures were computed with
    (see ``tags.CPU``)."""
    found = {tag_names.CPU: _cpu_model()}
    # Loaded first, so that every run names both numpy's and scipy's OpenBLAS whatever it had
    # imported so far: a sweep's runs, asked before scipy was loaded, named numpy's alone,
    # and `pricer compare` showed a kernel difference that was not there.
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_info  # scikit-learn's own dependency

    kernels = sorted(
        {
            " ".join(
                str(part)
                for part in (
                    pool.get("internal_api"),
                    pool.get("version"),
                    pool.get("architecture"),
                )
                if part
            )
            for pool in threadpool_info()
            if pool.get("user_api") == "blas"
        }
    )
    if kernels:
        found[tag_names.BLAS] = ", ".join(kernels)
    simd = _numpy_simd()
    if simd:
        found[tag_names.SIMD] = simd
    return found


# The variables that set those thread counts for the libraries pricer's families load (OpenBLAS
# or MKL under numpy and scipy, OpenMP under scikit-learn and the boosters); each library reads
# its own first, so a replay needs each one that was set, not OMP_NUM_THREADS alone (joblib's
# workers with OMP_NUM_THREADS=2 exported still ran OpenBLAS on 1 thread: loky set its own).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_tags() -> dict[str, str]:
    """The threads this process's BLAS and OpenMP libraries use (see ``tags.THREADS``).

    Not cached with ``machine_tags``: the counts are the process's, not the machine's.
    """
    import sklearn  # noqa: F401  # loads its OpenMP runtime: a run opened first named BLAS alone
    from threadpoolctl import threadpool_info

    machine_tags()  # numpy's and scipy's BLAS loaded, as there
    counts = sorted({f"{pool['user_api']} {pool['num_threads']}" for pool in threadpool_info()})
    return {tag_names.THREADS: ", ".join(counts)} if counts else {}


def thread_settings() -> dict[str, str]:
    """The thread-count variables set in this process's environment, by name."""
    return {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ}


def _numpy_simd() -> str | None:
    """The SIMD extensions numpy's own kernels dispatch to here (NPY_DISABLE_CPU_FEATURES
    turns them off), beyond the baseline it was built for."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # numpy before 2.0, or a build without runtime dispatch
        return None
    found = [target for target in __cpu_dispatch__ if __cpu_features__.get(target)]
    return " ".join(["numpy", *(found or ["baseline"])])


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine()


def git_tags() -> dict[str, str]:
    """The commit the code ran from, and whether the work tree had uncommitted changes."""

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {tag_names.GIT_COMMIT: commit, tag_names.GIT_DIRTY: str(bool(status)).lower()}
