"""Synthetic raw product records in the Amazon-Reviews-2023 ``raw_meta_<Category>`` schema.

The embedded, offline data source. Every record is drawn from a small invented catalogue of
product types (8 categories, ``synthetic_catalogue.json``) and priced by a log-additive model
with real noise:

    log(price) = type base + brand tier + brand offset + spec effect (stronger for premium
                 brands) + pack size + material + variant + listing year + noise

so a model can learn a lot from words (type, brand, spec, pack counts), from numbers in the
details (weight, dimensions, rank) and from interactions, but never everything. The raw shape
is kept messy on purpose: price strings ("12.99", "$1,299.99", "None", ranges), junk and
duplicated records, and detail keys that downstream cleaning drops.

This module draws the records (every random choice, vectorised) and prices them;
``synthetic_text`` writes their text. The per-entry effects live in the catalogue; the
settings and the price model's coefficients come from ``conf/data/synthetic.yaml`` (no
defaults here: the YAML is the single source of settings).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from pricer.data.synthetic_catalogue import TIERS, Catalog, catalog, categories
from pricer.data.synthetic_text import (
    DOLLAR,
    EMPTY,
    NONE,
    PLAIN,
    RANGE,
    UNAVAILABLE,
    assemble_text,
    details_column,
)
from pricer.errors import ConfigError
from pricer.schemas import SyntheticGenerator, SyntheticPriceModel

RAW_COLUMNS = (
    "category",
    "main_category",
    "title",
    "description",
    "features",
    "details",
    "price",
    "store",
    "average_rating",
    "rating_number",
    "categories",
    "parent_asin",
    "images",
    "videos",
    "bought_together",
)
CATEGORIES = categories()
# The one interaction of a variant with a category: tool kits include batteries and a charger.
_KIT, _TOOLS = "Kit", "Tools_and_Home_Improvement"


@dataclass  # its schema's fields, which cannot be frozen (pricer.schemas)
class PriceModel(SyntheticPriceModel):
    """The price model's coefficients (``data.generator.price_model``; keys and types in
    ``pricer.schemas.SyntheticPriceModel``, what each means in conf/data/synthetic.yaml)."""

    def __post_init__(self) -> None:
        for name in ("tier_probability", "pack_probability"):
            probabilities = getattr(self, name)
            if min(probabilities) < 0 or abs(sum(probabilities) - 1) > 1e-9:
                raise ValueError(f"price_model.{name} must be >= 0 and sum to 1")
        if not len(self.tier_probability) == len(self.tier_effect) == len(TIERS):
            raise ValueError(f"price_model: tier_probability and tier_effect need {len(TIERS)}")
        if len(self.pack_sizes) != len(self.pack_probability) or min(self.pack_sizes) < 2:
            raise ValueError("price_model: one probability per pack size, sizes >= 2")
        if not 0 <= self.pack_share <= 1 or self.brand_offset_sd < 0:
            raise ValueError("price_model: need 0 <= pack_share <= 1 and brand_offset_sd >= 0")
        if len(self.years) != 2 or self.years[0] > self.years[1]:
            raise ValueError(f"price_model.years must be [first, last], got {self.years}")


def _validated_price_model(values: Mapping[str, Any]) -> PriceModel:
    """The price model from its config mapping (lists become plain lists), every key required."""
    known = {field.name for field in fields(PriceModel)}
    if set(values) != known:
        raise ValueError(
            f"price_model: unknown keys {sorted(set(values) - known)}, missing keys "
            f"{sorted(known - set(values))}"
        )
    return PriceModel(
        **{
            key: list(value)
            if isinstance(value, Sequence) and not isinstance(value, str)
            else value
            for key, value in values.items()
        }
    )


def iter_raw_batches(
    n_records: int, seed: int, batch_size: int, **generator: Any
) -> Iterator[pd.DataFrame]:
    """Yield raw records in batches of ``batch_size`` (the last may be smaller), drawn with
    the settings of ``generator`` (``data.generator``: ``pricer.schemas.SyntheticGenerator``).

    Each batch has its own generator spawned from ``seed``, so output is deterministic for
    given arguments and batches never depend on each other (millions of rows can stream).
    The settings are checked on the call, before the first record is drawn: a value out of
    range is a ``ConfigError`` naming it (``data.generator: junk_share must be within [0, 1],
    got 2``), since they come from ``data.generator`` in the config.
    """
    if n_records < 0 or batch_size < 1:
        raise ValueError(f"need n_records >= 0 and batch_size >= 1, got {n_records}, {batch_size}")
    try:
        settings = _validated_settings(generator)
    except ValueError as error:
        raise ConfigError(f"data.generator: {error}") from None
    return _batches(n_records, seed, batch_size, settings)


def _batches(
    n_records: int, seed: int, batch_size: int, settings: _Settings
) -> Iterator[pd.DataFrame]:
    n_batches = -(-n_records // batch_size)
    for index, seed_sequence in enumerate(np.random.SeedSequence(seed).spawn(n_batches)):
        size = min(batch_size, n_records - index * batch_size)
        yield _generate_batch(np.random.default_rng(seed_sequence), size, settings)


def _validated_settings(generator: Mapping[str, Any]) -> _Settings:
    """``data.generator``'s settings, range-checked (a ValueError naming the key). Its keys are
    ``pricer.schemas.SyntheticGenerator``'s, which types them while Hydra composes."""
    known = {field.name for field in fields(SyntheticGenerator)}
    if set(generator) != known:
        raise ValueError(
            f"unknown keys {sorted(set(generator) - known)}, missing keys "
            f"{sorted(known - set(generator))}"
        )
    given = SyntheticGenerator(**{key: generator[key] for key in known})  # a value each, by name
    shares = ("missing_price_share", "messy_price_share", "dollar_format_share")
    for name in (*shares, "junk_share", "duplicate_share"):
        share = getattr(given, name)
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {share}")
    if given.price_noise < 0 or not 0 < given.min_price < given.max_price:
        raise ValueError("need price_noise >= 0 and 0 < min_price < max_price")
    weights_by_name = given.category_weights
    unknown = set(weights_by_name) - set(CATEGORIES)
    if unknown or any(weights_by_name.get(c, 0) < 0 for c in CATEGORIES):
        raise ValueError(f"category_weights: keys must be among {CATEGORIES}, weights >= 0")
    weights = np.array([float(weights_by_name.get(c, 0.0)) for c in CATEGORIES])
    if weights.sum() <= 0:
        raise ValueError("category_weights must have a positive total")

    return _Settings(
        **{key: generator[key] for key in known},
        category_probability=weights / weights.sum(),
        model=_validated_price_model(given.price_model),
    )


def generate_raw(n_records: int, seed: int, batch_size: int, **generator: Any) -> pd.DataFrame:
    """All batches of :func:`iter_raw_batches` (the same keyword arguments) in one frame,
    indexed 0..n_records-1."""
    batches = list(iter_raw_batches(n_records, seed, batch_size, **generator))
    if not batches:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in RAW_COLUMNS})
    return pd.concat(batches, ignore_index=True)


@dataclass(frozen=True)
class _Settings(SyntheticGenerator):
    """``data.generator``'s settings, validated, and what the batches draw from them."""

    category_probability: np.ndarray  # category_weights normalised, in CATEGORIES' order
    model: PriceModel


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a batch.

    A batch allocates millions of small lists and strings and no reference cycles; the
    collector would rescan them over and over, which costs about 40% of the run time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _generate_batch(rng: np.random.Generator, n: int, settings: _Settings) -> pd.DataFrame:
    with _gc_paused():
        return _build_batch(rng, n, settings)


def _build_batch(rng: np.random.Generator, n: int, settings: _Settings) -> pd.DataFrame:
    cat = catalog(settings.model.type_popularity_exponent, settings.model.brand_offset_sd)
    draws = _draw_product(rng, n, settings, cat)
    draws |= _draw_price(rng, draws, settings, cat)
    draws |= _draw_detail_numbers(rng, draws, cat)
    draws |= _draw_text_choices(rng, draws, settings, cat)
    columns = assemble_text(cat, draws)
    columns["details"] = details_column(cat, draws, columns.pop("model_number"))
    columns["average_rating"] = draws["average_rating"].tolist()
    columns["rating_number"] = draws["rating_number"].tolist()
    columns["parent_asin"] = _asins(rng, n)
    columns["images"] = [[] for _ in range(n)]
    columns["videos"] = [[] for _ in range(n)]
    columns["bought_together"] = [None] * n
    _duplicate_rows(rng, columns, settings.duplicate_share)
    return pd.DataFrame({column: columns[column] for column in RAW_COLUMNS})


# The draws below run in a fixed order: the records a seed gives depend on it.


def _draw_product(
    rng: np.random.Generator, n: int, settings: _Settings, cat: Catalog
) -> dict[str, np.ndarray]:
    """What each record is: type, brand tier and brand, spec level, pack, material, variant,
    listing year."""
    model = settings.model
    type_probability = settings.category_probability[cat.type_category] * cat.type_popularity
    type_ids = rng.choice(len(cat.type_names), n, p=type_probability)
    category = cat.type_category[type_ids]
    tier = rng.choice(len(TIERS), n, p=model.tier_probability)
    brand_slot = (rng.random(n) * cat.brand_counts[category, tier]).astype(np.int64)
    spec = cat.type_spec[type_ids]
    level = (rng.random(n) * cat.spec_n_levels[spec]).astype(np.int64)
    is_pack = cat.type_packable[type_ids] & (rng.random(n) < model.pack_share)
    pack = np.where(is_pack, rng.choice(model.pack_sizes, n, p=model.pack_probability), 1)
    material = (rng.random(n) * cat.material_counts[category]).astype(np.int64)
    variant = rng.choice(len(cat.variant_words), n, p=cat.variant_probability)
    years = np.arange(model.years[0], model.years[1] + 1)
    year_weights = np.linspace(1.0, model.newest_year_weight, len(years))
    year = rng.choice(years, n, p=year_weights / year_weights.sum())
    return {
        "type_ids": type_ids,
        "category": category,
        "tier": tier,
        "brand": cat.brand_table[category, tier, brand_slot],
        "spec": spec,
        "level": level,
        "pack": pack,
        "material": material,
        "variant": variant,
        "year": year,
    }


def _draw_price(
    rng: np.random.Generator, d: dict[str, np.ndarray], settings: _Settings, cat: Catalog
) -> dict[str, np.ndarray]:
    """The log-additive price model, its noise, clipping and shop-like rounding."""
    model, tier, variant = settings.model, d["tier"], d["variant"]
    spec_effect = cat.spec_effects[d["spec"], d["level"]]
    is_tool_kit = (np.array(cat.variant_words) == _KIT)[variant] & (
        d["category"] == CATEGORIES.index(_TOOLS)
    )
    variant_effect = cat.variant_effects[variant] + model.kit_extra_in_tools * is_tool_kit
    log_price = (
        cat.type_log_base[d["type_ids"]]
        + np.array(model.tier_effect)[tier]
        + cat.brand_offsets[d["brand"]]
        + spec_effect * (1.0 + model.spec_tier_slope * (tier - 1))
        + model.pack_elasticity * np.log(d["pack"])
        + cat.material_effects[d["category"], d["material"]]
        + variant_effect
        + model.year_effect * (d["year"] - model.reference_year)
        + rng.normal(0.0, settings.price_noise, len(tier))
    )
    clipped = np.clip(np.exp(log_price), settings.min_price, settings.max_price)
    return {"spec_effect": spec_effect, "price": _retail_rounding(clipped, rng, cat)}


def _draw_detail_numbers(
    rng: np.random.Generator, d: dict[str, np.ndarray], cat: Catalog
) -> dict[str, Any]:
    """Numbers in the details: size follows spec and pack, popularity follows price and tier."""
    n, tier, price = len(d["tier"]), d["tier"], d["price"]
    weight_lb = np.exp(
        cat.type_log_weight[d["type_ids"]]
        + 0.8 * d["spec_effect"]
        + 0.9 * np.log(d["pack"])
        + rng.normal(0, 0.3, n)
    )
    volume_in3 = weight_lb * 27.7 / rng.uniform(0.08, 0.6, n)
    aspect_long, aspect_mid = rng.uniform(1.0, 3.0, n), rng.uniform(1.0, 2.0, n)
    depth = np.cbrt(volume_in3 / (aspect_long * aspect_mid**2))
    rating_number = 1 + np.floor(
        np.exp(rng.normal(2.8 + 0.35 * tier - 0.25 * (np.log(price) - np.log(30.0)), 1.6, n))
    ).astype(np.int64)
    sales_rank = np.maximum(
        1, np.exp(rng.normal(12.0 - 0.7 * np.log1p(rating_number) + 0.2 * np.log(price), 1.0, n))
    ).astype(np.int64)
    return {
        "weight_lb": weight_lb,
        "depth": depth,
        "width": depth * aspect_mid,
        "length": depth * aspect_mid * aspect_long,
        "sales_rank": sales_rank,
        "rating_number": rating_number,
    }


def _draw_text_choices(
    rng: np.random.Generator, d: dict[str, np.ndarray], settings: _Settings, cat: Catalog
) -> dict[str, Any]:
    """Which words, sentences and detail keys each record gets. Small ints (percent coin flips,
    pool indices) keep ``tolist`` cheap: CPython caches ints below 257."""
    n, tier, category = len(d["tier"]), d["tier"], d["category"]
    sentence_pool_size = np.array([len(p) for p in cat.sentence_pools])[category]
    bullet_pool_size = np.array([len(p) for p in cat.bullet_pools])[category]
    junk = rng.random(n) < settings.junk_share
    return {
        "sub_rank": np.maximum(1, d["sales_rank"] // rng.integers(15, 400, n)),
        "average_rating": np.clip(np.round(rng.normal(4.15 + 0.12 * tier, 0.45, n), 1), 1, 5),
        "n_paragraphs": rng.choice(4, n, p=(0.3, 0.35, 0.25, 0.1)),
        "paragraph_sentences": rng.integers(2, 5, (n, 3)),
        "sentence_ids": (rng.random((n, 12)) * sentence_pool_size[:, None]).astype(np.int16),
        "n_features": rng.integers(2, 7, n),
        "bullet_ids": (rng.random((n, 8)) * bullet_pool_size[:, None]).astype(np.int16),
        "flags": rng.integers(0, 100, (n, 17), dtype=np.int16),  # percent coin flips
        "detail_flags": rng.integers(0, 100, (n, 16), dtype=np.int16),
        "title_template": rng.integers(0, 5, n),
        "color": rng.integers(0, len(cat.colors), n),
        "use": rng.integers(0, 4, n),
        "warranty_level": np.clip(tier + (rng.random(n) < 0.3) * rng.integers(-1, 2, n), 0, 2),
        "model_digits": rng.integers(0, 1000, n),
        "model_suffix": rng.choice(np.array(list("ABCDEHKLMRSTX"), dtype=object), n),
        "junk": junk,
        "empty_title": junk & (rng.random(n) < 0.5),
        "price_kind": _price_kinds(rng, n, settings),
    }


def _retail_rounding(price: np.ndarray, rng: np.random.Generator, cat: Catalog) -> np.ndarray:
    """Snap to shop-like endings (.99, .95, .49, .00 ...); cents stay as drawn below $1."""
    endings = rng.choice(cat.retail_endings, len(price), p=cat.retail_ending_probability)
    dollars = np.floor(price)
    return np.where(dollars >= 1, dollars + endings, np.maximum(np.round(price, 2), 0.01))


def _price_kinds(rng: np.random.Generator, n: int, settings: _Settings) -> np.ndarray:
    """Price string kinds: plain "12.99", "$1,299.99", "None", and messy ones."""
    kind = np.where(rng.random(n) < settings.dollar_format_share, DOLLAR, PLAIN)
    messy = rng.random(n) < settings.messy_price_share
    kind = np.where(messy, rng.choice([EMPTY, RANGE, UNAVAILABLE], n), kind)
    return np.where(rng.random(n) < settings.missing_price_share, NONE, kind)


def _asins(rng: np.random.Generator, n: int) -> list[str]:
    alphabet = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
    codes = np.ascontiguousarray(alphabet[rng.integers(0, 36, (n, 8))])
    return ["B0" + code.decode() for code in codes.view("S8").ravel()]


def _duplicate_rows(rng: np.random.Generator, columns: dict[str, list], share: float) -> None:
    """Overwrite a share of rows with copies of earlier rows (re-listed products)."""
    n = len(columns["title"])
    duplicates = np.flatnonzero(rng.random(n) < share)
    duplicates = duplicates[duplicates > 0]
    sources = (rng.random(len(duplicates)) * duplicates).astype(np.int64)
    for row, source in zip(duplicates.tolist(), sources.tolist(), strict=True):
        for values in columns.values():
            value = values[source]
            values[row] = list(value) if isinstance(value, list) else value
