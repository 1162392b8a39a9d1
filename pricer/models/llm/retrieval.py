"""A nearest-neighbour index of training items, for retrieval-augmented prompts.

Vectors are TF-IDF over word n-grams, neighbours by cosine similarity (scikit-learn), on
purpose rather than a neural sentence embedding:

- nothing to download: no embedding model can be fetched here, and none has to be shipped
  inside the logged MLflow model or served beside it;
- it is strong for product titles: what makes two products the same kind of product, and so
  similarly priced, is mostly shared rare tokens (brand, part number, "brake caliper",
  "4-pack"), exactly what IDF weighting rewards;
- it is fast and deterministic: fitting is seconds, queries are one sparse product.

The index holds training items only: it is built in ``fit`` from the items given there,
and nothing at predict time is ever added to it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_is_fitted

from pricer.models.base import as_items, training_prices
from pricer.models.features import whole_number, words_kept
from pricer.models.llm.prompts import Neighbour


class NeighbourIndex(BaseEstimator):
    """The ``k`` training items most similar to each query item, with their prices.

    ``max_items`` caps how many training items are indexed (a seeded random subset): the
    index, texts included, is pickled into the logged model. ``max_chars`` cuts each
    neighbour's text as shown in the prompt (title first, so the title survives).
    """

    def __init__(
        self,
        k: int,
        max_features: int,
        ngram_max: int,
        min_df: int,
        sublinear_tf: bool,
        max_chars: int,
        max_items: int | None,
        random_state: int,
    ) -> None:
        self.k = k
        self.max_features = max_features
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.max_chars = max_chars
        self.max_items = max_items
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> NeighbourIndex:
        # Each a whole number >= 1: ngram_max=0 was scikit-learn's ValueError traceback,
        # max_items=0 failed naming min_df, and max_chars=0 (or -50) cut every neighbour's
        # text to nothing (or its end off), the model shown prices of blank examples.
        for name in ("k", "max_features", "ngram_max", "min_df", "max_chars", "max_items"):
            value = getattr(self, name)
            if name in ("max_features", "max_items") and value is None:  # no cap
                continue
            whole_number(f"retrieval.{name}", value)
        items = as_items(X).reset_index(drop=True)
        prices = training_prices(items, y)
        if self.max_items is not None and len(items) > self.max_items:
            rng = np.random.default_rng(self.random_state)
            keep = np.sort(rng.choice(len(items), size=self.max_items, replace=False))
            items, prices = items.iloc[keep].reset_index(drop=True), prices[keep]
        texts = items["text"].tolist()
        min_df = min(self.min_df, len(texts))
        self.vectorizer_ = TfidfVectorizer(
            max_features=self.max_features,
            ngram_range=(1, self.ngram_max),
            min_df=min_df,
            sublinear_tf=self.sublinear_tf,
        )
        with words_kept(len(texts), min_df, "retrieval.min_df"):
            matrix = self.vectorizer_.fit_transform(texts)
        self.nn_ = NearestNeighbors(
            n_neighbors=min(self.k, len(texts)), metric="cosine", algorithm="brute"
        ).fit(matrix)
        self.texts_ = [text[: self.max_chars] for text in texts]
        self.prices_ = prices
        return self

    def neighbours(self, X: pd.DataFrame) -> list[list[Neighbour]]:
        """For each item, its neighbours, most similar first."""
        check_is_fitted(self, "nn_")
        items = as_items(X)
        if items.empty:
            return []
        distances, indices = self.nn_.kneighbors(self.vectorizer_.transform(items["text"]))
        return [
            [
                Neighbour(self.texts_[j], float(self.prices_[j]), float(1.0 - d))
                for d, j in zip(row_distances, row_indices, strict=True)
            ]
            for row_distances, row_indices in zip(distances, indices, strict=True)
        ]
