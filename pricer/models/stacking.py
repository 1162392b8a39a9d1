"""Out-of-fold predictions of an inner regressor as a feature for an outer model (stacking).

A model's prediction on its own training rows is over-confident; trained on that, the outer
model would trust the inner one more than it deserves. During ``fit_transform`` every row gets
the prediction of a copy fitted without its fold, as it would on unseen items; ``transform``
then uses one copy fitted on every row.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin, clone
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.utils.validation import check_is_fitted


class OutOfFoldPrediction(TransformerMixin, BaseEstimator):
    """Transformer: X -> one column, the inner regressor's prediction (out of fold in fit)."""

    def __init__(self, estimator: RegressorMixin, n_folds: int, random_state: int) -> None:
        self.estimator = estimator
        self.n_folds = n_folds
        self.random_state = random_state

    def fit(self, X: object, y: np.ndarray) -> OutOfFoldPrediction:
        self.estimator_ = clone(self.estimator).fit(X, y)
        return self

    def fit_transform(self, X: object, y: np.ndarray) -> np.ndarray:
        folds = KFold(self.n_folds, shuffle=True, random_state=self.random_state)
        out_of_fold = cross_val_predict(clone(self.estimator), X, y, cv=folds)
        self.fit(X, y)
        return np.asarray(out_of_fold, dtype=float).reshape(-1, 1)

    def transform(self, X: object) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return np.asarray(self.estimator_.predict(X), dtype=float).reshape(-1, 1)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(["out_of_fold_prediction"], dtype=object)
