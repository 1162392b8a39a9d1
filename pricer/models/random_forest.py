"""Random forest on a dense view of the text (TF-IDF reduced by truncated SVD) plus hand features.

Trees cannot use 50k sparse columns well; a hundred SVD components keep the meaning of the text
in a form a forest can split on. The hand features go in raw: scikit-learn's forests route
missing values themselves. ``max_samples`` (rows per tree, a count or a share) bounds the fit
time at 400k items.
"""

from __future__ import annotations

from numbers import Real
from typing import ClassVar

from sklearn.ensemble import RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import Interval

from pricer.models.dense_text import tree_model_inputs
from pricer.models.features import check_n_jobs, whole_number
from pricer.models.pipeline import COUNT, PipelinePricer


class RandomForestPricer(PipelinePricer):
    _parameter_constraints: ClassVar[dict[str, list[object]]] = {
        "n_estimators": [COUNT],
        "max_depth": [COUNT, None],
        "min_samples_leaf": [COUNT, Interval(Real, 0, 1, closed="neither")],
    }

    def __init__(
        self,
        n_estimators: int,
        max_depth: int | None,
        min_samples_leaf: int,
        max_features: float,
        max_samples: int | float | None,
        text_max_features: int,
        svd_components: int,
        price_weight_power: float,
        n_jobs: int,
        log_target: bool,
        random_state: int,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.max_samples = max_samples
        self.text_max_features = text_max_features
        self.svd_components = svd_components
        self.price_weight_power = price_weight_power
        self.n_jobs = n_jobs
        self.log_target = log_target
        self.random_state = random_state

    def check_settings(self, n_items: int) -> None:
        whole_number("svd_components", self.svd_components)
        check_n_jobs(self.n_jobs)

    def make_pipeline(self) -> Pipeline:
        features = tree_model_inputs(
            self.random_state,
            max_features=self.text_max_features,
            svd_components=self.svd_components,
        )
        forest = RandomForestRegressor(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            max_samples=self.max_samples,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        )
        return Pipeline([("features", features), ("forest", forest)])

    def size_settings(self, n_items: int) -> dict[str, object]:
        """A row count per tree above the training-set size means every row (a full bootstrap)."""
        if isinstance(self.max_samples, int) and self.max_samples >= n_items:
            return {"forest__max_samples": None}
        return {}
