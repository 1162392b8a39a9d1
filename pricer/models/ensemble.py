"""The ensemble family: member pricers combined by linear stacking.

``fit`` carves a validation split out of the training items (``validation_fraction``,
``random_state``), fits a copy of each member on the rest, and fits the stacker on the
members' validation predictions: non-negative weights plus an intercept, on log prices when
``log_space`` (prices span three orders of magnitude; the blend becomes a weighted geometric
mean). Then every member is refitted on all training items. Test items are never seen by the
stacker: it is fitted inside ``fit`` only, from the training items passed there.

Members are Hydra-instantiated pricers (``conf/model/ensemble.yaml`` nests their configs) or
``LoggedPricer``s: pricers fitted elsewhere, such as models logged to MLflow (the tracking
layer loads them: ``pricer.tracking.model.logged_pricer``). A logged member is not refitted;
if it was trained on these same training items its validation predictions are in-sample and
the stacker will trust it too much: ``fit`` warns, counting them by the fingerprints of its
training items that the logged model keeps (``seen_by_logged_members``). A run refuses to score
an ensemble on test items a logged member was trained on (``pricer.experiment``).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.linear_model import LinearRegression
from sklearn.utils import Tags, get_tags
from sklearn.utils.validation import check_is_fitted

from pricer.errors import ConfigError, UserError
from pricer.identity import comparable, fingerprints
from pricer.models.base import (
    INPUT_COLUMNS,
    MembersParams,
    Pricer,
    PriceReport,
    as_items,
    price_range,
    training_prices,
    within,
)
from pricer.models.features import NoVocabulary
from pricer.models.llm.answering import (
    ANSWERED_BY,
    ANSWERS_NOT_IN_CATALOGUE,
    FIT_OTHER_MODEL_ANSWERS,
    OTHER_MODEL_ANSWERS,
    answered_by,
)
from pricer.models.llm.catalogue import UNKNOWN
from pricer.models.llm.failures import (
    NO_REASON,
    RUN_TOTALS,
    add_interrupted_stats,
    attach_interrupted_answers,
    failure_summary,
)

log = logging.getLogger(__name__)

# A member's figures from pricing the validation split at fit, logged as
# ``ensemble.<member>.fit.<figure>``: what its LLM calls there cost (not its failures, which
# the stacker skips and the test items' own failure counts do not include), and how many of
# their replies named another model than the one asked for: the stacker's weights were
# fitted on those answers, so a substitute there shapes every price the ensemble gives. An
# interrupted run's totals (``RUN_TOTALS``) count them too.
FIT_FIGURES = (
    *(f"llm.{figure}" for figure in RUN_TOTALS),
    "llm.failures",
)


class LoggedPricer(Pricer):
    """A pricer fitted elsewhere (``source`` says where: a model URI), used as it is.

    Frozen the way ``sklearn.frozen.FrozenEstimator`` is: ``fit`` changes nothing and
    ``clone`` returns the same object, so the ensemble never refits or unfits it.
    """

    def __init__(self, pricer: Pricer, source: str, trained_on: np.ndarray | None = None) -> None:
        self.pricer = pricer
        self.source = source
        # Fingerprints of the items it was trained on (``pricer.identity``); None for a model
        # logged before pricer kept them.
        self.trained_on = trained_on

    def __sklearn_clone__(self) -> LoggedPricer:
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> LoggedPricer:
        return self

    def __sklearn_tags__(self) -> Tags:
        """The logged pricer's own tags (a logged LLM stays non-deterministic), but already
        fitted and needing no prices: ``fit`` changes nothing."""
        tags = copy.deepcopy(get_tags(self.pricer))
        tags.requires_fit = False
        tags.target_tags.required = False
        return tags

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_report(X).prices

    def predict_report(self, X: pd.DataFrame) -> PriceReport:
        return self.pricer.predict_report(as_items(X)[list(INPUT_COLUMNS)])


class UnpricedValidation(UserError, ValueError):
    """Too few of the stacker's validation items were priced by every member to fit it."""


def _to_features(prices: np.ndarray, log_space: bool) -> np.ndarray:
    return np.log1p(np.clip(prices, 0.0, None)) if log_space else prices


class EnsemblePricer(MembersParams, Pricer):
    """Stacks ``members`` (name -> pricer) with non-negative weights and an intercept."""

    def __init__(
        self,
        members: Mapping[str, Pricer],
        validation_fraction: float,
        log_space: bool,
        random_state: int,
    ) -> None:
        self.members = members
        self.validation_fraction = validation_fraction
        self.log_space = log_space
        self.random_state = random_state

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        # Its prices blend its members': as repeatable as the least repeatable (an LLM's).
        tags.non_deterministic = any(
            get_tags(member).non_deterministic
            for member in (self.members or {}).values()
            if member is not None
        )
        return tags

    def llm_servers(self) -> dict[str, str]:
        """The server each LLM member calls (its base URL, credentials dropped), by member
        name, a logged member's included; empty when no member calls one."""
        return {name: member.server() for name, member in self._llm_members().items()}

    def llm_models(self) -> dict[str, str]:
        """The model each LLM member asks for, by member name (as ``llm_servers``)."""
        return {name: str(member.model) for name, member in self._llm_members().items()}

    def _llm_members(self) -> dict[str, Pricer]:
        """The members that call an LLM server (they have ``server()``), unwrapped if logged."""
        members: dict[str, Pricer] = {}
        for name, member in (self.members or {}).items():
            inner = member.pricer if isinstance(member, LoggedPricer) else member
            if callable(getattr(inner, "server", None)):
                members[name] = inner
        return members

    def _active_members(self) -> dict[str, Pricer]:
        """The members to fit: one set to null (``model.members.xgboost=null``) is left out,
        as a stack's is; it was cloned, a TypeError traceback once the run had opened."""
        return {name: member for name, member in (self.members or {}).items() if member is not None}

    def _validate(self, n_items: int) -> None:
        if not self._active_members():
            raise ConfigError("an ensemble needs at least one member that is not null")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction}"
            )
        if n_items < 4:
            raise ValueError(f"an ensemble needs at least 4 training items, got {n_items}")

    def _warn_in_sample(self, items: pd.DataFrame) -> None:
        """Say which logged members were trained on these training items: the stacker sees
        their in-sample prices there and trusts them too much."""
        for name, count in self.seen_by_logged_members(items).items():
            if count is None:
                log.warning(
                    "member %s (%s) is a logged model that does not say what it was trained "
                    "on: if on these training items, the stacker sees its in-sample prices",
                    name,
                    self.members[name].source,  # type: ignore[attr-defined]
                )
            elif count:
                log.warning(
                    "member %s (%s) was trained on %s of these %s training items: the stacker "
                    "sees its in-sample prices for them and will trust it too much",
                    name,
                    self.members[name].source,  # type: ignore[attr-defined]
                    f"{count:,}",
                    f"{len(items):,}",
                )

    def seen_by_logged_members(self, items: pd.DataFrame) -> dict[str, int | None]:
        """For each logged member: how many of ``items`` it was trained on (None: unknown)."""
        logged = {n: m for n, m in self.members.items() if isinstance(m, LoggedPricer)}
        if not any(member.trained_on is not None for member in logged.values()):
            return dict.fromkeys(logged)
        prints = fingerprints(as_items(items)["text"])  # once, for every member (5.8 s at 400k)
        return {
            name: None if m.trained_on is None else int(np.isin(prints, m.trained_on).sum())
            for name, m in logged.items()
        }

    def validation_split(self, n_items: int) -> tuple[np.ndarray, np.ndarray]:
        """Row positions of the member-fitting part and of the stacker's validation part."""
        order = np.random.default_rng(self.random_state).permutation(n_items)
        n_valid = min(n_items - 2, max(2, round(self.validation_fraction * n_items)))
        return np.sort(order[n_valid:]), np.sort(order[:n_valid])

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> EnsemblePricer:
        items = as_items(X).reset_index(drop=True)
        prices = training_prices(items, y)
        self._validate(len(items))
        self._warn_in_sample(items)
        fit_rows, valid_rows = self.validation_split(len(items))
        # A validation item's twin (its text, however spaced or cased) among the members'
        # training items is the item itself: a frontier_rag member was shown it, price
        # included, as its nearest example, and the stacker trusted that member for it.
        texts = comparable(items["text"])
        fit_rows = fit_rows[~texts.iloc[fit_rows].isin(set(texts.iloc[valid_rows])).to_numpy()]
        names = list(self._active_members())
        reports: dict[str, PriceReport] = {}
        try:
            for name in names:
                with _member_named(name):
                    reports[name] = (
                        clone(self.members[name])
                        .fit(items.iloc[fit_rows], prices[fit_rows])
                        .predict_report(items.iloc[valid_rows])
                    )
            predictions = np.column_stack(
                [np.asarray(reports[n].prices, dtype=float) for n in names]
            )
            # What pricing the validation split cost an LLM member: paid at fit, once per run.
            self.fit_stats_ = {
                f"ensemble.{name}.fit.{key}": float(value)
                for name, report in reports.items()
                for key, value in report.stats.items()
                if key in FIT_FIGURES
            }
            # ... and the models its replies there named (``ensemble.<member>.fit.llm.answered_by``)
            self.fit_facts_ = _fit_facts(reports)
            truth = prices[valid_rows]
            usable = np.isfinite(predictions).all(axis=1)
            if usable.sum() < 2:
                priced = ", ".join(
                    f"{name} {int(np.isfinite(predictions[:, i]).sum())}"
                    for i, name in enumerate(names)
                )
                # Why, where a member says: an LLM member whose key the server refused, or
                # whose server failed every call, read as a member to leave out.
                reasons = "".join(
                    f"; {name}: {why}"
                    for name, report in reports.items()
                    if (why := failure_summary(report.stats)) != NO_REASON
                )
                raise UnpricedValidation(
                    f"only {int(usable.sum())} of the {len(valid_rows)} validation items (training "
                    f"items held out to fit the stacker) have a price from every member (priced: "
                    f"{priced}{reasons}); the stacker needs at least 2: leave out a member that "
                    "prices too few of the training items (a human's guesses cover the exported "
                    "evaluation items only), or fix what failed its calls"
                )
            stacker = LinearRegression(positive=True).fit(
                _to_features(predictions[usable], self.log_space),
                _to_features(truth[usable], self.log_space),
            )
            self.weights_ = dict(zip(names, stacker.coef_.astype(float), strict=True))
            self.intercept_ = float(stacker.intercept_)
            self.validation_mae_ = {
                name: float(np.mean(np.abs(predictions[usable, i] - truth[usable])))
                for i, name in enumerate(names)
            }
            self.validation_items_ = int(usable.sum())
            self.price_range_ = price_range(prices)
            refitted = {}  # set whole, so that a refit that fails leaves no fitted ensemble
            for name in names:
                with _member_named(name):
                    refitted[name] = clone(self.members[name]).fit(items, prices)
            self.members_ = refitted
        except KeyboardInterrupt as interrupt:  # SIGTERM or Ctrl-C (pricer.interrupt)
            # The members that had answered before the one cut short (or all of them, cut
            # while refitting): in the record too, their names and what their calls did and
            # cost.
            _attach_answers(interrupt, _fit_facts(reports))
            add_interrupted_stats(interrupt, (report.stats for report in reports.values()))
            raise
        return self

    def combine(self, predictions: np.ndarray) -> np.ndarray:
        """Stacked prices from one column of member predictions per member (NaN if any is)."""
        weights = np.array([self.weights_[name] for name in self.members_])
        stacked = self.intercept_ + _to_features(predictions, self.log_space) @ weights
        prices = np.expm1(stacked) if self.log_space else stacked
        return within(prices, getattr(self, "price_range_", None))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_report(X).prices

    def predict_report(self, X: pd.DataFrame) -> PriceReport:
        check_is_fitted(self, "members_")
        items = as_items(X)
        stats: dict[str, float] = {
            "ensemble.intercept": self.intercept_,
            "ensemble.validation_items": float(self.validation_items_),
        }
        columns = []
        member_stats: list[dict[str, float]] = []
        # The models that answered at fit count as the test items' do: the stacker's weights
        # came from their answers, and a proxy that substituted only there went unrecorded.
        facts: dict[str, str] = dict(getattr(self, "fit_facts_", {}))
        try:
            for name, member in self.members_.items():
                report = member.predict_report(items)
                columns.append(np.asarray(report.prices, dtype=float))
                stats[f"ensemble.weight.{name}"] = self.weights_[name]
                stats[f"ensemble.validation_mae.{name}"] = self.validation_mae_[name]
                stats |= {f"ensemble.{name}.{key}": value for key, value in report.stats.items()}
                member_stats.append(report.stats)
                facts |= {f"ensemble.{name}.{key}": value for key, value in report.facts.items()}
        except KeyboardInterrupt as interrupt:  # SIGTERM or Ctrl-C (pricer.interrupt)
            # The members that had answered, at fit and before the one cut short: in the
            # record too, as they would be in a finished run's, names and figures. The calls
            # at fit are this pass's to add (each pass reports them), and the run adds the
            # passes that finished before this one without them (pricer.experiment).
            _attach_answers(interrupt, facts)
            add_interrupted_stats(interrupt, [*self.fit_batches(), *member_stats])
            raise
        fit_stats = getattr(self, "fit_stats_", {})  # absent from ensembles logged before it
        stats |= fit_stats | _llm_totals(member_stats, fit_stats)
        if any(key.endswith(ANSWERED_BY) for key in facts):  # the ensemble's own, as llm.* are
            facts[ANSWERED_BY] = answered_by(answering_models(facts))
        return PriceReport(self.combine(np.column_stack(columns)), stats, facts)

    def fit_batches(self) -> list[dict[str, float]]:
        """Each member's figures from pricing the validation split at fit (``FIT_FIGURES``)
        as its report gave them (``llm.<figure>``); none for an ensemble logged before."""
        fit_stats = getattr(self, "fit_stats_", {})
        return [
            {
                key.removeprefix(prefix): value
                for key, value in fit_stats.items()
                if key.startswith(prefix)
            }
            for prefix in (f"ensemble.{name}.fit." for name in self._active_members())
        ]


@contextmanager
def _member_named(name: str) -> Iterator[None]:
    """A member's empty vocabulary named with the member: its min_df is the member's setting,
    and the ensemble has several."""
    try:
        yield
    except NoVocabulary as error:
        raise NoVocabulary(f"member {name}: {error}") from None


def answering_models(facts: Mapping[str, str]) -> list[str]:
    """The models an ensemble's members' replies named (``ensemble.<member>[.fit].llm.
    answered_by`` facts), at fit and after, each tag split back into its names."""
    names: list[str] = []
    for key, value in facts.items():
        # A member's tag is its names joined; a bounded one's "b (+3 more)" stays one name.
        if key.startswith("ensemble.") and key.endswith(f".{ANSWERED_BY}") and value != UNKNOWN:
            names += value.split(", ")
    return names


def _fit_facts(reports: Mapping[str, PriceReport]) -> dict[str, str]:
    """The members' facts from pricing the validation split at fit, under
    ``ensemble.<member>.fit.``."""
    return {
        f"ensemble.{name}.fit.{key}": value
        for name, report in reports.items()
        for key, value in report.facts.items()
    }


def _attach_answers(interrupt: BaseException, facts: Mapping[str, str]) -> None:
    """Put the models named in members' ``facts`` on an interrupt (``pricer.models.llm.
    failures``); nothing without one: an ensemble of classical members names no model."""
    if names := answering_models(facts):
        attach_interrupted_answers(interrupt, names)


def _llm_totals(
    member_stats: list[dict[str, float]], fit_stats: Mapping[str, float]
) -> dict[str, float]:
    """The ensemble's own ``llm.*`` figures, summed over its LLM members (none without one).

    The trade-off reads a run's ``llm.cost_per_1k_items_usd`` for its token cost: without
    these an ensemble with an LLM member counted as paying none. The members' calls at fit
    (``llm.fit_cost_usd``) are a one-off cost, amortised over the evaluated items as fit
    seconds are. Each member's costs are at the rates of the models that answered it; one
    answered by a model the catalogue has no price for makes the sums NaN: unknown, never $0
    (``llm.answers_not_in_catalogue`` counts those answers), and so does one whose replies came
    without usage (``llm.answers_without_usage``). No latency:
    members price one after another, so the batch time per item is the honest figure.
    """
    llm = [report for report in member_stats if any(key.startswith("llm.") for key in report)]
    if not llm:
        return {}

    def total(key: str) -> float:
        return float(sum(report.get(key, math.nan) for report in llm))

    def at_fit(figure: str) -> float:
        return float(sum(v for k, v in fit_stats.items() if k.endswith(f".fit.llm.{figure}")))

    return {
        "llm.calls": total("llm.calls"),
        "llm.cost_usd": total("llm.cost_usd"),
        "llm.cost_per_1k_items_usd": total("llm.cost_per_1k_items_usd"),
        "llm.fit_calls": at_fit("calls"),
        "llm.fit_cost_usd": at_fit("cost_usd"),
        "llm.spent_usd": total("llm.spent_usd") + at_fit("spent_usd"),
        # Every reader of a run's count (a leaderboard's course figure and note, promote's
        # and a champion's note, the registry's version tags) asks whether another model's
        # answers shaped its figures: the stacker's weights came from those at fit, so they
        # count; llm.fit_answers_from_other_model says how many of them were at fit.
        OTHER_MODEL_ANSWERS: total(OTHER_MODEL_ANSWERS) + at_fit("answers_from_other_model"),
        FIT_OTHER_MODEL_ANSWERS: at_fit("answers_from_other_model"),
        "llm.answers_without_model": total("llm.answers_without_model"),
        # Why llm.cost_usd or llm.fit_cost_usd is NaN: answers whose model has no catalogue
        # price, in either pass (a substitute's at fit leaves the test items' cost known).
        ANSWERS_NOT_IN_CATALOGUE: total(ANSWERS_NOT_IN_CATALOGUE)
        + at_fit("answers_not_in_catalogue"),
        # ... or replies that came without usage, billed for tokens nobody counted.
        "llm.answers_without_usage": total("llm.answers_without_usage")
        + at_fit("answers_without_usage"),
    }
