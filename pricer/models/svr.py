"""Support vector regression on TF-IDF features.

A kernel SVR is quadratic in the number of items, hopeless at 400k; on sparse TF-IDF a linear
SVR (epsilon-insensitive loss, liblinear) reaches the same fit in seconds.
"""

from __future__ import annotations

from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVR

from pricer.models.features import text_column, text_vectorizer
from pricer.models.pipeline import PipelinePricer


class SvrPricer(PipelinePricer):
    def __init__(
        self,
        max_features: int,
        ngram_max: int,
        min_df: int,
        C: float,
        epsilon: float,
        max_iter: int,
        log_target: bool,
        random_state: int,
    ) -> None:
        self.max_features = max_features
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.C = C
        self.epsilon = epsilon
        self.max_iter = max_iter
        self.log_target = log_target
        self.random_state = random_state

    def make_pipeline(self) -> Pipeline:
        words = text_vectorizer("tfidf", self.max_features, self.ngram_max, self.min_df, True)
        svr = LinearSVR(
            C=self.C,
            epsilon=self.epsilon,
            loss="squared_epsilon_insensitive",
            dual=False,
            max_iter=self.max_iter,
            random_state=self.random_state,
        )
        return Pipeline([("words", text_column(words)), ("svr", svr)])
