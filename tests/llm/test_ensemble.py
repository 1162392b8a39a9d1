"""The ensemble: stacking weights from a validation split of the training items only."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from pricer.errors import UserError
from pricer.experiment import run_family
from pricer.models.base import Pricer
from pricer.models.constant import ConstantPricer
from pricer.models.ensemble import EnsemblePricer, LoggedPricer
from pricer.models.features import NoVocabulary
from pricer.models.tfidf_ridge import TfidfRidgePricer
from pricer.settings import ConfigError, check_arguments
from tests.conftest import compose_config
from tests.llm.conftest import ensemble_config

SEEN: dict[str, list[tuple[str, list[str]]]] = {}  # spy tag -> (call, item texts)


class SpyPricer(Pricer):
    """Records every item text it is fitted on or asked to price; prices the mean."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> SpyPricer:
        SEEN.setdefault(self.tag, []).append(("fit", list(X["text"])))
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        SEEN.setdefault(self.tag, []).append(("predict", list(X["text"])))
        return np.full(len(X), self.mean_)


def ridge_and(llm: Pricer) -> EnsemblePricer:
    """A ridge and ``llm`` stacked on a 30% validation split in log space: the smallest
    ensemble with an LLM member, whose calls at fit are the validation split's."""
    return EnsemblePricer(
        {"ridge": ridge(), "mini": llm}, validation_fraction=0.3, log_space=True, random_state=0
    )


def ridge() -> TfidfRidgePricer:
    return TfidfRidgePricer(
        max_features=2000,
        ngram_max=1,
        min_df=1,
        sublinear_tf=True,
        alpha=1.0,
        hand_features=False,
        price_weight_power=0.0,
        log_target=True,
        random_state=0,
    )


def ensemble(members: dict[str, Pricer], **overrides: object) -> EnsemblePricer:
    settings = {"validation_fraction": 0.3, "log_space": True, "random_state": 0}
    return EnsemblePricer(members=members, **{**settings, **overrides})


@pytest.fixture
def data(make_items):
    return make_items(200, seed=0), make_items(80, seed=1, start=1000)


def mae(prices: np.ndarray, truth: pd.Series) -> float:
    return float(np.mean(np.abs(prices - truth.to_numpy())))


def test_stacker_sees_validation_predictions_of_training_items_only(data) -> None:
    train, test = data
    model = ensemble({"spy": SpyPricer("stack"), "ridge": ridge()})
    SEEN.clear()
    model.fit(train, train["price"])
    calls = SEEN["stack"]
    assert [call for call, _ in calls] == ["fit", "predict", "fit"]
    (_, fit_part), (_, valid_part), (_, refit) = calls
    assert not set(fit_part) & set(valid_part)  # members never priced what they learned
    assert set(fit_part) | set(valid_part) == set(train["text"]) == set(refit)
    assert model.validation_items_ == len(valid_part) == round(0.3 * len(train))

    weights = dict(model.weights_)
    report = model.predict_report(test)
    assert SEEN["stack"][-1] == ("predict", list(test["text"]))
    assert model.weights_ == weights  # pricing the test items changes nothing fitted
    assert report.stats["ensemble.weight.spy"] == weights["spy"]
    assert report.stats["ensemble.weight.ridge"] == weights["ridge"]
    assert "ensemble.intercept" in report.stats


def test_members_are_not_fitted_on_a_twin_of_a_validation_item(data) -> None:
    # A validation item's twin (its text, other case or spacing) among the members' training
    # items is that item: a frontier_rag member showed it as its own example, price included.
    train, _ = data
    twins = train.head(60).assign(text=lambda frame: "  " + frame["text"].str.upper())
    model = ensemble({"spy": SpyPricer("twins"), "ridge": ridge()})
    SEEN.clear()
    model.fit(pd.concat([train, twins], ignore_index=True), pd.concat([train, twins])["price"])
    (_, fit_part), (_, valid_part), _ = SEEN["twins"]
    valid = {text.strip().lower() for text in valid_part}
    assert len(valid & {t.strip().lower() for t in twins["text"]}) >= 5  # twins were split
    assert not valid & {text.strip().lower() for text in fit_part}


@pytest.mark.parametrize("log_space", [True, False])
def test_ensemble_beats_its_weakest_member(data, log_space: bool) -> None:
    train, test = data
    members = {"constant": ConstantPricer("mean"), "ridge": ridge()}
    model = ensemble(members, log_space=log_space).fit(train, train["price"])
    errors = {
        name: mae(m.fit(train, train["price"]).predict(test), test["price"])
        for name, m in members.items()
    }
    stacked = mae(model.predict(test), test["price"])
    assert stacked < max(errors.values())
    assert stacked < 1.1 * min(errors.values())  # and is about as good as the best
    assert all(weight >= 0 for weight in model.weights_.values())
    assert model.weights_["ridge"] > model.weights_["constant"]


class LengthPricer(Pricer):
    """Prices in proportion to the text's length: it extrapolates without bound."""

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LengthPricer:
        self.per_char_ = float(np.mean(y) / X["text"].str.len().mean())
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.per_char_ * X["text"].str.len().to_numpy(dtype=float)


def test_an_ensemble_prices_within_the_prices_it_learned_from(data) -> None:
    # Fitted on 40 items, an ensemble priced a hammer at $53,060: its members extrapolate and
    # its stacker's weights are not bound to sum to one.
    (train, test) = data
    prices = train["text"].str.len() * 0.5  # what the length member learns best
    pricer = ensemble({"length": LengthPricer(), "ridge": ridge()}).fit(train, prices)
    assert pricer.weights_["length"] > 0.5
    predicted = pricer.predict(test.head(5).assign(text=test["text"].head(5) * 200))
    low, high = prices.min(), prices.max()
    assert (predicted >= low).all() and (predicted <= high).all(), predicted


def test_a_member_failure_is_a_failure_not_a_guess(data) -> None:
    train, test = data

    class Flaky(SpyPricer):
        def predict(self, X: pd.DataFrame) -> np.ndarray:
            prices = super().predict(X)
            prices[::2] = np.nan
            return prices

    model = ensemble({"ridge": ridge(), "flaky": Flaky("flaky")}).fit(train, train["price"])
    prices = model.predict(test)
    assert np.isnan(prices[::2]).all() and np.isfinite(prices[1::2]).all()


def test_a_member_that_prices_no_validation_item_is_one_line(data) -> None:
    # A human's guesses cover the exported evaluation items only: as a member it priced none
    # of the training items held out for the stacker, and the fit failed with a ValueError
    # traceback that named no member.
    train, _ = data

    class Unpriced(SpyPricer):
        def predict(self, X: pd.DataFrame) -> np.ndarray:
            return np.full(len(X), np.nan)

    model = ensemble({"ridge": ridge(), "human": Unpriced("none")})
    with pytest.raises(UserError, match=r"^only 0 of the 60 validation items .*human 0\)"):
        model.fit(train, train["price"])


def test_an_llm_member_whose_calls_all_failed_at_fit_says_why(make_pricer, data, stub) -> None:
    # A key the server refused read "only 0 of the 60 validation items ... (priced: ridge 60,
    # mini 0)", with the advice to leave the member out: nothing said its calls had failed.
    train, _ = data
    stub.state.fail_next(len(train), 401)
    model = ridge_and(make_pricer(max_retries=0))
    with pytest.raises(UserError) as error:
        model.fit(train, train["price"])
    assert "(priced: ridge 60, mini 0; mini: api_error 60 (HTTP 401 60))" in str(error.value)
    assert "\n" not in str(error.value)


def test_logged_models_can_be_members(data, tracking_uri) -> None:
    from pricer.tracking.model import log_pricer

    train, test = data
    logged = ridge().fit(train.head(100), train["price"].head(100))
    mlflow.set_experiment("ensemble")  # not whichever experiment an earlier test left active
    with mlflow.start_run():
        info = log_pricer(logged)
    # The documented override: the tracking layer builds the member from the model URI.
    cfg = compose_config(
        "train",
        [
            "model=ensemble",
            "~model.members.xgboost",
            "~model.members.tfidf_ridge",
            "+model.members.best._target_=pricer.tracking.model.logged_pricer",
            f"+model.members.best.model_uri={info.model_uri}",
        ],
    )
    # The apps check every node against its target first; a function target is checked by
    # its signature as a class is by its constructor's.
    check_arguments(cfg.model, "model")
    typo = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
    typo.members.best.model_url = "models:/x"  # a key logged_pricer does not take
    with pytest.raises(ConfigError, match="model_url"):
        check_arguments(typo, "model")
    model = instantiate(cfg.model)
    member = model.members["best"]
    assert isinstance(member, LoggedPricer) and member.source == info.model_uri
    np.testing.assert_allclose(member.predict(test), logged.predict(test))
    model.fit(train, train["price"])
    assert model.members_["best"] is member  # used as it is: never cloned, never refitted
    np.testing.assert_allclose(member.predict(test), logged.predict(test))
    assert np.isfinite(model.predict(test)).all()
    assert set(model.weights_) == {"best", "linear"}


def test_a_member_left_without_a_word_is_named(data) -> None:
    # Its min_df is the member's setting: which of the members is the one to change.
    train, _ = data
    words = [f"gizmo{i} widget{i}" for i in range(len(train))]
    model = ensemble({"spy": SpyPricer("words"), "ridge": ridge().set_params(min_df=50)})
    with pytest.raises(NoVocabulary, match=r"^member ridge: min_df=50 leaves the text vectoriser"):
        model.fit(train.assign(text=words), train["price"])


def test_invalid_settings_fail_at_fit(data) -> None:
    train, _ = data
    for bad in ({"validation_fraction": 0.0}, {"validation_fraction": 1.0}):
        with pytest.raises(ValueError, match="validation_fraction"):
            ensemble({"ridge": ridge()}, **bad).fit(train, train["price"])
    with pytest.raises(ValueError, match="at least one member"):
        ensemble({}).fit(train, train["price"])
    with pytest.raises(ConfigError, match="at least one member that is not null"):
        ensemble({"ridge": None}).fit(train, train["price"])


def test_a_member_set_to_null_is_left_out(data) -> None:
    # model.members.xgboost=null (as a stack leaves a member out) was cloned: a TypeError
    # traceback once the run had opened and loaded its data.
    train, test = data
    model = ensemble({"ridge": ridge(), "xgboost": None}).fit(train, train["price"])
    assert set(model.weights_) == set(model.members_) == {"ridge"}
    report = model.predict_report(test)
    assert np.isfinite(report.prices).all() and "ensemble.weight.xgboost" not in report.stats


def test_an_llm_members_calls_at_fit_are_counted_in_the_ensembles_cost(
    data, make_pricer, stub
) -> None:
    # An LLM member prices the validation split at fit (here 60 calls), then the test items.
    # The run recorded only the test items' cost, under the member's name, and no llm.* figure
    # of its own: the trade-off table counted the ensemble as paying no tokens at all.
    train, test = data
    model = ensemble({"ridge": ridge(), "llm": make_pricer()}).fit(train, train["price"])
    calls_at_fit = stub.state.counters["POST /chat/completions"]
    assert calls_at_fit == model.validation_items_ == round(0.3 * len(train))
    stats = model.predict_report(test).stats
    assert stub.state.counters["POST /chat/completions"] == calls_at_fit + len(test)

    assert stats["ensemble.llm.llm.calls"] == len(test)
    assert stats["ensemble.llm.fit.llm.calls"] == calls_at_fit
    fit_cost = stats["ensemble.llm.fit.llm.cost_usd"]
    # At fit the member saw the same prompt for training items: about as dear an item.
    assert fit_cost > 0 and fit_cost / calls_at_fit == pytest.approx(
        stats["ensemble.llm.llm.cost_usd"] / len(test), rel=0.5
    )
    # The ensemble's own figures: what the trade-off reads.
    assert stats["llm.cost_usd"] == stats["ensemble.llm.llm.cost_usd"]
    assert stats["llm.cost_per_1k_items_usd"] == stats["ensemble.llm.llm.cost_per_1k_items_usd"]
    assert stats["llm.fit_cost_usd"] == fit_cost
    assert stats["llm.calls"] == len(test) and stats["llm.fit_calls"] == calls_at_fit
    assert "llm.latency_p50_s" not in stats  # members price one after another: batch time


def test_an_ensemble_of_classical_members_reports_no_llm_figures(data) -> None:
    train, test = data
    model = ensemble({"ridge": ridge(), "constant": ConstantPricer("mean")})
    stats = model.fit(train, train["price"]).predict_report(test).stats
    assert not [key for key in stats if key.startswith("llm.") or ".fit." in key]


def test_an_ensembles_member_settings_are_reached_by_name() -> None:
    # set_params(members__ridge__alpha=3.0) raised AttributeError: 'dict' has no set_params.
    pricer = ensemble({"ridge": ridge(), "mean": ConstantPricer("mean")})
    assert pricer.get_params(deep=True)["members__ridge__alpha"] == 1.0
    pricer.set_params(members__ridge__alpha=3.0, log_space=False)
    assert pricer.members["ridge"].alpha == 3.0 and pricer.log_space is False


def test_an_ensemble_run_says_which_server_its_llm_member_called(
    compose_conf, item_files, stub, api_key, tracking_uri, tmp_path
) -> None:
    # An ensemble run with a member on the stub logged the member's llm.* figures and prices
    # with no word of the server: read alone, they were gpt-4o-mini's answers on OpenAI.
    cfg = ensemble_config(compose_conf, item_files, stub)
    result = run_family("ensemble", cfg)
    run = mlflow.get_run(result.run_id)
    assert run.data.metrics["llm.calls"] == 12  # the member's answers are in the record...
    assert run.data.tags["llm.server"] == stub.base_url  # ... and so is where they came from
    assert run.data.tags["ensemble.llm.llm.server"] == stub.base_url
    said = f"Answered in part by {stub.base_url} (member llm), not OpenAI's API"
    assert run.data.tags["mlflow.note.content"].startswith(said)
    # The leaderboard reads it too: no course figure beside the stub's blend, a server note.
    assert result.server == stub.base_url and not result.on_openai
