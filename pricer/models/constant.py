"""The constant baseline: always the training mean (or median) price."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from pricer.errors import ConfigError
from pricer.models.base import Pricer, as_items, training_prices

STATISTICS = {"mean": np.mean, "median": np.median}


class ConstantPricer(Pricer):
    def __init__(self, statistic: str) -> None:
        self.statistic = statistic

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> ConstantPricer:
        if self.statistic not in STATISTICS:
            raise ConfigError(
                f"statistic must be one of {sorted(STATISTICS)}, got {self.statistic!r}"
            )
        self.price_ = float(STATISTICS[self.statistic](training_prices(X, y)))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "price_")
        return np.full(len(as_items(X)), self.price_)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True  # the baseline: one price for every item
        return tags
