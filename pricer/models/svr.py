"""Linear support vector regression on TF-IDF, optionally with the hand features.

A kernel SVR is quadratic in the number of items, hopeless at 400k; on sparse TF-IDF a linear
SVR (liblinear) fits in seconds. ``loss: epsilon_insensitive`` is the classic SVR loss, an
absolute error beyond epsilon (the dual solver); ``squared_epsilon_insensitive`` squares it (the
primal solver).
"""

from __future__ import annotations

from typing import ClassVar

from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVR

from pricer.models.features import check_word_settings, text_columns, text_vectorizer
from pricer.models.pipeline import COUNT, NON_NEGATIVE, POSITIVE, PipelinePricer


class SvrPricer(PipelinePricer):
    _parameter_constraints: ClassVar[dict[str, list[object]]] = {
        "C": [POSITIVE],
        "epsilon": [NON_NEGATIVE],
        "max_iter": [COUNT],
    }

    def __init__(
        self,
        max_features: int,
        ngram_max: int,
        min_df: int,
        C: float,
        epsilon: float,
        loss: str,
        max_iter: int,
        hand_features: bool,
        price_weight_power: float,
        log_target: bool,
        random_state: int,
    ) -> None:
        self.max_features = max_features
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.C = C
        self.epsilon = epsilon
        self.loss = loss
        self.max_iter = max_iter
        self.hand_features = hand_features
        self.price_weight_power = price_weight_power
        self.log_target = log_target
        self.random_state = random_state

    def check_settings(self, n_items: int) -> None:
        check_word_settings(self.ngram_max, self.min_df, n_items)

    def make_pipeline(self) -> Pipeline:
        words = text_vectorizer("tfidf", self.max_features, self.ngram_max, self.min_df, True)
        features = text_columns(words, self.hand_features, self.random_state)
        svr = LinearSVR(
            C=self.C,
            epsilon=self.epsilon,
            loss=self.loss,
            # liblinear solves the absolute (L1) loss only in the dual, the squared one fastest
            # in the primal.
            dual=self.loss == "epsilon_insensitive",
            max_iter=self.max_iter,
            random_state=self.random_state,
        )
        return Pipeline([("features", features), ("svr", svr)])
