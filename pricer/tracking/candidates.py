"""Which finished training runs may become a registered model, and on what data they were scored.

A candidate is a FINISHED training run with a READY logged model, a ``mae`` and the tags that
say which test items scored it (``pricer.eval_digest``, ``pricer.eval_size``). Runs carry the
name of their data as the ``data.name`` param (from conf/data/<source>.yaml, or
``data.name=...``): candidates are always picked among one data's runs, so a model scored on
synthetic items never competes for, or becomes, the champion of the real benchmark.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.entities import LoggedModelStatus, Run
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from pricer.errors import UserError, nearest
from pricer.models.llm.answering import answered_in_every_pass, other_model_answers
from pricer.schemas import CandidatesConfig
from pricer.tracking import tags as tag_names
from pricer.tracking.data import EVAL_DIGEST_TAG, EVAL_SIZE_TAG
from pricer.tracking.run import FAMILY_TAG
from pricer.wording import counted

METRIC = "mae"  # ranks candidates; the paired test compares the per-item absolute errors
DATA_PARAM = "data.name"  # every training run logs its config, data.name included


class PromotionError(UserError, RuntimeError):
    """Promotion cannot decide; no alias moved."""


class NoCandidate(PromotionError):
    """No finished run with a logged model matches the candidate filters."""


class DataNotChosen(PromotionError):
    """promote needs to be told which data's champion it decides (data=...)."""


@dataclass(frozen=True)
class Candidate:
    """A finished training run with a logged model, and what makes it comparable."""

    run_id: str
    mae: float
    eval_digest: str
    eval_size: str
    family: str
    model_uri: str
    start_time: int
    data: str = ""
    failure_rate: float = 0.0  # items it gave no price for, as a share of eval_size
    # An LLM family's answers that came from another model, in its test and validation passes
    other_model_answers: int = 0
    answered_by: str = ""  # the models its replies named, in either pass

    @classmethod
    def from_run(cls, run: Run, model_uri: str) -> Candidate:
        tags = run.data.tags
        return cls(
            run_id=run.info.run_id,
            mae=float(run.data.metrics.get(METRIC, math.nan)),
            eval_digest=tags[EVAL_DIGEST_TAG],
            eval_size=tags[EVAL_SIZE_TAG],
            family=tags.get(FAMILY_TAG, ""),
            model_uri=model_uri,
            start_time=run.info.start_time,
            data=run.data.params.get(DATA_PARAM, ""),
            failure_rate=float(run.data.metrics.get("failure_rate", 0.0)),
            # Its validation pass's too: a substitute that answered those items alone shaped
            # the figures a sweep chose this run by.
            other_model_answers=other_model_answers(run.data.metrics),
            answered_by=answered_in_every_pass(tags) or "",
        )

    def describe(self) -> str:
        on = f" on {self.data} data" if self.data else ""
        return (
            f"{self.family or 'unknown family'} run {self.run_id}{on}, mae ${self.mae:,.2f}"
            f"{other_model_note(self.other_model_answers, self.answered_by)}"
        )


def other_model_note(answers: int, answered_by: str) -> str:
    """ ", 12 of its answers from <model>, not the model asked for", or "" for none: a figure
    measured on a substitute's answers must not read as the asked model's."""
    if answers <= 0:
        return ""
    source = answered_by or "an unnamed model"
    return f", {answers} of its answers from {source}, not the model asked for"


@dataclass(frozen=True)
class CandidateFilter:
    """``data`` and ``candidates`` in conf/promote.yaml."""

    data: str
    experiment: str | None
    family: str | None
    eval_digest: str | None

    @classmethod
    def from_config(cls, data: str, mapping: Mapping[str, Any]) -> CandidateFilter:
        # Checked: "+candidates.famly=xgboost" (Hydra adds any key given with +) was ignored,
        # and the best of every family promoted.
        checked = CandidatesConfig.from_config(mapping)
        return cls(
            data=data,
            experiment=checked.experiment,
            family=checked.family,
            eval_digest=checked.eval_digest,
        )


def filter_literal(value: str) -> str:
    """``value`` as a string literal of an MLflow search filter.

    MLflow's filters take no escape inside a literal: ``'kid\\'s'`` (and ``'kid''s'``) matched
    nothing, so runs on data named "kid's" were "no FINISHED training run", and the registry
    search for a version of ``pricer-kid's`` failed or found none. A value with a single quote
    goes in double quotes instead; one with both kinds cannot be written.
    """
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise PromotionError(
        f"{value!r} holds both kinds of quote, which MLflow's search cannot look for: "
        "name the data without one of them"
    )


def experiment_ids(experiment: str | None) -> list[str]:
    if not experiment:
        return [e.experiment_id for e in mlflow.search_experiments()]
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        raise NoCandidate(f"experiment {experiment!r} does not exist")
    return [found.experiment_id]


def _finished_runs_with_models(ids: list[str], data: str | None) -> tuple[list[Run], dict]:
    where = "attributes.status = 'FINISHED'"
    if data is not None:
        where += f" and params.`{DATA_PARAM}` = {filter_literal(data)}"
    runs = mlflow.search_runs(experiment_ids=ids, filter_string=where, output_format="list")
    models = _logged_models_by_run(ids)
    usable = [
        run
        for run in runs
        if {EVAL_DIGEST_TAG, EVAL_SIZE_TAG} <= set(run.data.tags)
        and run.info.run_id in models
        and not math.isnan(run.data.metrics.get(METRIC, math.nan))
    ]
    return usable, models


def data_choices(experiment: str | None) -> Counter[str]:
    """data.name -> how many finished runs with a logged model were scored on it."""
    runs, _ = _finished_runs_with_models(experiment_ids(experiment), None)
    return Counter(run.data.params[DATA_PARAM] for run in runs if DATA_PARAM in run.data.params)


def require_data(data: str | None, experiment: str | None) -> str:
    """The chosen data name; without one, a one-line error listing what the store holds."""
    if data:
        return str(data)
    choices = data_choices(experiment)
    listed = ", ".join(f"{name} ({counted(n, 'run')})" for name, n in sorted(choices.items()))
    raise DataNotChosen(
        "say which data the champion is for, e.g. data=real: each data has its own registered "
        f"model and champion; runs with a logged model here: {listed or 'none'}"
    )


def candidates(filters: CandidateFilter, champion_digest: str | None = None) -> list[Candidate]:
    """Comparable candidates, best first: FINISHED training runs on ``filters.data`` with a
    READY logged model, scored on one set of test items: ``filters.eval_digest``, else the
    champion's (so they can be compared with it), else the newest run's."""
    ids = experiment_ids(filters.experiment)
    runs, models = _finished_runs_with_models(ids, filters.data)
    found = [
        Candidate.from_run(run, models[run.info.run_id])
        for run in runs
        if not filters.family or run.data.tags.get(FAMILY_TAG) == filters.family
    ]
    where = (
        f"{filters.data} data, "
        + (f"experiment {filters.experiment!r}" if filters.experiment else "any experiment")
        + (f", family {filters.family!r}" if filters.family else "")
    )
    # A sweep chose its best trial on validation items; the best of its trials by mae would
    # be chosen on the test items the comparison with the champion is then made on, and the
    # p-value recorded for it would be that of a winner picked on them (a 20-trial sweep
    # crowned whichever trial scored best on the test items, not the trial the sweep named).
    unchosen = _unchosen_trials(runs)
    found = [c for c in found if c.run_id not in unchosen]
    trained = Counter(str(run.data.tags.get(FAMILY_TAG)) for run in runs)
    if not found and filters.family and trained:  # a typo, or a family not trained on it
        listed = ", ".join(f"{name} ({counted(n, 'run')})" for name, n in sorted(trained.items()))
        close = nearest(filters.family, trained)
        hint = f" (did you mean {' or '.join(repr(name) for name in close)}?)" if close else ""
        raise NoCandidate(
            f"no FINISHED run of family {filters.family!r} with a logged model on "
            f"{filters.data} data{hint}; families there: {listed}"
        )
    if not found and unchosen:
        raise NoCandidate(
            f"no FINISHED training run with a logged model on {where} but "
            f"{counted(len(unchosen), 'sweep trial')} that no sweep chose as its best (chosen on "
            "validation items, a trial may be promoted; picked by test mae, it would be chosen "
            "on the items it is compared on): let its sweep finish, or train the best trial's "
            "settings alone"
        )
    if not found:
        raise NoCandidate(
            f"no FINISHED training run with a logged model on {where}: train one first "
            f"(e.g. pricer train data={filters.data}; tracking.log_model=true)"
        )
    # A run that left items unanswered has its mae over the others: it cannot be ranked
    # against complete runs, and a champion must answer every item it is asked.
    partial = [c for c in found if c.failure_rate > 0]
    found = [c for c in found if not c.failure_rate > 0]
    if not found:
        newest = max(partial, key=lambda c: c.start_time)
        unanswered = round(newest.failure_rate * int(newest.eval_size))
        raise NoCandidate(
            f"every run on {where} left items unanswered (e.g. {newest.describe()}: "
            f"{unanswered} of {newest.eval_size} unanswered), and a champion must answer "
            "every item: rerun it (an LLM family's answer cache asks only those again)"
        )
    digest = filters.eval_digest or champion_digest or _fullest_evaluation(found)
    pool = [c for c in found if c.eval_digest == digest]
    if not pool:
        whose = "the champion's test items" if digest == champion_digest else "test items"
        raise NoCandidate(
            f"no candidate on {where} was scored on {whose} (digest {digest}): evaluate with "
            "the same data and eval settings, or choose other items with candidates.eval_digest"
        )
    sizes = {c.eval_size for c in pool}
    if len(sizes) > 1:  # one digest is one item table: different sizes mean a corrupted tag
        raise PromotionError(f"runs scored on test items {digest!r} disagree on their size {sizes}")
    return sorted(pool, key=lambda c: (c.mae, -c.start_time))


def _unchosen_trials(runs: list[Run]) -> set[str]:
    """Run ids of sweep trials that are not their sweep's best (``pricer.sweep.best_run_id``
    on the sweep's parent run): a sweep still running, or whose parent is gone, chose none."""
    parents = {
        run.data.tags[MLFLOW_PARENT_RUN_ID]
        for run in runs
        if tag_names.SWEEP_TRIAL in run.data.tags and MLFLOW_PARENT_RUN_ID in run.data.tags
    }
    best: dict[str, str | None] = {}
    for parent in parents:
        try:
            best[parent] = mlflow.get_run(parent).data.tags.get(tag_names.SWEEP_BEST_RUN)
        except MlflowException:  # removed for good (mlflow gc): which trial it chose is lost
            best[parent] = None
    return {
        run.info.run_id
        for run in runs
        if tag_names.SWEEP_TRIAL in run.data.tags
        and best.get(run.data.tags.get(MLFLOW_PARENT_RUN_ID, "")) != run.info.run_id
    }


def _fullest_evaluation(found: list[Candidate]) -> str:
    """The test items a first champion is chosen on: the most items, then the most runs
    scored on them, then the newest. The first champion fixes the items every later candidate
    is compared on; by newest alone, a 20-item trial run made after a 250-item leaderboard
    crowned a model no other run could be compared with."""
    runs = Counter(c.eval_digest for c in found)
    newest: dict[str, int] = {}
    size: dict[str, int] = {}
    for c in found:
        newest[c.eval_digest] = max(newest.get(c.eval_digest, 0), c.start_time)
        items = int(c.eval_size) if c.eval_size.isdigit() else 0  # a damaged tag ranks last
        size[c.eval_digest] = max(size.get(c.eval_digest, 0), items)
    return max(runs, key=lambda digest: (size[digest], runs[digest], newest[digest]))


def _logged_models_by_run(ids: list[str]) -> dict[str, str]:
    """run id -> URI of its newest READY logged model."""
    models = mlflow.search_logged_models(experiment_ids=ids, output_format="list")
    ready = sorted(
        (m for m in models if m.status == LoggedModelStatus.READY),
        key=lambda m: m.creation_timestamp,
    )
    return {m.source_run_id: m.model_uri for m in ready if m.source_run_id}
