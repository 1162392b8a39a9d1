"""A sweep's Optuna study in a database, seen from MLflow: one parent run for the whole study.

Any number of sweep processes, on one machine or many, join the study named by
``hydra.sweeper.storage`` and ``hydra.sweeper.study_name`` (pricer's sweeper,
hydra_plugins/pricer_optuna_sweeper), if their trials compare with the study's: the study
records the settings it was started with, and a process with others is refused before it
writes anything to MLflow (hydra_plugins/pricer_optuna_sweeper/settings.py). They share one
parent run: the process that creates the study (an atomic step in the database: the study name
is unique) creates the run and stores its id in the study's user attrs; every other process,
started at the same moment or days later to resume, reads it there. Trials are read back from
the study, so the parent's summary covers every process's trials, and trials whose process died
(SIGKILL: no heartbeat) are failed in Optuna and their runs ended KILLED by the next process
that looks.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import LifecycleStage, RunStatus
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.pricer_optuna_sweeper.settings import study_settings
from pricer.errors import ConfigError
from pricer.tracking import tags as tag_names
from pricer.tracking.liveness import stale_reason
from pricer.tracking.reaper import reopen
from pricer.tracking.redaction import redact_text
from pricer.tracking.store import safe_uri, store_address

log = logging.getLogger(__name__)

SWEEPER = "hydra_plugins.pricer_optuna_sweeper.sweeper.OptunaSweeper"
PARENT_ATTR = "pricer.mlflow_parent_run_id"  # study user attr: the study's parent run
STORE_ATTR = "pricer.mlflow_store"  # study user attr: the store that parent run is in
# What a parent run that ended says about its ending: gone when a resumed study runs it again
# (ENDED_BY: ended KILLED by another pricer process once every process of the study was gone).
LAST_STOP_TAG = "pricer.sweep.last_stop"  # how this process ended while others ran trials
ENDING_TAGS = (tag_names.ERROR, LAST_STOP_TAG, tag_names.ENDED_BY)
STUDY_TAG = tag_names.SWEEP_STUDY  # on the parent and every trial run: the study's name
TRIAL_COLUMNS = [
    "trial",
    "state",
    "run_id",
    "status",
    "objective",
    "test_mae",
    # Its answers from another model than asked for, in either pass (the objective's too),
    # and the models its replies named: a trial ranked on a substitute's answers says so.
    "other_model_answers",
    "answered_by",
    "overrides",
    "finished",
    # When the trial's figure was measured (ms since the epoch): the timestamp of its point in
    # the parent's trial.<objective> history, the same in every process that logs it.
    "ended",
]
FAILED_MEANWHILE = (
    "its study failed trial {n} while it ran (its process was silent past the grace period, "
    "e.g. paused): the result is not in the study, so the run does not stand"
)
STALE_ERROR = (
    "its sweep process stopped without ending it (killed or lost): Optuna failed trial {n} "
    "as stale (no heartbeat)"
)
# On a trial run another process of the study ended FINISHED: why it did.
ENDED_BY_TAG = "pricer.sweep.ended_by"
ENDED_BY = (
    "another process of the study: its result is in the study (trial {n} COMPLETE, told as the "
    "run was about to end), but its process ({why}) did not record the run's end"
)


@dataclass(frozen=True)
class SharedStudy:
    """Where a database study lives; plain values, so the sweep callback pickles into workers."""

    storage: str
    study_name: str
    direction: str
    heartbeat_interval: int | None
    grace_period: int | None
    # What this process's trials are measured on (hydra_plugins/pricer_optuna_sweeper/
    # settings.py): recorded by the process that creates the study, compared by every other
    # one as it joins. None: not checked (a process that only reads or tells the study).
    settings: Mapping[str, Any] | None = field(default=None, compare=False)

    @classmethod
    def from_config(cls, config: DictConfig) -> SharedStudy | None:
        """The study of a multirun by pricer's Optuna sweeper with a storage; None otherwise."""
        from hydra_plugins.pricer_optuna_sweeper import study as studies

        sweeper = OmegaConf.select(config, "hydra.sweeper")
        if sweeper is None or sweeper.get("_target_") != SWEEPER or not sweeper.get("storage"):
            return None
        if not sweeper.get("study_name"):
            raise ConfigError(
                "hydra.sweeper.storage is set but hydra.sweeper.study_name is not: name the "
                "study, so other sweep processes (and reruns) can join it"
            )
        direction = sweeper.get("direction", "minimize")
        if not isinstance(direction, str):
            direction = next(iter(direction))
        # As the sweeper opens it: a relative SQLite file is the one where the user started.
        storage = studies.absolute(
            str(sweeper.storage), OmegaConf.select(config, "hydra.runtime.cwd")
        )
        return cls(
            storage=str(storage),
            study_name=str(sweeper.study_name),
            direction=str(direction),
            heartbeat_interval=sweeper.get("heartbeat_interval"),
            grace_period=sweeper.get("grace_period"),
            # What the sweeper records and compares too, from the same config.
            settings=study_settings(config),
        )

    @property
    def safe_storage(self) -> str:
        """The storage URL without its password, fit for a tag or a log line: the one before
        the host, and any query parameter named for a credential (``?password=...``, which
        SQLAlchemy leaves in the URL it shows)."""
        from hydra_plugins.pricer_optuna_sweeper import study as studies

        return redact_text(studies.safe_url(self.storage) or "<storage>")

    def open(self, join: bool = False) -> tuple[Any, bool]:
        """The Optuna study (created if absent) and whether this call created it.

        ``join``: refused (``IncomparableStudy``) if this process's trials would not compare
        with the study's; a study this call creates records this process's settings.
        """
        from hydra_plugins.pricer_optuna_sweeper import study as studies

        store = studies.storage(self.storage, self.heartbeat_interval, self.grace_period)
        settings = self.settings if join else None
        return studies.open_study(store, self.study_name, self.direction, settings=settings)

    def discard_unused(self, study: Any) -> None:
        """Delete ``study``, which this process created, if no trial has run in it: a sweep
        refused before its first trial (a reader of the team server's experiment) left it
        empty in the storage, holding that sweep's settings, which every later sweep of the
        name was then compared with. A failure here is a warning: the refusal is what to say.
        """
        import optuna

        from hydra_plugins.pricer_optuna_sweeper import study as studies

        try:
            if study.get_trials(deepcopy=False):
                return
            store = studies.storage(self.storage, self.heartbeat_interval, self.grace_period)
            optuna.delete_study(study_name=self.study_name, storage=store)
        except Exception as error:
            log.warning(
                "could not delete study %s, left empty by this refused sweep: %s",
                self.study_name,
                studies.said(error),
            )

    def parent_run(
        self,
        client: MlflowClient,
        create: Callable[[], str],
        joined: tuple[Any, bool] | None = None,
        member: tuple[str, str] | None = None,
    ) -> tuple[str, bool]:
        """The study's one parent run, found or created; True if created here. Left RUNNING.

        ``joined``: what ``open(join=True)`` gave the caller, which opens the study first so
        that a refused process writes nothing to MLflow; None: the study is opened here.
        ``member``: the joining process's tag (``liveness.shared_process_tag``), which ``create``
        sets on a parent it makes; on one found, it is set before the parent's status is read.
        Read first, a reaper (``pricer.tracking.reaper``) could end the parent, every process it
        named being gone, between that read and the tag: the sweep then ran under a KILLED
        parent. Set first: a reaper that reads the parent after the tag leaves it RUNNING; one
        that read it before and ended it before the read here is seen here (reopened below);
        one that ends it after the read here sees the tag as it checks its end and reopens it
        (``reaper.reopen_if_joined``).
        """
        from hydra_plugins.pricer_optuna_sweeper import study as studies

        study, created = joined or self.open(join=True)
        # A process tracking to another store found no parent there and made one: the study's
        # parent id then named a run of that store, and the first store got a second parent.
        store = safe_uri(store_address(mlflow.get_tracking_uri()))
        recorded = study.user_attrs.get(STORE_ATTR)
        if recorded is not None and recorded != store:
            raise ConfigError(
                f"study {self.study_name!r} keeps its runs in {recorded}, and this process "
                f"tracks to {store}: point tracking.uri (MLFLOW_TRACKING_URI) at that store, "
                "or use another hydra.sweeper.study_name"
            )
        made: list[str] = []

        def make() -> str:
            made.append(create())
            return made[-1]

        def usable(run_id: str) -> bool:
            try:
                run = client.get_run(run_id)
            except Exception:  # deleted for good, or another store
                return False
            return run.info.lifecycle_stage == LifecycleStage.ACTIVE

        run_id = studies.shared_attr(study, PARENT_ATTR, created, make, usable)
        if recorded is None:
            study.set_user_attr(STORE_ATTR, store)
        if made:
            return run_id, True
        if member is not None:
            client.set_tag(run_id, *member)
        parent = client.get_run(run_id)
        if parent.info.status != "RUNNING":
            # A resumed study, or one a reaper ended as this process joined: it runs again.
            # FINISHED with "interrupted by SIGTERM" read as a failure: its ending tags go.
            reopen(client, parent, ENDING_TAGS)
        return run_id, False

    def result_teller(self, number: int, objective: str) -> Callable[[str], str | None]:
        """What tells trial ``number`` its run's ``objective`` metric as the run ends.

        For ``tracked_run``'s trial hook (``on_trial_finishing``), which calls it just before
        the run ends FINISHED, signals held back: the study then says COMPLETE with the value
        the run records, whenever a SIGTERM lands, and the sweeper leaves a COMPLETE trial
        alone. The study is opened here, before the trial runs, so that only one short write is
        left for the end (opened then if its database was away at the start). A run without the
        metric (or NaN) is not told: the sweeper fails it.

        It returns why the run must end FAILED instead, if the study has failed the trial
        meanwhile: another process of the study fails a trial whose heartbeat stopped for the
        grace period (a paused process, a suspended laptop), and its result must not then stand
        as a finished run the study does not count (promote would count it).
        """
        from hydra_plugins.pricer_optuna_sweeper import study as studies

        opened: list[Any] = []
        try:
            opened.append(self.open()[0])
        except Exception as error:  # the database is away: opened again as the run ends
            # Raised from Hydra's on_job_start, it was a warning, and the trial ran with no
            # trial or study tags (a PostgreSQL restart on the team server, 2026-12-06).
            log.warning("could not open study %s for trial %d: %s", self.study_name, number, error)

        def tell(run_id: str) -> str | None:
            try:
                value = MlflowClient().get_run(run_id).data.metrics.get(objective)
                if value is None or math.isnan(value):
                    return None
                if not opened:
                    opened.append(self.open()[0])
                study = opened[0]
                try:
                    studies.tell(study, number, value)  # a grid's last: no stop
                except ValueError:  # already finished: by whom, and how?
                    state = study.get_trials(deepcopy=False)[number].state
                    if state.name == "FAIL":
                        return FAILED_MEANWHILE.format(n=number)
            except Exception as error:  # the sweeper still tells it when the batch is back
                log.warning("could not tell trial %d its result: %s", number, studies.said(error))
            return None

        return tell

    def reconcile(
        self, client: MlflowClient, parent_run_id: str, trial_tag: str, settle: bool = False
    ) -> pd.DataFrame:
        """Fail stale trials, end their RUNNING runs KILLED; every trial of the study, a table.

        A COMPLETE trial's run still RUNNING whose process is gone is ended FINISHED: the trial
        tells the study its result just before its run ends, everything logged, and a process
        that stopped in between (SIGKILL, the tracking store refusing the end) left the study's
        best trial a run that never ends, which promote does not take.

        ``settle``: first wait, at most the grace period, until each trial still running is
        seen alive (its heartbeat moves) or failed as stale (``studies.settle_running``).
        """
        from hydra_plugins.pricer_optuna_sweeper import study as studies

        study, _ = self.open()
        if settle:
            studies.settle_running(study, lambda line: print(f"sweep: {line}", flush=True))
        studies.fail_stale_trials(study)
        table = study_trials(study)
        failed = table.loc[table["state"] == "FAIL"].set_index("trial")["stopped"].to_dict()
        complete = set(table.loc[table["state"] == "COMPLETE", "trial"])
        for run in client.search_runs(
            [client.get_run(parent_run_id).info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' and status = 'RUNNING'",
        ):
            number = run.data.tags.get(trial_tag)
            gone = stale_reason(run)
            if number is not None and int(number) in complete and gone is not None:
                client.set_tag(run.info.run_id, ENDED_BY_TAG, ENDED_BY.format(n=number, why=gone))
                client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FINISHED))
                continue
            if number is None or int(number) not in failed:
                continue
            # The sweeper says why it failed a trial whose batch did not come back (Ctrl-C,
            # SIGTERM, a broken launcher); Optuna fails one whose heartbeat stopped, saying
            # nothing: only that one's process is known to have died unseen.
            stopped = failed[int(number)] or {
                "status": RunStatus.to_string(RunStatus.KILLED),
                "error": STALE_ERROR.format(n=number),
            }
            client.set_tag(run.info.run_id, "error", str(stopped["error"]))
            client.set_terminated(run.info.run_id, str(stopped["status"]))
        return table


def study_trials(study: Any) -> pd.DataFrame:
    """One row per trial of the study: number, state, value, params, when it completed, and
    why the sweeper stopped it (``STOPPED_ATTR``), if it did."""
    from hydra_plugins.pricer_optuna_sweeper import study as studies

    rows = [
        {
            "trial": trial.number,
            "state": trial.state.name,
            "value": math.nan if trial.value is None else float(trial.value),
            "params": dict(trial.params),
            "completed": _epoch_ms(trial.datetime_complete),
            "stopped": trial.user_attrs.get(studies.STOPPED_ATTR),
        }
        for trial in study.get_trials(deepcopy=False)
    ]
    columns = ["trial", "state", "value", "params", "completed", "stopped"]
    return pd.DataFrame(rows, columns=columns)


def _epoch_ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def merge_trials(runs: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """The study's trials (Optuna's state and value are the truth) with their runs beside them.

    A trial whose process died before its run started has no run; its overrides come from its
    params.
    """
    by_trial = runs.drop_duplicates("trial", keep="last").set_index("trial")
    rows = []
    for trial in trials.itertuples():
        run: Mapping[str, Any] = (
            by_trial.loc[trial.trial].to_dict() if trial.trial in by_trial.index else {}
        )
        overrides = run.get("overrides") or _overrides_json(trial.params)
        rows.append(
            {
                "trial": trial.trial,
                "state": trial.state,
                "run_id": run.get("run_id", ""),
                "status": run.get("status", ""),
                "objective": trial.value,
                "test_mae": run.get("test_mae", math.nan),
                "other_model_answers": run.get("other_model_answers", 0),
                "answered_by": run.get("answered_by", ""),
                "overrides": overrides,
                "finished": trial.state == "COMPLETE",
                # The run's end, one value in the store; Optuna's is in each host's local time.
                "ended": _first_known(run.get("ended"), trial.completed),
            }
        )
    return pd.DataFrame(rows, columns=TRIAL_COLUMNS)


def _first_known(*values: Any) -> int | None:
    for value in values:
        if value is not None and not pd.isna(value):
            return int(value)
    return None


def _overrides_json(params: Mapping[str, Any]) -> str:
    return json.dumps([f"{key}={value}" for key, value in params.items()])
