"""Shared fitting for families that are scikit-learn pipelines over item frames."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import RegressorMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from pricer.errors import ConfigError
from pricer.models.base import Pricer, as_items, price_range, training_prices, within
from pricer.models.features import words_kept

# Ranges of the families' settings, in scikit-learn's own terms (``_parameter_constraints``).
# Finite where the learner would take infinity and fit nothing useful (reg_lambda=inf: trees
# that never split, a run FINISHED with its mae); NaN is in no range.
NON_NEGATIVE = Interval(Real, 0, np.inf, closed="left")
POSITIVE = Interval(Real, 0, np.inf, closed="neither")
SHARE = Interval(Real, 0, 1, closed="right")  # a share of rows or columns, more than none
COUNT = Interval(Integral, 1, None, closed="left")


def price_weights(prices: np.ndarray, power: float) -> np.ndarray | None:
    """Per-item training weights (1 + price)^power, scaled to average 1; None for power 0.

    On the log scale an error of x costs about price * x dollars, so power 1 makes a log-scale
    loss count errors the way mean absolute error in dollars does; 0 weighs every item alike.
    """
    if power == 0:
        return None
    # NaN passed the check of its sign (every comparison is false) and infinity passed it:
    # each made every weight NaN, scikit-learn's or XGBoost's traceback once the features
    # had been computed.
    if not (math.isfinite(power) and power > 0):
        raise ConfigError(f"price_weight_power must be a finite number >= 0, got {power}")
    # In logs, relative to the dearest item: (1 + $999)^150 overflowed to inf, and inf / inf
    # is NaN. A large power gives the dearest items all the weight, as it asks.
    logs = power * np.log1p(np.asarray(prices, dtype=float))
    weights = np.exp(logs - logs.max())
    return weights / weights.mean()


class PipelinePricer(Pricer):
    """Fits ``make_pipeline()`` on items; with ``log_target`` it learns log(1 + price).

    Prices are spread over three orders of magnitude: on the log scale an error of $10 on a
    $20 item weighs what it should, and predictions can never be negative. Families with a
    ``price_weight_power`` setting pass ``price_weights`` to their final estimator.
    """

    log_target: bool
    # The ranges of a family's own settings, by name: checked before any run is opened
    # (``pricer.settings.check_arguments``, from its config) and as it fits, as scikit-learn's
    # estimators check theirs (``_validate_params``); never in ``__init__``.
    _parameter_constraints: ClassVar[dict[str, list[object]]] = {}

    def make_pipeline(self) -> Pipeline:
        raise NotImplementedError

    def check_settings(self, n_items: int) -> None:
        """Refuse settings out of range for ``n_items`` training items before any fitting
        (``ConfigError``); what scikit-learn checks in one line itself is left to it."""

    def size_settings(self, n_items: int) -> dict[str, object]:
        """Pipeline parameters that depend on the number of training items (none by default)."""
        return {}

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> PipelinePricer:
        self._validate_params()
        prices = training_prices(X, y)
        self.check_settings(len(prices))
        pipeline = self.make_pipeline()
        pipeline.set_params(**self.size_settings(len(prices)))
        fit_params = {}
        weights = price_weights(prices, getattr(self, "price_weight_power", 0.0))
        if weights is not None:
            fit_params[f"{pipeline.steps[-1][0]}__sample_weight"] = weights
        model: RegressorMixin = pipeline
        if self.log_target:
            model = TransformedTargetRegressor(
                regressor=pipeline, func=np.log1p, inverse_func=np.expm1, check_inverse=False
            )
        # A family without a min_df of its own (the random forest's is fixed) has no setting
        # to blame when its texts leave no word.
        with words_kept(len(prices), getattr(self, "min_df", None)):
            self.model_ = model.fit(as_items(X), prices, **fit_params)
        self.price_range_ = price_range(prices)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "model_")
        return within(self.model_.predict(as_items(X)), getattr(self, "price_range_", None))
