"""The stack family: several tree models on one rich dense view, blended to minimise dollars.

1. Features, built once per fit: truncated SVD of word TF-IDF; out-of-fold ridge predictions
   of the log price from word TF-IDF, character 2-5-grams, the title and a details document
   (``signals.DetailsDocument``); the prices of the nearest training items
   (``signals.NeighbourPrices``, leave-one-out), optionally also by title
   (``title_neighbours``), the prices of training items drawn like the test set optionally
   weighing more in their similarity-weighted mean (``like_test_feature_weight``, see 4.);
   optionally the out-of-fold chance that the item costs more than a
   few thresholds (``exceedance``, ``signals.ExceedanceProbabilities``); the raw hand
   features, the target-encoded brand and the category.
2. Members (``Member``: a tree model on log price or on dollars; one set to null is left out,
   as conf/model/stack_budget.yaml does) are fitted ``stack_folds`` times, each time without
   one fold: their predictions on the left-out folds are honest out-of-fold dollar prices for
   every training item. Then each member is refitted on every training item to price new
   items (more data is worth about $5.5 per doubling here, so averaging fold models fitted on
   2/3 of the rows would waste some). These fits are independent: ``n_jobs`` threads run them
   side by side. When one fold would hold out more rows than the blend is fitted on
   (``stacker_max_rows``; above 60,000 items by default), one seeded holdout of
   ``stacker_max_rows`` rows replaces the folds: the blend would sample that many out-of-fold
   prices anyway, and each member is fitted twice instead of ``stack_folds + 1`` times.
3. The blend (``Blend``): non-negative member weights plus an intercept minimising the mean
   absolute error in dollars over those out-of-fold prices (a small linear program), one set
   below and one above ``blend_split_price`` of the members' median price, then optionally a
   calibration of the blend (``correction``) fitted on the same out-of-fold prices: every
   model shrinks toward the middle, under-pricing $500-1000 items by $342 on average.
4. Optionally (``neighbour_residuals``), each price is moved by a share of the blend's
   out-of-fold log error on the 10 training items most like it (word TF-IDF cosine), and
   (``title_residuals``) by a share of that error on the 10 whose titles are most like its
   title (the title ridge's TF-IDF): where the stack under-prices items of a kind, it
   under-prices a new one of that kind too. Each training item's error is first bounded
   (``residual_clip``), so that one odd item (a bundle, a wrong price) among the ten cannot
   carry the average, and the errors of training items drawn the way the test set was (the
   ``drawn_like_test`` column, where the data has it) weigh ``like_test_weight`` times
   another's: the real data's other sets were drawn without the test set's balanced price
   slots (median $40 against $170), so a neighbour from them is most often a cheaper item,
   whose error (the blend over-prices cheap items) says less about a test item's. For the
   same reason a neighbour's weight fades with the gap between its out-of-fold blended log
   price and the item's blended log price (exp(-gap / ``residual_price_scale``)): the blend
   errs alike on items it prices alike, and a neighbour it priced at a quarter of this item's
   price speaks for another part of its range. With ``residual_similarity_power``, each
   move is then scaled by the similarity of the item's nearest neighbour in that space to
   this power: a near-copy of a training item takes its neighbours' error almost whole, an
   item only loosely like any takes less of it. The
   shares are settings, chosen by paired CV on the canonical rows: fitted on the training rows
   they come out 0, because there a row's neighbours' errors run against its own (their
   leave-one-out neighbour prices include that row's price), which is not so for new items.

Fitted state: numpy arrays, sklearn / lightgbm / xgboost estimators and plain containers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

# The learners conf/model/stack.yaml builds its members from: imported here so that safe model
# files (pricer.tracking.model_files) trust their classes, as for the xgboost family.
import numpy as np
import pandas as pd
import scipy.sparse as sp
import xgboost  # noqa: F401
from sklearn import config_context
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, ShuffleSplit
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

from pricer.errors import BadData, ConfigError
from pricer.models.base import (
    INPUT_COLUMNS,
    LIKE_TEST_COLUMN,
    MembersParams,
    Pricer,
    as_items,
    price_range,
    training_prices,
    within,
)
from pricer.models.features import (
    TextSVD,
    check_folds,
    check_n_jobs,
    check_word_settings,
    text_vectorizer,
    tree_feature_union,
    whole_number,
    words_kept,
)
from pricer.models.pipeline import price_weights
from pricer.models.signals import (
    NEIGHBOUR_FEATURES,
    DetailsDocument,
    ExceedanceProbabilities,
    NeighbourPrices,
)
from pricer.models.stacking import (
    CORRECTIONS,
    Blend,
    Correction,
    Member,
    OutOfFoldPrediction,
)

BLEND_MIN_ROWS = 200  # fewer training rows in a price range: it keeps the blend of all rows
# The neighbour residual a price is moved by: the similarity-weighted mean of the 10 nearest.
RESIDUAL_COLUMN = NEIGHBOUR_FEATURES.index("knn_weighted_mean_10")
TOP_SIMILARITY_COLUMN = NEIGHBOUR_FEATURES.index("knn_top_similarity")


def _ridge_on(
    vectorizer: object, alpha: float, folds: int, random_state: int, n_jobs: int
) -> Pipeline:
    """A vectoriser, then the out-of-fold ridge prediction of the target from its columns."""
    ridge = OutOfFoldPrediction(Ridge(alpha=alpha), folds, random_state, n_jobs)
    return Pipeline([("vectorize", vectorizer), ("ridge", ridge)])


class StackPricer(MembersParams, Pricer):
    """Tree members on shared features, blended by an out-of-fold L1 stack (see module doc)."""

    def __init__(
        self,
        members: Mapping[str, Member],
        text_max_features: int,
        ngram_max: int,
        min_df: int,
        svd_components: int,
        word_ridge_alpha: float,
        char_ridge_alpha: float | None,
        char_max_features: int,
        title_ridge_alpha: float | None,
        details_ridge_alpha: float | None,
        neighbours: bool,
        title_neighbours: bool,
        neighbour_pool: int,
        exceedance: Mapping[str, Any] | None,
        feature_folds: int,
        stack_folds: int,
        stacker_max_rows: int,
        blend_split_price: float | None,
        correction: str,
        neighbour_residuals: float | None,
        title_residuals: float | None,
        residual_clip: float | None,
        residual_price_scale: float | None,
        residual_similarity_power: float | None,
        like_test_weight: float | None,
        like_test_feature_weight: float | None,
        price_weight_power: float,
        n_jobs: int,
        random_state: int,
    ) -> None:
        self.members = members
        self.text_max_features = text_max_features
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.svd_components = svd_components
        self.word_ridge_alpha = word_ridge_alpha
        self.char_ridge_alpha = char_ridge_alpha
        self.char_max_features = char_max_features
        self.title_ridge_alpha = title_ridge_alpha
        self.details_ridge_alpha = details_ridge_alpha
        self.neighbours = neighbours
        self.title_neighbours = title_neighbours
        self.neighbour_pool = neighbour_pool
        self.exceedance = exceedance
        self.feature_folds = feature_folds
        self.stack_folds = stack_folds
        self.stacker_max_rows = stacker_max_rows
        self.blend_split_price = blend_split_price
        self.correction = correction
        self.neighbour_residuals = neighbour_residuals
        self.title_residuals = title_residuals
        self.residual_clip = residual_clip
        self.residual_price_scale = residual_price_scale
        self.residual_similarity_power = residual_similarity_power
        self.like_test_weight = like_test_weight
        self.like_test_feature_weight = like_test_feature_weight
        self.price_weight_power = price_weight_power
        self.n_jobs = n_jobs
        self.random_state = random_state

    def word_vectorizer(self) -> TfidfVectorizer:
        """The word 1-2-gram TF-IDF (unfitted) the SVD, the word ridge and the neighbours read."""
        return text_vectorizer("tfidf", self.text_max_features, self.ngram_max, self.min_df, True)

    @staticmethod
    def title_vectorizer() -> TfidfVectorizer:
        """The title 1-2-gram TF-IDF (unfitted) the title ridge and the title residuals read."""
        return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)

    def residual_shares(self) -> dict[str, float]:
        """The share of its neighbours' errors a price moves by, per column they are found by."""
        shares = {"text": self.neighbour_residuals, "title": self.title_residuals}
        wordless = getattr(self, "wordless_columns_", ())  # no titles to find neighbours by
        return {
            column: share
            for column, share in shares.items()
            if share is not None and column not in wordless
        }

    def residual_vectorizers(self) -> dict[str, TfidfVectorizer]:
        """The (unfitted) TF-IDF each residual column's neighbours are found in."""
        vectorizers = {"text": self.word_vectorizer(), "title": self.title_vectorizer()}
        return {column: vectorizers[column] for column in self.residual_shares()}

    def make_features(self, without: Collection[str] = ()) -> ColumnTransformer:
        """The features' transformers (unfitted); ``without``: the optional text columns
        ("title", "details") left out, as the training items carry too little of them."""
        folds, seed, jobs = self.feature_folds, self.random_state, self.n_jobs
        words: list[tuple[str, object]] = [
            ("svd", TextSVD(self.svd_components, seed)),
            ("ridge", OutOfFoldPrediction(Ridge(alpha=self.word_ridge_alpha), folds, seed, jobs)),
        ]
        if self.neighbours:
            neighbours = NeighbourPrices(self.neighbour_pool, 512, seed, jobs)
            words.append(("neighbours", neighbours))
        word_tfidf = self.word_vectorizer()
        parts: list[tuple[str, object, object]] = [
            ("words", Pipeline([("tfidf", word_tfidf), ("dense", FeatureUnion(words))]), "text")
        ]
        if self.char_ridge_alpha is not None:
            chars = TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=(2, 5),
                max_features=self.char_max_features,
                min_df=self.min_df,
                sublinear_tf=True,
                dtype=np.float32,
            )
            parts.append(
                ("chars", _ridge_on(chars, self.char_ridge_alpha, folds, seed, jobs), "text")
            )
        if self.title_ridge_alpha is not None and "title" not in without:
            title = self.title_vectorizer()
            parts.append(
                ("title", _ridge_on(title, self.title_ridge_alpha, folds, seed, jobs), "title")
            )
        if self.details_ridge_alpha is not None and "details" not in without:
            details = Pipeline(
                [
                    ("document", DetailsDocument()),
                    ("tfidf", TfidfVectorizer(token_pattern=r"\S+", lowercase=False, min_df=2)),
                ]
            )
            ridge = _ridge_on(details, self.details_ridge_alpha, folds, seed, jobs)
            parts.append(("details", ridge, ["details"]))
        if self.title_neighbours and "title" not in without:
            title = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32)
            neighbours = NeighbourPrices(self.neighbour_pool, 512, seed, jobs)
            pipeline = Pipeline([("tfidf", title), ("neighbours", neighbours)])
            parts.append(("title_knn", pipeline, "title"))
        if self.exceedance:
            thresholds = [float(t) for t in self.exceedance["thresholds"]]
            C = float(self.exceedance["C"])
            exceedance = ExceedanceProbabilities(thresholds, C, folds, seed)
            vectorizer = clone(word_tfidf)
            pipeline = Pipeline([("tfidf", vectorizer), ("probabilities", exceedance)])
            parts.append(("exceedance", pipeline, "text"))
        parts.append(("hand", tree_feature_union(seed), list(INPUT_COLUMNS)))
        return ColumnTransformer(parts, sparse_threshold=0.0)

    def _active_members(self) -> dict[str, Member]:
        """The members to fit: one set to null (``members.xgb_log: null``) is left out."""
        return {name: member for name, member in self.members.items() if member is not None}

    def _validate(self, n_items: int) -> None:
        if not self._active_members():
            raise ConfigError("a stack needs at least one member that is not null")
        if self.correction not in CORRECTIONS:
            raise ConfigError(f"correction must be one of {CORRECTIONS}, got {self.correction!r}")
        if self.stacker_max_rows < 1:
            raise ConfigError(f"stacker_max_rows must be positive, got {self.stacker_max_rows}")
        for name in ("residual_price_scale", "like_test_weight", "like_test_feature_weight"):
            value = getattr(self, name)
            # A weight of 0 would leave an all-flagged neighbourhood no weight at all (0 / 0), a
            # negative one averages outside the neighbours' range, and a scale divides a gap:
            # the trees would take any of them quietly.
            if value is not None and not (np.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a finite number above 0 or null, got {value}")
        check_word_settings(self.ngram_max, self.min_df, n_items)
        whole_number("svd_components", self.svd_components)
        check_n_jobs(self.n_jobs)
        check_folds("feature_folds", self.feature_folds, n_items)
        if self.stack_folds < 2 or n_items < 2 * self.stack_folds:
            raise ConfigError(
                f"stack_folds={self.stack_folds} needs >= 2 folds and >= {2 * self.stack_folds} "
                f"training items, got {n_items}"
            )

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> StackPricer:
        prices = training_prices(X, y)
        self._validate(len(prices))
        items = _items(X)
        dense = self.fit_features(items, prices)
        self.out_of_fold_ = self._fit_members(dense, prices)
        self.fit_blend(self.out_of_fold_, prices)
        if self.residual_shares():
            self._fit_own_residuals(items, prices, self.residual_weights(items))
        self.price_range_ = price_range(prices)
        return self

    def fit_features(self, items: pd.DataFrame, prices: np.ndarray) -> np.ndarray:
        """Fit ``features_`` (``make_features``) on the items; return their training rows.

        With ``like_test_feature_weight``, scikit-learn's metadata routing sends each item's
        weight (``feature_weights``) to the neighbour searches, the only parts that ask for it.
        """
        self.wordless_columns_ = wordless_columns(items)
        self.features_ = self.make_features(without=self.wordless_columns_)
        weights = self.feature_weights(items)
        with words_kept(len(items), self.min_df):
            if weights is None:
                return self.features_.fit_transform(items, np.log1p(prices))
            with config_context(enable_metadata_routing=True):
                return self.features_.fit_transform(items, np.log1p(prices), sample_weight=weights)

    def residual_weights(self, X: pd.DataFrame) -> np.ndarray | None:
        """Each training item's weight in the residual averages (None: all alike)."""
        return _like_test_weights(X, self.like_test_weight)

    def feature_weights(self, X: pd.DataFrame) -> np.ndarray | None:
        """Each training item's weight in the neighbour-price features (None: all alike).

        None without a neighbour search too: no other part of the features takes weights, and
        routing would refuse weights that no part asks for.
        """
        if not (self.neighbours or self.title_neighbours):
            return None
        return _like_test_weights(X, self.like_test_feature_weight)

    def _fit_own_residuals(
        self, items: pd.DataFrame, prices: np.ndarray, weights: np.ndarray | None
    ) -> None:
        """``fit_residuals`` on the training rows with out-of-fold prices (all, or a holdout)."""
        if "title" in self.residual_shares() and "title" not in self.features_.named_transformers_:
            self.title_tfidf_ = self.title_vectorizer().fit(items["title"])
        rows = np.flatnonzero(np.isfinite(self.out_of_fold_).all(axis=1))
        spaces = self._residual_spaces(items.iloc[rows])
        kept = None if weights is None else weights[rows]
        self.fit_residuals(spaces, self.out_of_fold_[rows], prices[rows], kept)

    def _residual_spaces(self, items: pd.DataFrame) -> dict[str, sp.spmatrix]:
        """The items' rows of each fitted residual TF-IDF: the features' own where they have it."""
        fitted = self.features_.named_transformers_
        vectorizers = {"text": fitted["words"].named_steps["tfidf"]}
        if "title" in self.residual_shares():
            own = "title" not in fitted  # no title ridge: its own TF-IDF
            vectorizers["title"] = (
                self.title_tfidf_ if own else fitted["title"].named_steps["vectorize"]
            )
        return {
            column: vectorizers[column].transform(items[column])
            for column in self.residual_shares()
        }

    def member_splits(self, n_items: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (fit rows, held-out rows) splits the members' out-of-fold prices come from.

        ``stack_folds`` folds, or one seeded holdout of ``stacker_max_rows`` rows when a fold
        would hold out more than that: the blend never uses more rows, so at 400k items the
        folds' other 380,000 out-of-fold prices would cost two member fits for nothing.
        """
        rows = np.arange(n_items)
        if n_items > self.stack_folds * self.stacker_max_rows:
            holdout = ShuffleSplit(
                1, test_size=self.stacker_max_rows, random_state=self.random_state
            )
            return list(holdout.split(rows))
        return list(
            KFold(self.stack_folds, shuffle=True, random_state=self.random_state).split(rows)
        )

    def _fit_members(self, dense: np.ndarray, prices: np.ndarray) -> np.ndarray:
        """Fit each member once per split; return their out-of-fold dollar prices.

        Rows no split holds out (only with a holdout, see ``member_splits``) are NaN.

        The fold fits and the refits on every row are independent, so ``n_jobs`` threads run
        them side by side: each learner is single-threaded and releases the GIL while it fits
        (LightGBM and XGBoost call their C libraries through ctypes), so two threads keep two
        cores busy with one copy of ``dense``. Every fit has its own seed, so the result does
        not depend on ``n_jobs`` or on which fit ends first.
        """
        splits = self.member_splits(len(prices))
        active = self._active_members()
        members = list(active.values())
        # Each task takes its fold's rows when it starts: made up front, the nine copies of
        # two thirds of ``dense`` would all be held at once (2.7 GB at 400k items). A fold's
        # task also prices its held-out rows (174 s at 400k when done one after another).
        tasks = [(member, rows) for rows in splits for member in members]
        tasks += [(member, None) for member in members]  # the refits, on every row
        fitted = Parallel(n_jobs=self.n_jobs, prefer="threads")(
            delayed(self._fit_on_rows)(member, dense, prices, rows) for member, rows in tasks
        )
        out_of_fold = np.full((len(prices), len(members)), np.nan)
        for index, (_, valid_rows) in enumerate(splits):
            for column in range(len(members)):
                out_of_fold[valid_rows, column] = fitted[index * len(members) + column][1]
        refits = [model for model, _ in fitted[-len(members) :]]
        self.members_ = dict(zip(active, refits, strict=True))
        return out_of_fold

    def _fit_on_rows(
        self,
        member: Member,
        dense: np.ndarray,
        prices: np.ndarray,
        rows: tuple[np.ndarray, np.ndarray] | None,
    ) -> tuple[Member, np.ndarray | None]:
        """Fit on a fold's training rows and price its held-out rows (``None``: every row)."""
        if rows is None:
            return self._fit_member(member, dense, prices), None
        train_rows, valid_rows = rows
        model = self._fit_member(member, dense[train_rows], prices[train_rows])
        return model, model.predict(dense[valid_rows])

    def _fit_member(self, member: Member, dense: np.ndarray, prices: np.ndarray) -> Member:
        power = self.price_weight_power if member.weight_power is None else member.weight_power
        return clone(member).fit(dense, prices, price_weights(prices, power))

    def fit_blend(self, out_of_fold: np.ndarray, prices: np.ndarray) -> StackPricer:
        """Fit the blend and its correction on the members' out-of-fold prices (NaN: none)."""
        rows = np.flatnonzero(np.isfinite(out_of_fold).all(axis=1))
        if len(rows) > self.stacker_max_rows:  # the LP grows with rows; a sample settles it
            rng = np.random.default_rng(self.random_state)
            rows = rng.choice(rows, self.stacker_max_rows, replace=False)
        self.blend_ = Blend(self.blend_split_price, BLEND_MIN_ROWS).fit(
            out_of_fold[rows], prices[rows]
        )
        blended = self.blend_.predict(out_of_fold[rows])
        self.correction_ = Correction(self.correction).fit(blended, prices[rows])
        return self

    def fit_residuals(
        self,
        spaces: Mapping[str, sp.spmatrix],
        out_of_fold: np.ndarray,
        prices: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> StackPricer:
        """Keep the blend's out-of-fold log errors of training items, by their TF-IDF rows.

        ``spaces``: for each column of ``residual_shares``, those items' rows of its fitted
        TF-IDF; ``out_of_fold``: their members' out-of-fold prices (no NaN), after
        ``fit_blend``. Each error is bounded to +-``residual_clip`` (null: not bounded); with
        ``residual_price_scale``, each item's out-of-fold blended log price is kept as its
        anchor, and a neighbour's pull fades with the gap to the priced item's blended log price;
        ``weights`` (``residual_weights``; None: alike) scale each item's pull on its
        neighbours.
        """
        blended = np.log1p(self.price_from_members(out_of_fold))
        error = np.log1p(prices) - blended
        if self.residual_clip is not None:
            error = np.clip(error, -self.residual_clip, self.residual_clip)
        scale = self.residual_price_scale
        self.residuals_ = {
            column: NeighbourPrices(
                self.neighbour_pool, 512, self.random_state, self.n_jobs, anchor_scale=scale
            ).fit(spaces[column], error, sample_weight=weights, anchor=blended)
            for column in self.residual_shares()
        }
        return self

    def price_from_members(
        self, member_prices: np.ndarray, spaces: Mapping[str, sp.spmatrix] | None = None
    ) -> np.ndarray:
        """The stack's prices from its members' prices (``member_prices``' columns).

        With residuals fitted (``fit_residuals``), ``spaces`` (the items' TF-IDF rows, as
        there) moves each price by the errors of its neighbours in each; without, the blend.
        """
        blended = self.blend_.predict(member_prices)
        prices = np.clip(self.correction_.transform(blended), 0.0, None)
        if spaces is None or not self.residual_shares():
            return prices
        check_is_fitted(self, "residuals_")
        shift = np.zeros(len(prices))
        for column, share in self.residual_shares().items():
            # The blend's log price anchors the item (used when fitted with a price scale).
            neighbours = self.residuals_[column]
            found = neighbours.transform(spaces[column], anchor=np.log1p(prices))
            error = found[:, RESIDUAL_COLUMN]
            # Models saved before the setting existed move every price by the same share.
            power = getattr(self, "residual_similarity_power", None)
            if power is not None:  # the nearer the nearest neighbour, the more it is trusted
                error = error * found[:, TOP_SIMILARITY_COLUMN] ** power
            # An item with no word in the vocabulary (an empty title) has no neighbours: its
            # "nearest" ten would be any ten, so it is left alone.
            known = np.asarray(spaces[column].getnnz(axis=1) > 0)
            shift += share * np.where(known, error, 0.0)
        return np.clip(np.expm1(np.log1p(prices) + shift), 0.0, None)

    def member_prices(self, X: pd.DataFrame) -> np.ndarray:
        """Each fitted member's price for each item (columns in ``members`` order)."""
        check_is_fitted(self, "members_")
        dense = self.features_.transform(_items(X))
        return np.column_stack([member.predict(dense) for member in self.members_.values()])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "members_")  # before the residual spaces need what fit keeps
        spaces = self._residual_spaces(_items(X)) if self.residual_shares() else None
        prices = self.price_from_members(self.member_prices(X), spaces)
        return within(prices, getattr(self, "price_range_", None))


def _like_test_weights(X: pd.DataFrame, weight: float | None) -> np.ndarray | None:
    """``weight`` for items drawn like the test set, 1 for others (None: no weight, or no flag)."""
    if weight is None or LIKE_TEST_COLUMN not in X.columns:
        return None
    return np.where(_like_test_flag(X[LIKE_TEST_COLUMN]), float(weight), 1.0)


def _like_test_flag(values: pd.Series) -> np.ndarray:
    """The flag as booleans, a missing value as False; anything but True/False is refused.

    Strictly: a text "False" is truthy, and a number would be a guess at what it means.
    """
    if pd.api.types.is_bool_dtype(values):  # numpy bool, or pandas' nullable boolean
        return values.fillna(False).to_numpy(dtype=bool)
    present = values[values.notna()]
    if values.dtype == object and all(isinstance(v, bool | np.bool_) for v in present):
        return np.array([bool(v) if isinstance(v, bool | np.bool_) else False for v in values])
    example = present.iloc[0] if len(present) else None
    raise BadData(
        f"{LIKE_TEST_COLUMN} must hold True or False (or nothing), got {values.dtype} values "
        f"such as {example!r}"
    )


# What makes a column's text usable: a word in a title, a "key": in a details JSON object. The
# title and details vectorisers keep terms seen in 2 items or more (min_df=2).
_WORDS = {"title": r"\w", "details": r'"[^"]+"\s*:'}
_MIN_ITEMS = 2


def wordless_columns(items: pd.DataFrame) -> list[str]:
    """The optional text columns that fewer than two training items carry: items given as texts
    alone, or a set without details. Their vectorisers would find no vocabulary and the fit
    failed ("empty vocabulary"); left out, the stack prices from the text as the rest do."""
    return [
        column
        for column, pattern in _WORDS.items()
        if items[column].str.contains(pattern, regex=True).sum() < _MIN_ITEMS
    ]


def _items(X: pd.DataFrame) -> pd.DataFrame:
    """Items with every text column a string (titles and details may be missing)."""
    items = as_items(X)
    for column in ("title", "details"):
        items[column] = items[column].fillna("").astype(str)
    return items
