"""Shared fitting for families that are scikit-learn pipelines over item frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import RegressorMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.utils.validation import check_is_fitted

from pricer.models.base import Pricer, as_items


class PipelinePricer(Pricer):
    """Fits ``make_pipeline()`` on items; with ``log_target`` it learns log(1 + price).

    Prices are spread over three orders of magnitude: on the log scale an error of $10 on a
    $20 item weighs what it should, and predictions can never be negative.
    """

    log_target: bool

    def make_pipeline(self) -> RegressorMixin:
        raise NotImplementedError

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> PipelinePricer:
        model = self.make_pipeline()
        if self.log_target:
            model = TransformedTargetRegressor(
                regressor=model, func=np.log1p, inverse_func=np.expm1, check_inverse=False
            )
        self.model_ = model.fit(as_items(X), np.asarray(y, dtype=float))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "model_")
        return np.clip(np.asarray(self.model_.predict(as_items(X)), dtype=float), 0.0, None)
