"""Out-of-fold predictions of an inner regressor as a feature for an outer model (stacking).

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

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin, clone
from sklearn.model_selection import KFold
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted


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
