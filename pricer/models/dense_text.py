"""A compact dense view of the text for tree models: TF-IDF reduced by SVD, plus stacking.

The TF-IDF matrix is computed once and feeds both the SVD and (optionally) an out-of-fold ridge
regression; vectorising 400k texts again for every fold would cost minutes.
"""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.pipeline import FeatureUnion, Pipeline

from pricer.models.base import INPUT_COLUMNS
from pricer.models.features import TextSVD, text_vectorizer, tree_feature_union
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


def tree_model_inputs(text: Pipeline, random_state: int) -> ColumnTransformer:
    """Items -> the dense text columns beside the raw hand features, brand and category."""
    return ColumnTransformer(
        [
            ("text", text, "text"),
            ("hand", tree_feature_union(random_state), list(INPUT_COLUMNS)),
        ],
        sparse_threshold=0.0,  # dense: XGBoost would read a sparse zero as "missing"
    )
