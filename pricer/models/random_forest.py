"""Random forest on a dense view of the text (TF-IDF reduced by truncated SVD) plus hand features.

Trees cannot use 20k sparse columns well; a few hundred SVD components keep the meaning of the
text in a form a forest can split on.
"""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.decomposition import TruncatedSVD
from sklearn.ensemble import RandomForestRegressor
from sklearn.pipeline import Pipeline, make_pipeline

from pricer.models.base import INPUT_COLUMNS
from pricer.models.features import hand_feature_union, text_vectorizer
from pricer.models.pipeline import PipelinePricer


class RandomForestPricer(PipelinePricer):
    def __init__(
        self,
        n_estimators: int,
        max_depth: int | None,
        min_samples_leaf: int,
        max_features: float,
        max_samples: float | None,
        text_max_features: int,
        svd_components: int,
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
        self.n_jobs = n_jobs
        self.log_target = log_target
        self.random_state = random_state

    def make_pipeline(self) -> Pipeline:
        words = text_vectorizer("tfidf", self.text_max_features, 2, 2, True)
        text = make_pipeline(
            words, TruncatedSVD(self.svd_components, random_state=self.random_state)
        )
        features = ColumnTransformer(
            [
                ("text", text, "text"),
                ("hand", hand_feature_union(self.random_state), list(INPUT_COLUMNS)),
            ]
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
