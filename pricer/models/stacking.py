"""Stacking: out-of-fold predictions as features, members on log price or dollars, L1 blends.

``OutOfFoldPrediction`` makes an inner regressor's prediction a feature for an outer model;
``Member``, ``Blend`` and ``Correction`` are the stack family's parts (``pricer.models.stack``):
a tree model on either target, the members' prices blended to minimise dollars, and an
optional monotone recalibration of the blend.

A model's prediction on its own training rows is over-confident; trained on that, the outer
model would trust the inner one more than it deserves. During ``fit_transform`` every row gets
the prediction of a copy fitted without its fold, as it would on unseen items; ``transform``
then uses one copy fitted on every row.

The fold fits and that last fit are independent: ``n_jobs`` threads run them side by side
(scikit-learn's ridge solvers spend their time in scipy's sparse products and BLAS, outside the
GIL). Each fit sees the rows it would see alone, so the result does not depend on ``n_jobs``.
"""

from __future__ import annotations

from typing import Any

import lightgbm
import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog, minimize
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin, clone
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import KFold
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

from pricer.errors import ConfigError

TARGETS = ("log", "dollars")
CORRECTIONS = ("none", "log_linear", "isotonic")


class OutOfFoldPrediction(TransformerMixin, BaseEstimator):
    """Transformer: X -> one column, the inner regressor's prediction (out of fold in fit).

    ``X`` is a 2-D array or a sparse matrix (rows taken by index).
    """

    def __init__(
        self, estimator: RegressorMixin, n_folds: int, random_state: int, n_jobs: int = 1
    ) -> None:
        self.estimator = estimator
        self.n_folds = n_folds
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X: object, y: np.ndarray) -> OutOfFoldPrediction:
        self.estimator_ = clone(self.estimator).fit(X, y)
        return self

    def fit_transform(self, X: Any, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        folds = list(KFold(self.n_folds, shuffle=True, random_state=self.random_state).split(y))
        tasks = [train_rows for train_rows, _ in folds] + [None]  # None: every row
        fitted = Parallel(n_jobs=self.n_jobs, prefer="threads")(
            delayed(self._fit_rows)(X, y, rows) for rows in tasks
        )
        out_of_fold = np.empty(len(y))
        for (_, valid_rows), model in zip(folds, fitted[:-1], strict=True):
            out_of_fold[valid_rows] = model.predict(X[valid_rows])
        self.estimator_ = fitted[-1]
        return out_of_fold.reshape(-1, 1)

    def _fit_rows(self, X: Any, y: np.ndarray, rows: np.ndarray | None) -> RegressorMixin:
        if rows is not None:
            X, y = X[rows], y[rows]
        return clone(self.estimator).fit(X, y)

    def transform(self, X: object) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return np.asarray(self.estimator_.predict(X), dtype=float).reshape(-1, 1)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(["out_of_fold_prediction"], dtype=object)


class Member(RegressorMixin, BaseEstimator):
    """A regressor fitted on log(1 + price) (``target: log``) or on dollars; predicts dollars.

    ``weight_power`` overrides the family's price weighting for this member (null: the
    family's).
    """

    def __init__(self, estimator: RegressorMixin, target: str, weight_power: float | None) -> None:
        self.estimator = estimator
        self.target = target
        self.weight_power = weight_power

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> Member:
        if self.target not in TARGETS:
            raise ConfigError(f"member target must be one of {TARGETS}, got {self.target!r}")
        prices = np.asarray(y, dtype=float)
        goal = np.log1p(prices) if self.target == "log" else prices
        self.estimator_ = clone(self.estimator).fit(X, goal, sample_weight=sample_weight)
        # LightGBM keeps its (here always empty) validation scores in a defaultdict whose
        # factory is OrderedDict, a type safe model files refuse: plain dicts say the same.
        if isinstance(self.estimator_, lightgbm.LGBMModel):
            self.estimator_._best_score = {}
            self.estimator_._Booster.best_score = {}
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        raw = np.asarray(self.estimator_.predict(X), dtype=float)
        return np.clip(np.expm1(raw) if self.target == "log" else raw, 0.0, None)


def fit_l1_blend(predictions: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, float]:
    """Non-negative weights and a free intercept minimising sum |truth - P w - b| (an LP)."""
    n, m = predictions.shape
    # Variables: w (m, >= 0), b (free), over (n, >= 0), under (n, >= 0);
    # P w + b - over + under = truth, minimise sum(over + under).
    cost = np.concatenate([np.zeros(m + 1), np.ones(2 * n)])
    eye = sp.identity(n, format="csr")
    equality = sp.hstack([sp.csr_matrix(predictions), np.ones((n, 1)), -eye, eye]).tocsr()
    bounds = [(0, None)] * m + [(None, None)] + [(0, None)] * (2 * n)
    result = linprog(cost, A_eq=equality, b_eq=truth, bounds=bounds, method="highs")
    if not result.success:
        raise RuntimeError(f"the L1 blend did not solve: {result.message}")
    return result.x[:m], float(result.x[m])


class Blend(BaseEstimator):
    """The members' prices blended by ``fit_l1_blend``, one blend per price range.

    Items whose members' median price is above ``split_price`` get weights and an intercept of
    their own (null: one blend for every item). Cheap and dear items want different mixes: on
    the real data the dollar-scale L1 member takes about 0.6 of the weight above $100 and
    nothing below it. A range with fewer than ``min_rows`` training rows keeps the blend of all
    rows (small training sets).
    """

    def __init__(self, split_price: float | None, min_rows: int) -> None:
        self.split_price = split_price
        self.min_rows = min_rows

    def _ranges(self, member_prices: np.ndarray) -> np.ndarray:
        if self.split_price is None:
            return np.zeros(len(member_prices), dtype=int)
        return (np.median(member_prices, axis=1) > self.split_price).astype(int)

    def fit(self, member_prices: np.ndarray, truth: np.ndarray) -> Blend:
        count = 1 if self.split_price is None else 2
        ranges = self._ranges(member_prices)
        fitted: list[tuple[np.ndarray, float]] = []
        whole: tuple[np.ndarray, float] | None = None  # all rows: a too-small range's blend
        for index in range(count):
            rows = ranges == index
            if count > 1 and rows.sum() < self.min_rows:
                if whole is None:
                    whole = fit_l1_blend(member_prices, truth)
                fitted.append(whole)
            else:
                fitted.append(fit_l1_blend(member_prices[rows], truth[rows]))
        self.weights_ = np.array([weights for weights, _ in fitted])
        self.intercepts_ = np.array([intercept for _, intercept in fitted])
        return self

    def predict(self, member_prices: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "weights_")
        ranges = self._ranges(member_prices)
        return (member_prices * self.weights_[ranges]).sum(axis=1) + self.intercepts_[ranges]


class Correction(BaseEstimator):
    """A monotone recalibration of blended prices, fitted on out-of-fold blends.

    ``log_linear``: price -> expm1(a + b log1p(price)) with a, b minimising the dollar MAE
    (b > 1 undoes shrinkage toward the middle); ``isotonic``: a non-decreasing step function
    of the log price (least squares on log prices); ``none``: identity.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def fit(self, blended: np.ndarray, truth: np.ndarray) -> Correction:
        if self.kind not in CORRECTIONS:
            raise ConfigError(f"correction must be one of {CORRECTIONS}, got {self.kind!r}")
        x, y = np.log1p(np.clip(blended, 0, None)), np.asarray(truth, dtype=float)
        self.coef_ = np.array([0.0, 1.0])
        if self.kind == "log_linear":

            def loss(coef: np.ndarray) -> float:
                return float(np.mean(np.abs(np.expm1(coef[0] + coef[1] * x) - y)))

            self.coef_ = np.asarray(minimize(loss, self.coef_, method="Nelder-Mead").x)
        elif self.kind == "isotonic":
            self.isotonic_ = IsotonicRegression(out_of_bounds="clip").fit(x, np.log1p(y))
        return self

    def transform(self, blended: np.ndarray) -> np.ndarray:
        x = np.log1p(np.clip(blended, 0, None))
        if self.kind == "isotonic":
            return np.expm1(self.isotonic_.predict(x))
        return np.clip(np.expm1(self.coef_[0] + self.coef_[1] * x), 0, None)
