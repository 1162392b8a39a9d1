"""A compact dense view of the text for tree models: TF-IDF reduced by SVD, plus stacking.

The TF-IDF matrix is computed once and feeds both the SVD and (optionally) an out-of-fold ridge
regression; vectorising 400k texts again for every fold would cost minutes.
"""

from __future__ import annotations

from sklearn.linear_model import Ridge
from sklearn.pipeline import FeatureUnion, Pipeline

from pricer.models.features import TextSVD, text_vectorizer
from pricer.models.stacking import OutOfFoldPrediction


def dense_text_features(
    max_features: int,
    ngram_max: int,
    min_df: int,
    svd_components: int,
    stack_ridge_alpha: float | None,
    stack_folds: int,
    random_state: int,
) -> Pipeline:
    """Text column -> SVD components [+ out-of-fold ridge prediction of the (log) price]."""
    parts: list[tuple[str, object]] = [("svd", TextSVD(svd_components, random_state))]
    if stack_ridge_alpha is not None:
        ridge = OutOfFoldPrediction(Ridge(alpha=stack_ridge_alpha), stack_folds, random_state)
        parts.append(("ridge", ridge))
    return Pipeline(
        [
            ("tfidf", text_vectorizer("tfidf", max_features, ngram_max, min_df, True)),
            ("dense", FeatureUnion(parts)),
        ]
    )
