"""TF-IDF over word n-grams, optionally with the hand features, and ridge regression."""

from __future__ import annotations

from typing import ClassVar

from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from pricer.models.features import check_word_settings, text_columns, text_vectorizer
from pricer.models.pipeline import NON_NEGATIVE, PipelinePricer


class TfidfRidgePricer(PipelinePricer):
    _parameter_constraints: ClassVar[dict[str, list[object]]] = {"alpha": [NON_NEGATIVE]}

    def __init__(
        self,
        max_features: int,
        ngram_max: int,
        min_df: int,
        sublinear_tf: bool,
        alpha: float,
        hand_features: bool,
        price_weight_power: float,
        log_target: bool,
        random_state: int,
    ) -> None:
        self.max_features = max_features
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.alpha = alpha
        self.hand_features = hand_features
        self.price_weight_power = price_weight_power
        self.log_target = log_target
        self.random_state = random_state

    def check_settings(self, n_items: int) -> None:
        check_word_settings(self.ngram_max, self.min_df, n_items)

    def make_pipeline(self) -> Pipeline:
        words = text_vectorizer(
            "tfidf", self.max_features, self.ngram_max, self.min_df, self.sublinear_tf
        )
        features = text_columns(words, self.hand_features, self.random_state)
        return Pipeline([("features", features), ("ridge", Ridge(alpha=self.alpha))])
