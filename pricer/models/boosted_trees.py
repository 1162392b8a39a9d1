"""XGBoost gradient-boosted trees on sparse TF-IDF plus hand features (config: ``xgboost``).

XGBoost splits on sparse columns directly, so the full vocabulary stays available to it.
"""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from xgboost import XGBRegressor

from pricer.models.base import INPUT_COLUMNS
from pricer.models.features import hand_feature_union, text_vectorizer
from pricer.models.pipeline import PipelinePricer


class XGBoostPricer(PipelinePricer):
    def __init__(
        self,
        n_estimators: int,
        learning_rate: float,
        max_depth: int,
        min_child_weight: float,
        subsample: float,
        colsample_bytree: float,
        reg_lambda: float,
        text_max_features: int,
        ngram_max: int,
        min_df: int,
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
        self.text_max_features = text_max_features
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.n_jobs = n_jobs
        self.log_target = log_target
        self.random_state = random_state

    def make_pipeline(self) -> Pipeline:
        words = text_vectorizer("tfidf", self.text_max_features, self.ngram_max, self.min_df, True)
        features = ColumnTransformer(
            [
                ("text", words, "text"),
                ("hand", hand_feature_union(self.random_state), list(INPUT_COLUMNS)),
            ]
        )
        trees = XGBRegressor(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            min_child_weight=self.min_child_weight,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            tree_method="hist",
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        )
        return Pipeline([("features", features), ("trees", trees)])
