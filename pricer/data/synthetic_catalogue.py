"""The synthetic source's catalogue: read from ``synthetic_catalogue.json``, flattened into arrays.

The JSON file (package data, read with ``importlib.resources`` so it works from a wheel too)
holds every word the generator writes and the per-entry log-price effects (product types,
specs, brands, materials, variants). This module turns it into tables indexed by type, brand,
spec and category, so that one batch is drawn with a few vectorised lookups.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

CATALOGUE_FILE = "synthetic_catalogue.json"
TIERS = ("budget", "mid_range", "premium")
# Brand offsets and model-number prefixes are fixed properties of a brand, so they come from
# this private constant seed, not from the caller's seed.
_BRAND_SEED = 20231
_PREFIX_LETTERS = "ABCDEFGHJKLMNPRSTVWXZ"


@cache
def catalogue_data() -> dict[str, Any]:
    """The raw catalogue as written in the JSON file."""
    text = resources.files(__package__).joinpath(CATALOGUE_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def categories() -> tuple[str, ...]:
    """The source categories, in the catalogue's order (the order every table follows)."""
    return tuple(catalogue_data()["product_types"])


@dataclass(frozen=True)
class Catalog:
    """The catalogue flattened into arrays indexed by type, brand, spec and category."""

    categories: tuple[str, ...]
    type_names: tuple[str, ...]
    type_departments: tuple[str, ...]
    type_category: np.ndarray
    type_log_base: np.ndarray
    type_log_weight: np.ndarray
    type_spec: np.ndarray
    type_packable: np.ndarray
    type_popularity: np.ndarray  # within-category share: cheap types sell more
    spec_keys: tuple[str, ...]
    spec_label_table: np.ndarray  # (spec, level) -> label, object array
    spec_n_levels: np.ndarray
    spec_effects: np.ndarray  # (spec, level), zero padded
    brand_names: tuple[str, ...]
    brand_prefixes: tuple[str, ...]
    brand_table: np.ndarray  # (category, tier, slot) -> brand id
    brand_counts: np.ndarray  # (category, tier)
    brand_offsets: np.ndarray
    material_table: np.ndarray  # (category, slot) -> name, object array
    material_effects: np.ndarray  # (category, slot), zero padded
    material_counts: np.ndarray
    category_displays: tuple[str, ...]
    category_alternatives: tuple[tuple[str, ...], ...]
    use_table: np.ndarray  # (category, slot) -> usage phrase, object array
    sentence_pools: tuple[tuple[str, ...], ...]
    bullet_pools: tuple[tuple[str, ...], ...]
    variant_words: tuple[str, ...]
    variant_effects: np.ndarray
    variant_probability: tuple[float, ...]
    variant_after: tuple[bool, ...]  # the word follows the type name
    retail_endings: tuple[float, ...]
    retail_ending_probability: tuple[float, ...]
    colors: tuple[str, ...]
    pack_phrases: tuple[str, ...]
    noise_description_lines: tuple[str, ...]
    resellers: tuple[str, ...]
    company_suffixes: tuple[str, ...]
    warranties: tuple[tuple[str, ...], ...]
    months: tuple[str, ...]
    fit_check_line: str


def _spec_levels(spec: dict[str, Any]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """A spec's labels and log-price effects. A numeric spec's effect is elastic in the value
    and centred, so the type's base price is its typical price."""
    if "levels" in spec:
        return tuple(label for label, _ in spec["levels"]), tuple(e for _, e in spec["levels"])
    logs = [math.log(value) for value in spec["values"]]
    centre = sum(logs) / len(logs)
    labels = tuple(spec["format"].format(f"{value:g}") for value in spec["values"])
    return labels, tuple(spec["elasticity"] * (x - centre) for x in logs)


def _padded(rows: list[tuple], fill: Any, dtype: Any) -> np.ndarray:
    """Ragged rows as one zero- (or ``fill``-) padded 2-D array."""
    table = np.full((len(rows), max(len(row) for row in rows)), fill, dtype=dtype)
    for i, row in enumerate(rows):
        table[i, : len(row)] = row
    return table


def _specs(data: dict[str, Any]) -> dict[str, Any]:
    levels = [_spec_levels(spec) for spec in data["specs"].values()]
    return {
        "spec_keys": tuple(spec["key"] for spec in data["specs"].values()),
        "spec_label_table": _padded([labels for labels, _ in levels], "", object),
        "spec_n_levels": np.array([len(labels) for labels, _ in levels]),
        "spec_effects": _padded([effects for _, effects in levels], 0.0, float),
    }


def _types(data: dict[str, Any], popularity_exponent: float) -> dict[str, Any]:
    spec_ids = {name: i for i, name in enumerate(data["specs"])}
    rows = [(c, *row) for c, types in enumerate(data["product_types"].values()) for row in types]
    type_category = np.array([row[0] for row in rows])
    type_base = np.array([row[2] for row in rows], dtype=float)
    popularity = type_base**popularity_exponent
    for c in range(len(data["product_types"])):
        popularity[type_category == c] /= popularity[type_category == c].sum()
    return {
        "type_names": tuple(row[1] for row in rows),
        "type_departments": tuple(row[6] for row in rows),
        "type_category": type_category,
        "type_log_base": np.log(type_base),
        "type_log_weight": np.log([row[3] for row in rows]),
        "type_spec": np.array([spec_ids[row[4]] for row in rows]),
        "type_packable": np.array([row[5] for row in rows], dtype=bool),
        "type_popularity": popularity,
    }


def _brands(data: dict[str, Any], brand_offset_sd: float) -> dict[str, Any]:
    names: list[str] = []
    tiers = [[brands[tier] for tier in TIERS] for brands in data["brands"].values()]
    max_slots = max(len(tier) for category in tiers for tier in category)
    table = np.zeros((len(tiers), len(TIERS), max_slots), dtype=np.int64)
    counts = np.zeros((len(tiers), len(TIERS)), dtype=np.int64)
    for c, category in enumerate(tiers):
        for tier, tier_names in enumerate(category):
            counts[c, tier] = len(tier_names)
            for slot, name in enumerate(tier_names):
                table[c, tier, slot] = len(names)
                names.append(name)
    fixed = np.random.default_rng(_BRAND_SEED)
    letters = np.array(list(_PREFIX_LETTERS))
    prefixes = tuple("".join(fixed.choice(letters, 2)) for _ in names)
    return {
        "brand_names": tuple(names),
        "brand_prefixes": prefixes,
        "brand_table": table,
        "brand_counts": counts,
        "brand_offsets": fixed.normal(0.0, brand_offset_sd, len(names)),
    }


def _category_text(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    materials = [data["materials"][c] for c in names]
    text = [data["category_text"][c] for c in names]
    sentences = data["sentences"]
    generic = tuple(f"{s} {p}." for s in sentences["subjects"] for p in sentences["predicates"])
    generic += tuple(sentences["generic"])
    own = [tuple(sentences["category"][c]) for c in names]
    return {
        "material_table": _padded([tuple(m for m, _ in rows) for rows in materials], "", object),
        "material_effects": _padded([tuple(e for _, e in rows) for rows in materials], 0.0, float),
        "material_counts": np.array([len(rows) for rows in materials]),
        "category_displays": tuple(entry["display"] for entry in text),
        "category_alternatives": tuple(tuple(entry["alternatives"]) for entry in text),
        "use_table": np.array([entry["uses"] for entry in text], dtype=object),
        "sentence_pools": tuple(generic + sentences for sentences in own),
        "bullet_pools": tuple(tuple(data["filler_bullets"]) + sentences for sentences in own),
    }


def _vocabulary(data: dict[str, Any]) -> dict[str, Any]:
    variants = data["variants"]
    endings = data["retail_endings"]
    return {
        "variant_words": tuple(v[0] for v in variants),
        "variant_effects": np.array([v[1] for v in variants]),
        "variant_probability": tuple(v[2] for v in variants),
        "variant_after": tuple(v[3] for v in variants),
        "retail_endings": tuple(ending for ending, _ in endings),
        "retail_ending_probability": tuple(p for _, p in endings),
        "warranties": tuple(tuple(tier) for tier in data["warranties"]),
        "fit_check_line": data["fit_check_line"],
        **{
            name: tuple(data[name])
            for name in (
                "colors",
                "pack_phrases",
                "noise_description_lines",
                "resellers",
                "company_suffixes",
                "months",
            )
        },
    }


@cache
def catalog(popularity_exponent: float, brand_offset_sd: float) -> Catalog:
    """The flattened catalogue; the two price-model settings that shape its tables come from
    ``data.generator.price_model``."""
    data = catalogue_data()
    names = categories()
    built = Catalog(
        categories=names,
        **_types(data, popularity_exponent),
        **_specs(data),
        **_brands(data, brand_offset_sd),
        **_category_text(data, names),
        **_vocabulary(data),
    )
    _check_json_safe(built, data)
    return built


def _check_json_safe(cat: Catalog, data: dict[str, Any]) -> None:
    """Details are written as JSON text directly, which is exact only if nothing needs escaping."""
    detail_words = [
        *cat.brand_names,
        *cat.type_departments,
        *cat.colors,
        *cat.company_suffixes,
        *cat.category_displays,
        *cat.months,
        *(m for materials in data["materials"].values() for m, _ in materials),
        *cat.spec_keys,
        *(label for label in cat.spec_label_table.ravel() if label),
    ]
    unsafe = [word for word in detail_words if json.dumps(word) != f'"{word}"']
    if unsafe:
        raise ValueError(f"catalogue words would need JSON escaping: {unsafe}")
