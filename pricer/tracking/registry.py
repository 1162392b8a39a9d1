"""The model registry: pick a candidate run, compare it with the champion, move aliases.

Each evaluation data has its own registered model, ``pricer-<data.name>`` (``pricer-real``,
``pricer-synthetic``), and promote is told which (``data=real``): a champion is never a model
scored on data the user did not choose. Runs are comparable only when they were scored on the
same test items (``pricer.eval_digest`` and ``pricer.eval_size`` tags, set on every training
run); with a champion in place, candidates are the runs scored on its items. The best
candidate is registered under the data's name; it takes the ``champion`` alias only if a
paired bootstrap test on the per-item absolute errors of the same test items says it beats the
champion (the first registered model becomes champion directly). Otherwise it takes
``challenger``. A champion scored on other items cannot be compared: nothing moves and
promotion fails.

Every decision is a tracked run (``pricer.kind=promotion``) and is written into the registry:
tags and a description on the model version, and a running history in the registered model's
description, so the MLflow UI shows who replaced whom, with both maes, the p-value and when.
Nothing here knows about model families: a family is only a tag value to filter on.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import posixpath
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.utils import validation
from mlflow.utils.validation import _validate_model_name  # private: the registry's own rules
from omegaconf import DictConfig, OmegaConf

from pricer import interrupt
from pricer.errors import ConfigError, UserError, one_line
from pricer.evaluation import EvalSettings, PairedTest, paired_bootstrap_test
from pricer.models.llm.answering import ANSWERED_BY, OTHER_MODEL_ANSWERS
from pricer.schemas import RegistryConfig
from pricer.tracking import lease, names
from pricer.tracking.candidates import (
    METRIC,
    Candidate,
    CandidateFilter,
    DataNotChosen,
    NoCandidate,
    PromotionError,
    candidates,
    filter_literal,
    require_data,
)
from pricer.tracking.champions import predict_options
from pricer.tracking.data import EVAL_DIGEST_TAG, EVAL_SIZE_TAG
from pricer.tracking.lease import Lease, LeaseBusy, LeaseLost
from pricer.tracking.model import check_logged_model
from pricer.tracking.model_files import UnsafeModelFile
from pricer.tracking.run import FAMILY_TAG, KIND_TAG, configure_tracking, log_config, tracked_run
from pricer.tracking.store import (
    STORE_ERRORS,
    StoreRefused,
    StoreUnreachable,
    permission_denied,
    refused,
    require_existing,
)
from pricer.wording import counted

if TYPE_CHECKING:
    from pricer.tracking.retire import Retirement

__all__ = [
    "METRIC",
    "Candidate",
    "CandidateFilter",
    "ChampionMoved",
    "DataNotChosen",
    "IncomparableChampion",
    "LeaseBusy",
    "LeaseLost",
    "NoCandidate",
    "PromotionError",
    "UnloadableCandidate",
    "promote",
]

PREDICTIONS_FILE = "evaluation/predictions.json"  # per-item table of every training run
DESCRIPTION_LIMIT = 5000  # MLflow's limit on a registered model's description
HISTORY_TITLE = "Promotion history (newest first):"
# Each history line is a registered-model tag of its own; the description shows them.
HISTORY_TAG = "pricer.history."
EARLIER_HISTORY_TAG = "pricer.history_before_tags"  # lines of a description from before them
HISTORY_ATTEMPTS = 20  # rounds of write and read back while other writers race (each adds one)
# A decision's comparison with the champion it was made against, on the version decided.
COMPARISON_TAGS = (
    "pricer.compared_with_version",
    "pricer.compared_with_run_id",
    "pricer.compared_with_mae",
    "pricer.p_value",
    "pricer.mean_difference",
)


# What a decision under the lease is about to write (JSON: ``announce``), written before its
# first write and deleted after its last (``settle``): one left behind names a writer that
# stopped half-way (SIGKILL), whose record the next lease holder takes up.
PENDING_TAG = "pricer.pending"
Pending = dict[str, Any]
# In a pending record (``true``, else absent): its version held the alias the decision gives
# before the decision (a challenger decided challenger again, the champion moved by hand since
# its last comparison). The alias then says nothing of whether the decision held: its history
# line, the last write of its record, does (``_held``).
ALIAS_BEFORE = "alias_before"

# On a champion an alias left: which version replaced it, and when.
REPLACED_TAGS = ("pricer.replaced_by_version", "pricer.replaced_at")
# On a champion retired (pricer promote retire=true): when, and by which promotion run.
RETIRED_TAGS = ("pricer.retired_at", "pricer.retired_by_run_id")
# Every tag a decision writes on its version or deletes from it (``_write_decision``): what a
# decision taken back puts back as it was (``_record_before``).
DECISION_TAGS = (
    "pricer.promotion_run_id",
    "pricer.decision",
    "pricer.decided_at",
    *COMPARISON_TAGS,
    *REPLACED_TAGS,
    *RETIRED_TAGS,
)


class IncomparableChampion(PromotionError):
    """The champion was scored on other test items than the candidate."""


class UnloadableCandidate(PromotionError):
    """The best candidate's logged model file is missing, damaged or refused."""


class UnloadableChampion(PromotionError):
    """The champion's logged model is deleted, or its files missing, damaged or refused."""


class ChampionMoved(PromotionError):
    """Another promotion moved the champion alias while this one compared against it."""


class RecordIncomplete(UserError, RuntimeError):
    """The alias moved as decided, then the store failed while the rest was written: not a
    PromotionError, which says no alias moved. Its message says what holds and what is
    missing, so the FAILED promotion run does not read as a decision that did not happen."""


def applied_but(
    registry: RegistrySettings, decision: Decision, what: str, error: Exception
) -> RecordIncomplete:
    """The error for a store failure after ``decision``'s alias moved, while ``what`` was
    being written."""
    alias = registry.champion_alias if decision.outcome == "champion" else registry.challenger_alias
    return RecordIncomplete(
        f"{registry.model_name}@{alias} is version {decision.version} as decided, but the "
        f"tracking store failed while {what} was written ({type(error).__name__}: "
        f"{one_line(error)}): the version's tags and the model's promotion history hold the "
        "decision; nothing to promote again"
    )


@contextlib.contextmanager
def store_step(what: str) -> Iterator[None]:
    """Word the store's failure while ``what`` (before any decision is written) as one line.

    SQLite's "database is locked" or a server's 503 while promote searched, read the champion,
    downloaded the per-item tables or registered the candidate ended in the store's traceback,
    read as a bug and silent on the registry, where nothing had moved. Only the store's errors
    are worded so: a bug keeps its traceback, and a ``UserError`` (an ``IncomparableChampion``
    made from the store's "does not exist") its own words.
    """
    try:
        yield
    except UserError:
        raise
    except STORE_ERRORS as error:
        if permission_denied(error):  # "promote again once it answers" would never help
            raise StoreRefused(
                refused(
                    mlflow.get_tracking_uri(),
                    f"{what} (403 permission denied): no alias moved; a promotion reads the "
                    "candidates' experiments and writes to the registered model: their managers "
                    "must grant you READ on those and EDIT on the model",
                )
            ) from None
        # Its first line only: SQLAlchemy's next ones are the SQL statement and a link.
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        raise StoreUnreachable(
            f"the tracking store failed while {what} ({type(error).__name__}: "
            f"{first or 'no message'}): no alias moved; promote again once it answers"
        ) from None  # chained, its SQL and link were added to the line (errors.one_line)


@dataclass(frozen=True)
class Comparison:
    """The paired test of a candidate against the champion on the same test items."""

    test: PairedTest
    n_dropped: int  # items either model gave no price for

    @property
    def candidate_better(self) -> bool:
        return self.test.candidate_better

    def describe(self) -> str:
        t = self.test
        level = f"{t.confidence:.0%}"
        dropped = f", {self.n_dropped} items without a price left out" if self.n_dropped else ""
        # Undefined over a single pair (``paired_bootstrap_test``): "+nan to +nan" said nothing.
        known = not (math.isnan(t.ci_low) or math.isnan(t.ci_high))
        ci = f"{t.ci_low:+,.2f} to {t.ci_high:+,.2f}" if known else "n/a"
        return (
            f"mean abs error difference {t.mean_difference:+,.2f} ({level} CI {ci}), "
            f"p={t.p_value:.4f} on {t.n} items{dropped}"
        )


@dataclass(frozen=True)
class Decision:
    outcome: str  # champion | challenger | unchanged
    reason: str
    candidate: Candidate
    version: str | None  # the candidate's registered version
    champion_before: Candidate | None
    comparison: Comparison | None


def champion_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version holding ``alias``; None if the model or the alias does not exist yet."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    if alias not in model.aliases:
        return None
    return client.get_model_version(name, model.aliases[alias])


def item_errors(run_id: str) -> pd.DataFrame:
    """The per-item table a training run logged: truth, estimate, abs_error, failed, ..."""
    run = mlflow.get_run(run_id)
    try:
        text = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/{PREDICTIONS_FILE}")
    except Exception as error:  # each artifact store raises its own errors, a missing file's too
        # Told apart by the run's listing, not by the error: any failure read "has no ...", and
        # a store failing for a moment sent the user to retrain a run whose table was there.
        folder, file = posixpath.split(PREDICTIONS_FILE)
        if _lists_no(f"{run.info.artifact_uri}/{folder}", file):
            raise PromotionError(
                f"run {run_id} has no {PREDICTIONS_FILE} (its artifacts list none) to compare "
                "per-item errors with: no alias moved"
            ) from None  # chained, MLflow's download error was added to the line
        raise StoreUnreachable(
            f"the artifact store failed while {PREDICTIONS_FILE} of run {run_id} was read "
            f"({type(error).__name__}: {_last_line(error)}): no alias moved; promote again "
            "once it answers"
        ) from None  # chained, its lines were added to the line (errors.one_line)
    try:  # cut short or replaced, it was a JSONDecodeError or KeyError traceback
        table = json.loads(text)
        frame = pd.DataFrame(table["data"], columns=table["columns"])
    except (ValueError, KeyError, TypeError) as error:
        raise PromotionError(
            f"{PREDICTIONS_FILE} of run {run_id} is damaged ({type(error).__name__}: {error}): "
            "its per-item errors cannot be compared, no alias moved"
        ) from error
    missing = {"truth", "abs_error", "failed"} - set(frame.columns)
    if missing:
        raise PromotionError(f"{PREDICTIONS_FILE} of run {run_id} lacks columns {sorted(missing)}")
    return frame


def _check_candidate_model(model_uri: str) -> None:
    """Refuse a candidate whose model cannot be loaded: registered unchecked, a damaged file
    became champion and predict refused it. Its files missing or damaged send the user to
    retrain; the artifact store failing (its download failed, its listing holds the files or
    fails too) sends them to promote again, as it did not before."""
    _check_model(model_uri, "the candidate's model", lambda error: _unloadable(model_uri, error))


def _unloadable(model_uri: str, error: Exception) -> UnloadableCandidate:
    return UnloadableCandidate(
        f"the candidate's model {model_uri} cannot be loaded ({str(error).splitlines()[0]}): "
        "no alias moved; retrain to log it again, or delete the run to promote the next best"
    )


def _check_champion_model(version: ModelVersion, registry: RegistrySettings) -> None:
    """Refuse to compare with a champion that predict and serve cannot load: its LoggedModel
    deleted or its files removed, a worse candidate left it champion ("champion unchanged")
    while predict failed. Checked as predict loads it: the version, its files against their
    sha256, its pricer file."""
    alias = registry.champion_alias
    uri = f"models:/{version.name}/{version.version}"

    def unloadable(error: Exception) -> UnloadableChampion:
        return UnloadableChampion(
            f"{registry.model_name}@{alias} (version {version.version}) cannot be loaded "
            f"({str(error).splitlines()[0]}): predict and serve cannot use it, no alias moved "
            f"({retire_advice(registry)})"
        )

    _check_model(uri, f"the {alias}'s model", unloadable)


def _check_model(
    model_uri: str, whose: str, unloadable: Callable[[Exception], PromotionError]
) -> None:
    """Raise ``unloadable(error)`` if the model cannot be loaded, ``StoreUnreachable`` if the
    artifact store failed while it was read."""
    try:
        check_logged_model(model_uri)
    except UnsafeModelFile as error:
        raise unloadable(error) from error
    except STORE_ERRORS as error:  # MLflow's "No such artifact" too: the files may be gone
        # A deleted LoggedModel cannot be listed either: the tracking store says it is gone.
        if store_says_gone(error) or _lists_no(model_uri, "MLmodel"):
            raise unloadable(error) from error
        raise StoreUnreachable(
            f"the artifact store failed while {whose} {model_uri} was read "
            f"({type(error).__name__}: {_last_line(error)}): no alias moved; promote again "
            "once it answers"
        ) from None  # chained, its lines were added to the line (errors.one_line)


def _existing_version(client: MlflowClient, name: str, version: str) -> ModelVersion | None:
    """Version ``version`` of ``name``; None if it was deleted (by hand). A record that names
    a version deleted since has nothing to write on it: raised, the take-up of a killed
    decision's record failed on it for every promote and retire after."""
    try:
        return client.get_model_version(name, version)
    except MlflowException as error:
        if not store_says_gone(error):
            raise
        return None


def store_says_gone(error: Exception) -> bool:
    """Whether MLflow said the model (or its files) does not exist, not that it failed."""
    missing = ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)
    return isinstance(error, MlflowException) and error.error_code == missing


def _lists_no(artifact_uri: str, name: str) -> bool:
    """Whether the artifacts under ``artifact_uri`` list no ``name``; False when the listing
    fails too, which is the store's failure, not a missing file."""
    try:
        listed = mlflow.artifacts.list_artifacts(artifact_uri=artifact_uri)
    except Exception:  # an artifact store's own error types (boto, azure, requests)
        return False
    return name not in {posixpath.basename(info.path) for info in listed}


def _last_line(error: BaseException) -> str:
    """An error's last non-empty line (MLflow's first says only that "one or more artifacts"
    failed), or "no message"."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _champion_candidate(version: ModelVersion, registry: RegistrySettings) -> Candidate:
    alias = registry.champion_alias
    try:
        run = mlflow.get_run(version.run_id) if version.run_id else None
    except MlflowException as error:  # `mlflow gc` removed it: it was a traceback
        if error.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise
        raise IncomparableChampion(
            f"{registry.model_name}@{alias} (version {version.version}) was trained by run "
            f"{version.run_id}, which is gone from the store: its per-item errors cannot be "
            f"compared, no alias moved ({retire_advice(registry)})"
        ) from error
    if run is None or not {EVAL_DIGEST_TAG, EVAL_SIZE_TAG} <= set(run.data.tags):
        raise IncomparableChampion(
            f"{registry.model_name}@{alias} (version {version.version}) has no training run with "
            f"{EVAL_DIGEST_TAG}/{EVAL_SIZE_TAG} tags: it cannot be compared, no alias moved"
        )
    return Candidate.from_run(run, version.source)


def compare(candidate_run_id: str, champion_run_id: str, settings: EvalSettings) -> Comparison:
    """Paired bootstrap of the per-item absolute errors on the same test items.

    Items either model gave no price for are left out of both sides (and counted).
    """
    candidate, champion = item_errors(candidate_run_id), item_errors(champion_run_id)
    if len(candidate) != len(champion) or not np.allclose(candidate["truth"], champion["truth"]):
        raise IncomparableChampion(
            f"runs {candidate_run_id} and {champion_run_id} carry the same test digest but "
            "their per-item tables differ: they cannot be compared item by item"
        )
    answered = ~(candidate["failed"].astype(bool) | champion["failed"].astype(bool))
    if not answered.any():
        raise PromotionError("no test item has a price from both models")
    test = paired_bootstrap_test(
        candidate.loc[answered, "abs_error"].to_numpy(dtype=float),
        champion.loc[answered, "abs_error"].to_numpy(dtype=float),
        confidence=settings.confidence,
        n_resamples=settings.n_resamples,
        seed=settings.seed,
    )
    return Comparison(test, int((~answered).sum()))


def register(client: MlflowClient, name: str, candidate: Candidate) -> ModelVersion:
    """The candidate's model version under ``name``: the existing one, or a new registration."""
    versions = _registered_versions(client, name)
    _require_datas(name, versions, candidate.data)
    existing = [version for version in versions if version.run_id == candidate.run_id]
    if existing:  # search results may lack aliases and tags: fetch the version itself
        newest = max(existing, key=lambda v: int(v.version))
        found = client.get_model_version(name, newest.version)
        # The store may have failed between its registration and its last tag: written only at
        # registration, the missing ones were never written, and the version stayed without
        # the figures that make it comparable.
        missing = {
            key: value
            for key, value in _comparability_tags(candidate).items()
            if key not in found.tags
        }
        if not missing:
            return found
        with interrupt.deferred(release=False):
            for key, value in missing.items():
                client.set_model_version_tag(name, found.version, key, value)
        return client.get_model_version(name, found.version)
    # A signal waits until the tags are written; the store failing among them does not, and
    # the version found again above gets the ones it missed.
    with interrupt.deferred(release=False):
        version = mlflow.register_model(candidate.model_uri, name)
        for key, value in _comparability_tags(candidate).items():
            client.set_model_version_tag(name, version.version, key, value)
        return _first_of_its_run(client, name, candidate, version)


def _comparability_tags(candidate: Candidate) -> dict[str, str]:
    """What makes a version comparable, readable in the UI next to it."""
    tags = {
        FAMILY_TAG: candidate.family,
        "pricer.data": candidate.data,
        EVAL_DIGEST_TAG: candidate.eval_digest,
        EVAL_SIZE_TAG: candidate.eval_size,
        "pricer.mae": f"{candidate.mae:.4f}",
    }
    # Only where a proxy answered with another model: predict's and serve's line
    # (champions.describe) says so, the figures above being that model's.
    if candidate.other_model_answers > 0:
        tags |= {
            OTHER_MODEL_ANSWERS: str(candidate.other_model_answers),
            ANSWERED_BY: candidate.answered_by,
        }
    return {key: value for key, value in tags.items() if value}  # no empty tag on the version


def _first_of_its_run(
    client: MlflowClient, name: str, candidate: Candidate, version: ModelVersion
) -> ModelVersion:
    """The run's lowest version: two promotions of one run at once each found none above and
    registered one, two versions of one model. The lowest stays (both promotions keep it:
    it was there when the later one was made), the later one is deleted."""
    named = f"name={filter_literal(name)}"
    found = client.search_model_versions(f"{named} and run_id='{candidate.run_id}'")
    first = min(found, key=lambda v: int(v.version), default=version)
    if int(first.version) >= int(version.version):
        return version
    client.delete_model_version(name, version.version)
    return client.get_model_version(name, first.version)


@dataclass(frozen=True)
class RegistrySettings:
    """``registry`` in conf/promote.yaml."""

    model_name: str
    champion_alias: str
    challenger_alias: str
    # The command that retires this champion, as the user would type it (``retire_command``).
    retire_command: str = "pricer promote data=<data> retire=true"
    lease_seconds: float = 60.0  # the registered model's lease (pricer.tracking.lease)
    lease_wait_seconds: float = 90.0

    def take_lease(self, client: MlflowClient, again: str) -> Lease:
        """This model's lease, taken with these settings (``again``: the advice on failure)."""
        return lease.take(
            client,
            self.model_name,
            seconds=self.lease_seconds,
            wait=self.lease_wait_seconds,
            again=again,
        )

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any]) -> RegistrySettings:
        checked = RegistryConfig.from_config(mapping)  # "+registry.champion_aliass=" too
        settings = cls(
            model_name=checked.model_name,
            champion_alias=checked.champion_alias,
            challenger_alias=checked.challenger_alias,
            lease_seconds=checked.lease_seconds,
            lease_wait_seconds=checked.lease_wait_seconds,
        )
        if settings.champion_alias == settings.challenger_alias:
            raise ConfigError("registry.champion_alias and registry.challenger_alias must differ")
        # The registry's own rules, before any run: a name it refuses ("latest", "v2", a space)
        # failed at the alias move, after the version's description and the model's history
        # had recorded a decision that was never applied.
        for key in ("champion_alias", "challenger_alias"):
            alias = getattr(settings, key)
            try:
                _alias_rules(alias)
            except MlflowException as error:
                raise ConfigError(f"registry.{key}={alias}: {error.message}") from None
        # The model's name too (``<prefix>-<data.name>``: "data.name=team/tools"): refused at
        # the first registry call, inside the run, it read as "the tracking store failed ...
        # promote again once it answers", and the promotion run ended FAILED.
        try:
            _validate_model_name(settings.model_name)
        except MlflowException as error:
            raise ConfigError(
                f"registry.model_name={settings.model_name}: {error.message} (it is "
                "registry.prefix-data.name unless set: choose names without them)"
            ) from None
        return settings


def _alias_rules(alias: str) -> None:
    """The registry's rules for an alias (``MlflowException`` if it breaks one), its private
    functions: MLflow 3.18 renamed them (``_validate_model_alias_name`` and its ``_reserved``
    became ``_validate_alias_name`` and ``_validate_alias_name_reserved``), and importing the
    old names stopped every registry command from loading on a fresh install."""
    for new, old in (
        ("_validate_alias_name", "_validate_model_alias_name"),
        ("_validate_alias_name_reserved", "_validate_model_alias_name_reserved"),
    ):
        rule = getattr(validation, new, None) or getattr(validation, old)
        rule(alias)


def promote(cfg: DictConfig) -> Decision | Retirement:
    """Pick, compare, register and move aliases, inside a tracked ``promotion`` run; with
    ``retire=true``, retire the champion instead (``pricer.tracking.retire``)."""
    if cfg.retire:
        from pricer.tracking.retire import retire  # it builds on this module

        return retire(cfg)
    # A mistyped store path: there is nothing to promote in it, and nothing is created there
    # (it became a new store holding one FAILED promotion run).
    require_existing(cfg.tracking.uri)
    configure_tracking(cfg.tracking)
    # Candidates' prediction tables are downloaded: no bar between the decision's lines.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Before any run starts: a usage error leaves nothing behind in the store.
    data = require_data(OmegaConf.select(cfg, "data.name"), cfg.candidates.experiment)
    registry = RegistrySettings.from_config(cfg.registry)
    registry = replace(registry, retire_command=retire_command(data))
    require_datas_name(registry.model_name, str(cfg.registry.prefix), data)
    filters = CandidateFilter.from_config(data, cfg.candidates)
    settings = EvalSettings.from_config(cfg.eval)
    tags = {
        KIND_TAG: "promotion",
        "pricer.registered_model": registry.model_name,
        "pricer.data": data,
    }
    with tracked_run(cfg.tracking, run_name=names.run_name("promote", data), tags=tags) as run:
        # The promotion run's own writes before the decision fail as the store's reads do:
        # in one line, nothing moved yet (after it, applied_but says what holds).
        with store_step("logging the promotion run's config"):
            log_config(cfg)
        client = MlflowClient()
        with store_step("reading the champion"):
            current = champion_version(client, registry.model_name, registry.champion_alias)
            _require_datas(registry.model_name, [current] if current else [], data)
            champion = None if current is None else _champion_candidate(current, registry)
        if current is not None:  # before any candidate is compared with it
            _check_champion_model(current, registry)
        with store_step("searching the candidates"):
            pool = candidates(filters, champion.eval_digest if champion else None)
        candidate = pool[0]
        runs = counted(len(pool), "comparable run")
        scored = f"scored on the same {candidate.eval_size} test items"
        print(f"candidate: {candidate.describe()}, best of {runs} {scored}", flush=True)
        with store_step("recording the candidate on the promotion run"):
            # Not EVAL_DIGEST_TAG itself: that tag marks training runs, the candidates.
            mlflow.set_tags(
                {
                    "pricer.candidate_run_id": candidate.run_id,
                    "pricer.candidate_eval_digest": candidate.eval_digest,
                }
            )
            mlflow.log_metric("candidate.mae", candidate.mae)
        _check_candidate_model(candidate.model_uri)
        checked = None if current is None else str(current.version)
        decision = decide(client, registry, candidate, settings, run.info.run_id, checked)
        with interrupt.deferred(release=False):  # the run records what the registry holds
            try:
                _log_decision(decision)
            except STORE_ERRORS as error:  # FAILED, with an error that says it was applied
                if decision.outcome in ("champion", "challenger"):
                    what = "this promotion run's record"
                    raise applied_but(registry, decision, what, error) from error
                raise
        print(f"{registry.model_name}: {decision.outcome}: {decision.reason}", flush=True)
        # pricer serve, not mlflow models serve: it checks the model's files before it runs
        # their code (README, "Serving").
        # The model decided on, as predict would choose it: "--data synthetic" loaded
        # pricer-synthetic, not a registered model or alias of one's own (registry.*).
        chosen = predict_options(registry.model_name, registry.champion_alias, data)
        print(f'use it: pricer predict {chosen} "<text>", or pricer serve {chosen}', flush=True)
        return decision


# The settings of choosing and comparing a candidate, which retiring does neither with.
PROMOTE_ONLY = ("candidates.", "candidates=", "eval.", "eval=")


def given_overrides() -> list[str]:
    """The overrides this app was given on its command line (or ``mlflow run``'s
    ``overrides``); none when composed without an app (the compose API)."""
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def retire_command(data: str) -> str:
    """``pricer promote data=real retire=true``, with the overrides this promote was given
    that say which data, registry and store (``data=items data.name=mine``,
    ``registry.champion_alias=best``, ``tracking.uri=...``): the command a refusal names must
    retire the champion it refused."""
    other = (*PROMOTE_ONLY, "hydra.", "retire=")
    kept = [item for item in given_overrides() if not item.lstrip("+~").startswith(other)]
    if not any(item.startswith("data=") for item in kept):
        kept.insert(0, f"data={data}")
    return names.retire_command(*kept)


def retire_advice(registry: RegistrySettings) -> str:
    """What to do about a champion promote cannot use."""
    return f"retire it with {registry.retire_command}, then promote to crown a new one"


def require_datas_name(name: str, prefix: str, data: str) -> None:
    """Refuse another data's registered model by its name, before any run: predict --data
    <other> loads ``<prefix>-<other>``, and "data=synthetic registry.model_name=pricer-real"
    made a synthetic model the real data's first champion."""
    other = name.removeprefix(f"{prefix}-")
    if other != name and other != data:
        raise ConfigError(
            f"registry.model_name={name} is {other} data's registered model (pricer predict "
            f"--data {other} loads its {other} champion), not {data}'s: leave "
            "registry.model_name out, or name a model of your own"
        )


def _registered_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of ``name``; none when there is no such registered model yet."""
    try:
        return list(client.search_model_versions(f"name={filter_literal(name)}"))
    except MlflowException as error:
        # No registered model yet: no version. Any other failure (a 503) is the store's: read
        # as "none", it registered the run a second time.
        if not store_says_gone(error):
            raise
        return []


def _require_datas(name: str, versions: list[ModelVersion], data: str) -> None:
    """Refuse a registered model with versions evaluated on other data: a name of one's own
    (``registry.model_name=team``) given to promotions of two data mixed them, and a champion
    of other data was reported as "no candidate scored on the champion's test items"."""
    others = sorted({v.tags.get("pricer.data", "") for v in versions} - {data, ""})
    if others:
        raise PromotionError(
            f"{name} holds versions evaluated on {', '.join(others)} data, not {data}: a "
            "registered model holds one data's models; no alias moved (leave "
            "registry.model_name out, or name another model)"
        )


def decide(
    client: MlflowClient,
    registry: RegistrySettings,
    candidate: Candidate,
    settings: EvalSettings,
    promotion_run_id: str,
    checked: str | None = None,
) -> Decision:
    """Compare the candidate with the champion and move aliases; raises when it cannot.

    ``checked``: the champion version whose model was checked loadable already (promote
    checks the one it reads first, before the candidates are searched). The champion is read
    again here, and one another promotion moved in meanwhile is checked too: compared
    unchecked, a champion whose model was gone was replaced, or kept, as if predict could
    load it.
    """
    name = registry.model_name
    with store_step("reading the champion"):
        current = champion_version(client, name, registry.champion_alias)
    if current is not None and str(current.version) != checked:
        _check_champion_model(current, registry)
    if current is None:
        # Compared with nothing now, a first champion is compared with every later candidate:
        # crowned with a per-item table missing or damaged, every promotion after failed on it.
        with store_step("reading the prediction tables"):
            item_errors(candidate.run_id)
        with store_step("registering the candidate"):
            version = register(client, name, candidate)
        reason = (
            f"first {registry.champion_alias} of {name!r}: version {version.version} "
            f"({candidate.describe()})"
        )
        decision = Decision("champion", reason, candidate, version.version, None, None)
        _record(client, registry, decision, None, promotion_run_id)
        return decision
    with store_step("reading the champion"):
        champion = _champion_candidate(current, registry)
    if champion.run_id == candidate.run_id:
        reason = (
            f"the best candidate is {registry.champion_alias} already (version {current.version})"
        )
        return Decision("unchanged", reason, candidate, current.version, champion, None)
    if (champion.eval_digest, champion.eval_size) != (candidate.eval_digest, candidate.eval_size):
        raise IncomparableChampion(
            f"{registry.champion_alias} version {current.version} ({champion.describe()}) was "
            f"scored on other test items ({champion.eval_size} items, digest "
            f"{champion.eval_digest}) than the candidate {candidate.describe()} "
            f"({candidate.eval_size} items, digest {candidate.eval_digest}): they cannot be "
            "compared, no alias moved. "
            "Score both on the same items, or pick candidates scored like the champion with "
            f"candidates.eval_digest={champion.eval_digest}"
        )
    with store_step("reading the prediction tables"):
        try:
            item_errors(champion.run_id)
        except PromotionError as error:  # for good: said so promote after promote, no way out
            raise IncomparableChampion(
                f"{name}@{registry.champion_alias} (version {current.version}): {error} "
                f"({retire_advice(registry)})"
            ) from error
        comparison = compare(candidate.run_id, champion.run_id, settings)
    with store_step("registering the candidate"):
        version = register(client, name, candidate)
    if (
        not comparison.candidate_better
        and registry.challenger_alias in version.aliases
        and version.tags.get("pricer.compared_with_version") == str(current.version)
    ):
        reason = (
            f"version {version.version} is {registry.challenger_alias} against "
            f"{registry.champion_alias} version {current.version} already: "
            f"{comparison.describe()}; nothing moved"
        )
        return Decision("unchanged", reason, candidate, version.version, champion, comparison)
    if comparison.candidate_better:
        reason = (
            f"version {version.version} ({candidate.describe()}) beats version "
            f"{current.version} ({champion.describe()}): {comparison.describe()} "
            f"< {1 - settings.confidence:.2g}"
        )
        decision = Decision("champion", reason, candidate, version.version, champion, comparison)
    else:
        difference = comparison.test.mean_difference
        # Zero is a tie, not "worse": a rerun of the champion's training errs as it did.
        verdict = (
            "worse than"
            if difference > 0
            else "as good as, not better than,"
            if difference == 0
            else "not significantly better than"
        )
        reason = (
            f"version {version.version} ({candidate.describe()}) is {verdict} "
            f"{registry.champion_alias} version {current.version} ({champion.describe()}): "
            f"{comparison.describe()}, needs p < {1 - settings.confidence:.2g}; "
            f"{registry.champion_alias} unchanged"
        )
        decision = Decision("challenger", reason, candidate, version.version, champion, comparison)
    _record(client, registry, decision, current, promotion_run_id)
    return decision


def _record(
    client: MlflowClient,
    registry: RegistrySettings,
    decision: Decision,
    replaced: ModelVersion | None,
    promotion_run_id: str,
) -> None:
    """History first (tags, descriptions), then the alias: the record says why it moved.

    Only if the champion is still the one the decision was made against (``replaced``, None
    for a first champion): MLflow has no compare-and-set for aliases, so two promotions at
    once each compared with the champion they read, and the later write won, even with a
    candidate worse than the other's new champion. Checking it before the writes was not
    enough: two promotions could both pass the check before either moved the alias (with six
    at once, three did on a file store). So the check, the record and the move are made
    under the registered model's lease (``pricer.tracking.lease``), one promotion at a time;
    the slow comparison before them is not, and the champion it was made against is checked
    once the lease is held.
    """
    with store_step("taking the registered model's lease"):  # nothing written yet
        held = registry.take_lease(client, "promote again")
    try:
        take_up_unfinished(client, registry, held)  # another's record a SIGKILL cut short
        try:
            with store_step("reading the champion"):  # nothing written yet
                _still_champion(client, registry, replaced)
        except ChampionMoved as moved:
            version = str(decision.version)
            _not_applied(client, registry.model_name, version, moved, promotion_run_id)
            raise
        # SIGTERM between these writes left "Champion since ..." on a version that never got
        # the alias: a signal waits until they are done, and is raised once the run has ended.
        with interrupt.deferred(release=False):
            _write_decision(client, registry, decision, replaced, promotion_run_id, held)
    finally:
        held.release()


def announce(client: MlflowClient, taken: Lease, pending: Pending) -> None:
    """Record on the registered model what a decision under ``taken`` is about to write,
    before its first write: the version, the alias, the version it replaces, the history
    line's tag, the run. SIGTERM and Ctrl-C wait until the writes are done and a store failure
    takes them back, but a SIGKILL (the OOM killer, a CI timeout, ``kill -9``) between them
    left a record that said, for good, what never happened: the version "Champion since ...",
    the old champion "replaced by" it, a history line for a move the alias never made. The
    next lease holder finds this and takes them back (``take_up_unfinished``).

    Only while ``taken`` is still held (``LeaseLost`` else): a holder slowed past its lease's
    end wrote over the pending record of the one that took the lease meanwhile, then deleted
    it as its own (``settle``) once its lease was found lost, and that one, killed after, left
    its half-written record with nothing naming it."""
    taken.check()
    value = json.dumps({"lease": taken.value, **pending}, sort_keys=True)
    client.set_registered_model_tag(taken.name, PENDING_TAG, value)


def settle(client: MlflowClient, taken: Lease) -> None:
    """Delete the pending record once the decision's record is whole (or wholly taken back),
    if it is still ``taken``'s: a holder slowed past its lease's end leaves the next holder's
    own. The store failing here is not raised: the record is whole, and a pending record left
    only has the next lease holder check that it is."""
    with contextlib.suppress(Exception):
        if (_pending(client, taken.name) or {}).get("lease") == taken.value:
            client.delete_registered_model_tag(taken.name, PENDING_TAG)


def _pending(client: MlflowClient, name: str) -> Pending | None:
    """The pending record on registered model ``name``; None if there is none, or if it is
    not one pricer wrote (edited by hand: nothing in it can be trusted to undo, and the next
    decision's own overwrites it)."""
    value = client.get_registered_model(name).tags.get(PENDING_TAG)
    try:
        found = json.loads(value) if value else None
    except ValueError:
        return None
    return found if _well_formed(found) else None


def _well_formed(found: object) -> bool:
    """Whether a parsed pending record has every field ``announce`` writes, each of the type
    it writes: with the keys alone checked, a value edited by hand (three aliases, a version
    given as a list) failed every promote and retire after with a traceback."""
    if not isinstance(found, dict) or found.get("kind") not in ("promotion", "retirement"):
        return False
    texts = ("lease", "run_id", "version", "alias", "history_key", "at")
    optional = ("replaced", "challenger", "outcome", "description")
    aliases = found.get("aliases")
    retired = found.get("retired")
    before = found.get("before")
    return (
        all(isinstance(found.get(key), str) for key in texts)
        and all(isinstance(found.get(key), str | None) for key in optional)
        and (
            aliases is None
            or (
                isinstance(aliases, list)
                and len(aliases) == 2
                and all(isinstance(alias, str | None) for alias in aliases)
            )
        )
        and (
            retired is None
            or (
                isinstance(retired, dict)
                and all(isinstance(v, str) for v in [*retired, *retired.values()])
            )
        )
        and (before is None or _well_formed_before(before))
        # Only as written: true, with the record to put back (a version holding an alias has
        # one); else a take-back marked "not applied" a version that holds its alias.
        and found.get(ALIAS_BEFORE, True) is True
        and (ALIAS_BEFORE not in found or before is not None)
    )


def _well_formed_before(before: object) -> bool:
    """Whether a pending record's ``before`` is of the shape ``_record_before`` writes: a
    description and decision tags only (put back on its word, a tag of any other name would
    be written on the version)."""
    if not isinstance(before, dict) or set(before) != {"tags", "description"}:
        return False
    tags = before["tags"]
    return (
        isinstance(before["description"], str)
        and isinstance(tags, dict)
        and all(key in DECISION_TAGS and isinstance(value, str) for key, value in tags.items())
    )


def take_up_unfinished(client: MlflowClient, registry: RegistrySettings, held: Lease) -> None:
    """Take back, or finish, the record of a decision (a promotion's or a retirement's) whose
    writer stopped half-way, found by the pending record it left (``announce``). Called by
    every lease holder before its own check and writes, while it holds ``held``.

    This process holds the lease, so the writer of any pending record but its own holds it no
    more: killed, its lease expired (or, had it released it, its pending record would have
    gone before); slowed past its lease's end (a stalled store), it stops at ``Lease.check``
    before its alias moves and takes back the same record itself, so every step here is one
    that may be made twice. Whether the decision held is the alias's to say: the record is
    written first and the alias moved last. One line says what was done. The pending record is
    deleted last: killed in here, the next holder takes it up again.
    """
    name = registry.model_name
    # Ctrl-C waits until the repair is done, then stops this promotion before its own writes.
    with interrupt.deferred(), store_step("taking up the record of a decision left half-way"):
        found = _pending(client, name)
        if found is None or found["lease"] == held.value:
            return
        # The aliases the stopped writer used: the repair is of its record, in its names.
        champion, challenger = found.get("aliases") or (None, None)
        theirs = replace(
            registry,
            champion_alias=champion or registry.champion_alias,
            challenger_alias=challenger or registry.challenger_alias,
        )
        if found["kind"] == "retirement":
            from pricer.tracking.retire import take_up_retirement  # it builds on this module

            said = take_up_retirement(client, theirs, found)
        else:
            said = _take_up_promotion(client, theirs, found)
        # Only the one taken up: a holder slowed past its lease's end in here deleted the
        # pending record of the one that took the lease meanwhile (and took this one up too).
        if _pending(client, name) == found:
            client.delete_registered_model_tag(name, PENDING_TAG)
        print(f"{name}: {said}", flush=True)


def _take_up_promotion(client: MlflowClient, registry: RegistrySettings, found: Pending) -> str:
    """Take back (or finish) a promotion's record its writer left half-way; what was done."""
    name = registry.model_name
    version, alias, run_id = str(found["version"]), str(found["alias"]), str(found["run_id"])
    stopped = f"promotion run {run_id} stopped"
    already = found.get(ALIAS_BEFORE)
    if _held(client, name, found):  # the store's error is raised
        # The alias moved: the decision held, and its record, written before the move, is
        # true. What follows the move is finished here, not only the pending record deleted:
        # it is cheap (an alias deletion and two descriptions, each written only while still
        # to be), and left, the versions the aliases left said "Champion since ..." for good.
        _after_the_move(client, registry, found)
        if already:  # killed after its line's tag, maybe before the description showed it
            _publish_history(client, name)
            when = f"after it recorded its decision ({alias} was version {version} already)"
        else:
            when = f"after {alias} moved to version {version}"
        return f"{stopped} {when}: the decision holds, and what its record still lacked was written"
    now_says = _take_back(client, name, found)
    if already:
        when = f"before it recorded its decision ({alias} was version {version} already)"
    else:
        when = f"before {alias} moved to version {version}"
    return f"{stopped} {when}: its half-written record was taken back ({now_says})"


def _take_back(client: MlflowClient, name: str, found: Pending) -> str:
    """Undo a stopped promotion's record as ``_withdraw`` undoes one the store failed in, each
    step only if still to be made; the store's error is raised (the pending record stays).
    What its version now says, for the line that tells the user: "is marked not applied" was
    said of a version deleted since, or one left with another decision's record."""
    version, run_id, at = str(found["version"]), str(found["run_id"]), str(found["at"])
    held = _existing_version(client, name, version)  # None: no record on it to take back
    now_says = f"version {version} is deleted"
    before = found.get("before")  # absent from a record an earlier pricer wrote
    if held is not None and before is not None:
        # It held an alias or a decision before (a challenger crowned, say): marked "not
        # applied", the registry said the challenger was not applied and lost its record.
        # Put back whatever this promotion wrote of it, or none (killed before its first write).
        _put_back(client, name, held, before)
        now_says = _keeps(version, before)
    elif held is not None:
        decided = held.tags.get("pricer.decision")
        # Written on by the stopped promotion (its run id is the version's first tag); else it
        # stopped before its first write, and only a version with no decision and no alias (a
        # new one, registered for it) is marked, as ``_not_applied`` marks one: a version that
        # holds another decision's record keeps it.
        touched = held.tags.get("pricer.promotion_run_id") == run_id
        marked = decided == "not applied" and (held.description or "").startswith("Not applied")
        if marked or touched or (decided is None and not held.aliases):
            now_says = f"version {version} is marked not applied"
        else:
            now_says = f"version {version} keeps the record it had, none of it this promotion's"
        if (touched or (decided is None and not held.aliases)) and not marked:
            for key, value in {
                "pricer.promotion_run_id": run_id,
                "pricer.decision": "not applied",
                "pricer.decided_at": at,
            }.items():
                client.set_model_version_tag(name, version, key, value)
            reason = (
                f"Not applied: the promotion stopped before its alias moved (promotion run "
                f"{run_id} stopped while it recorded this decision at {at}, killed or cut off "
                "from the store; the next promotion took its record back): no alias moved, "
                "promote again"
            )
            client.update_model_version(name, version, description=reason)
    if found["history_key"] in client.get_registered_model(name).tags:
        drop_history_line(client, name, str(found["history_key"]))
    if found.get("replaced") is not None:
        _drop_replaced_by(client, name, str(found["replaced"]), version)
    return now_says


def _record_before(found: ModelVersion) -> dict[str, Any] | None:
    """What ``found``'s record is before a decision writes over it, for a take-back to put
    back (``_put_back``): its decision tags and description. None for a version that holds no
    alias and no decision, or only "not applied" (registered for this promotion, or one whose
    decision was taken back before): a take-back marks it "not applied", as before."""
    decided = found.tags.get("pricer.decision")
    if not found.aliases and decided in (None, "not applied"):
        return None
    tags = {key: found.tags[key] for key in DECISION_TAGS if key in found.tags}
    return {"tags": tags, "description": found.description or ""}


def _put_back(client: MlflowClient, name: str, found: ModelVersion, before: Pending) -> None:
    """Give version ``found`` (as read now) its record ``before`` a decision (``_record_before``)
    again: its tags set back, those the decision added deleted, its description. Each write only
    while still to be made, so that a take-up made twice, or after ``_withdraw`` put back a part,
    changes nothing more."""
    version, tags = str(found.version), before["tags"]
    for key in DECISION_TAGS:
        if key in tags and found.tags.get(key) != tags[key]:
            client.set_model_version_tag(name, version, key, tags[key])
        elif key not in tags and key in found.tags:
            client.delete_model_version_tag(name, version, key)
    if (found.description or "") != before["description"]:
        client.update_model_version(name, version, description=before["description"])


def _keeps(version: str, before: Pending) -> str:
    """What a version whose record was put back (``_put_back``) says now, for the user's line."""
    decided = before["tags"].get("pricer.decision")
    had = f"its {decided} record" if decided else "the record it had"
    return f"version {version} keeps {had}"


def _not_applied(
    client: MlflowClient, name: str, version: str, moved: ChampionMoved, promotion_run_id: str
) -> None:
    """Say on ``version`` that its decision was not applied because the champion moved, with
    the tag and description a decision withdrawn for a store failure has (``_withdraw``).

    Registered for this promotion, it was otherwise left in the version list with neither, an
    unexplained version. Promoting its run again finds it (``register``), compares it with the
    new champion, and that decision's tags and description replace these. A version that holds
    an alias or another decision (another promotion of the same run, at once, decided it) is
    left as that promotion wrote it.
    """
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # The tags and the description together: a signal waits until all are written. A store
    # failing here too is not raised: the champion that moved is the error to tell, and true.
    with interrupt.deferred(release=False), contextlib.suppress(*STORE_ERRORS):
        found = client.get_model_version(name, version)
        if found.aliases or found.tags.get("pricer.decision") not in (None, "not applied"):
            return
        for key, value in {
            "pricer.decision": "not applied",
            "pricer.decided_at": now,
            "pricer.promotion_run_id": promotion_run_id,
        }.items():
            client.set_model_version_tag(name, version, key, value)
        client.update_model_version(name, version, description=f"Not applied: {moved}")


def _write_decision(
    client: MlflowClient,
    registry: RegistrySettings,
    decision: Decision,
    replaced: ModelVersion | None,
    promotion_run_id: str,
    taken: Lease,
) -> None:
    """``taken``: the lease the decision is written under, checked just before the alias
    moves."""
    name, version = registry.model_name, str(decision.version)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tags = {
        # First: a version that bears it was written on by this promotion, so that the next
        # lease holder takes back a record a SIGKILL cut short (``take_up_unfinished``) on it
        # only, never on a version whose record is another decision's.
        "pricer.promotion_run_id": promotion_run_id,
        "pricer.decision": decision.outcome,
        "pricer.decided_at": now,
    }
    if decision.comparison is not None and decision.champion_before is not None and replaced:
        tags |= {
            "pricer.compared_with_version": str(replaced.version),
            "pricer.compared_with_run_id": decision.champion_before.run_id,
            "pricer.compared_with_mae": f"{decision.champion_before.mae:.4f}",
            "pricer.p_value": f"{decision.comparison.test.p_value:.6f}",
            "pricer.mean_difference": f"{decision.comparison.test.mean_difference:.4f}",
        }
    alias = registry.champion_alias if decision.outcome == "champion" else registry.challenger_alias
    line = f"{now} {decision.outcome}: {decision.reason}"
    history_tag = history_key()  # known before it is written: a failure half-way is taken back
    # Read before anything is written, for the pending record: under the lease only a
    # promotion moves it, so it is the one the move below replaces.
    with store_step("reading the challenger"):  # nothing written yet
        challenger = client.get_registered_model(name).aliases.get(registry.challenger_alias)
    with store_step("reading the version's record"):  # nothing written yet
        found = client.get_model_version(name, version)
    # The record the version holds (a challenger crowned now, say), for a take-back to put
    # back; only where there is one, so that the pending record stays small.
    before = _record_before(found)
    # The alias pointing at the version already, it said "the decision held" from the first
    # write on: a store failure or a SIGKILL part-way left the version's record half the old
    # decision's, half this one's, for good. Its history line says instead (``_held``).
    already = alias in found.aliases
    pending = {
        "kind": "promotion",
        "run_id": promotion_run_id,
        "outcome": decision.outcome,
        "version": version,
        "alias": alias,
        "replaced": None if replaced is None else str(replaced.version),
        "challenger": None if challenger is None else str(challenger),
        "history_key": history_tag,
        "at": now,
        "aliases": [registry.champion_alias, registry.challenger_alias],
        **({} if before is None else {"before": before}),
        **({ALIAS_BEFORE: True} if already else {}),
    }
    try:
        # Before the first write: a SIGKILL from here to the alias's move left the version
        # "Champion since ...", the old champion "replaced by" it and a history line, all untrue
        # for good; the next lease holder reads this and takes them back.
        announce(client, taken, pending)
        # The version's own record inside the guard too: a 503 while it was written was the
        # store's traceback, and the version kept "Champion since ..." with no alias.
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        # A decision not applied (the champion moved, the store failed at the alias: below)
        # left its comparison on the version: crowned later as a first champion, it named a
        # champion and a p-value it was never compared with. A decision without a comparison
        # deletes them: the version's tags are this decision's alone.
        # A champion again after it was replaced: its "replaced by" tags said the champion had
        # been replaced (its description is rewritten below).
        # A retired one crowned again likewise said it was retired.
        crowned = decision.outcome == "champion"
        stale = [*COMPARISON_TAGS, *((*REPLACED_TAGS, *RETIRED_TAGS) if crowned else ())]
        held = found.tags  # read before the tags above, which the keys below are not
        for key in stale:
            if key in held and key not in tags:
                client.delete_model_version_tag(name, version, key)
        client.update_model_version(
            name, version, description=f"{alias.capitalize()} since {now}: {decision.reason}"
        )
        try:
            _still_champion(client, registry, replaced)
        except ChampionMoved as moved:  # the version's own record must not say it moved
            if before is None:
                client.set_model_version_tag(name, version, "pricer.decision", "not applied")
                client.update_model_version(name, version, description=f"Not applied: {moved}")
            else:  # marked so, a challenger crowned said it was not applied and lost its record
                _put_back(client, name, client.get_model_version(name, version), before)
            settle(client, taken)  # its record is whole: "not applied" and why, or the one it had
            raise
        # Only once the champion is known to be the one compared with: written before the
        # check, a promotion that lost the race named itself the successor of a champion
        # another replaced.
        if decision.outcome == "champion" and replaced is not None:
            client.set_model_version_tag(
                name, replaced.version, "pricer.replaced_by_version", version
            )
            client.set_model_version_tag(name, replaced.version, "pricer.replaced_at", now)
        if already:
            # The history line is the write after which the decision holds: a holder slowed
            # past its lease's end must not make it. The alias, here already, is not written:
            # written after the line by such a holder, it took back the alias another holder
            # had moved meanwhile.
            taken.check()
            append_history(client, name, line, history_tag)
        else:
            append_history(client, name, line, history_tag)
            taken.check()  # a holder slowed past its lease's end would race another
            client.set_registered_model_alias(name, alias, version)
    except ChampionMoved:  # its own record says why; nothing else was written
        raise
    except Exception as error:
        # The store failed before the alias moved (a server's 503, SQLite's "database is
        # locked"): left as written, the version said "Champion since ...", the history line
        # said it replaced the champion, and the champion said it was replaced, none of it true.
        if _held_now(client, name, pending):  # the record is true and whole
            # The pending record stays: the next lease holder finishes what follows.
            if already and isinstance(error, STORE_ERRORS):  # its history's description
                raise applied_but(registry, decision, "the promotion history", error) from error
            raise
        withdrawn = _withdraw(client, name, version, replaced, history_tag, error, before, already)
        if withdrawn:
            settle(client, taken)  # else left for the next lease holder to take back
        if not isinstance(error, STORE_ERRORS):
            raise  # a bug, not the store: its traceback
        failed = f"while this decision was recorded ({type(error).__name__}: {one_line(error)})"
        if not withdrawn:
            # "Its record was taken back" was said of one the store kept part of, or whose
            # history line, written unseen, has the next lease holder finish it.
            raise StoreUnreachable(
                f"the tracking store failed {failed}: no alias moved, and the store failed again "
                "while its record was taken back: the next promote or retire takes up what is "
                "left of it; promote again once the store answers"
            ) from error
        kept = "" if before is None else f" ({_keeps(version, before)})"
        raise StoreUnreachable(
            f"the tracking store failed {failed}: no alias moved and its record was taken back"
            f"{kept}; promote again"
        ) from error
    try:
        _after_the_move(client, registry, pending)
    except STORE_ERRORS as error:  # the alias moved: the decision holds, say so
        # The pending record stays (the store failing, it could not be deleted anyway): the
        # next lease holder finishes what follows the move.
        raise applied_but(registry, decision, "the versions the aliases left", error) from error
    settle(client, taken)  # the whole record is written: nothing for another to take up


def _after_the_move(client: MlflowClient, registry: RegistrySettings, pending: Pending) -> None:
    """What follows the alias: the challenger a new champion voids, and the descriptions of
    the versions the aliases left. ``pending``: the decision's pending record (``announce``),
    whose holder, or the next lease holder after a SIGKILL, writes this; each write is made
    only while still to be made, so writing it twice changes nothing."""
    name, version, outcome = registry.model_name, str(pending["version"]), pending.get("outcome")
    replaced, challenger = pending.get("replaced"), pending.get("challenger")
    now = str(pending["at"])
    # A challenger lost to the champion it was compared with: a new champion voids that.
    if (
        outcome == "champion"
        and registry.challenger_alias in client.get_registered_model(name).aliases
    ):
        client.delete_registered_model_alias(name, registry.challenger_alias)
    # The versions the aliases left: "Champion since ..." stayed on each, and the version list
    # showed two champions, and challengers no alias named any more.
    if outcome == "champion" and replaced is not None:
        why = f"replaced by version {version}"
        held_until(client, name, str(replaced), registry.champion_alias, now, why)
    if challenger is not None and str(challenger) != version:
        why = (
            f"version {version} replaced the champion it was compared with"
            if outcome == "champion"
            else f"replaced as {registry.challenger_alias} by version {version}"
        )
        held_until(client, name, str(challenger), registry.challenger_alias, now, why)


def held_until(
    client: MlflowClient, name: str, version: str, alias: str, now: str, why: str
) -> None:
    """Turn "<Alias> since <date>: <reason>" on a version the alias left into "<Alias> from
    <date> until <now> (<why>): <reason>". A description promote did not write is left alone,
    and a version deleted since has none."""
    found = _existing_version(client, name, version)
    old = "" if found is None else found.description or ""
    prefix = f"{alias.capitalize()} since "
    if not old.startswith(prefix):
        return
    since, _, reason = old.removeprefix(prefix).partition(": ")
    held = f"{alias.capitalize()} from {since} until {now} ({why}): {reason}"
    client.update_model_version(name, version, description=held)


def _held(client: MlflowClient, name: str, pending: Pending) -> bool:
    """Whether the decision of ``pending`` (``announce``) holds: its alias points at its
    version, the alias being moved after the rest of its record is written; or, if the version
    held that alias before (``ALIAS_BEFORE``), its history line is there, the last write of its
    record. The store's error is raised."""
    model = client.get_registered_model(name)
    if pending.get(ALIAS_BEFORE):
        return str(pending["history_key"]) in model.tags
    return str(model.aliases.get(str(pending["alias"]))) == str(pending["version"])


def _held_now(client: MlflowClient, name: str, pending: Pending) -> bool:
    """``_held``, False if the store does not say: the record is withdrawn, to be safe (its
    history line first, ``_withdraw``)."""
    try:
        return _held(client, name, pending)
    except Exception:  # the store that just failed
        return False


def _withdraw(
    client: MlflowClient,
    name: str,
    version: str,
    replaced: ModelVersion | None,
    key: str,
    error: Exception,
    before: Pending | None = None,
    already: bool = False,
) -> bool:
    """Undo the record of a decision whose alias did not move, as far as the store lets: the
    version says "not applied" and why (or, given the record it held ``before``, a challenger
    crowned say, holds that again: ``_put_back``), the champion loses its "replaced by" tags
    and the history its line (tag ``key``). Each step is tried on its own, and the store's
    error is still raised; whether every step was made (if not, the pending record is left for
    the next lease holder to take the rest back).

    ``already``: the version held the decision's alias before it (``ALIAS_BEFORE``), so the
    history line says whether the decision held. It goes first, and the version's record is
    put back only once it is gone: put back beside the line, the next lease holder read the
    decision as held and left the version the old record under the new decision's line."""
    reason = (
        f"Not applied: the store failed while recording this decision ({type(error).__name__}: "
        f"{one_line(error)}); no alias moved, promote again"
    )
    if isinstance(error, LeaseLost):  # the store did not fail: the lease ran out
        reason = f"Not applied: {error}"
    steps: list[Callable[[], object]] = (
        [
            lambda: client.set_model_version_tag(name, version, "pricer.decision", "not applied"),
            lambda: client.update_model_version(name, version, description=reason),
        ]
        if before is None
        # Read at the step: the decision's writes on it may have been made or not.
        else [lambda: _put_back(client, name, client.get_model_version(name, version), before)]
    )
    if already and before is not None:
        put_back = steps.pop()

        def once_the_line_is_gone() -> None:
            if key in client.get_registered_model(name).tags:  # its dropping failed
                raise RuntimeError("the decision's history line is still there")
            put_back()

        steps = [lambda: drop_history_line(client, name, key), once_the_line_is_gone]
    else:
        steps.append(lambda: drop_history_line(client, name, key))
    if replaced is not None:
        steps.append(lambda: _drop_replaced_by(client, name, str(replaced.version), version))
    return every_step(steps)


def every_step(steps: list[Callable[[], object]]) -> bool:
    """Try each step of an undo, one failing not stopping the others; whether all succeeded."""
    done = True
    for step in steps:
        try:
            step()
        except Exception:  # the store that just failed: the next lease holder tries again
            done = False
    return done


def _drop_replaced_by(client: MlflowClient, name: str, version: str, successor: str) -> None:
    """Delete the "replaced by" tags from ``version`` if they name ``successor`` (and it is
    still there)."""
    found = _existing_version(client, name, version)
    tags = {} if found is None else found.tags
    if tags.get("pricer.replaced_by_version") == successor:
        for key in REPLACED_TAGS:
            if key in tags:
                client.delete_model_version_tag(name, version, key)


def _still_champion(
    client: MlflowClient, registry: RegistrySettings, compared: ModelVersion | None
) -> None:
    """Raise ``ChampionMoved`` unless the champion alias is where the decision found it."""
    now = champion_version(client, registry.model_name, registry.champion_alias)
    before = None if compared is None else str(compared.version)
    if (None if now is None else str(now.version)) != before:
        alias = registry.champion_alias
        raise ChampionMoved(
            f"{alias} moved to version {now.version if now else 'none'} while this promotion "
            f"compared against {f'version {before}' if before else 'none'} (another promotion "
            f"at once): no alias moved; promote again to compare with the new {alias}"
        )


def append_history(client: MlflowClient, name: str, line: str, key: str | None = None) -> str:
    """Add ``line`` to the promotion history as ``key`` (a new ``history_key()`` if None),
    newest first, oldest lines cut to fit; the key, for ``drop_history_line``.

    The description alone was a read-modify-write that MLflow cannot make atomic: three
    promotions at once each read it, added their line and wrote it back, and it kept two of
    the three lines. Each line is therefore first a registered-model tag of its own
    (``pricer.history.<time>.<id>``: one write, which no other writer's can undo), and the
    description is a view of those tags (``_publish_history``).
    """
    key = key or history_key()
    _keep_earlier_history(client, name)
    client.set_registered_model_tag(name, key, line)
    _publish_history(client, name)
    return key


def history_key() -> str:
    """A new history line's tag: the time first, so that the keys sort as the lines do."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{HISTORY_TAG}{stamp}.{uuid.uuid4().hex[:12]}"


def drop_history_line(client: MlflowClient, name: str, key: str) -> None:
    """Remove the line ``append_history`` added as ``key`` (if it did), leaving lines others
    added."""
    _keep_earlier_history(client, name)  # else the view of the tags would drop those lines
    client.delete_registered_model_tag(name, key)
    _publish_history(client, name)


def _keep_earlier_history(client: MlflowClient, name: str) -> None:
    """Keep the lines a description holds from before the history's tags (written by an
    earlier pricer, or by hand), once, in one tag, so that the view of the tags keeps them.

    Written before this writer's first line tag, and only while the tag is missing: a
    description that shows any line tag was written after its writer had written this one,
    so a writer that reads such a description reads this tag with it (MLflow reads a model
    with its tags), and never takes another's line for an earlier one.
    """
    model = client.get_registered_model(name)
    if EARLIER_HISTORY_TAG in model.tags:
        return
    old = model.description or ""
    earlier = [row for row in old.splitlines() if row and row != HISTORY_TITLE]
    try:
        client.set_registered_model_tag(name, EARLIER_HISTORY_TAG, "\n".join(earlier))
    except Exception:
        # Another writer set it at the same moment: MLflow writes a tag as a read, then an
        # insert, and the second insert of one key fails (SQLite's or PostgreSQL's unique
        # constraint; 1 run in 4 of five writers at once). Its value is this one's: both read
        # the description before any line tag was written.
        if EARLIER_HISTORY_TAG not in client.get_registered_model(name).tags:
            raise


def _history_view(tags: Mapping[str, str]) -> tuple[str, list[str]]:
    """The description the history tags make, and the line tags too old to fit in it."""
    keyed = sorted(
        ((key, value) for key, value in tags.items() if key.startswith(HISTORY_TAG)),
        reverse=True,  # newest first: the keys start with the time
    )
    earlier = [row for row in tags.get(EARLIER_HISTORY_TAG, "").splitlines() if row]
    lines = [*(f"- {value}" for _, value in keyed), *earlier]
    if not lines:  # a first champion's line taken back: no history, as before it
        return "", []
    while len("\n".join([HISTORY_TITLE, *lines])) > DESCRIPTION_LIMIT and len(lines) > 1:
        lines.pop()
    cut = [key for key, _ in keyed[len(lines) :]]
    return "\n".join([HISTORY_TITLE, *lines])[:DESCRIPTION_LIMIT], cut


def _publish_history(client: MlflowClient, name: str) -> None:
    """Write the view of the history tags into the description until a read shows it there.

    A writer that read the tags before another's line tag may write its view after the
    other's: every writer reads the description back with the tags, and writes the view
    again while the two differ. The last description written is then read back by its
    writer against every tag written before; a tag written after it is read by its own
    writer, who writes the view again. Tags too old to fit are deleted (their lines were
    cut from the view, which they no longer change).
    """
    for _ in range(HISTORY_ATTEMPTS):
        model = client.get_registered_model(name)
        view, cut = _history_view(model.tags)
        if (model.description or "") == view:
            for key in cut:
                client.delete_registered_model_tag(name, key)
            return
        client.update_registered_model(name, description=view)
    # Writers still racing after that many rounds: every line is in its tag, and the next
    # decision's writer writes the view of them all.


def _log_decision(decision: Decision) -> None:
    mlflow.set_tags(
        {
            "pricer.decision": decision.outcome,
            "pricer.registered_version": str(decision.version),
            **(
                {"pricer.champion_run_id": decision.champion_before.run_id}
                if decision.champion_before
                else {}
            ),
        }
    )
    metrics = {}
    if decision.champion_before is not None:
        metrics["champion.mae"] = decision.champion_before.mae
    if decision.comparison is not None:
        t = decision.comparison.test
        metrics |= {
            "p_value": t.p_value,
            "mean_difference": t.mean_difference,
            "mean_difference_ci_low": t.ci_low,
            "mean_difference_ci_high": t.ci_high,
            "compared_items": float(t.n),
        }
    mlflow.log_metrics(metrics)
    mlflow.log_text(decision.reason, "promotion/decision.txt")
