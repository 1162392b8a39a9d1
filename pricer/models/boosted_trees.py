"""XGBoost gradient-boosted trees on a compact dense view of each item (config: ``xgboost``).

Trees split poorly on tens of thousands of sparse TF-IDF columns, and ``hist`` on that many
columns is slow; they split well on few dense ones. The text reaches the trees twice:

- truncated SVD of the TF-IDF matrix (what the text is about, in a few hundred numbers);
- an out-of-fold ridge regression on the full TF-IDF matrix (what the words say about price:
  the whole vocabulary, condensed into one column; stacking inside this family).

Beside them go the raw hand features (weight, size, rank, units...), the target-encoded brand
and the one-hot category: trees find their interactions on their own.
"""

from __future__ import annotations

from numbers import Integral
from typing import ClassVar

from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import Interval
from xgboost import XGBRegressor

from pricer.errors import ConfigError
from pricer.models.dense_text import tree_model_inputs
from pricer.models.features import check_folds, check_n_jobs, check_word_settings, whole_number
from pricer.models.pipeline import COUNT, NON_NEGATIVE, SHARE, PipelinePricer


class XGBoostPricer(PipelinePricer):
    _parameter_constraints: ClassVar[dict[str, list[object]]] = {
        "n_estimators": [COUNT],
        "learning_rate": [SHARE],  # XGBoost's eta: 0 learns nothing, past 1 overshoots
        "max_depth": [Interval(Integral, 0, None, closed="left")],  # 0: no limit (lossguide)
        "min_child_weight": [NON_NEGATIVE],
        "subsample": [SHARE],
        "colsample_bytree": [SHARE],
        "reg_lambda": [NON_NEGATIVE],
        "stack_ridge_alpha": [NON_NEGATIVE, None],
    }

    def __init__(
        self,
        n_estimators: int,
        learning_rate: float,
        max_depth: int,
        min_child_weight: float,
        subsample: float,
        colsample_bytree: float,
        reg_lambda: float,
        objective: str,
        text_max_features: int,
        ngram_max: int,
        min_df: int,
        svd_components: int,
        stack_ridge_alpha: float | None,
        stack_folds: int,
        price_weight_power: float,
        n_jobs: int,
        log_target: bool,
        random_state: int,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.objective = objective
        self.text_max_features = text_max_features
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.svd_components = svd_components
        self.stack_ridge_alpha = stack_ridge_alpha
        self.stack_folds = stack_folds
        self.price_weight_power = price_weight_power
        self.n_jobs = n_jobs
        self.log_target = log_target
        self.random_state = random_state

    def check_settings(self, n_items: int) -> None:
        check_word_settings(self.ngram_max, self.min_df, n_items)
        whole_number("svd_components", self.svd_components)
        check_n_jobs(self.n_jobs)
        if self.stack_ridge_alpha is not None:  # without the ridge there are no folds
            check_folds("stack_folds", self.stack_folds, n_items)

    def make_pipeline(self) -> Pipeline:
        # XGBoost takes a count below 1 as no trees at all, and prices every item alike.
        if self.n_estimators < 1:
            raise ConfigError(f"n_estimators must be >= 1, got {self.n_estimators}")
        features = tree_model_inputs(
            self.random_state,
            max_features=self.text_max_features,
            svd_components=self.svd_components,
            ngram_max=self.ngram_max,
            min_df=self.min_df,
            stack_ridge_alpha=self.stack_ridge_alpha,
            stack_folds=self.stack_folds,
        )
        trees = XGBRegressor(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            min_child_weight=self.min_child_weight,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            objective=self.objective,
            tree_method="hist",
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        )
        return Pipeline([("features", features), ("trees", trees)])
