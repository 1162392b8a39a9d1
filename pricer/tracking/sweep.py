"""A Hydra multirun as one parent MLflow run with every trial's run nested under it.

``SweepCallback`` (conf/hydra/callbacks/mlflow_sweep.yaml) opens the parent run when a
multirun starts and tells each trial's process about it through the environment, where
``tracked_run`` nests the trial's run under it. That holds for trials in the main process (the
basic launcher), in worker processes (the joblib launcher pickles this callback, parent id
included, into every worker) and under ``mlflow run``: the run it created (``MLFLOW_RUN_ID``)
becomes the parent instead of being resumed by the first trial. When the multirun ends, the
parent logs every trial, the best one and its parameters, and a chart of the objective; a
multirun that stops early leaves its parent FAILED.

The parent is held with an ``MlflowClient``, not on MLflow's active-run stack, so the trials of
the basic launcher start their runs exactly as those of the joblib launcher do.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking.context.registry import resolve_tags
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hydra_plugins.pricer_optuna_sweeper import search_space
from hydra_plugins.pricer_optuna_sweeper.settings import direction_name
from hydra_plugins.pricer_optuna_sweeper.study import (
    TRIAL_ENV,
    IncomparableStudy,
    UnusableStorage,
    database_errors,
)
from pricer import interrupt
from pricer.configs import refuse_at_start
from pricer.errors import USER_ERROR_STATUS, ConfigError, UserError, ending, one_line
from pricer.evaluation import objective_trace
from pricer.models.llm.answering import answered_in_every_pass, other_model_answers
from pricer.models.llm.client import MissingApiKeyError, check_api_keys
from pricer.tracking import names
from pricer.tracking import tags as tag_names
from pricer.tracking.candidates import other_model_note
from pricer.tracking.liveness import process_tags, shared_process_tag
from pricer.tracking.model import UnloadableMember, check_logged_members, logged_keys
from pricer.tracking.reaper import reap
from pricer.tracking.redaction import redact_override, redact_tags
from pricer.tracking.run import (
    KIND_TAG,
    MAX_PARAM_LENGTH,
    SWEEP_PARENT_ENV,
    SWEEP_TAGS_ENV,
    configure_tracking,
    git_tags,
    machine_tags,
    on_trial_finishing,
    redact_text,
    redacted_config,
    thread_settings,
)
from pricer.tracking.store import (
    STORE_ERRORS,
    StoreUnreachable,
    permission_denied,
    refused_writing,
    store_cause,
)
from pricer.tracking.study import (
    LAST_STOP_TAG,
    STUDY_TAG,
    SWEEPER,
    TRIAL_COLUMNS,
    SharedStudy,
    merge_trials,
)
from pricer.tracking.views import (
    TRIALS_LINE,
    RunsView,
    children_filter,
    first_listed,
    save_view,
    sweep_key,
    ui_base,
    unchanged_line,
    view_url,
)

# A trial's number: Optuna's trial number in an Optuna sweep (unique in its study, across
# processes and reruns), else Hydra's job number.
TRIAL_TAG = tag_names.SWEEP_TRIAL
OVERRIDES_TAG = "pricer.sweep.overrides"  # a trial's Hydra overrides, a JSON list
BEST_RUN_TAG = tag_names.SWEEP_BEST_RUN
REPLAY_TAG = tag_names.SWEEP_REPLAY
BEST_REPLAY_TAG = tag_names.SWEEP_BEST_REPLAY
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
_BATCH = 100  # MLflow takes at most 100 params or 1000 metrics in one batch


class SweepError(SystemExit):
    """A multirun that cannot be tracked as asked: stop before any trial runs.

    A ``SystemExit`` because Hydra turns any ``Exception`` a callback raises into a warning and
    goes on, which would scatter the trials into unrelated top-level runs. So pricer.cli.run
    never sees it: it says its one line here, ``error: ...``, and exits 2 as a user error does.
    """

    def __init__(self, message: str) -> None:
        super().__init__(USER_ERROR_STATUS)
        self.message = message
        print(f"error: {redact_text(message)}", file=sys.stderr, flush=True)

    def __str__(self) -> str:
        return self.message


class SweepCallback(Callback):
    """Hydra callback: one parent run per multirun; trial runs nest under it.

    ``objective`` is the metric trials are ranked by (what the app returns to the sweeper),
    ``validation_size`` the number of validation items the objective is measured on: a sweep
    without any would rank trials on nothing, so it is refused before the first trial.
    """

    def __init__(
        self,
        *,
        tracking: Mapping[str, Any],
        run_name: str,
        tags: Mapping[str, str],
        objective: str,
        direction: str,
        validation_size: int,
    ) -> None:
        if direction not in ("minimize", "maximize"):
            raise ConfigError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
        self.tracking = _plain(tracking)
        self.run_name = run_name
        self.tags = {str(key): str(value) for key, value in _plain(tags).items()}
        self.objective = objective
        self.direction = direction
        self.validation_size = validation_size
        self.parent_run_id: str | None = None
        self.parent_name = run_name  # a shared study's parent is named after the study
        self.swept_keys: list[str] = []
        # A study in a database, shared with other sweep processes; None: this process only.
        self.study: SharedStudy | None = None
        # This process's tag on the study's parent run while it takes part (liveness.py).
        self.process_tag: str | None = None

    # -- single runs -------------------------------------------------------------------------
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweeper = OmegaConf.select(config, "hydra.sweeper._target_")
        if sweeper != BASIC_SWEEPER:
            raise SweepError(
                f"the sweeper {sweeper} is configured (an hparams_search?) but the app runs once: "
                "add -m (--multirun) to sweep"
            )

    # -- the multirun, in the launching process ----------------------------------------------
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Before the parent run opens (this callback comes before conf/hydra/default.yaml's).
        refuse_at_start(config)
        # An Optuna sweep that maximised while this callback ranked by the minimum recorded
        # two best trials, Optuna's and the parent run's.
        asked = OmegaConf.select(config, "hydra.sweeper.direction")
        if asked is not None and direction_name(asked) != self.direction:
            raise SweepError(
                f"hydra.sweeper.direction={direction_name(asked)}, but trials are ranked by "
                f"{self.objective}, which a sweep must {self.direction}: leave the direction out"
            )
        check_search(config)
        check_launcher(config)
        if self.validation_size < 1:
            raise SweepError(
                f"a sweep ranks its trials by {self.objective}, measured on validation items "
                "held out of training (never the test items): set validation.size, e.g. "
                "validation.size=500"
            )
        check_data(config)
        model = OmegaConf.select(config, "model")
        if model is not None and not swept_families(config):
            # Every trial fits this config's family: a key it lacks refuses the sweep here, as
            # it does a lone run, not after the parent opened (then FAILED, with no trial).
            # Over several families each trial's own run checks its family's.
            try:
                # A logged member whose model is not there, too (a typo).
                check_logged_members({"model": model}, self.tracking["uri"])
                family = self.tags.get(tag_names.FAMILY, "model")
                check_api_keys({family: model}, logged_keys(self.tracking["uri"]))
            # A store that does not answer too: raised as it is, Hydra made it a warning and
            # each trial said it again.
            except (UnloadableMember, MissingApiKeyError, StoreUnreachable) as error:
                raise SweepError(str(error)) from None
        try:
            self.swept_keys = swept_keys(config)
            if any(key == "data" or key.startswith("data.") for key in self.swept_keys):
                # Trials on other data: the base config's name is none of theirs.
                self.tags.pop(tag_names.DATA, None)
            families = swept_families(config)
            if families:  # named after the default model, which no trial trained
                label = ", ".join(families)
                data = str(OmegaConf.select(config, "data.name"))
                self.run_name = self.parent_name = names.run_name("sweep", label, data)
                self.tags[tag_names.FAMILY] = label
            self.study = SharedStudy.from_config(config)
            if self.study is None:
                # A signal while the run is created waits until it is noted (_opened).
                with interrupt.deferred():
                    self._opened(open_parent_run(self.tracking, self.run_name, self.tags, own=True))
                self._log_sweep_settings(config)
            else:
                self.parent_name = names.run_name("study", self.study.study_name)
                self._join_study(config, self.study)
        except (IncomparableStudy, UnusableStorage) as error:
            # Refused before anything was written to MLflow or any trial ran: nothing to close.
            raise SweepError(str(error)) from error
        except BaseException as error:
            # An interrupt too (no Exception): it used to leave the parent RUNNING for good.
            if self.parent_run_id is not None:
                self._close("FAILED")  # KILLED when interrupted
            if not isinstance(error, Exception):
                raise
            if permission_denied(error):
                experiment = repr(self.tracking["experiment"])
                what = "to open the sweep's parent run"
                raise SweepError(
                    refused_writing(mlflow.get_tracking_uri(), experiment, what)
                ) from None
            raise SweepError(f"cannot open the sweep's parent run: {one_line(error)}") from error
        os.environ[SWEEP_PARENT_ENV] = self.parent_run_id
        print(f"sweep: parent run {self.parent_run_id}", flush=True)

    def _opened(self, run_id: str) -> None:
        """Hold the parent run as this process's until ``_close``, which ends it (once)."""
        self.parent_run_id = run_id
        # Open in this process until _close: an interrupt's last line must not say the work
        # was done because the trials run so far had ended FINISHED (pricer.interrupt.outcome).
        interrupt.note_run(run_id, self.parent_name, "RUNNING")
        # A multirun that raises never reaches on_multirun_end: fail the parent at exit.
        atexit.register(self._close_at_exit)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._close("FINISHED")

    def _join_study(self, config: DictConfig, study: SharedStudy) -> None:
        """Find or create the study's one parent run; end runs of trials that died before."""
        # Refused (IncomparableStudy) before anything is written to MLflow: configure_tracking
        # creates a new store and the project's experiment in it.
        joined = study.open(join=True)
        # The parent names every process taking part, each in a tag it removes as it leaves:
        # a process SIGKILLed leaves its tag, and once every process named is gone `pricer
        # runs` shows the parent STALE (it said RUNNING for good, a live sweep that no one ran).
        key, value = shared_process_tag()
        tags = {**self.tags, STUDY_TAG: study.study_name, key: value}

        def create() -> str:
            with interrupt.deferred():  # a signal meanwhile waits until the run is noted
                run_id = open_parent_run(self.tracking, self.parent_name, tags)
                self._opened(run_id)
            return run_id

        try:
            configure_tracking(self.tracking)
            client = MlflowClient()
            # This process's tag goes on a parent found before its status is read
            # (parent_run): a reaper could otherwise end it between the two, and the sweep
            # ran under it KILLED.
            parent_run_id, created = study.parent_run(client, create, joined, member=(key, value))
        except BaseException:
            # A study this process created for a sweep that never starts (the store refused
            # its parent run) would hold this process's settings for whoever sweeps next.
            if joined[1]:
                study.discard_unused(joined[0])
            raise
        self.process_tag = key
        if created:
            self._log_sweep_settings(config)
            client.set_tag(self.parent_run_id, "pricer.sweep.storage", study.safe_storage)
        else:
            self._opened(parent_run_id)
            # Under mlflow run, this process's own run is not the study's parent: point to it.
            own = os.environ.pop("MLFLOW_RUN_ID", None)
            if own:
                client.set_tag(own, "pricer.sweep.parent_run_id", self.parent_run_id)
        study.reconcile(client, self.parent_run_id, TRIAL_TAG)

    # -- every trial, in the process that runs it --------------------------------------------
    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent_run_id is None:  # a single run
            return
        # The parent consumed mlflow run's run id: a trial must start a run of its own.
        os.environ.pop("MLFLOW_RUN_ID", None)
        os.environ[SWEEP_PARENT_ENV] = self.parent_run_id
        # Each value redacted as its key calls for, as the trial's params are: a key of no known
        # format given as model.api_key_env=... is a secret by its key's name.
        overrides = [redact_override(str(item)) for item in config.hydra.overrides.task]
        trial = os.environ.get(TRIAL_ENV) or str(config.hydra.job.num)
        family = str(OmegaConf.select(config, "hydra.runtime.choices.model") or "")
        tags = {
            TRIAL_TAG: trial,
            OVERRIDES_TAG: json.dumps(overrides),
            # With the thread counts the trial ran with, where something set them: joblib's
            # workers run on cores // n_jobs, and its figures are that count's (tags.THREADS).
            REPLAY_TAG: replay_command(overrides, family, self.validation_size, thread_settings()),
        }
        if self.study is not None:
            tags[STUDY_TAG] = self.study.study_name
        # Before anything that can fail: Hydra turns an error here into a warning and runs the
        # trial anyway, whose run then was no trial of the sweep.
        os.environ[SWEEP_TAGS_ENV] = json.dumps(tags)
        if self.study is not None and TRIAL_ENV in os.environ:
            # The trial's result reaches Optuna as its run ends.
            on_trial_finishing(self.study.result_teller(int(trial), self.objective))

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        os.environ.pop(SWEEP_TAGS_ENV, None)
        on_trial_finishing(None)

    # -- internals ----------------------------------------------------------------------------
    def _log_sweep_settings(self, config: DictConfig) -> None:
        assert self.parent_run_id is not None
        hydra_cfg = config.hydra
        settings = {
            "sweep.objective": self.objective,
            "sweep.direction": self.direction,
            "sweep.sweeper": str(hydra_cfg.sweeper._target_).rsplit(".", 1)[-1],
            "sweep.launcher": str(hydra_cfg.launcher._target_).rsplit(".", 1)[-1],
            # As typed (${oc.env:...} keeps a secret off the command line), secrets redacted.
            "sweep.overrides": " ".join(map(redact_override, task_overrides(config))),
            "sweep.validation_size": str(self.validation_size),
        }
        for key in ("n_trials", "n_jobs", "max_batch_size"):
            value = OmegaConf.select(hydra_cfg, f"sweeper.{key}")
            if value is not None:
                settings[f"sweep.{key}"] = str(value)
        for key, space in searched(config).items():
            settings[f"sweep.space.{key}"] = space
        client = MlflowClient()
        log_params(client, self.parent_run_id, settings)
        # As composed, interpolations unresolved: Hydra's resolver is not set up this early.
        job_cfg = {
            key: value
            for key, value in OmegaConf.to_container(config, resolve=False).items()  # type: ignore[union-attr]
            if key != "hydra"
        }
        client.log_text(
            self.parent_run_id,
            OmegaConf.to_yaml(OmegaConf.create(redacted_config(job_cfg))),
            "config/config.yaml",
        )
        sweeper = OmegaConf.to_container(hydra_cfg.sweeper, resolve=False)
        if self.study is not None:  # a database URL may hold a password
            sweeper["storage"] = self.study.safe_storage  # type: ignore[index]
        client.log_text(
            self.parent_run_id, OmegaConf.to_yaml(OmegaConf.create(sweeper)), "config/sweeper.yaml"
        )

    def _close_at_exit(self) -> None:
        """``_close`` for a multirun that raised: the store failing here is a line, not "Exception
        ignored in atexit callback" and its traceback under the error that ended the sweep."""
        try:
            self._close("FAILED")
        except StoreUnreachable as error:
            print(f"pricer: {error}", file=sys.stderr, flush=True)

    def _close(self, status: str) -> None:
        """Summarise the trials on the parent run and end it (once)."""
        atexit.unregister(self._close_at_exit)
        run_id, self.parent_run_id = self.parent_run_id, None
        os.environ.pop(SWEEP_PARENT_ENV, None)
        if run_id is None:
            return
        try:
            self._summarise_and_end(run_id, status)
        except (*STORE_ERRORS, *database_errors()) as error:  # a server stopped, a database gone
            raise StoreUnreachable(
                f"the tracking store or the study's database failed while the sweep's parent run "
                f"{run_id} was summed up "
                f"and ended ({type(error).__name__}: {store_cause(error)}): it may stay RUNNING, "
                "and pricer runs shows it STALE once this process has ended"
            ) from None

    def _summarise_and_end(self, run_id: str, status: str) -> None:
        """The trials' summary on the parent run, then its end (or, while other processes of
        its study still run trials, the tag that leaves the end to the last of them)."""
        client = MlflowClient()
        trials = None
        reason = interrupted() if status != "FINISHED" else None
        if reason:
            status = "KILLED"  # SIGTERM or Ctrl-C, as the trial runs it unwound
        try:
            if self.study is None and status != "FINISHED":
                # A launcher worker that died (SIGKILL, the out-of-memory killer) left its
                # trial's run RUNNING, and so did the workers its launcher killed with it. A
                # shared study's trials are its processes' to end (reconcile, below).
                reap(client.get_run(run_id).info.experiment_id)
            if self.study is not None:
                # This process's trials are over; one still running in the study is another
                # process's, alive, or one whose process died less than grace_period ago (a
                # rerun started right after a crash), whose heartbeat Optuna does not call stale
                # yet. Left so, the dead trial's run and the parent stayed RUNNING with no one
                # left to end them. Tagging the parent "waiting for trial N" would say what
                # this process did not know, and still end nothing; waiting out the rest of the
                # grace period (at most grace_period, said on the terminal) does: a heartbeat
                # that moves is a live process, which ends the parent as it finishes, and one
                # that does not is failed as stale, its run ended KILLED, and the parent here.
                # An interrupted process does not wait: it was asked to stop now.
                trials = self.study.reconcile(client, run_id, TRIAL_TAG, settle=reason is None)
            summary = summarise_trials(
                client,
                run_id,
                self.objective,
                self.direction,
                self.swept_keys,
                trials,
                ui_url=self.tracking.get("ui_url"),
                status=status,
            )
            if summary:
                print(summary, flush=True)
        finally:
            late = None if reason else interrupted()
            if late:  # a signal while it waited for a silent trial: the summary was cut short
                status, reason = "KILLED", late
            if trials is not None and (trials["state"] == "RUNNING").any():
                # Other processes still run trials of this study: the last one to end closes it.
                client.set_tag(run_id, LAST_STOP_TAG, status)
            else:
                if status != "FINISHED":
                    message = (
                        reason or ending() or "the sweep stopped before its end: see its trials"
                    )
                    client.set_tag(run_id, "error", redact_text(message))
                # Another process's stop while this one ran trials (KILLED by a Ctrl-C) is
                # not how the parent ended: left, a FINISHED parent read "last stop KILLED".
                # Its status (and error) now say how it ended.
                _drop_tag(client, run_id, LAST_STOP_TAG)
                client.set_terminated(run_id, status)
                interrupt.note_run(run_id, self.parent_name, status)
            if self.process_tag is not None:  # this process takes no further part
                key, self.process_tag = self.process_tag, None
                _drop_tag(client, run_id, key)


def _drop_tag(client: MlflowClient, run_id: str, key: str) -> None:
    """Delete the run's tag ``key``; one already gone (never set, removed by hand) is left so."""
    try:
        client.delete_tag(run_id, key)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise


def check_search(config: DictConfig) -> None:
    """An Optuna sweep's settings and search space, checked before its study and parent run
    are created (Hydra calls this callback before it builds the sweeper): a typo found at the
    first trial left a FAILED parent and a study that kept the typo, refusing the corrected
    sweep its name."""
    if OmegaConf.select(config, "hydra.sweeper._target_") != SWEEPER:
        return
    try:
        sweeper = instantiate(config.hydra.sweeper)  # its own checks: n_trials, failure rate
        search_space.check(config, sweeper)
        check_drawn_values(config, sweeper)
    except Exception as error:  # a ValueError, or Hydra's wrapping of one (named already)
        said = one_line(error)
        # A line naming its own key under hydra.sweeper (sampler.seed) needs no prefix.
        said = (
            said.removeprefix("hydra.sweeper: ")
            if said.startswith("hydra.sweeper: hydra.")
            else said
        )
        named = said if said.startswith("hydra.sweeper") else f"hydra.sweeper: {said}"
        raise SweepError(named) from None


def check_launcher(config: DictConfig) -> None:
    """Refuse (``SweepError``) a launcher that could run no trial: ``hydra.launcher.n_jobs=0``
    (joblib's "every core but |n_jobs| - 1" counts from -1; 0 means nothing to it) was joblib's
    ValueError traceback as the first batch launched, the parent run opened and ended FAILED."""
    n_jobs = OmegaConf.select(config, "hydra.launcher.n_jobs", default=None)
    if isinstance(n_jobs, int) and not isinstance(n_jobs, bool) and n_jobs == 0:
        raise SweepError(
            "hydra.launcher.n_jobs=0 runs no trial: give the number of trials to run at once "
            "(>= 1), or -1 for one per core"
        )


def check_data(config: DictConfig) -> None:
    """The data and curation settings every trial shares, checked as a lone run checks them
    before it opens (ranges, the item files): out of range (``data.num_proc=0``), the parent
    run opened and ended FAILED at the first trial. Left to each trial when the sweep varies
    them, or when only a trial resolves them."""
    from pricer.data.dataset import check_item_files

    if OmegaConf.select(config, "data") is None:
        return
    varied = [key.lstrip("+~").split(".")[0].split("/")[0] for key in swept_keys(config)]
    if "data" in varied or "curation" in varied:
        return
    try:
        data = OmegaConf.to_container(config.data, resolve=True)
        curation = OmegaConf.select(config, "curation")
        curation = None if curation is None else OmegaConf.to_container(curation, resolve=True)
    except OmegaConfBaseException:
        return
    try:
        check_item_files(data, curation)  # type: ignore[arg-type]
    except UserError as error:
        raise SweepError(str(error)) from None


def check_drawn_values(config: DictConfig, sweeper: Any) -> None:
    """Raise ``ValueError`` if the family's constructor refuses a value the search draws for
    one of its keys: a float range for an integer (``model.max_features=interval(1000.0,
    5000.0)``), a choice of the wrong type. Its ends and a point between for a range, every
    choice. Found at the first trial, it left a study that recorded the range, and that refused
    the corrected search its name. A config the family refuses as it is (or one only a trial
    resolves) is left to the trials; so is a sweep over several families."""
    from optuna.distributions import CategoricalDistribution

    from pricer.settings import check_arguments

    model = OmegaConf.select(config, "model")
    if not isinstance(model, DictConfig) or "_target_" not in model or swept_families(config):
        return
    try:
        check_arguments(model, "model")
    except Exception:  # not the search's doing: the trial's own run says what is wrong
        return
    space, _ = search_space.parse(sweeper.params, task_overrides(config))
    for key, dist in space.items():
        name = key.lstrip("+~")
        if not name.startswith("model.") or key.startswith("+"):
            continue
        if isinstance(dist, CategoricalDistribution):
            values = list(dist.choices)
        else:  # a point inside too: ends of 1000.0 and 5000.0 are whole, draws are not
            values = [dist.low, dist.high, dist.low + (dist.high - dist.low) * 0.382]
            values = [type(dist.low)(value) for value in values]
        for value in values:
            trial = config.copy()
            OmegaConf.update(trial, name, value, merge=False)
            try:
                check_arguments(trial.model, "model")
            except ConfigError as error:
                raise ValueError(
                    f"{key}: the search draws {value!r}, which no trial could take: {error}"
                ) from None


def interrupted() -> str | None:
    """'interrupted by SIGTERM' if this process was interrupted, else None.

    The handler that turns SIGTERM into an exception is ``pricer.interrupt`` (installed by
    ``pricer.cli.run``); a sweep stopped by it unwinds through the sweeper, which fails its
    running trials in Optuna, and reaches this callback's exit handler.
    """
    try:
        from pricer import interrupt
    except ImportError:  # before pricer.interrupt exists (branches merge in either order)
        return None
    stop = interrupt.received()
    return str(stop) if stop is not None else None


def open_parent_run(
    tracking: Mapping[str, Any], run_name: str, tags: Mapping[str, str], *, own: bool = False
) -> str:
    """The sweep's parent run: the one ``mlflow run`` created, or a new one. Left RUNNING.

    ``own``: the parent is this process's alone (no shared study), so its pid and host are
    tagged, and `pricer runs` shows it STALE once the process is gone (it stayed RUNNING).
    """
    configure_tracking(tracking)
    client = MlflowClient()
    all_tags = {
        **git_tags(),
        **machine_tags(),
        **(process_tags() if own else {}),
        **dict(tracking["tags"] or {}),
        **tags,
        KIND_TAG: "sweep",
    }
    # As tracked_run does for every other run: a tag may hold a key given by mistake.
    all_tags = redact_tags(all_tags)
    # mlflow run created a run for this process: it becomes the parent, and no trial resumes it.
    run_id = os.environ.pop("MLFLOW_RUN_ID", None)
    if run_id:
        client.update_run(run_id, name=run_name)
        client.log_batch(run_id, tags=[RunTag(key, value) for key, value in all_tags.items()])
        return run_id
    experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID") or _experiment_id(tracking)
    run = client.create_run(experiment_id, run_name=run_name, tags=resolve_tags(all_tags))
    return run.info.run_id


def _experiment_id(tracking: Mapping[str, Any]) -> str:
    experiment = mlflow.get_experiment_by_name(tracking["experiment"])
    if experiment is None:  # configure_tracking creates it: only a concurrent delete gets here
        raise SweepError(f"experiment {tracking['experiment']!r} does not exist")
    return experiment.experiment_id


def searched(config: DictConfig) -> dict[str, str]:
    """An Optuna sweep's search space as typed, key by key: the config's ``params`` with the
    command line's overrides over them (a fixed value takes its key out). The parent recorded
    the config's alone: ``model.alpha=interval(-1.0,1.0)`` drew from [-1, 1] while it said
    ``tag(log, interval(0.05, 30))``."""
    params = OmegaConf.select(config, "hydra.sweeper.params")
    if params is None:  # the basic sweeper: its sweeps are in sweep.overrides
        return {}
    typed = {str(key): str(value) for key, value in params.items()}
    overrides = OverridesParser.create().parse_overrides(task_overrides(config))
    typed |= {o.get_key_element(): o.input_line.partition("=")[2] for o in overrides}
    space, _ = search_space.parse(params, task_overrides(config))
    return {key: typed[key] for key in space}


def swept_keys(config: DictConfig) -> list[str]:
    """Keys a multirun varies: sweep overrides (a=1,2) and the sweeper's search space."""
    keys = [
        override.key_or_group
        for override in OverridesParser.create().parse_overrides(task_overrides(config))
        if override.is_sweep_override()
    ]
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    return list(dict.fromkeys([*keys, *(str(key) for key in params)]))


def swept_families(config: DictConfig) -> list[str]:
    """The families a multirun sweeps over (``-m model=svr,xgboost``, or a search space's
    ``model``), in order; [] when its trials share one."""
    parser = OverridesParser.create()
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    searched = [f"model={params['model']}"] if "model" in params else []
    swept = [
        override
        for override in parser.parse_overrides([*task_overrides(config), *searched])
        if override.key_or_group == "model" and override.is_sweep_override()
    ]
    families = [str(value) for override in swept for value in override.sweep_string_iterator()]
    return list(dict.fromkeys(families))


def task_overrides(config: DictConfig) -> list[str]:
    """The multirun's task overrides as given: read through OmegaConf, an override's own
    interpolation (``+x=${oc.env:X}``) would be resolved, or fail for an unset variable."""
    return [str(item) for item in OmegaConf.to_container(config.hydra.overrides.task)]  # type: ignore[union-attr]


def replay_command(
    overrides: Sequence[str],
    family: str,
    validation_size: int,
    environment: Mapping[str, str] | None = None,
) -> str:
    """The command that runs one trial again, alone: its overrides without the search
    (``hparams_search=...`` is a multirun's, and without it ``validation.size`` fell back to
    0: another training set), and without Hydra's own settings; preceded by the variables of
    ``environment`` it ran with (the thread counts a launcher's worker set)."""
    kept = [
        item
        for item in overrides
        if item.split("=", 1)[0].lstrip("+~") != "hparams_search"
        and not item.lstrip("+~").startswith(("hydra.", "hydra/"))
    ]
    keys = {item.split("=", 1)[0].lstrip("+~") for item in kept}
    if family and "model" not in keys:
        kept.insert(0, f"model={family}")
    if "validation.size" not in keys:
        kept.append(f"validation.size={validation_size}")
    settings = [f"{name}={shlex.quote(value)}" for name, value in (environment or {}).items()]
    return " ".join([*settings, "pricer", "train", *map(shlex.quote, kept)])


def trial_overrides(overrides: str) -> dict[str, str]:
    """'["model.alpha=0.5", "data=synthetic"]' -> {"model.alpha": "0.5", "data": "synthetic"}."""
    parsed = OverridesParser.create().parse_overrides(json.loads(overrides or "[]"))
    return {item.key_or_group: item.get_value_element_as_str() for item in parsed}


def trials_table(client: MlflowClient, parent_run_id: str, objective: str) -> pd.DataFrame:
    """One row per child run of the parent, in trial order."""
    children = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        output_format="list",
    )
    rows = [
        {
            "trial": int(run.data.tags.get(TRIAL_TAG, -1)),
            "run_id": run.info.run_id,
            "status": run.info.status,
            "objective": run.data.metrics.get(objective, math.nan),
            "test_mae": run.data.metrics.get("mae", math.nan),
            "other_model_answers": other_model_answers(run.data.metrics),
            "answered_by": answered_in_every_pass(run.data.tags) or "",
            "overrides": run.data.tags.get(OVERRIDES_TAG, ""),
            "ended": run.info.end_time,
            "start_time": run.info.start_time,
        }
        for run in children
    ]
    table = pd.DataFrame(rows, columns=[*TRIAL_COLUMNS, "start_time"])
    table["state"] = table["status"]
    table["finished"] = (table["status"] == "FINISHED") & table["objective"].notna()
    return table.sort_values(["trial", "start_time"]).drop(columns="start_time")


def summarise_trials(
    client: MlflowClient,
    parent_run_id: str,
    objective: str,
    direction: str,
    swept: list[str],
    study_trials: pd.DataFrame | None = None,
    ui_url: str | None = None,
    status: str = "FINISHED",
) -> str | None:
    """Log the trials table, objective chart and best trial on the parent; a printable line.

    ``status`` is how the sweep ends: only one that ends FINISHED takes its name's saved view
    over. A sweep that failed or was stopped took it from the last one that finished, whose
    trials line then pointed nowhere, and showed its own trials as the latest sweep's.

    ``study_trials`` (a shared Optuna study's trials) makes the summary cover the whole study,
    every process's trials, with Optuna's states and values; the best trial then goes into tags,
    as each process that ends rewrites it (params cannot change).
    """
    table = trials_table(client, parent_run_id, objective)
    if study_trials is not None:
        table = merge_trials(table, study_trials)
    if table.empty:
        return None
    ok = table[table["finished"] & table["objective"].notna()]
    failed = table["state"].isin(["FAILED", "FAIL", "KILLED"])
    now = int(time.time() * 1000)
    metrics = [
        Metric("trials.total", len(table), now, 0),
        Metric("trials.finished", int(table["finished"].sum()), now, 0),
        Metric("trials.failed", int(failed.sum()), now, 0),
    ]
    # The objective per trial as a stepped metric: the MLflow UI charts it too. Stamped with
    # when its trial ended, not now: every process of a shared study that ends logs every
    # trial again, and a point MLflow already holds (same key, step, value and timestamp) is
    # not added twice; stamped now, each trial had one point per process that had ended.
    metrics += [
        Metric(
            f"trial.{objective}",
            float(row.objective),
            _stamp(row.ended, now),
            max(int(row.trial), 0),
        )
        for row in ok.itertuples()
    ]
    # Written whole each time, in log_table's format: log_table appends to a table that is
    # there, and every process of a shared study that ended added a copy of every trial (18
    # rows for 6 trials, one of them both RUNNING and COMPLETE).
    shown = table.drop(columns=["finished", "ended"]).to_json(
        orient="split", index=False, date_format="iso"
    )
    client.log_text(parent_run_id, shown, "sweep/trials.json")
    figure = objective_trace(
        table["objective"].to_list(),
        f"{objective} by trial",
        direction=direction,
        trials=table["trial"].to_list(),
    )
    client.log_figure(parent_run_id, figure, "sweep/objective.png")
    plt.close(figure)
    if ok.empty:
        log_metrics(client, parent_run_id, metrics)
        return f"sweep: no trial finished with a {objective}"
    best = best_trial(client, ok, direction)
    metrics.append(Metric(f"best.{objective}", float(best["objective"]), now, 0))
    if not math.isnan(best["test_mae"]):
        metrics.append(Metric("best.test_mae", float(best["test_mae"]), now, 0))
    log_metrics(client, parent_run_id, metrics)
    chosen = trial_overrides(best["overrides"])
    best_values = {
        "best.run_id": best["run_id"],
        "best.trial": str(best["trial"]),
        **{f"best.{key}": chosen[key] for key in swept if key in chosen},
    }
    if study_trials is None:
        log_params(client, parent_run_id, best_values)
    else:
        client.log_batch(
            parent_run_id,
            tags=[
                RunTag(f"pricer.sweep.{k}", str(v)[:MAX_PARAM_LENGTH])
                for k, v in best_values.items()
            ],
        )
    client.set_tag(parent_run_id, BEST_RUN_TAG, best["run_id"])
    replay = client.get_run(best["run_id"]).data.tags.get(REPLAY_TAG)
    if replay:
        client.set_tag(parent_run_id, BEST_REPLAY_TAG, replay)
    values = ", ".join(f"{key}={_readable(chosen[key])}" for key in swept if key in chosen)
    # A best trial ranked on a substitute's answers (its validation pass's) says so.
    others = other_model_note(int(best["other_model_answers"] or 0), str(best["answered_by"]))
    line = (
        f"sweep: best trial {best['trial']} ({values}) {objective}={best['objective']:.4f} "
        f"run {best['run_id']}{others}"
    )
    lines = [line, f"replay it: {replay}"] if replay else [line]
    parent = client.get_run(parent_run_id)
    view = trials_view(parent.info.run_name, parent_run_id, objective, direction, swept)
    if status != "FINISHED":
        left = unchanged_line(
            client,
            parent.info.experiment_id,
            view.key,
            view=f"the saved view of {parent.info.run_name}",
            why=f"the sweep ended {status}: it shows finished sweeps only",
            shows="sweep {id}'s trials",
            ui_url=ui_url,
        )
        return "\n".join([*lines, left])
    save_view(client, parent.info.experiment_id, view)
    url = view_url(ui_base(ui_url), parent.info.experiment_id, view.key)
    return "\n".join([*lines, f"{TRIALS_LINE}{url}"])


def best_trial(client: MlflowClient, ok: pd.DataFrame, direction: str) -> pd.Series:
    """The trial of the best objective among ``ok`` (finished ones); of trials tied for it,
    the first the saved view lists (``listed_order``: the later run first), which the
    parent's best-trial tags and ``pricer runs`` then name. The first by trial number was
    named best while the view showed the other first."""
    objective = ok["objective"].astype(float)
    value = objective.min() if direction == "minimize" else objective.max()
    tied = ok[objective == value]
    if len(tied) == 1:
        return tied.iloc[0]
    return tied.iloc[first_listed(list(tied["run_id"].astype(str)), client)]


def listed_first(numbers: Sequence[int]) -> int | None:
    """Of the trials ``numbers`` (tied for the best value), the one this process's sweep names
    best (``best_trial``'s rule: ``listed_order`` of their runs): the Optuna sweeper's
    ``best_of_tied``, so its log line and optimization_results.yaml name the trial the parent
    run and the saved view do. None outside a sweep pricer tracks."""
    parent_run_id = os.environ.get(SWEEP_PARENT_ENV)
    if not parent_run_id:
        return None
    table = trials_table(MlflowClient(), parent_run_id, "")
    runs = table.drop_duplicates("trial", keep="last").set_index("trial")["run_id"]
    return numbers[first_listed([str(runs.get(number, "")) for number in numbers])]


def trials_view(
    name: str, parent_run_id: str, objective: str, direction: str, swept: Sequence[str]
) -> RunsView:
    """The UI's runs page on a sweep's trials, best first, with the values they were given."""
    return RunsView(
        key=sweep_key(name),
        name=f"{name}: latest finished sweep, best {objective} first",
        search_filter=children_filter(parent_run_id),
        order_by=objective,
        ascending=direction == "minimize",
        columns=[objective, "mae"],  # mae: on the test items, read but never chosen by
        charts=[objective],
        section=f"Sweep · {name}",
        params=list(swept),
    )


def _stamp(ended: Any, now: int) -> int:
    """A trial's end (ms) as a metric timestamp; ``now`` for one not known."""
    return now if ended is None or pd.isna(ended) else int(ended)


def _readable(value: str) -> str:
    """A float Optuna drew, to 4 significant digits for the line (params keep every digit)."""
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.4g}" if "." in value or "e" in value.lower() else value


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, str]) -> None:
    items = [Param(key, str(value)[:MAX_PARAM_LENGTH]) for key, value in params.items()]
    for start in range(0, len(items), _BATCH):
        client.log_batch(run_id, params=items[start : start + _BATCH])


def log_metrics(client: MlflowClient, run_id: str, metrics: list[Metric]) -> None:
    for start in range(0, len(metrics), _BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + _BATCH])


def _plain(node: Any) -> dict[str, Any]:
    """A plain dict (picklable into launcher workers, no live interpolations)."""
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
    return dict(node)
