"""Linear regression on hand features: weight, size, rank, units, pack size, brand, category."""

from __future__ import annotations

from typing import ClassVar

from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from pricer.models.features import hand_feature_union
from pricer.models.pipeline import NON_NEGATIVE, PipelinePricer


class LinearPricer(PipelinePricer):
    _parameter_constraints: ClassVar[dict[str, list[object]]] = {"alpha": [NON_NEGATIVE]}

    def __init__(
        self, alpha: float, price_weight_power: float, log_target: bool, random_state: int
    ) -> None:
        self.alpha = alpha
        self.price_weight_power = price_weight_power
        self.log_target = log_target
        self.random_state = random_state

    def make_pipeline(self) -> Pipeline:
        # A whisper of ridge keeps collinear indicator columns from exploding the weights.
        return Pipeline(
            [
                ("features", hand_feature_union(self.random_state)),
                ("linear", Ridge(alpha=self.alpha)),
            ]
        )
