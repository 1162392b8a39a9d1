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


def tree_model_inputs(
    random_state: int,
    *,
    max_features: int,
    svd_components: int,
    ngram_max: int = 2,
    min_df: int = 2,
    stack_ridge_alpha: float | None = None,
    stack_folds: int = 0,
) -> ColumnTransformer:
    """Items -> the dense text columns beside the raw hand features, brand and category.

    The text becomes SVD components of its TF-IDF [+ an out-of-fold ridge prediction of the
    (log) price, with ``stack_ridge_alpha``]; the tree families differ only in these settings.
    """
    parts: list[tuple[str, object]] = [("svd", TextSVD(svd_components, random_state))]
    if stack_ridge_alpha is not None:
        ridge = OutOfFoldPrediction(Ridge(alpha=stack_ridge_alpha), stack_folds, random_state)
        parts.append(("ridge", ridge))
    text = Pipeline(
        [
            ("tfidf", text_vectorizer("tfidf", max_features, ngram_max, min_df, True)),
            ("dense", FeatureUnion(parts)),
        ]
    )
    return ColumnTransformer(
        [
            ("text", text, "text"),
            ("hand", tree_feature_union(random_state), list(INPUT_COLUMNS)),
        ],
        sparse_threshold=0.0,  # dense: XGBoost would read a sparse zero as "missing"
    )
