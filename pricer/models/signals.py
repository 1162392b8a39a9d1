"""Price signals for the stack family: what similar items cost, and what the details say.

- ``NeighbourPrices``: the prices of the most similar training items by TF-IDF cosine
  (median log price of the nearest 5/10/25, a similarity-weighted mean, the nearest
  similarity, the spread). A training item never counts as its own neighbour (leave-one-out),
  so the trees see on training rows what they will see on new items.
- ``ExceedanceProbabilities``: the chance that an item costs more than each of a few
  thresholds ($100, $250, $500), by logistic regressions on TF-IDF (out of fold on training
  rows). A classifier of "is this expensive?" is not pulled toward the middle the way a
  regression of the log price is, so the trees get a sharper high-end signal.
- ``DetailsDocument``: the details JSON as a bag of ``key``, ``key=value`` and ``key:word``
  tokens plus the Best Sellers Rank categories, for a TF-IDF ridge: which attributes a listing
  has and what they say (a "Horsepower" key, "Material=stainless steel") is price evidence the
  free text dilutes.

Fitted state is numpy arrays only (the neighbour pool is kept as the parts of a CSR matrix),
so the family stays within what safe model serialisation can load.
"""

from __future__ import annotations

import json
import re
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.preprocessing import normalize
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

NEIGHBOUR_FEATURES = (
    "knn_median_5",
    "knn_median_10",
    "knn_median_25",
    "knn_weighted_mean_10",
    "knn_top_similarity",
    "knn_spread_10",
)
_KS = (5, 10, 25)
_WORD = re.compile(r"[a-z0-9]+")
_VALUE_CHARS = 40  # longer values are descriptions, not attributes: keep only their words


class NeighbourPrices(TransformerMixin, BaseEstimator):
    """Sparse rows (L2-normalised TF-IDF) -> neighbour price features of the target ``y``.

    ``y`` is whatever target the caller fits on (the stack passes log prices). ``pool_size``
    caps the training items kept as neighbours (a seeded sample): with every one of 400k
    items the all-pairs similarity is quadratic. ``chunk_rows`` bounds the dense similarity
    block each thread holds (chunk_rows x pool items: 512 x 50,000 float32 is 100 MB, about
    400 MB at its peak with the sparse product and the partial sort beside it).

    ``n_jobs`` threads price the chunks side by side: they are independent, and the sparse
    product (scipy's sparsetools), the dense copy and the partial sort run in C without the
    GIL. Each chunk writes its own rows, so the features do not depend on ``n_jobs``.

    ``sample_weight`` (one per training item) multiplies a neighbour's similarity in the
    weighted mean (``knn_weighted_mean_10``); the medians and the spread ignore it. With
    scikit-learn's metadata routing on, a pipeline holding this sends it the weights its
    ``fit`` is given (the class asks for them, so an instance needs no ``set_fit_request``,
    whose state safe model files would refuse to load).

    With ``anchor_scale``, each training item also has an anchor (``fit``'s ``anchor``: the
    stack passes its out-of-fold log price) and ``transform`` takes the queries' anchors: a
    neighbour's weight in the weighted mean is further multiplied by exp(-|anchor gap| /
    ``anchor_scale``), so that of two equally similar items the one anchored nearer counts
    more. Without ``anchor_scale`` (the default) anchors are ignored.
    """

    __metadata_request__fit: ClassVar[dict[str, bool]] = {"sample_weight": True}

    def __init__(
        self,
        pool_size: int,
        chunk_rows: int,
        random_state: int,
        n_jobs: int = 1,
        anchor_scale: float | None = None,
    ) -> None:
        self.pool_size = pool_size
        self.chunk_rows = chunk_rows
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.anchor_scale = anchor_scale

    def fit(
        self,
        X: sp.spmatrix,
        y: np.ndarray,
        sample_weight: np.ndarray | None = None,
        anchor: np.ndarray | None = None,
    ) -> NeighbourPrices:
        if self.anchor_scale is not None and (anchor is None or not self.anchor_scale > 0):
            raise ValueError(
                f"anchor_scale={self.anchor_scale} needs a positive scale and fit(anchor=...)"
            )
        pool = np.arange(X.shape[0])
        if X.shape[0] > self.pool_size:
            rng = np.random.default_rng(self.random_state)
            pool = np.sort(rng.choice(X.shape[0], self.pool_size, replace=False))
        reference = sp.csr_matrix(normalize(sp.csr_matrix(X)[pool]), dtype=np.float32)
        self.pool_rows_ = pool
        self.pool_data_ = reference.data
        self.pool_indices_ = reference.indices
        self.pool_indptr_ = reference.indptr
        self.pool_shape_ = np.asarray(reference.shape)
        self.pool_target_ = np.asarray(y, dtype=float)[pool]
        self.pool_weight_ = (
            None if sample_weight is None else np.asarray(sample_weight, dtype=float)[pool]
        )
        self.pool_anchor_ = (
            None if self.anchor_scale is None else np.asarray(anchor, dtype=float)[pool]
        )
        return self

    def fit_transform(
        self,
        X: sp.spmatrix,
        y: np.ndarray,
        sample_weight: np.ndarray | None = None,
        anchor: np.ndarray | None = None,
    ) -> np.ndarray:
        self.fit(X, y, sample_weight, anchor)
        # Leave-one-out: a training item in the pool must not find itself.
        own = np.full(X.shape[0], -1)
        own[self.pool_rows_] = np.arange(len(self.pool_rows_))
        return self._features(X, own, anchor if self.pool_anchor_ is not None else None)

    def transform(self, X: sp.spmatrix, anchor: np.ndarray | None = None) -> np.ndarray:
        """The features of new items; ``anchor``: theirs, needed when fitted with anchors."""
        check_is_fitted(self, "pool_target_")
        # Models saved before anchors existed have neither the setting nor the pool's anchors.
        if getattr(self, "pool_anchor_", None) is None:
            anchor = None
        elif anchor is None:
            raise ValueError("fitted with anchor_scale: transform(X, anchor=...) needs anchors")
        return self._features(X, np.full(X.shape[0], -1), anchor)

    def _pool(self) -> sp.csr_matrix:
        return sp.csr_matrix(
            (self.pool_data_, self.pool_indices_, self.pool_indptr_),
            shape=tuple(self.pool_shape_),
        )

    def _features(
        self, X: sp.spmatrix, own: np.ndarray, anchor: np.ndarray | None = None
    ) -> np.ndarray:
        # The pool transposed once (CSC of the pool is CSR of its transpose), not per chunk.
        pool_t = self._pool().T.tocsr()
        queries = sp.csr_matrix(normalize(sp.csr_matrix(X)), dtype=np.float32)
        out = np.empty((X.shape[0], len(NEIGHBOUR_FEATURES)))
        starts = range(0, X.shape[0], self.chunk_rows)
        Parallel(n_jobs=self.n_jobs, prefer="threads")(
            delayed(self._chunk)(queries, pool_t, own, out, start, anchor) for start in starts
        )
        return out

    def _chunk(
        self,
        queries: sp.csr_matrix,
        pool_t: sp.csr_matrix,
        own: np.ndarray,
        out: np.ndarray,
        start: int,
        anchor: np.ndarray | None = None,
    ) -> None:
        """Write the features of query rows ``start`` to ``start + chunk_rows`` into ``out``."""
        stop = min(start + self.chunk_rows, queries.shape[0])
        n_pool = pool_t.shape[1]
        k = min(max(_KS), n_pool - 1) if n_pool > 1 else 1
        similarity = (queries[start:stop] @ pool_t).toarray()
        mine = own[start:stop]
        inside = mine >= 0
        similarity[np.flatnonzero(inside), mine[inside]] = -np.inf
        top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        top_similarity = np.take_along_axis(similarity, top, axis=1)
        order = np.argsort(-top_similarity, axis=1)
        top = np.take_along_axis(top, order, axis=1)
        top_similarity = np.clip(np.take_along_axis(top_similarity, order, axis=1), 0, None)
        prices = self.pool_target_[top]
        block = out[start:stop]
        for column, n in enumerate(_KS):
            block[:, column] = np.median(prices[:, :n], axis=1)
        weights = top_similarity[:, :10] + 1e-6
        # Models saved before sample weights have no pool_weight_: every neighbour counts alike.
        pool_weight = getattr(self, "pool_weight_", None)
        if pool_weight is not None:
            weights = weights * pool_weight[top[:, :10]]
        if anchor is not None:
            gap = np.abs(
                np.asarray(anchor, dtype=float)[start:stop, None] - self.pool_anchor_[top[:, :10]]
            )
            # Measured from each row's nearest anchor: the same factor for the row's ten (so
            # the same mean), and never exp(-large) = 0 for all ten, which would divide 0 by 0.
            gap -= gap.min(axis=1, keepdims=True)
            weights = weights * np.exp(-gap / self.anchor_scale)
        block[:, 3] = (prices[:, :10] * weights).sum(axis=1) / weights.sum(axis=1)
        block[:, 4] = top_similarity[:, 0]
        block[:, 5] = prices[:, :10].std(axis=1)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(NEIGHBOUR_FEATURES, dtype=object)


class ExceedanceProbabilities(TransformerMixin, BaseEstimator):
    """Sparse rows -> P(price > t) for each threshold t in dollars; ``y`` is log(1 + price).

    ``fit_transform`` gives each training row the probability from a classifier fitted
    without its fold (as ``OutOfFoldPrediction`` does for the ridges; the folds do not depend
    on the labels, so a row's own price never reaches its feature); ``transform`` uses one
    fitted on every row. Where the items a classifier would learn from are all on one side of
    a threshold, the share of items above it stands in.
    """

    def __init__(self, thresholds: list[float], C: float, n_folds: int, random_state: int) -> None:
        self.thresholds = thresholds
        self.C = C
        self.n_folds = n_folds
        self.random_state = random_state

    def _labels(self, y: np.ndarray) -> np.ndarray:
        prices = np.expm1(np.asarray(y, dtype=float))
        return np.column_stack([prices > threshold for threshold in self.thresholds]).astype(int)

    def _fit_one(self, X: sp.spmatrix, labels: np.ndarray) -> LogisticRegression | float:
        if labels.min() == labels.max():
            return float(labels[0])
        return LogisticRegression(C=self.C, max_iter=2000).fit(X, labels)

    @staticmethod
    def _predict_one(fitted: LogisticRegression | float, X: sp.spmatrix) -> np.ndarray:
        if isinstance(fitted, float):
            return np.full(X.shape[0], fitted)
        return fitted.predict_proba(X)[:, 1]

    def fit(self, X: sp.spmatrix, y: np.ndarray) -> ExceedanceProbabilities:
        labels = self._labels(y)
        fitted = [self._fit_one(X, labels[:, column]) for column in range(labels.shape[1])]
        # Plain containers for safe model files: classifiers by column, constants beside them.
        self.classifiers_ = {
            str(column): one for column, one in enumerate(fitted) if not isinstance(one, float)
        }
        self.constants_ = np.array([one if isinstance(one, float) else np.nan for one in fitted])
        return self

    def fit_transform(self, X: sp.spmatrix, y: np.ndarray) -> np.ndarray:
        labels = self._labels(y)
        out = np.empty(labels.shape)
        folds = KFold(self.n_folds, shuffle=True, random_state=self.random_state)
        for train_rows, valid_rows in folds.split(labels):
            for column in range(labels.shape[1]):
                fitted = self._fit_one(X[train_rows], labels[train_rows, column])
                out[valid_rows, column] = self._predict_one(fitted, X[valid_rows])
        self.fit(X, y)
        return out

    def transform(self, X: sp.spmatrix) -> np.ndarray:
        check_is_fitted(self, "constants_")
        out = np.tile(self.constants_, (X.shape[0], 1))
        for key, classifier in self.classifiers_.items():
            out[:, int(key)] = self._predict_one(classifier, X)
        return out

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray([f"p_over_{t:g}" for t in self.thresholds], dtype=object)


def details_tokens(details: str | None) -> str:
    """One listing's details JSON -> space-separated attribute tokens ("" when unreadable)."""
    if not details:
        return ""
    try:
        parsed = json.loads(details)
    except (TypeError, ValueError, RecursionError):  # nested past the reader's depth too
        return ""
    if not isinstance(parsed, dict):
        return ""
    tokens: list[str] = []
    for key, value in parsed.items():
        name = "_".join(_WORD.findall(str(key).lower()))
        if not name:
            continue
        tokens.append(name)
        if key == "Best Sellers Rank":
            tokens.extend(f"rank:{word}" for word in _rank_categories(value))
            continue
        text = str(value).lower()
        words = _WORD.findall(text)
        if words and len(text) <= _VALUE_CHARS:
            tokens.append(f"{name}=" + "_".join(words))
        tokens.extend(f"{name}:{word}" for word in words[:12])
    return " ".join(tokens)


def _rank_categories(value: object) -> list[str]:
    """Category names of a Best Sellers Rank ({"Tools": 95657, ...} or "#95,657 in Tools")."""
    names = list(value) if isinstance(value, dict) else re.findall(r"in ([^#(]+)", str(value))
    return ["_".join(_WORD.findall(name.lower())) for name in names if _WORD.findall(name.lower())]


class DetailsDocument(TransformerMixin, BaseEstimator):
    """Stateless: a ``details`` column -> one token document per item (for a vectoriser)."""

    def fit(self, X: pd.Series | pd.DataFrame, y: object = None) -> DetailsDocument:
        return self

    def transform(self, X: pd.Series | pd.DataFrame) -> np.ndarray:
        column = X.iloc[:, 0] if isinstance(X, pd.DataFrame) else pd.Series(X)
        return np.asarray([details_tokens(value) for value in column.tolist()], dtype=object)
