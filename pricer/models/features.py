"""Hand-made item features and the text vectorisers shared by the classical families.

Features come from the details JSON (weight, dimensions, sales rank, brand, date, pack counts)
and from the text (length, pack sizes, numbers with units such as "500W" or "2TB"). Regular
expressions run over the raw JSON text, vectorised on pyarrow's RE2 engine: parsing 400k JSON
documents one by one (or pandas' ``str.extract``) would dominate training time.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sklearn import config_context
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder
from sklearn.utils.validation import check_is_fitted

from pricer.errors import ConfigError, UserError
from pricer.models.base import INPUT_COLUMNS, as_items

# RE2 patterns: named groups, no look-arounds.
# A number in a dimensions string may carry its own unit mark, as in 10"D x 5"W x 3"H (the
# inner quote is escaped in the raw JSON).
_SIDE = r'(?P<side{}>[\d.]+)\s*(?:\\"\s*[A-Za-z]{{0,2}}\s*)?'
_DIMENSIONS = (
    r'Dimensions[^"]*"\s*:\s*"\s*'
    + _SIDE.format(0)
    + r"[x×]\s*"
    + _SIDE.format(1)
    + r"(?:[x×]\s*"
    + _SIDE.format(2)
    + r")?(?P<unit>[A-Za-z]*)"
)
_WEIGHT = r'"(?:Item|Package) Weight"\s*:\s*"\s*(?P<value>[\d.,]+)\s*(?P<unit>[A-Za-z]+)'
# "Product Dimensions": "7 x 14 x 9 inches; 5 Pounds" carries the weight after the semicolon.
_WEIGHT_IN_DIMENSIONS = r'Dimensions"\s*:\s*"[^"]*;\s*(?P<value>[\d.,]+)\s*(?P<unit>[A-Za-z]+)'
# A rank is a dict {"Tools & Home Improvement": 95657, "Vanity Lighting": 329} or a string
# "#95,657 in Tools & Home Improvement (...) #329 in Vanity Lighting".
_RANK = r'"Best Sellers Rank"\s*:\s*(?:\{[^}]*?:\s*|"#?)(?P<value>[\d,]+)'
_SUB_RANK = (
    r'"Best Sellers Rank"\s*:\s*'
    r'(?:\{[^}]*?:\s*[\d,]+\s*,[^}]*?:\s*|"[^"]*?#[^#"]*?#)(?P<value>[\d,]+)'
)
_BRAND = r'"(?:Brand|Manufacturer)"\s*:\s*"(?P<value>[^"]+)"'
_YEAR = r'"Date First Available"\s*:\s*"[^"]*?(?P<value>\d{4})"'
_DETAIL_COUNT = (
    r'"(?:Number of Items|Item Package Quantity|Unit Count|Number of Pieces)"\s*:\s*"?\s*'
    r"(?P<value>[\d,]+)"
)
_PACK_OF = r"\b(?:pack|set|case|box|bundle|lot) of (?P<value>\d+)"
_DETAIL_KEY = r'"\s*:'
_NUMBER = r"\d+(?:\.\d+)?"
_WORD = r"\S+"

# Numbers written with a unit in the lower-cased text, as "500w", "12 volts", "2tb", "6-pack":
# feature -> {unit word: multiplier to the feature's unit}. The first mention counts.
UNIT_WORDS = {
    "watts": dict.fromkeys(("w", "watt", "watts"), 1.0),
    "volts": dict.fromkeys(("v", "volt", "volts", "vac", "vdc"), 1.0),
    "amps": dict.fromkeys(("amp", "amps"), 1.0),  # not a bare "a": "2 a day"
    "storage_gb": {"gb": 1.0, "tb": 1000.0},
    "horsepower": dict.fromkeys(("hp", "horsepower"), 1.0),
    "gallons": dict.fromkeys(("gal", "gallon", "gallons"), 1.0),
    "feet": dict.fromkeys(("ft", "feet", "foot"), 1.0),
    "inches": dict.fromkeys(("inch", "inches", '"'), 1.0),
    "pack": dict.fromkeys(("pack", "pk", "pcs", "pieces", "count", "ct"), 1.0),
}
UNIT_FEATURES = tuple(unit for unit in UNIT_WORDS if unit != "pack")

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
    "milligrams": 0.0000022046,
    "mg": 0.0000022046,
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
    "meters": 39.37,
    "m": 39.37,
    "feet": 12.0,
    "ft": 12.0,
}

NUMERIC_FEATURES = (
    "log_weight_lb",
    "log_volume_in3",
    "log_longest_side_in",
    "log_rank",
    "log_sub_rank",
    "year",
    "log_text_chars",
    "title_words",
    "log_pack",
    "numbers_in_text",
    "detail_keys",
    "has_brand",
    *(f"log_{unit}" for unit in UNIT_FEATURES),
)


def extract_features(X: pd.DataFrame) -> pd.DataFrame:
    """Numeric features of each item (NaN where the listing does not say)."""
    items = as_items(X)
    details = _arrow_strings(items["details"])
    text = _arrow_strings(items["text"])
    lower_text = pc.utf8_lower(text)
    sides = _dimensions_inches(details)
    columns = {
        "log_weight_lb": np.log1p(_weight_pounds(details)),
        "log_volume_in3": np.log1p(sides.prod(axis=1, min_count=2)),
        "log_longest_side_in": np.log1p(sides.max(axis=1)),
        "log_rank": np.log1p(_number(details, _RANK)),
        "log_sub_rank": np.log1p(_number(details, _SUB_RANK)),
        "year": _number(details, _YEAR).clip(1990, 2030),
        "log_text_chars": np.log1p(_counts(pc.utf8_length(text))),
        "title_words": _counts(pc.count_substring_regex(_arrow_strings(items["title"]), _WORD)),
        "log_pack": np.log1p(_pack_size(lower_text, details).clip(upper=1000)),
        "numbers_in_text": _counts(pc.count_substring_regex(text, _NUMBER)),
        "detail_keys": _counts(pc.count_substring_regex(details, _DETAIL_KEY)),
        "has_brand": _groups(details, _BRAND)["value"].notna(),
    }
    for unit in UNIT_FEATURES:
        columns[f"log_{unit}"] = np.log1p(_unit_value(lower_text, unit))
    # Plain arrays: the helpers' Series carry a fresh 0..n-1 index that must not be aligned
    # against the items' own index.
    # A number too large for a float ("<400 digits> pounds") is as unknown as an absent one:
    # infinite, it failed the linear families' input check (the whole batch, a traceback).
    arrays = {name: _finite_or_nan(values) for name, values in columns.items()}
    return pd.DataFrame(arrays, index=items.index)


def _finite_or_nan(values: object) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return np.where(np.isfinite(array), array, np.nan)


def _arrow_strings(values: pd.Series) -> pa.Array:
    return pa.array(values.fillna("").astype(str).to_numpy(dtype=object), type=pa.large_string())


def _groups(values: pa.Array, pattern: str) -> pd.DataFrame:
    """The named groups of the first match in each string, None where nothing matched."""
    matched = pc.extract_regex(values, pattern)
    return pd.DataFrame(
        {
            field.name: pc.struct_field(matched, field.name).to_numpy(zero_copy_only=False)
            for field in matched.type
        }
    )


def _to_float(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values.str.replace(",", "", regex=False), errors="coerce")


def _number(values: pa.Array, pattern: str) -> pd.Series:
    return _to_float(_groups(values, pattern)["value"])


def _counts(counts: pa.Array) -> np.ndarray:
    return counts.to_numpy(zero_copy_only=False).astype(float)


def _weight_pounds(details: pa.Array) -> pd.Series:
    pounds = _weight_match_pounds(details, _WEIGHT)
    return pounds.fillna(_weight_match_pounds(details, _WEIGHT_IN_DIMENSIONS))


def _weight_match_pounds(details: pa.Array, pattern: str) -> pd.Series:
    weight = _groups(details, pattern)
    return _to_float(weight["value"]) * weight["unit"].str.lower().map(POUNDS_PER_UNIT)


def _dimensions_inches(details: pa.Array) -> pd.DataFrame:
    """The two or three sides of the first dimensions entry, in inches (NaN when absent)."""
    dims = _groups(details, _DIMENSIONS)
    inches = dims["unit"].str.lower().map(INCHES_PER_UNIT)
    # A matched entry with an unknown unit word keeps its numbers as inches rather than vanish.
    inches = inches.where(dims["unit"].isna() | inches.notna(), 1.0)
    # An absent third side is "" (the group did not take part), which becomes NaN here.
    return pd.DataFrame({side: _to_float(dims[f"side{side}"]) * inches for side in range(3)})


def _pack_size(lower_text: pa.Array, details: pa.Array) -> pd.Series:
    """Items per listing: a count in the details, else "pack of 6" or "12-pack" in the text."""
    in_details = _number(details, _DETAIL_COUNT)
    return in_details.fillna(_number(lower_text, _PACK_OF)).fillna(_unit_value(lower_text, "pack"))


def _unit_value(lower_text: pa.Array, feature: str) -> pd.Series:
    """The first number written with one of the feature's unit words, in the feature's unit."""
    multipliers = UNIT_WORDS[feature]
    words = "|".join(sorted(map(re.escape, multipliers), key=len, reverse=True))
    # RE2 has no look-ahead: the unit must end the text or be followed by a non-letter.
    pattern = rf"\b(?P<value>{_NUMBER}) ?-?(?P<unit>{words})(?:[^a-z]|$)"
    found = _groups(lower_text, pattern)
    return pd.to_numeric(found["value"], errors="coerce") * found["unit"].map(multipliers)


def extract_brand_and_category(X: pd.DataFrame) -> pd.DataFrame:
    items = as_items(X)
    brand = _groups(_arrow_strings(items["details"]), _BRAND)["value"].str.strip().str.lower()
    # As text first: a Categorical column refused the new value "unknown" (TypeError). A blank
    # category is none: predict and serve send "" where evaluation had None, and the encoder
    # priced the same item two ways.
    category = items["category"].astype(object).fillna("").astype(str).str.strip()
    return pd.DataFrame(
        {
            "brand": brand.fillna("unknown").to_numpy(),
            "category": category.where(category != "", "unknown").to_numpy(),
        },
        index=items.index,
    )


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

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(["brand", "category"], dtype=object)


class BrandEncoder(TargetEncoder):
    """sklearn's TargetEncoder, fitted with metadata routing off whatever the caller's setting.

    scikit-learn 1.9.1's ``TargetEncoder.fit_transform`` raises ``KeyError: 'groups'`` whenever
    metadata routing is on and no groups are sent, and a ``KFold`` cannot ask for them: so
    a pipeline holding one cannot route anything to its other steps (the stack routes sample
    weights to its neighbour prices, ``pricer.models.stack.StackPricer.fit_features``). The
    encoder takes no metadata here, so routing has nothing to do in it.
    """

    def fit_transform(self, X: object, y: object, **params: object) -> np.ndarray:
        if params:
            raise TypeError(f"BrandEncoder takes no metadata, got {sorted(params)}")
        with config_context(enable_metadata_routing=False):
            return super().fit_transform(X, y)


def brand_encoder(random_state: int) -> TargetEncoder:
    """Mean log price per brand, cross-fitted by sklearn so a brand's own rows never leak."""
    return BrandEncoder(
        target_type="continuous",  # never guessed: whole-dollar prices could look like classes
        cv=KFold(5, shuffle=True, random_state=random_state),
    )


def category_encoder() -> OneHotEncoder:
    return OneHotEncoder(handle_unknown="ignore", min_frequency=5, sparse_output=False)


def hand_feature_union(random_state: int) -> ColumnTransformer:
    """Hand features, imputed and scaled, plus target-encoded brand and one-hot category.

    For linear models: every column is finite and on a comparable scale.
    """
    numeric = make_pipeline(
        HandFeatures(),
        # keep_empty_features: a source without ranks (raw curation drops them) keeps the shape.
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        StandardScaler(),
    )
    return ColumnTransformer(
        [
            ("numeric", numeric, list(INPUT_COLUMNS)),
            ("labels", brand_and_category_union(random_state), list(INPUT_COLUMNS)),
        ]
    )


def tree_feature_union(random_state: int) -> ColumnTransformer:
    """Hand features as they are (trees split on raw values; XGBoost routes NaN itself)."""
    return ColumnTransformer(
        [
            ("numeric", HandFeatures(), list(INPUT_COLUMNS)),
            ("labels", brand_and_category_union(random_state), list(INPUT_COLUMNS)),
        ]
    )


def brand_and_category_union(random_state: int) -> Pipeline:
    """Items -> target-encoded brand and one-hot category."""
    return make_pipeline(
        BrandAndCategory(),
        ColumnTransformer(
            [
                ("brand", brand_encoder(random_state), ["brand"]),
                ("category", category_encoder(), ["category"]),
            ]
        ),
    )


def text_columns(
    words: CountVectorizer, hand_features: bool, random_state: int
) -> ColumnTransformer:
    """Items -> the vectorised text [beside the scaled hand features, brand and category]."""
    blocks: list[tuple[str, object, object]] = [("text", words, "text")]
    if hand_features:
        blocks.append(("hand", hand_feature_union(random_state), list(INPUT_COLUMNS)))
    return ColumnTransformer(blocks)


def whole_number(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is a whole number of at least ``minimum``; ``ConfigError`` naming the
    setting otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def check_n_jobs(value: object) -> None:
    """``n_jobs`` as joblib and the tree libraries read it: a whole number, -1 for every core;
    0 is none (joblib's "has no meaning" traceback once the features were built; XGBoost took
    it as every core, recorded as 0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value == 0:
        raise ConfigError(
            f"n_jobs must be a whole number >= 1, or -1 for every core, got {value!r}"
        )


def check_word_settings(ngram_max: object, min_df: object, n_items: int) -> None:
    """A word vectoriser's ``ngram_max`` and ``min_df`` against the training items, before any
    work: scikit-learn refused ngram_max=0 and a min_df above the item count only with a
    ValueError traceback, the second after the items were read and tokenised."""
    whole_number("ngram_max", ngram_max)
    if whole_number("min_df", min_df) > n_items:
        raise ConfigError(
            f"min_df={min_df} keeps only words found in at least {min_df:,} items, but there "
            f"are {n_items:,} training items: lower min_df"
        )


# scikit-learn's ValueErrors (1.9) for a word vectoriser left without a term: each one min_df
# pruned away, or no token at all but stop words and one-letter words.
_PRUNED = "After pruning, no terms remain"
_EMPTY = "empty vocabulary"


class NoVocabulary(ConfigError):
    """A word vectoriser kept no term of the training texts: nothing to price the text by."""


@contextmanager
def words_kept(n_items: int, min_df: int | None = None, setting: str = "min_df") -> Iterator[None]:
    """Word scikit-learn's empty-vocabulary ValueError raised inside the block as a
    ``NoVocabulary`` naming ``setting`` (``min_df``, the pricer's own; None: a family without
    one). It was a traceback out of the vectoriser, found only once the items were tokenised:
    ``check_word_settings`` cannot know which words the texts share."""
    try:
        yield
    except ValueError as error:
        text = str(error)
        if isinstance(error, UserError) or not text.startswith((_PRUNED, _EMPTY)):
            raise
        if text.startswith(_PRUNED) and min_df is not None:
            raise NoVocabulary(
                f"{setting}={min_df} leaves the text vectoriser no word: none is in {min_df:,} "
                f"or more of the {n_items:,} training texts; lower {setting}"
            ) from None
        raise NoVocabulary(
            f"the text vectoriser found no word it keeps in the {n_items:,} training texts (they "
            "hold only stop words, one-letter words or words too rare to count): train on items "
            "whose text describes them"
        ) from None


def check_folds(name: str, folds: object, n_items: int) -> None:
    """Out-of-fold predictions need at least two folds and an item in each; KFold's ValueError
    said so as a traceback, after the text had been vectorised."""
    if whole_number(name, folds, 2) > n_items:
        raise ConfigError(
            f"{name}={folds} needs at least {folds} training items (one in each fold), "
            f"got {n_items:,}"
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
    raise ConfigError(f"text vectoriser kind must be 'count' or 'tfidf', got {kind!r}")


def text_column(vectorizer: CountVectorizer) -> ColumnTransformer:
    """Apply a vectoriser to the ``text`` column of an item frame."""
    return ColumnTransformer([("text", vectorizer, "text")])


class TextSVD(TransformerMixin, BaseEstimator):
    """Truncated SVD that asks for at most (columns - 1) components.

    A small training set can have fewer distinct words than the configured components; the
    plain ``TruncatedSVD`` would refuse to fit it.
    """

    def __init__(self, n_components: int, random_state: int) -> None:
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X: object, y: object = None) -> TextSVD:
        self.fit_transform(X)
        return self

    def fit_transform(self, X: object, y: object = None) -> np.ndarray:
        # Fewer columns than asked is the data's doing; fewer than one asked is a setting
        # that was quietly fitted as one component.
        n_components = max(
            1, min(whole_number("svd_components", self.n_components), X.shape[1] - 1)
        )
        self.svd_ = TruncatedSVD(n_components, random_state=self.random_state)
        return self.svd_.fit_transform(X)

    def transform(self, X: object) -> np.ndarray:
        check_is_fitted(self, "svd_")
        return self.svd_.transform(X)
