"""Bag of words (word counts over the most frequent terms) and linear regression."""

from __future__ import annotations

from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from pricer.models.features import check_word_settings, text_column, text_vectorizer
from pricer.models.pipeline import PipelinePricer


class BowLinearPricer(PipelinePricer):
    def __init__(
        self,
        max_features: int,
        ngram_max: int,
        min_df: int,
        price_weight_power: float,
        log_target: bool,
    ) -> None:
        self.max_features = max_features
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.price_weight_power = price_weight_power
        self.log_target = log_target

    def check_settings(self, n_items: int) -> None:
        check_word_settings(self.ngram_max, self.min_df, n_items)

    def make_pipeline(self) -> Pipeline:
        words = text_vectorizer("count", self.max_features, self.ngram_max, self.min_df, False)
        return Pipeline([("words", text_column(words)), ("linear", LinearRegression())])
