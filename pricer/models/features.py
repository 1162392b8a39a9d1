"""Hand-made item features and the text vectorisers shared by the classical families.

Features come from the details JSON (weight, dimensions, sales rank, brand, date) and from the
text (length, pack sizes, numbers). Extraction is vectorised with pandas string methods over the
raw JSON text: parsing 400k JSON documents one by one would dominate training time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder

from pricer.models.base import INPUT_COLUMNS, as_items

_WEIGHT = r'"(?:Item|Package) Weight"\s*:\s*"\s*([\d.,]+)\s*([A-Za-z]+)'
_DIMENSIONS = (
    r'Dimensions[^"]*"\s*:\s*"\s*([\d.]+)\s*[x×]\s*([\d.]+)\s*(?:[x×]\s*([\d.]+))?\s*([A-Za-z]*)'
)
_RANK = r'"Best Sellers Rank"\s*:\s*(?:\{[^}]*?:\s*|"#?)([\d,]+)'
_BRAND = r'"(?:Brand|Manufacturer)"\s*:\s*"([^"]+)"'
_YEAR = r'"Date First Available"\s*:\s*"[^"]*?(\d{4})"'
_PACK = (
    r"(?i)(?:pack|set|case|box|bundle|lot) of (\d+)|(\d+)[\s-]?(?:pack|pk|pcs|pieces|count|ct)\b"
)

POUNDS_PER_UNIT = {
    "pounds": 1.0,
    "pound": 1.0,
    "lbs": 1.0,
    "lb": 1.0,
    "ounces": 1 / 16,
    "ounce": 1 / 16,
    "oz": 1 / 16,
    "kilograms": 2.2046,
    "kilogram": 2.2046,
    "kg": 2.2046,
    "grams": 0.0022046,
    "gram": 0.0022046,
    "g": 0.0022046,
}
INCHES_PER_UNIT = {
    "inches": 1.0,
    "inch": 1.0,
    "in": 1.0,
    "": 1.0,
    "centimeters": 0.3937,
    "cm": 0.3937,
    "millimeters": 0.03937,
    "mm": 0.03937,
    "feet": 12.0,
}

NUMERIC_FEATURES = (
    "log_weight_lb",
    "log_volume_in3",
    "log_rank",
    "year",
    "log_text_chars",
    "title_words",
    "log_pack",
    "numbers_in_text",
    "has_brand",
)


def extract_features(X: pd.DataFrame) -> pd.DataFrame:
    """Numeric features of each item (NaN where the listing does not say)."""
    items = as_items(X)
    details = items["details"].fillna("").astype(str)
    text = items["text"]
    weight = details.str.extract(_WEIGHT)
    pounds = _to_float(weight[0]) * weight[1].str.lower().map(POUNDS_PER_UNIT)
    dims = details.str.extract(_DIMENSIONS)
    inches = dims[3].str.lower().map(INCHES_PER_UNIT).fillna(1.0)
    volume = _to_float(dims[0]) * _to_float(dims[1]) * _to_float(dims[2]).fillna(1.0) * inches**3
    pack = text.str.extract(_PACK)
    pack_size = _to_float(pack[0]).fillna(_to_float(pack[1]))
    return pd.DataFrame(
        {
            "log_weight_lb": np.log1p(pounds),
            "log_volume_in3": np.log1p(volume),
            "log_rank": np.log1p(_to_float(details.str.extract(_RANK)[0])),
            "year": _to_float(details.str.extract(_YEAR)[0]),
            "log_text_chars": np.log1p(text.str.len()),
            "title_words": items["title"].fillna("").astype(str).str.split().str.len(),
            "log_pack": np.log1p(pack_size.clip(upper=1000)),
            "numbers_in_text": text.str.count(r"\d+(?:\.\d+)?"),
            "has_brand": details.str.extract(_BRAND)[0].notna().astype(float),
        },
        index=items.index,
    ).astype(float)


def extract_brand_and_category(X: pd.DataFrame) -> pd.DataFrame:
    items = as_items(X)
    brand = items["details"].fillna("").astype(str).str.extract(_BRAND)[0].str.strip().str.lower()
    return pd.DataFrame(
        {
            "brand": brand.fillna("unknown"),
            "category": items["category"].fillna("unknown").astype(str),
        },
        index=items.index,
    )


def _to_float(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values.str.replace(",", "", regex=False), errors="coerce")


class HandFeatures(TransformerMixin, BaseEstimator):
    """Stateless transformer: items -> numeric hand features (a sklearn pipeline step)."""

    def fit(self, X: pd.DataFrame, y: object = None) -> HandFeatures:
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return extract_features(X)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(NUMERIC_FEATURES, dtype=object)


class BrandAndCategory(TransformerMixin, BaseEstimator):
    """Stateless transformer: items -> brand and category strings for the encoders."""

    def fit(self, X: pd.DataFrame, y: object = None) -> BrandAndCategory:
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return extract_brand_and_category(X)


def hand_feature_union(random_state: int) -> ColumnTransformer:
    """Hand features, imputed and scaled, plus target-encoded brand and one-hot category.

    Target encoding is cross-fitted by sklearn, so a brand's own rows never leak its price.
    """
    numeric = make_pipeline(
        HandFeatures(), SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
    )
    brand = make_pipeline(
        BrandAndCategory(),
        ColumnTransformer(
            [
                (
                    "brand",
                    TargetEncoder(cv=KFold(5, shuffle=True, random_state=random_state)),
                    ["brand"],
                )
            ]
        ),
    )
    category = make_pipeline(
        BrandAndCategory(),
        ColumnTransformer(
            [("category", OneHotEncoder(handle_unknown="ignore", min_frequency=5), ["category"])]
        ),
    )
    return ColumnTransformer(
        [
            ("numeric", numeric, list(INPUT_COLUMNS)),
            ("brand", brand, list(INPUT_COLUMNS)),
            ("category", category, list(INPUT_COLUMNS)),
        ]
    )


def text_vectorizer(
    kind: str, max_features: int, ngram_max: int, min_df: int, sublinear_tf: bool
) -> CountVectorizer:
    """Bag-of-words counts (``count``) or TF-IDF weights (``tfidf``) over word n-grams."""
    common = {
        "max_features": max_features,
        "ngram_range": (1, ngram_max),
        "min_df": min_df,
        "stop_words": "english",
        "dtype": np.float32,
    }
    if kind == "count":
        return CountVectorizer(**common)
    if kind == "tfidf":
        return TfidfVectorizer(sublinear_tf=sublinear_tf, **common)
    raise ValueError(f"text vectoriser kind must be 'count' or 'tfidf', got {kind!r}")


def text_column(vectorizer: CountVectorizer) -> ColumnTransformer:
    """Apply a vectoriser to the ``text`` column of an item frame."""
    return ColumnTransformer([("text", vectorizer, "text")])
