"""The stack family and its signals, built from the committed conf/model/stack.yaml."""

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
import sklearn
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig
from sklearn.base import clone
from sklearn.linear_model import LinearRegression

from pricer.errors import ConfigError
from pricer.models.base import LIKE_TEST_COLUMN
from pricer.models.features import NoVocabulary
from pricer.models.signals import (
    NEIGHBOUR_FEATURES,
    DetailsDocument,
    ExceedanceProbabilities,
    NeighbourPrices,
    details_tokens,
)
from pricer.models.stack import StackPricer, _items
from pricer.models.stacking import Blend, Correction, Member, fit_l1_blend
from pricer.paths import CONFIG_DIR
from tests.models.test_classical import FITTED_BY, ThreadNoting, catalogue, rare_words


@functools.cache
def stack_config() -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=["model=stack"]).model


def build(**settings: object) -> StackPricer:
    """The committed stack with small, single-threaded members (fast on a busy machine)."""
    pricer = instantiate(stack_config())
    for member in pricer.members.values():
        member.estimator.set_params(n_estimators=40, n_jobs=1)
    return pricer.set_params(svd_components=20, stack_folds=3, feature_folds=3, **settings)


@pytest.fixture(scope="module")
def shop() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    train, train_prices = catalogue(240, seed=1)
    test, test_prices = catalogue(80, seed=2)
    return train, train_prices, test, test_prices


def test_constructor_follows_the_sklearn_contract() -> None:
    for cls in (StackPricer, Member):
        parameters = inspect.signature(cls.__init__).parameters
        assert all(p.default is inspect.Parameter.empty for p in parameters.values())
    assert get_class(stack_config()._target_) is StackPricer
    pricer = build()
    twin = clone(pricer)
    assert twin.get_params(deep=False).keys() == pricer.get_params(deep=False).keys()
    assert twin.set_params(correction="isotonic").correction == "isotonic"
    assert not [name for name in vars(pricer) if name.endswith("_")]
    assert pricer.random_state == 42  # ${seed}
    assert all(m.estimator.random_state == 42 for m in pricer.members.values())


@pytest.mark.parametrize("share", ["neighbour_residuals", "title_residuals"])
def test_an_unfitted_stack_with_residual_moves_says_it_is_not_fitted(shop, share) -> None:
    # It raised AttributeError ("no attribute 'features_'"), not scikit-learn's NotFittedError.
    from sklearn.exceptions import NotFittedError

    _, _, test, _ = shop
    with pytest.raises(NotFittedError):
        build(**{share: 0.5}).predict(test)


def test_a_members_settings_are_reached_as_scikit_learn_reaches_a_pipelines_steps() -> None:
    # get_params(deep=True) stopped at the members dict, and
    # set_params(members__lgbm_log__n_estimators=7) raised AttributeError ('dict' object).
    pricer = build()
    [name, *_] = pricer.members
    deep = pricer.get_params(deep=True)
    assert deep[f"members__{name}"] is pricer.members[name]
    assert deep[f"members__{name}__estimator__n_estimators"] == 40
    assert pricer.set_params(**{f"members__{name}__estimator__n_estimators": 7}) is pricer
    assert pricer.members[name].estimator.n_estimators == 7
    twin = clone(pricer)
    assert twin.get_params(deep=True)[f"members__{name}__estimator__n_estimators"] == 7
    assert twin.members[name] is not pricer.members[name]
    with pytest.raises(ValueError, match=r"no member 'nope' to set members__nope__x"):
        pricer.set_params(members__nope__x=1)


def test_stack_learns_what_the_words_say_and_prices_every_item(shop) -> None:
    train, prices, test, test_prices = shop
    pricer = build()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        assert pricer.fit(train, prices) is pricer
    for items in (test, test[["text"]], test.iloc[:1]):  # optional columns may be missing
        predicted = pricer.predict(items)
        assert predicted.shape == (len(items),)
        assert np.isfinite(predicted).all() and (predicted >= 0).all()
    mae = np.abs(pricer.predict(test) - test_prices).mean()
    constant_mae = np.abs(np.median(prices) - test_prices).mean()
    assert mae < 0.4 * constant_mae, (mae, constant_mae)
    assert (pricer.blend_.weights_ >= 0).all() and pricer.blend_.weights_.sum() > 0
    # Whatever its blend gives, the stack answers within the prices it learned from.
    pricer.price_from_members = lambda members, spaces=None: np.array([-5.0, 1e6])
    np.testing.assert_array_equal(pricer.predict(test.head(2)), [prices.min(), prices.max()])


# Every optional signal on: title neighbour prices and the exceedance probabilities.
EVERY_SIGNAL = {
    "title_neighbours": True,
    "blend_split_price": 30.0,
    "exceedance": {"thresholds": [20, 60, 200], "C": 4.0},
    "neighbour_residuals": 0.25,
    "title_residuals": 0.25,
}


@pytest.mark.parametrize("settings", [{}, EVERY_SIGNAL], ids=["committed", "every_signal"])
@pytest.mark.parametrize("kept", [["text", "title"], ["text"]])
def test_a_stack_learns_from_items_without_details_or_titles(shop, settings, kept) -> None:
    # Fitted on items that carried no details (or texts alone), its details (and title)
    # vectorisers found no vocabulary: "ValueError: empty vocabulary", where every other
    # family fitted. Those columns are now left out of its features.
    train, prices, test, test_prices = shop
    pricer = build(**settings).fit(train[kept], prices)
    assert pricer.wordless_columns_ == [c for c in ("title", "details") if c not in kept]
    parts = set(pricer.features_.named_transformers_)
    left_out = {"details"} | ({"title", "title_knn"} if "title" not in kept else set())
    assert parts.isdisjoint(left_out) and {"words", "hand"} <= parts
    if settings and "title" not in kept:  # no titles to find residual neighbours by
        assert list(pricer.residual_shares()) == ["text"]
    predicted = pricer.predict(test[kept])
    assert np.isfinite(predicted).all()
    constant_mae = np.abs(np.median(prices) - test_prices).mean()
    assert np.abs(predicted - test_prices).mean() < 0.6 * constant_mae


def test_a_min_df_that_leaves_no_word_is_one_config_error_naming_it(shop) -> None:
    # Up to the item count min_df passes the settings check; where no word is in that many
    # texts the word vectoriser's "After pruning, no terms remain" was a traceback.
    train, prices, _, _ = shop
    with pytest.raises(NoVocabulary, match=r"^min_df=200 leaves the text vectoriser no word: "):
        build(min_df=200).fit(train.assign(text=rare_words(len(train))), prices)


@pytest.mark.parametrize("settings", [{}, EVERY_SIGNAL], ids=["committed", "every_signal"])
def test_a_training_rows_features_never_see_its_own_price(shop, settings) -> None:
    train, prices, _, _ = shop
    pricer = build(**settings)
    log_prices = np.log1p(prices)
    changed = log_prices.copy()
    changed[7] += 5.0  # one item's price 150 times higher
    items = _items(train)
    before = pricer.make_features().fit_transform(items, log_prices)
    after = pricer.make_features().fit_transform(items, changed)
    np.testing.assert_allclose(after[7], before[7])
    assert not np.allclose(after, before)  # other rows do learn from it


def test_a_folds_member_prices_do_not_depend_on_its_own_targets() -> None:
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(120, 5))
    prices = np.exp(2 + dense[:, 0]) + rng.uniform(0, 1, 120)
    pricer = build()
    first = pricer._fit_members(dense, prices)
    folds = list(pricer_folds(pricer, dense))
    held = folds[0]
    shuffled = prices.copy()
    shuffled[held] = rng.permutation(prices[held]) * 10
    second = pricer._fit_members(dense, shuffled)
    np.testing.assert_allclose(second[held], first[held])
    assert not np.allclose(second, first)


class ThreadRecorder(ThreadNoting, LinearRegression):
    """A least-squares member that notes which thread fitted it (FITTED_BY)."""


def test_members_fit_in_n_jobs_threads_with_the_result_of_one() -> None:
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(150, 5))
    prices = np.exp(2 + dense[:, 0]) + rng.uniform(0, 1, 150)
    results = []
    for n_jobs in (1, 2):
        pricer = build(n_jobs=n_jobs)  # the committed LightGBM and XGBoost members
        out_of_fold = pricer._fit_members(dense, prices)
        results.append([out_of_fold, *(m.predict(dense) for m in pricer.members_.values())])

        FITTED_BY.clear()
        recorders = {name: Member(ThreadRecorder(), "log", None) for name in ("a", "b")}
        build(n_jobs=n_jobs, members=recorders)._fit_members(dense, prices)
        assert len(FITTED_BY) == 2 * (pricer.stack_folds + 1)  # each fold, then the refits
        assert len(set(FITTED_BY)) == n_jobs
    for one, two in zip(*results, strict=True):
        np.testing.assert_array_equal(one, two)


def test_above_stack_folds_times_stacker_max_rows_one_holdout_replaces_the_folds() -> None:
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(150, 5))
    prices = np.exp(2 + dense[:, 0]) + rng.uniform(0, 1, 150)
    FITTED_BY.clear()
    recorders = {name: Member(ThreadRecorder(), "log", None) for name in ("a", "b")}
    pricer = build(members=recorders, stacker_max_rows=40)  # 150 > 3 folds x 40 rows
    out_of_fold = pricer._fit_members(dense, prices)
    assert len(FITTED_BY) == 2 * 2  # each member on the rest, then on every row
    held = np.flatnonzero(np.isfinite(out_of_fold).all(axis=1))
    assert len(held) == 40 and np.isnan(np.delete(out_of_fold, held, axis=0)).all()
    ((fit_rows, held_rows),) = pricer.member_splits(150)
    np.testing.assert_array_equal(np.sort(held_rows), held)
    assert len(fit_rows) == 110 and not set(fit_rows) & set(held_rows)

    shuffled = prices.copy()  # the held-out rows' prices are honest: their targets unseen
    shuffled[held] = rng.permutation(prices[held]) * 10
    np.testing.assert_allclose(pricer._fit_members(dense, shuffled)[held], out_of_fold[held])

    blended = pricer.fit_blend(out_of_fold, prices)  # on the 40 held-out rows, no NaN
    assert np.isfinite(blended.price_from_members(out_of_fold[held])).all()
    inside = build(members=recorders, stacker_max_rows=50)  # 150 = 3 x 50: still the folds
    assert len(inside.member_splits(150)) == 3


def test_a_stack_refuses_a_stacker_max_rows_below_one(shop) -> None:
    train, prices, _, _ = shop
    with pytest.raises(ValueError, match="stacker_max_rows must be positive"):
        build(stacker_max_rows=0).fit(train, prices)


def pricer_folds(pricer: StackPricer, dense: np.ndarray):
    from sklearn.model_selection import KFold

    folds = KFold(pricer.stack_folds, shuffle=True, random_state=pricer.random_state)
    return (valid for _, valid in folds.split(dense))


def test_neighbour_prices_leave_the_item_itself_out() -> None:
    # Four identical documents: each one's nearest neighbours are the other three.
    X = sp.csr_matrix(np.array([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 4))
    y = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0])
    features = NeighbourPrices(pool_size=100, chunk_rows=3, random_state=0).fit_transform(X, y)
    # Item 0 (target 1) sees 2, 3, 4 among its top three: the median of the top five mixes
    # in the others, but the top similarity must be another copy of itself (1.0).
    assert features[0, 4] == pytest.approx(1.0)
    changed = y.copy()
    changed[0] = 1000.0
    again = NeighbourPrices(pool_size=100, chunk_rows=3, random_state=0).fit_transform(X, changed)
    np.testing.assert_allclose(again[0], features[0])
    fitted = NeighbourPrices(pool_size=100, chunk_rows=3, random_state=0).fit(X, y)
    new = fitted.transform(sp.csr_matrix(np.array([[0.0, 1.0]])))
    assert new[0, 3] == pytest.approx(25.0)  # weighted mean of its four twins' targets


def test_neighbour_sample_weights_scale_only_the_weighted_mean() -> None:
    # Four identical documents: a new copy's neighbours are all four, equally similar.
    X = sp.csr_matrix(np.array([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 2))
    y = np.array([1.0, 2.0, 3.0, 10.0, 50.0, 60.0])
    new = sp.csr_matrix(np.array([[1.0, 0.0]]))
    plain = NeighbourPrices(pool_size=100, chunk_rows=3, random_state=0).fit(X, y)
    weights = np.array([1.0, 1.0, 1.0, 3.0, 1.0, 1.0])
    weighted = NeighbourPrices(pool_size=100, chunk_rows=3, random_state=0).fit(X, y, weights)
    before, after = plain.transform(new)[0], weighted.transform(new)[0]
    assert before[3] == pytest.approx(16 / 4, rel=1e-4)  # (1 + 2 + 3 + 10) / 4
    assert after[3] == pytest.approx(36 / 6, rel=1e-4)  # (1 + 2 + 3 + 3 x 10) / (1 + 1 + 1 + 3)
    others = [i for i in range(len(before)) if i != 3]  # medians, top similarity, spread
    np.testing.assert_allclose(after[others], before[others])


def test_neighbour_prices_saved_before_sample_weights_price_every_neighbour_alike() -> None:
    X = sp.random(60, 12, density=0.4, random_state=3, format="csr")
    y = np.random.default_rng(3).normal(size=60)
    fitted = NeighbourPrices(pool_size=100, chunk_rows=16, random_state=0).fit(X, y)
    expected = fitted.transform(X[:10])
    del fitted.pool_weight_  # as a model file written before the weights existed
    np.testing.assert_array_equal(fitted.transform(X[:10]), expected)


def test_neighbour_anchors_fade_a_neighbour_with_its_gap_to_the_item() -> None:
    # Four identical documents, equally similar to a new copy; the fourth is anchored 2 away.
    X = sp.csr_matrix(np.array([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 2))
    y = np.array([1.0, 2.0, 3.0, 10.0, 50.0, 60.0])
    anchor = np.array([0.0, 0.0, 0.0, 2.0, 5.0, 5.0])
    new = sp.csr_matrix(np.array([[1.0, 0.0]]))
    plain = NeighbourPrices(pool_size=100, chunk_rows=3, random_state=0).fit(X, y).transform(new)
    faded = NeighbourPrices(pool_size=100, chunk_rows=3, random_state=0, anchor_scale=1.0)
    after = faded.fit(X, y, anchor=anchor).transform(new, anchor=np.array([0.0]))[0]
    fade = np.exp(-2.0)
    assert after[3] == pytest.approx((6 + 10 * fade) / (3 + fade), rel=1e-4)
    others = [i for i in range(len(after)) if i != 3]  # medians, top similarity, spread
    np.testing.assert_allclose(after[others], plain[0, others])
    # The same item anchored 2 away instead: now the fourth is the near one.
    far = faded.transform(new, anchor=np.array([2.0]))[0, 3]
    assert far == pytest.approx((6 * fade + 10) / (3 * fade + 1), rel=1e-4)
    with pytest.raises(ValueError, match="needs anchors"):
        faded.transform(new)
    # A scale so small that exp(-gap / scale) is 0 for every neighbour: the nearest anchors
    # still count, rather than 0 / 0.
    sharp = NeighbourPrices(pool_size=100, chunk_rows=3, random_state=0, anchor_scale=1e-3)
    sharp.fit(X, y, anchor=anchor)
    assert sharp.transform(new, anchor=np.array([1.9]))[0, 3] == pytest.approx(10.0, rel=1e-4)
    # Training rows, leave-one-out, fade alike: item 0 sees 1, 2 (anchor 0) and 3 (anchor 2).
    own = faded.fit_transform(X, y, anchor=anchor)[0, 3]
    assert own == pytest.approx((2 + 3 + 10 * fade) / (2 + fade), rel=1e-4)
    # Without a scale the anchors are not kept, and a model saved before them ignores them.
    unscaled = NeighbourPrices(pool_size=100, chunk_rows=3, random_state=0).fit(X, y, anchor=anchor)
    assert unscaled.pool_anchor_ is None
    np.testing.assert_array_equal(unscaled.transform(new, anchor=np.array([2.0])), plain)
    del faded.pool_anchor_
    np.testing.assert_array_equal(faded.transform(new, anchor=np.array([2.0])), plain)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan")])
def test_neighbour_anchor_scale_must_be_positive_and_come_with_anchors(scale) -> None:
    X, y = sp.csr_matrix(np.eye(4)), np.arange(4.0)
    with pytest.raises(ValueError, match="positive scale"):
        NeighbourPrices(100, 3, 0, anchor_scale=scale).fit(X, y, anchor=np.zeros(4))
    with pytest.raises(ValueError, match="positive scale"):
        NeighbourPrices(100, 3, 0, anchor_scale=1.0).fit(X, y)


def test_neighbour_pool_is_capped() -> None:
    X = sp.random(300, 20, density=0.3, random_state=0, format="csr")
    fitted = NeighbourPrices(pool_size=50, chunk_rows=64, random_state=0).fit(X, np.arange(300.0))
    assert len(fitted.pool_target_) == 50
    assert fitted.transform(X).shape == (300, 6)


class ChunkRecorder(NeighbourPrices):
    """Neighbour prices that note which thread priced each chunk, and take a moment."""

    def _chunk(self, *args: object) -> None:
        PRICED_BY.append(threading.get_ident())
        time.sleep(0.02)  # the other thread takes the next chunk meanwhile
        super()._chunk(*args)


PRICED_BY: list[int] = []


def test_neighbour_chunks_run_in_n_jobs_threads_with_the_result_of_one() -> None:
    rng = np.random.default_rng(0)
    X = sp.random(390, 60, density=0.1, random_state=1, format="csr")
    X = sp.vstack([X[10:20], X]).tocsr()  # twins: ties in similarity, which order would show
    y = rng.normal(size=400)
    results = []
    for n_jobs in (1, 2):
        PRICED_BY.clear()
        neighbours = ChunkRecorder(pool_size=300, chunk_rows=32, random_state=0, n_jobs=n_jobs)
        results.append(neighbours.fit_transform(X, y))
        assert len(PRICED_BY) == 13  # 400 rows in chunks of 32
        assert len(set(PRICED_BY)) == n_jobs
        results.append(neighbours.transform(X[:100]))
    np.testing.assert_array_equal(results[0], results[2])
    np.testing.assert_array_equal(results[1], results[3])


def test_exceedance_probabilities_rank_items_by_what_their_words_say() -> None:
    rng = np.random.default_rng(0)
    dear = rng.random(200) < 0.3  # the first column marks the dear items
    X = sp.csr_matrix(np.column_stack([dear, ~dear, rng.random((200, 3))]).astype(float))
    prices = np.where(dear, 400.0, 30.0) * rng.uniform(0.8, 1.2, 200)
    thresholds = [100.0, 5000.0]  # nothing costs more than $5,000: a constant column
    probabilities = ExceedanceProbabilities(thresholds, 4.0, 5, 0)
    out_of_fold = probabilities.fit_transform(X, np.log1p(prices))
    assert out_of_fold.shape == (200, 2)
    assert out_of_fold[dear, 0].min() > 0.5 > out_of_fold[~dear, 0].max()
    assert (out_of_fold[:, 1] == 0).all() and list(probabilities.classifiers_) == ["0"]
    assert probabilities.transform(X)[:, 1] == pytest.approx(0.0)
    new = probabilities.transform(X[:4])
    assert new[:, 0] == pytest.approx(np.where(dear[:4], 1, 0), abs=0.3)
    names = list(probabilities.get_feature_names_out())
    assert names == ["p_over_100", "p_over_5000"]


def test_an_exceedance_probability_is_out_of_fold_for_training_rows() -> None:
    rng = np.random.default_rng(1)
    X = sp.csr_matrix(rng.random((120, 8)))
    prices = rng.uniform(10, 300, 120)
    before = ExceedanceProbabilities([100.0], 1.0, 4, 0).fit_transform(X, np.log1p(prices))
    flipped = prices.copy()
    flipped[5] = 50.0 if prices[5] > 100 else 250.0  # item 5 crosses the threshold
    after = ExceedanceProbabilities([100.0], 1.0, 4, 0).fit_transform(X, np.log1p(flipped))
    assert after[5] == pytest.approx(before[5])  # its own row never sees its label
    assert not np.allclose(after, before)  # the other folds' rows learn from it


def test_details_document_keeps_keys_values_and_rank_categories() -> None:
    details = json.dumps(
        {
            "Brand": "Acme Tools",
            "Material": "Stainless Steel",
            "Best Sellers Rank": {"Tools & Home Improvement": 95657, "Drills": 12},
        }
    )
    tokens = details_tokens(details).split()
    assert {"brand", "brand=acme_tools", "material:steel", "rank:drills"} <= set(tokens)
    assert details_tokens("not json") == "" and details_tokens(None) == ""
    column = pd.DataFrame({"details": [details, None]})
    assert DetailsDocument().fit_transform(column)[1] == ""


def test_l1_blend_is_non_negative_and_robust_to_outliers() -> None:
    rng = np.random.default_rng(0)
    good = rng.uniform(10, 100, 300)
    truth = good.copy()
    truth[:10] += 5000  # outliers a least-squares blend would chase
    predictions = np.column_stack([good, -good + rng.normal(0, 1, 300)])
    weights, intercept = fit_l1_blend(predictions, truth)
    assert weights == pytest.approx([1.0, 0.0], abs=1e-6)
    assert intercept == pytest.approx(0.0, abs=1e-6)
    least_squares = LinearRegression(positive=True).fit(predictions, truth)
    assert least_squares.intercept_ > 100


def test_a_split_blend_gives_cheap_and_dear_items_their_own_weights() -> None:
    rng = np.random.default_rng(0)
    truth = np.exp(rng.uniform(np.log(5), np.log(900), 1000))
    truth = truth[(truth < 80) | (truth > 150)]
    cheap = truth < 80
    off = truth * rng.uniform(0.2, 0.8, len(truth))  # a price no weight can turn into the truth
    # One member is right about cheap items only, the other about dear ones only.
    members = np.column_stack([np.where(cheap, truth, off), np.where(cheap, off, truth)])
    # Their median price is under 72 for cheap items and over 90 for dear ones.
    split = Blend(80.0, 100).fit(members, truth)
    assert split.weights_ == pytest.approx(np.array([[1.0, 0.0], [0.0, 1.0]]), abs=1e-6)
    assert np.abs(split.predict(members) - truth).mean() < 1e-6
    one = Blend(None, 100).fit(members, truth)
    weights, intercept = fit_l1_blend(members, truth)
    assert one.weights_ == pytest.approx(weights[None, :]) and one.intercepts_[0] == intercept
    assert np.abs(one.predict(members) - truth).mean() > 1.0  # no single mix is exact
    # A range with too few training rows keeps the blend of all rows.
    sparse = Blend(80.0, int((~cheap).sum()) + 1).fit(members, truth)
    assert sparse.weights_[1] == pytest.approx(weights)
    assert sparse.weights_[0] == pytest.approx([1.0, 0.0], abs=1e-6)


def test_log_linear_correction_undoes_shrinkage() -> None:
    rng = np.random.default_rng(0)
    truth = np.exp(rng.uniform(1, 7, 500))
    shrunk = np.expm1(2.0 + 0.5 * np.log1p(truth))  # every price pulled toward the middle
    correction = Correction("log_linear").fit(shrunk, truth)
    corrected_mae = np.abs(correction.transform(shrunk) - truth).mean()
    assert corrected_mae < 0.05 * np.abs(shrunk - truth).mean()
    assert Correction("none").fit(shrunk, truth).transform(shrunk) == pytest.approx(shrunk)
    with pytest.raises(ValueError, match="correction"):
        Correction("magic").fit(shrunk, truth)


def test_neighbour_residuals_move_a_price_by_its_kinds_out_of_fold_error() -> None:
    # Three kinds of training item, told apart by one word each in the text and in the title.
    # The one member prices kind C right and is out of fold e^0.4 too low on kind A, e^0.4 too
    # high on kind B; C is 80 of the 100 rows, so the L1 blend keeps the member as it is and
    # the errors stay +-0.4.
    rng = np.random.default_rng(0)
    kinds = np.repeat([0, 1, 2], [10, 10, 80])
    truth = np.exp(rng.uniform(1, 6, len(kinds)))
    off = np.array([-0.4, 0.4, 0.0])[kinds]
    member = np.expm1(np.log1p(truth) + off)[:, None]
    words = sp.csr_matrix(np.eye(3)[kinds])
    pricer = build(neighbour_residuals=0.5, title_residuals=0.25, blend_split_price=None)
    pricer.fit_blend(member, truth).fit_residuals({"text": words, "title": words}, member, truth)
    # New items, the member says $50 for each: text and title of one kind, or of two.
    text, title = (
        sp.csr_matrix(np.eye(3)[[0, 1, 2, 0, 2]]),
        sp.csr_matrix(np.eye(3)[[0, 1, 2, 1, 0]]),
    )
    new = np.full((5, 1), 50.0)
    moved = pricer.price_from_members(new, {"text": text, "title": title})
    # Half the error of its text's kind plus a quarter of its title's: A up, B down, C alone.
    shift = [0.75 * 0.4, -0.75 * 0.4, 0.0, 0.5 * 0.4 - 0.25 * 0.4, 0.25 * 0.4]
    np.testing.assert_allclose(np.log1p(moved) - np.log1p(50.0), shift, atol=1e-6)
    np.testing.assert_allclose(pricer.price_from_members(new), 50.0, atol=1e-6)  # no spaces
    # An empty title (no word in the vocabulary) has no neighbours: only its text moves it.
    blank = sp.csr_matrix((5, 3))
    moved = pricer.price_from_members(new, {"text": text, "title": blank})
    text_only = [0.2, -0.2, 0.0, 0.2, 0.0]  # text kinds A, B, C, A, C
    np.testing.assert_allclose(np.log1p(moved) - np.log1p(50.0), text_only, atol=1e-6)


def test_residual_clip_bounds_each_training_items_error_before_neighbours_average_it() -> None:
    # Two kinds of training item; the member is e^1.5 too low out of fold on kind A and e^0.3
    # too high on kind B. Bounded to +-1.0, kind A's errors count as 1.0, kind B's as they are.
    rng = np.random.default_rng(1)
    kinds = np.repeat([0, 1], [20, 80])
    truth = np.exp(rng.uniform(1, 6, len(kinds)))
    off = np.array([-1.5, 0.3])[kinds]
    member = np.expm1(np.log1p(truth) + off)[:, None]
    words = sp.csr_matrix(np.eye(2)[kinds])
    new, spaces = np.full((2, 1), 50.0), {"text": sp.csr_matrix(np.eye(2))}
    shifts = {}
    for clip in (None, 1.0):
        pricer = build(neighbour_residuals=0.5, title_residuals=None, residual_clip=clip)
        pricer.set_params(blend_split_price=None)
        pricer.fit_blend(member, truth).fit_residuals({"text": words}, member, truth)
        blended = pricer.price_from_members(new)
        shifts[clip] = np.log1p(pricer.price_from_members(new, spaces)) - np.log1p(blended)
    # The L1 blend follows kind B (80 of 100 rows), so kind A's error is about 1.8 before the
    # bound: unbounded, half of it; bounded, half of 1.0. Kind B's error (below 1.0) is kept.
    assert shifts[None][0] > 0.5 + 1e-3
    np.testing.assert_allclose(shifts[1.0][0], 0.5, atol=1e-6)
    np.testing.assert_allclose(shifts[1.0][1], shifts[None][1], atol=1e-9)
    assert abs(shifts[None][1]) < 0.5


def test_residual_price_scale_lets_neighbours_priced_alike_speak_for_an_item() -> None:
    # Kind A: five items the member prices near $20 out of fold, e^0.4 too low, and five near
    # $400, e^0.4 too high; kind B: ninety priced right, which the L1 blend follows. A new item
    # of kind A priced $20 by the member: its ten nearest are the ten of kind A, whose errors
    # cancel unless the dear five fade with their price gap.
    rng = np.random.default_rng(3)
    kinds = np.repeat([0, 1], [10, 90])
    dear = np.r_[np.zeros(5, bool), np.ones(5, bool), np.zeros(90, bool)]
    member = np.where(dear, 400.0, 20.0) * rng.uniform(0.9, 1.1, len(kinds))
    member[kinds == 1] = np.exp(rng.uniform(1, 6, 90))
    off = np.where(kinds == 0, np.where(dear, -0.4, 0.4), 0.0)
    truth = np.expm1(np.log1p(member) + off)
    member = member[:, None]
    words = {"text": sp.csr_matrix(np.eye(2)[kinds])}
    new, spaces = np.array([[20.0], [400.0]]), {"text": sp.csr_matrix(np.eye(2)[[0, 0]])}
    shifts = {}
    for scale in (None, 1.0):
        pricer = build(neighbour_residuals=0.5, title_residuals=None, residual_price_scale=scale)
        pricer.set_params(blend_split_price=None, like_test_weight=None)
        pricer.fit_blend(member, truth).fit_residuals(words, member, truth)
        blended = pricer.price_from_members(new)
        shifts[scale] = np.log1p(pricer.price_from_members(new, spaces)) - np.log1p(blended)
        if scale is None:
            continue
        # The weighted mean as written: each neighbour's error, faded by its gap.
        anchors = np.log1p(pricer.price_from_members(member))[:10]
        errors = np.clip(np.log1p(truth[:10]) - anchors, -1.0, 1.0)
        for row, price in enumerate(np.log1p(blended)):
            fade = (1 + 1e-6) * np.exp(-np.abs(price - anchors) / scale)
            expected = 0.5 * (fade * errors).sum() / fade.sum()
            assert shifts[scale][row] == pytest.approx(expected, abs=1e-6)
    assert abs(shifts[None][0]) < 0.05 and abs(shifts[None][1]) < 0.05  # alike: they cancel
    assert shifts[1.0][0] > 0.15 and shifts[1.0][1] < -0.15  # each led by its own price's kind


def test_residual_similarity_power_moves_a_near_copy_more_than_a_loose_match() -> None:
    # Kind A: ten training items the member prices e^0.4 too low out of fold; kind B: ninety
    # priced right, which the L1 blend follows. Two new items whose ten nearest are kind A: a
    # copy of one (similarity 1) and a loose match (similarity 0.25, its other word unseen).
    rng = np.random.default_rng(4)
    kinds = np.repeat([0, 1], [10, 90])
    truth = np.exp(rng.uniform(1, 6, len(kinds)))
    member = np.expm1(np.log1p(truth) - np.where(kinds == 0, 0.4, 0.0))[:, None]
    words = {"text": sp.csr_matrix(np.eye(3)[kinds])}
    loose = np.array([0.25, 0.0, np.sqrt(1 - 0.25**2)])
    spaces = {"text": sp.csr_matrix(np.vstack([np.eye(3)[0], loose]))}
    new = np.array([[50.0], [50.0]])
    shifts = {}
    for power in (None, 1.0):
        pricer = build(
            neighbour_residuals=0.5, title_residuals=None, residual_similarity_power=power
        )
        pricer.set_params(blend_split_price=None, like_test_weight=None, residual_price_scale=None)
        pricer.fit_blend(member, truth).fit_residuals(words, member, truth)
        blended = np.log1p(pricer.price_from_members(new))
        shifts[power] = np.log1p(pricer.price_from_members(new, spaces)) - blended
    assert shifts[None][0] > 0.15  # kind A's error, half of it
    assert shifts[None][1] == pytest.approx(shifts[None][0])  # unscaled: the same ten, one move
    assert shifts[1.0][0] == pytest.approx(shifts[None][0])  # a copy keeps the whole move
    assert shifts[1.0][1] == pytest.approx(0.25 * shifts[None][1])  # a loose match a quarter


def test_like_test_weight_counts_the_errors_of_items_drawn_like_the_test_set_more() -> None:
    # Kind A: ten training items, five drawn like the test set (out of fold e^0.4 too low),
    # five not (e^0.4 too high); kind B: ninety priced right, which the L1 blend follows.
    rng = np.random.default_rng(2)
    kinds = np.repeat([0, 1], [10, 90])
    like_test = np.r_[np.ones(5, bool), np.zeros(95, bool)]
    truth = np.exp(rng.uniform(1, 6, len(kinds)))
    off = np.where(kinds == 0, np.where(like_test, -0.4, 0.4), 0.0)
    member = np.expm1(np.log1p(truth) + off)[:, None]
    words = {"text": sp.csr_matrix(np.eye(2)[kinds])}
    items = pd.DataFrame({"text": ["x"] * len(kinds), LIKE_TEST_COLUMN: like_test})
    new, spaces = np.full((1, 1), 50.0), {"text": sp.csr_matrix(np.eye(2)[[0]])}
    shifts = {}
    for weight in (None, 4.0):
        pricer = build(neighbour_residuals=0.5, title_residuals=None, like_test_weight=weight)
        # No fading by price gap: the ten are priced anywhere from $3 to $400 here.
        pricer.set_params(blend_split_price=None, residual_price_scale=None)
        weights = pricer.residual_weights(items)
        assert (weights is None) == (weight is None)
        pricer.fit_blend(member, truth).fit_residuals(words, member, truth, weights)
        moved = pricer.price_from_members(new, spaces)
        shifts[weight] = (np.log1p(moved) - np.log1p(pricer.price_from_members(new)))[0]
    # Alike, the ten errors cancel; at 4 to 1 the mean is (4 x 5 x 0.4 - 5 x 0.4) / 25 = 0.24.
    assert shifts[None] == pytest.approx(0.0, abs=1e-6)
    assert shifts[4.0] == pytest.approx(0.5 * 0.24, abs=1e-6)
    # No flag in the data: every item counts alike, whatever the weight.
    unflagged = items.drop(columns=LIKE_TEST_COLUMN)
    assert build(like_test_weight=4.0).residual_weights(unflagged) is None


def test_a_stack_fitted_with_the_flag_reads_it_and_prices_without_it(shop, tmp_path) -> None:
    from pricer.tracking.model_files import load_pricer, save_pricer

    train, prices, test, _ = shop
    flagged = train.assign(**{LIKE_TEST_COLUMN: np.arange(len(train)) % 3 == 0})
    # The committed stack weighs the flagged items in its residuals and its neighbour prices.
    alike = build(like_test_weight=None, like_test_feature_weight=None).fit(flagged, prices)
    alike = alike.predict(test)
    np.testing.assert_allclose(build().fit(train, prices).predict(test), alike)
    weighted = build().fit(flagged, prices)
    assert not np.allclose(weighted.predict(test), alike)
    assert np.isfinite(weighted.predict(test)).all()
    save_pricer(weighted, tmp_path / "stack.skops")  # the pools' weights are safe to load
    np.testing.assert_allclose(
        load_pricer(tmp_path / "stack.skops").predict(test), weighted.predict(test)
    )


def test_like_test_feature_weight_reaches_the_neighbour_prices_and_nothing_else(
    shop, tmp_path
) -> None:
    from pricer.tracking.model_files import load_pricer, save_pricer

    train, prices, test, _ = shop
    like_test = np.arange(len(train)) % 3 == 0
    flagged = _items(train.assign(**{LIKE_TEST_COLUMN: like_test}))
    # Every optional part of the features is fitted, so each one meets the routed weights; a
    # pool smaller than the items samples them, so the weights must follow the pool's rows.
    settings = {**EVERY_SIGNAL, "neighbour_residuals": None, "title_residuals": None}
    settings["neighbour_pool"] = len(train) // 2
    plain = build(like_test_feature_weight=None, **settings)
    weighted = build(like_test_feature_weight=4.0, **settings)
    before, after = plain.fit_features(flagged, prices), weighted.fit_features(flagged, prices)
    assert not sklearn.get_config()["enable_metadata_routing"]  # on only inside the fit
    # Only the similarity-weighted mean of each neighbour search moves (words, titles).
    parts = weighted.features_.output_indices_
    mean = NEIGHBOUR_FEATURES.index("knn_weighted_mean_10")
    words_knn = parts["words"].stop - len(NEIGHBOUR_FEATURES)  # the words part ends with them
    moved = [words_knn + mean, parts["title_knn"].start + mean]
    kept = np.setdiff1d(np.arange(before.shape[1]), moved)
    np.testing.assert_array_equal(after[:, kept], before[:, kept])
    assert not np.allclose(after[:, moved], before[:, moved])
    searches = [("words", "dense"), ("title_knn", None)]
    for name, union in searches:
        part = weighted.features_.named_transformers_[name]
        steps = part.named_steps[union].transformer_list if union else part.steps
        neighbours = dict(steps)["neighbours"]
        assert len(neighbours.pool_rows_) == len(train) // 2
        expected = np.where(like_test[neighbours.pool_rows_], 4.0, 1.0)
        np.testing.assert_array_equal(neighbours.pool_weight_, expected)
        np.testing.assert_array_equal(
            neighbours.pool_target_, np.log1p(prices)[neighbours.pool_rows_]
        )
    # Without the flag, or with the weight null, the features are the plain ones.
    np.testing.assert_array_equal(weighted.fit_features(_items(train), prices), before)
    fitted = weighted.fit(flagged, prices)
    save_pricer(fitted, tmp_path / "stack.skops")  # no routing state to refuse on loading
    np.testing.assert_allclose(
        load_pricer(tmp_path / "stack.skops").predict(test), fitted.predict(test)
    )


def test_the_feature_weight_is_not_sent_where_no_neighbour_search_can_take_it(shop) -> None:
    # Regression: with the committed weight, a flagged fit without neighbour prices raised
    # "ColumnTransformer.fit_transform got unexpected argument(s) {'sample_weight'}".
    train, prices, test, _ = shop
    flagged = train.assign(**{LIKE_TEST_COLUMN: np.arange(len(train)) % 3 == 0})
    settings = {"neighbours": False, "title_neighbours": False}
    fitted = build(**settings).fit(flagged, prices)
    alike = build(like_test_feature_weight=None, **settings).fit(flagged, prices)
    np.testing.assert_allclose(fitted.predict(test), alike.predict(test))


@pytest.mark.parametrize("setting", ["like_test_weight", "like_test_feature_weight"])
@pytest.mark.parametrize("weight", [0.0, -1.0, float("nan"), float("inf")])
def test_a_like_test_weight_must_be_finite_and_positive(shop, setting, weight) -> None:
    # A weight of 0 gave NaN neighbour prices (0 / 0) and a negative one prices out of range,
    # which the trees took without complaint.
    train, prices, _, _ = shop
    flagged = train.assign(**{LIKE_TEST_COLUMN: np.arange(len(train)) % 3 == 0})
    with pytest.raises(ValueError, match=f"{setting} must be a finite number above 0"):
        build(**{setting: weight}).fit(flagged, prices)


@pytest.mark.parametrize("flag", [["True", "False", "False"], [1.0, 0.0, 0.5], [1, 0, 2]], ids=str)
def test_a_flag_that_is_not_true_or_false_is_refused(shop, flag) -> None:
    # Text flags counted "False" as flagged (a non-empty string is truthy).
    train, prices, _, _ = shop
    flagged = train.assign(**{LIKE_TEST_COLUMN: (flag * len(train))[: len(train)]})
    with pytest.raises(ValueError, match=f"{LIKE_TEST_COLUMN} must hold True or False"):
        build().fit(flagged, prices)


def test_a_flag_with_missing_values_counts_them_as_not_flagged(shop) -> None:
    train, _, _, _ = shop
    values = pd.array([True, None, False] * len(train), dtype="boolean")[: len(train)]
    items = train.assign(**{LIKE_TEST_COLUMN: values})
    weights = build().residual_weights(items)
    np.testing.assert_array_equal(weights, np.where(np.arange(len(train)) % 3 == 0, 4.0, 1.0))
    objects = train.assign(**{LIKE_TEST_COLUMN: pd.Series(values, dtype=object)})
    np.testing.assert_array_equal(build().residual_weights(objects), weights)


def test_residual_shares_of_zero_price_as_none_and_each_space_moves_prices(shop) -> None:
    train, prices, test, _ = shop
    off = build(neighbour_residuals=None, title_residuals=None).fit(train, prices)
    assert not hasattr(off, "residuals_")
    plain = off.predict(test)
    zero = build(neighbour_residuals=0.0, title_residuals=0.0).fit(train, prices)
    np.testing.assert_allclose(zero.predict(test), plain)
    by_text = build(neighbour_residuals=0.5, title_residuals=None).fit(train, prices)
    by_title = build(neighbour_residuals=None, title_residuals=0.5).fit(train, prices)
    assert list(by_text.residuals_) == ["text"] and list(by_title.residuals_) == ["title"]
    moved = [pricer.predict(test) for pricer in (by_text, by_title)]
    for prices_moved in moved:
        assert np.isfinite(prices_moved).all() and (prices_moved >= 0).all()
        assert not np.allclose(prices_moved, plain)
    assert not np.allclose(*moved)


def test_title_residuals_read_the_title_ridges_tfidf_or_their_own_without_it(shop, tmp_path):
    from pricer.tracking.model_files import load_pricer, save_pricer

    train, prices, test, _ = shop
    with_ridge = build(title_residuals=0.5).fit(train, prices)
    assert not hasattr(with_ridge, "title_tfidf_")  # no second title vocabulary to keep
    ridge_tfidf = with_ridge.features_.named_transformers_["title"].named_steps["vectorize"]
    without = build(title_residuals=0.5, title_ridge_alpha=None).fit(train, prices)
    assert "title" not in without.features_.named_transformers_
    assert without.title_tfidf_.vocabulary_ == ridge_tfidf.vocabulary_  # the same TF-IDF
    save_pricer(without, tmp_path / "stack.skops")
    loaded = load_pricer(tmp_path / "stack.skops")
    np.testing.assert_allclose(loaded.predict(test), without.predict(test))
    assert np.isfinite(loaded.predict(test)).all()


@pytest.mark.parametrize("settings", [{}, EVERY_SIGNAL], ids=["committed", "every_signal"])
def test_a_fitted_stack_round_trips_through_a_safe_model_file(shop, tmp_path, settings) -> None:
    from pricer.tracking.model_files import load_pricer, save_pricer

    train, prices, test, _ = shop
    pricer = build(**settings).fit(train, prices)
    assert ("title_knn" in pricer.features_.named_transformers_) == bool(settings)
    save_pricer(pricer, tmp_path / "stack.skops")  # raises if it needs an untrusted type
    loaded = load_pricer(tmp_path / "stack.skops")
    np.testing.assert_allclose(loaded.predict(test), pricer.predict(test))


def test_the_stack_config_passes_the_schema_check_and_a_wrong_key_does_not() -> None:
    from omegaconf import OmegaConf

    from pricer.settings import ConfigError, check_arguments

    node = OmegaConf.create(OmegaConf.to_container(stack_config(), resolve=True))
    check_arguments(node, "model")  # LightGBM's verbose is one of its own **kwargs
    node.members.lgbm_log.weight_powr = 1.0
    with pytest.raises(ConfigError, match="weight_powr"):
        check_arguments(node, "model")


def test_a_member_set_to_null_is_left_out(shop) -> None:
    train, prices, test, _ = shop
    members = {**build().members, "xgb_log": None}
    pricer = build(members=members).fit(train, prices)
    assert list(pricer.members_) == ["lgbm_log", "lgbm_l1"]
    assert pricer.out_of_fold_.shape == (len(train), 2)
    assert pricer.member_prices(test).shape == (len(test), 2)
    assert np.isfinite(pricer.predict(test)).all()
    with pytest.raises(ValueError, match="at least one member"):
        build(members=dict.fromkeys(members)).fit(train, prices)


def test_the_budget_stack_is_the_stack_with_its_documented_savings() -> None:
    from omegaconf import OmegaConf

    from pricer.settings import check_arguments
    from tests.conftest import compose_config

    budget = compose_config("train", ["model=stack_budget"]).model
    check_arguments(OmegaConf.create(OmegaConf.to_container(budget, resolve=True)), "model")
    full, cut = (OmegaConf.to_container(c, resolve=True) for c in (stack_config(), budget))
    assert (cut.pop("char_ridge_alpha"), cut.pop("neighbour_pool")) == (None, 20000)
    assert cut["members"].pop("xgb_log") is None
    for name in ("lgbm_log", "lgbm_l1"):
        estimator = cut["members"][name]["estimator"]
        assert (estimator.pop("n_estimators"), estimator.pop("learning_rate")) == (600, 0.05)
        for key in ("n_estimators", "learning_rate"):
            full["members"][name]["estimator"].pop(key)
    for key in ("char_ridge_alpha", "neighbour_pool"):
        full.pop(key)
    full["members"].pop("xgb_log")
    # Both without the residual moves, whose CV gain did not hold on rows never chosen on.
    assert [full[key] for key in ("neighbour_residuals", "title_residuals")] == [None, None]
    assert cut == full  # nothing else differs
    assert isinstance(instantiate(budget), StackPricer)


def test_the_real_leaderboard_adds_both_stacks_and_the_demo_neither() -> None:
    from tests.conftest import compose_config

    real = compose_config("leaderboard", ["data=real"]).models
    assert {"stack", "stack_budget"} <= set(real)
    assert real.stack_budget.members.xgb_log is None
    assert not {"stack", "stack_budget"} & set(compose_config("leaderboard").models)


def test_a_model_file_naming_the_parts_in_their_old_module_still_loads(shop, tmp_path) -> None:
    """Member, Blend and Correction moved from pricer.models.stack to pricer.models.stacking;
    stack files saved before name them in the old module, and must load and price as before."""
    import zipfile

    from pricer.tracking.model_files import load_pricer, save_pricer

    train, prices, test, _ = shop
    pricer = build().fit(train, prices)
    save_pricer(pricer, tmp_path / "new.skops")
    old = tmp_path / "old.skops"
    with zipfile.ZipFile(tmp_path / "new.skops") as source, zipfile.ZipFile(old, "w") as target:
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename == "schema.json":
                assert b'"pricer.models.stacking"' in data
                data = data.replace(b'"pricer.models.stacking"', b'"pricer.models.stack"')
            target.writestr(entry, data)
    loaded = load_pricer(old)
    assert type(loaded.blend_).__module__ == "pricer.models.stacking"
    np.testing.assert_allclose(loaded.predict(test), pricer.predict(test))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"feature_folds": 1}, "feature_folds must be a whole number >= 2, got 1"),
        ({"feature_folds": 1000}, "feature_folds=1000 needs at least 1000 training items"),
        ({"ngram_max": 0}, "ngram_max must be a whole number >= 1, got 0"),
        ({"svd_components": 0}, "svd_components must be a whole number >= 1, got 0"),
        ({"min_df": 1000}, "min_df=1000 keeps only words found in at least 1,000 items"),
    ],
    ids=str,
)
def test_a_stack_refuses_settings_no_fit_can_take_before_fitting(shop, settings, message) -> None:
    # KFold's and the vectoriser's ValueErrors were tracebacks, after the text was vectorised.
    train, prices, _, _ = shop
    with pytest.raises(ConfigError, match=re.escape(message)):
        build().set_params(**settings).fit(train, prices)
