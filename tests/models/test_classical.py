"""Every classical family, built from its committed YAML, on small generated catalogues."""

from __future__ import annotations

import functools
import inspect
import json
import re
import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_predict

from pricer.errors import ConfigError
from pricer.models.base import Pricer
from pricer.models.features import NoVocabulary, TextSVD
from pricer.models.pipeline import price_weights
from pricer.models.stacking import OutOfFoldPrediction
from pricer.paths import CONFIG_DIR
from tests.conftest import compose_config

# The classical families: the default leaderboard's members (conf/leaderboard.yaml), not a copy.
FAMILIES = tuple(compose_config("leaderboard").models)
# Smaller ensembles keep the suite fast, one thread keeps it fast on a busy machine (threads
# spinning for a core cost more than they give); everything else is the committed setting.
FAST = {
    "random_forest": {"n_estimators": 15, "n_jobs": 1},
    "xgboost": {"n_estimators": 40, "n_jobs": 1},
}

# A made-up catalogue: the material sets the price level, the rest is noise words.
MATERIAL_PRICE = {"plastic": 6.0, "bamboo": 15.0, "steel": 40.0, "brass": 90.0, "titanium": 300.0}
PRODUCTS = ("hammer", "lamp", "kettle", "shelf", "clamp", "speaker", "bucket", "ladder")
ADJECTIVES = ("handy", "compact", "classic", "rugged", "sleek", "sturdy", "bright", "quiet")
BRANDS = ("Northwind", "Bluepeak", "Oakridge", "Tinker & Co")
CATEGORIES = ("Tools_and_Home_Improvement", "Automotive", "Electronics")


def catalogue(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    materials = rng.choice(list(MATERIAL_PRICE), n)
    prices = np.array([MATERIAL_PRICE[m] for m in materials]) * rng.lognormal(0.0, 0.15, n)
    rows = []
    for material, price in zip(materials, prices, strict=True):
        adjective, other = rng.choice(ADJECTIVES, 2, replace=False)
        product = rng.choice(PRODUCTS)
        title = f"{adjective.title()} {material.title()} {product.title()}"
        text = (
            f"{title}\nA {adjective} {product} made of {material}. "
            f"It is {other} and easy to clean, a {product} for every home."
        )
        details = {
            "Brand": str(rng.choice(BRANDS)),
            "Item Weight": f"{price / 20 + rng.uniform(0.1, 1):.2f} pounds",
            "Product Dimensions": f"{rng.integers(2, 30)} x {rng.integers(2, 20)} x 3 inches",
        }
        rows.append(
            {
                "title": title,
                "text": text,
                "category": str(rng.choice(CATEGORIES)),
                "details": json.dumps(details),
            }
        )
    return pd.DataFrame(rows), prices.round(2)


@functools.cache  # composing takes a while; the configs are only read
def family_config(family: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=[f"model={family}"]).model


def build(family: str) -> Pricer:
    return instantiate(family_config(family)).set_params(**FAST.get(family, {}))


@pytest.fixture(scope="module")
def shop() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    train, train_prices = catalogue(160, seed=1)
    test, test_prices = catalogue(60, seed=2)
    return train, train_prices, test, test_prices


@pytest.mark.parametrize("family", FAMILIES)
def test_family_fits_without_warnings_and_prices_every_item(family: str, shop) -> None:
    train, prices, test, _ = shop
    pricer = build(family)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a FutureWarning today is a broken fit tomorrow
        pricer.fit(train, prices)
    for items in (test, test[["text"]], test.iloc[:1]):  # optional columns may be missing
        predicted = pricer.predict(items)
        assert predicted.shape == (len(items),)
        assert np.isfinite(predicted).all()
        assert (predicted >= 0).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_odd_but_valid_listings_are_priced_like_plain_ones(family: str, shop) -> None:
    # A Categorical category with a gap failed fit ("Cannot setitem on a Categorical with a new
    # category"); a weight of 400 digits became an infinite feature that failed the linear
    # families' input check; a blank category (as predict and serve send a missing one) was
    # priced as a category of its own, not as a missing one.
    train, prices, test, _ = shop
    category = pd.Categorical(train["category"].where(train.index % 10 != 0))
    pricer = build(family).fit(train.assign(category=category), prices)
    missing = test.head(5).assign(category=None)
    np.testing.assert_allclose(
        pricer.predict(missing.assign(category="")), pricer.predict(missing), rtol=1e-9
    )
    huge = json.dumps({"Item Weight": "9" * 400 + " pounds", "Best Sellers Rank": "9" * 400})
    predicted = pricer.predict(test.head(3).assign(details=huge))
    assert np.isfinite(predicted).all() and (predicted >= 0).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_prices_within_the_prices_it_learned_from(family: str, shop) -> None:
    # The linear families extrapolated: a listing of "50000 pounds" at $1,454, of ten billion
    # at $32,812, where no training item cost more than $999.
    train, prices, test, _ = shop
    pricer = build(family).fit(train, prices)
    heavy = [json.dumps({"Item Weight": f"{10**power} pounds"}) for power in (4, 10, 100)]
    predicted = pricer.predict(test.head(3).assign(details=heavy))
    assert (predicted >= prices.min()).all() and (predicted <= prices.max()).all(), predicted


def settings(value: object) -> object:
    """Parameters all the way down: estimators nested in a dict (the stack's members) compare
    by their settings, not by identity (clone copies them)."""
    if isinstance(value, BaseEstimator):
        return type(value), settings(value.get_params(deep=False))
    if isinstance(value, dict):
        return {key: settings(item) for key, item in value.items()}
    return value


@pytest.mark.parametrize("family", FAMILIES)
def test_constructor_follows_the_sklearn_contract(family: str) -> None:
    pricer_class = get_class(family_config(family)._target_)
    parameters = inspect.signature(pricer_class.__init__).parameters
    # The YAML is the single source of settings: no defaults hiding in the code.
    assert all(p.default is inspect.Parameter.empty for p in parameters.values())
    pricer = build(family)
    twin = clone(pricer)
    assert settings(twin) == settings(pricer)
    assert set(pricer.get_params()) == set(parameters) - {"self"}
    assert not [name for name in vars(pricer) if name.endswith("_")]  # unfitted: no state


@pytest.mark.parametrize("family", ["tfidf_ridge", "svr", "xgboost", "random_forest"])
def test_text_families_learn_what_the_words_say(family: str, shop) -> None:
    train, prices, test, test_prices = shop
    constant = build("constant").fit(train, prices)
    learned = build(family).fit(train, prices)
    constant_mae = np.abs(constant.predict(test) - test_prices).mean()
    learned_mae = np.abs(learned.predict(test) - test_prices).mean()
    assert learned_mae < 0.5 * constant_mae, (family, learned_mae, constant_mae)


def test_price_weights_grow_with_price_and_average_one() -> None:
    prices = np.array([0.0, 9.0, 99.0])
    assert price_weights(prices, 0.0) is None
    weights = price_weights(prices, 1.0)
    np.testing.assert_allclose(weights, np.array([1.0, 10.0, 100.0]) / 37.0)
    assert weights.mean() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="price_weight_power"):
        price_weights(prices, -1.0)


@pytest.mark.parametrize("power", [float("nan"), float("inf")])
def test_a_price_weight_power_that_is_no_number_is_one_config_error(power: float, shop) -> None:
    # NaN and infinity passed the sign check and made every weight NaN: "Input sample_weight
    # contains NaN", a traceback once the features had been computed.
    train, prices, _, _ = shop
    with pytest.raises(
        ConfigError, match=rf"^price_weight_power must be a finite number >= 0, got {power}$"
    ):
        build("tfidf_ridge").set_params(price_weight_power=power).fit(train, prices)


def test_a_large_price_weight_power_weighs_the_dearest_items_without_overflow(shop) -> None:
    # (1 + $999)^150 overflowed to infinity, and the weights were inf / inf: NaN.
    prices = np.array([5.0, 999.0, 999.0, 20.0])
    np.testing.assert_allclose(price_weights(prices, 150.0), [0.0, 2.0, 2.0, 0.0], atol=1e-12)
    train, train_prices, test, _ = shop
    pricer = build("tfidf_ridge").set_params(price_weight_power=150.0).fit(train, train_prices)
    assert np.isfinite(pricer.predict(test)).all()


def test_out_of_fold_predictions_do_not_know_their_own_target() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 150))
    y = rng.normal(size=200)  # pure noise: only memorisation could predict it
    stacked = OutOfFoldPrediction(Ridge(alpha=0.1), n_folds=5, random_state=0)
    out_of_fold = stacked.fit_transform(X, y).ravel()
    in_sample = stacked.transform(X).ravel()
    assert np.corrcoef(in_sample, y)[0, 1] > 0.7
    assert abs(np.corrcoef(out_of_fold, y)[0, 1]) < 0.3


FITTED_BY: list[int] = []  # the thread of each fit of a ThreadNoting estimator


class ThreadNoting:
    """Mixin for a regressor: note which thread fits it in FITTED_BY, and take a moment."""

    def fit(self, X: object, y: np.ndarray, sample_weight: None = None) -> ThreadNoting:
        FITTED_BY.append(threading.get_ident())
        time.sleep(0.05)  # the other thread takes the next fit meanwhile
        return super().fit(X, y, sample_weight)


class RidgeRecorder(ThreadNoting, Ridge):
    pass


def test_out_of_fold_fits_run_in_n_jobs_threads_as_cross_val_predict_would_price() -> None:
    rng = np.random.default_rng(1)
    X = sp.random(120, 30, density=0.2, random_state=2, format="csr")
    y = X @ rng.normal(size=30) + rng.normal(scale=0.1, size=120)
    folds = KFold(4, shuffle=True, random_state=3)
    expected = cross_val_predict(Ridge(alpha=0.5), X, y, cv=folds)
    for n_jobs in (1, 2):
        FITTED_BY.clear()
        stacked = OutOfFoldPrediction(RidgeRecorder(alpha=0.5), 4, 3, n_jobs=n_jobs)
        np.testing.assert_array_equal(stacked.fit_transform(X, y).ravel(), expected)
        assert len(FITTED_BY) == 5  # four folds, then every row
        assert len(set(FITTED_BY)) == n_jobs
        full = Ridge(alpha=0.5).fit(X, y)
        np.testing.assert_array_equal(stacked.transform(X).ravel(), full.predict(X))


def test_text_svd_fits_a_vocabulary_smaller_than_its_components() -> None:
    X = np.random.default_rng(0).random((30, 8))
    assert TextSVD(n_components=100, random_state=0).fit_transform(X).shape == (30, 7)


def test_random_forest_row_count_per_tree_is_capped_by_the_training_set(shop) -> None:
    train, prices, _, _ = shop
    pricer = build("random_forest").set_params(max_samples=10**6, n_estimators=3)
    pricer.fit(train, prices)
    assert pricer.model_.regressor_.named_steps["forest"].max_samples is None


@pytest.mark.parametrize(
    ("family", "setting", "value", "message"),
    [
        (family, "ngram_max", 0, "ngram_max must be a whole number >= 1, got 0")
        for family in ("bow_linear", "tfidf_ridge", "svr", "xgboost")
    ]
    + [
        (family, "min_df", 1000, "min_df=1000 keeps only words found in at least 1,000 items, but")
        for family in ("bow_linear", "tfidf_ridge", "svr", "xgboost")
    ]
    + [
        # These were fitted quietly as one component, the run recording the setting given.
        ("xgboost", "svd_components", 0, "svd_components must be a whole number >= 1, got 0"),
        ("random_forest", "svd_components", -1, "svd_components must be a whole number >= 1"),
        ("xgboost", "stack_folds", 1, "stack_folds must be a whole number >= 2, got 1"),
        ("xgboost", "stack_folds", 500, "stack_folds=500 needs at least 500 training items"),
    ],
)
def test_a_setting_no_fit_can_take_is_one_config_error_before_fitting(
    family: str, setting: str, value: int, message: str, shop
) -> None:
    # Each was scikit-learn's ValueError (KFold's, the vectoriser's): a traceback, the run
    # FAILED with it, after the text had been read and vectorised.
    train, prices, _, _ = shop
    with pytest.raises(ConfigError, match=re.escape(message)):
        build(family).set_params(**{setting: value}).fit(train, prices)


def rare_words(n: int) -> list[str]:
    """Texts that share no word: every word is in one text only."""
    return [f"gizmo{i} widget{i} gadget{i}" for i in range(n)]


@pytest.mark.parametrize("family", ["bow_linear", "tfidf_ridge", "svr", "xgboost"])
def test_a_min_df_that_leaves_no_word_is_one_config_error_naming_it(family: str, shop) -> None:
    # Below the item count, so check_word_settings passes it; but no word is in that many
    # texts, and scikit-learn's "After pruning, no terms remain" was a traceback mid-run.
    train, prices, _, _ = shop
    with pytest.raises(
        NoVocabulary,
        match=r"^min_df=150 leaves the text vectoriser no word: none is in 150 or more of "
        r"the 160 training texts; lower min_df$",
    ):
        build(family).set_params(min_df=150, ngram_max=1).fit(
            train.assign(text=rare_words(160)), prices
        )


def test_texts_without_a_word_to_keep_are_one_config_error(shop) -> None:
    # The random forest has no min_df to lower, and stop words are no vocabulary at all
    # ("empty vocabulary; perhaps the documents only contain stop words").
    train, prices, _, _ = shop
    with pytest.raises(NoVocabulary, match="found no word it keeps in the 160 training texts"):
        build("random_forest").fit(train.assign(text="the and of it"), prices)
    with pytest.raises(NoVocabulary, match="found no word it keeps in the 160 training texts"):
        build("random_forest").fit(train.assign(text=rare_words(160)), prices)


def test_stack_folds_are_not_checked_where_no_ridge_needs_them(shop) -> None:
    train, prices, test, _ = shop
    pricer = build("xgboost").set_params(stack_ridge_alpha=None, stack_folds=0)
    assert np.isfinite(pricer.fit(train, prices).predict(test)).all()


@pytest.mark.parametrize(
    ("family", "override", "path"),
    [
        ("xgboost", "model.min_child_weight=nan", "model.min_child_weight"),
        ("xgboost", "model.colsample_bytree=nan", "model.colsample_bytree"),
        ("svr", "model.epsilon=nan", "model.epsilon"),
        (
            "stack",
            "model.members.lgbm_log.estimator.subsample=nan",
            "model.members.lgbm_log.estimator.subsample",
        ),
    ],
)
def test_a_setting_typed_nan_is_refused_before_any_run(
    family: str, override: str, path: str
) -> None:
    # NaN passed every range check made by comparison: XGBoost fitted a model that split
    # nowhere (min_child_weight=nan: mae $105 where $21 was the fit), LinearSVR one that learned
    # nothing (epsilon=nan: $97 against $15), each run FINISHED with that mae.
    from omegaconf import OmegaConf

    from pricer.settings import check_arguments

    node = compose_config("train", [f"model={family}", override]).model
    said = f"{path} is nan, which is no value for a setting: give it a number"
    with pytest.raises(ConfigError, match=f"^{re.escape(said)}$"):
        check_arguments(OmegaConf.create(OmegaConf.to_container(node, resolve=True)), "model")


OUT_OF_RANGE = [
    ("xgboost", "reg_lambda", float("inf"), "model.reg_lambda must be a float in the range"),
    ("xgboost", "reg_lambda", -1.0, "[0.0, inf), got -1.0"),
    ("xgboost", "learning_rate", 0.0, "model.learning_rate must be a float in the range (0.0, 1"),
    ("xgboost", "max_depth", -2, "model.max_depth must be an int in the range [0, inf), got -2"),
    ("xgboost", "n_estimators", 0, "model.n_estimators must be an int in the range [1, inf)"),
    ("tfidf_ridge", "alpha", -1.0, "model.alpha must be a float in the range [0.0, inf)"),
    ("linear", "alpha", float("inf"), "model.alpha must be a float in the range [0.0, inf)"),
    ("svr", "C", 0.0, "model.C must be a float in the range (0.0, inf), got 0.0"),
    ("svr", "epsilon", -0.1, "model.epsilon must be a float in the range [0.0, inf)"),
    ("random_forest", "n_estimators", 0, "model.n_estimators must be an int in the range [1"),
    ("random_forest", "max_depth", -2, "[1, inf) or null, got -2"),
]


@pytest.mark.parametrize(("family", "setting", "value", "said"), OUT_OF_RANGE)
def test_a_setting_out_of_its_range_is_refused_before_any_run(
    family: str, setting: str, value: float, said: str
) -> None:
    # reg_lambda=inf fitted trees that never split and the run FINISHED with its mae; alpha=-1
    # or C=0 failed in scikit-learn once the data had loaded, a FAILED run each.
    from omegaconf import OmegaConf

    from pricer.settings import check_arguments

    node = compose_config("train", [f"model={family}", f"model.{setting}={value}"]).model
    with pytest.raises(ConfigError, match=re.escape(said)):
        check_arguments(OmegaConf.create(OmegaConf.to_container(node, resolve=True)), "model")


@pytest.mark.parametrize(("family", "setting", "value", "said"), OUT_OF_RANGE[:3])
def test_a_family_checks_its_ranges_as_it_fits_as_scikit_learn_does(
    family: str, setting: str, value: float, said: str, shop
) -> None:
    from sklearn.utils._param_validation import InvalidParameterError

    train, prices, _, _ = shop
    with pytest.raises(InvalidParameterError, match=f"The '{setting}' parameter of "):
        build(family).set_params(**{setting: value}).fit(train, prices)
