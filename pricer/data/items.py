"""Raw Amazon-Reviews-2023 metadata records -> clean, priced items.

A raw record (``raw_meta_<Category>`` schema) has a price *string*, a title, lists of
description and feature lines and a JSON string of details. An item has a float price and
one cleaned, truncated ``text`` built from all of those. Conversion works on column batches
(the shape ``datasets.map(batched=True)`` and pandas both speak) and never drops a record
silently: every rejected record carries a reason, so curation can count them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

ITEM_COLUMNS = ("title", "text", "price", "category", "details")

# Rejection reasons, in the order they are checked.
MISSING_PRICE = "missing_price"
INVALID_PRICE = "invalid_price"
PRICE_OUT_OF_RANGE = "price_out_of_range"
MISSING_TITLE = "missing_title"
TOO_SHORT = "too_short"
REJECTION_REASONS = (MISSING_PRICE, INVALID_PRICE, PRICE_OUT_OF_RANGE, MISSING_TITLE, TOO_SHORT)

_MISSING_PRICE_STRINGS = frozenset({"", "none", "nan", "null", "n/a", "na", "-"})
# One amount: optional currency sign, digits with optional thousands commas, optional cents.
_PRICE = re.compile(r"^(?:US\s?)?\$?\s*((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)$")
# Punctuation left over from JSON and bullet formatting carries no meaning for pricing.
_JSON_PUNCTUATION = re.compile(r'[:\[\]"{}【】\s]+')


@dataclass(frozen=True)
class CleaningSettings:
    """How a raw record becomes an item (``curation.items`` in the config)."""

    min_price: float
    max_price: float
    min_chars: int
    max_words: int
    part_number_min_length: int
    drop_detail_keys: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> CleaningSettings:
        values = dict(cfg)
        values["drop_detail_keys"] = tuple(values["drop_detail_keys"])
        return cls(**values)

    def __post_init__(self) -> None:
        if not 0 <= self.min_price < self.max_price:
            raise ValueError(
                f"curation.items: need 0 <= min_price < max_price, got "
                f"{self.min_price} and {self.max_price}"
            )
        if self.max_words < 1 or self.min_chars < 0:
            raise ValueError("curation.items: max_words must be >= 1 and min_chars >= 0")


def parse_price(value: object) -> tuple[float | None, str | None]:
    """Parse an Amazon price string ("$1,299.99", "12.99", "None").

    Returns ``(price, None)`` or ``(None, reason)``; a range such as "$5 - $9" or any text
    that is not a single amount is invalid rather than guessed.
    """
    if value is None:
        return None, MISSING_PRICE
    if isinstance(value, (int, float)):
        if value != value:  # NaN
            return None, MISSING_PRICE
        return (float(value), None) if value >= 0 else (None, INVALID_PRICE)
    text = str(value).strip()
    if text.lower() in _MISSING_PRICE_STRINGS:
        return None, MISSING_PRICE
    match = _PRICE.match(text)
    if match is None:
        return None, INVALID_PRICE
    return float(match.group(1).replace(",", "")), None


class TextCleaner:
    """Builds an item's text from a raw record's parts, following the course's recipe.

    Title, then description, features and details (minus keys that are noise for pricing),
    with JSON punctuation and part-number-like tokens removed, cut to a word budget.
    """

    def __init__(self, settings: CleaningSettings) -> None:
        self.settings = settings
        self._drop_keys = frozenset(settings.drop_detail_keys)
        # A "word" of at least N characters with a digit in it is almost always a model or
        # part number: it identifies one listing and only teaches a model to memorise.
        self._part_number = re.compile(
            rf"(?<!\S)(?=\S*\d)\S{{{settings.part_number_min_length},}}(?!\S)"
        )
        # Bound the work on very long listings: only the first words can survive truncation.
        self._body_char_budget = settings.max_words * 15

    def scrub(self, text: str) -> str:
        text = _JSON_PUNCTUATION.sub(" ", text)
        text = self._part_number.sub("", text)
        text = " ".join(text.split())
        return text.replace(" ,", ",").replace(",,", ",")

    def details_text(self, details: object) -> str:
        parsed = parse_details(details)
        return ", ".join(
            f"{key} {value if isinstance(value, str) else json.dumps(value)}"
            for key, value in parsed.items()
            if key not in self._drop_keys
        )

    def build(
        self, title: str, description: Sequence[str], features: Sequence[str], details: object
    ) -> str:
        parts = [*_as_lines(description), *_as_lines(features), self.details_text(details)]
        body = "\n".join(part for part in parts if part)[: self._body_char_budget]
        clean_title = self.scrub(title)
        words = self.scrub(body).split(" ")
        budget = max(self.settings.max_words - len(clean_title.split(" ")), 0)
        return f"{clean_title}\n{' '.join(words[:budget])}".strip()


def parse_details(details: object) -> dict[str, Any]:
    """The raw ``details`` field as a dict: it arrives as a JSON string, a dict or nothing."""
    if isinstance(details, Mapping):
        return dict(details)
    if not details or not isinstance(details, str):
        return {}
    try:
        parsed = json.loads(details)
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _as_lines(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(line) for line in value if line]


def convert_batch(
    batch: Mapping[str, Sequence[Any]], settings: CleaningSettings
) -> dict[str, list]:
    """Convert a column batch of raw records into item columns plus ``reject_reason``.

    Every input row yields one output row (so this plugs into ``datasets.map``); accepted rows
    have ``reject_reason`` None. The category is the source category (``category``) when the
    loader supplied one, else the record's ``main_category``.
    """
    cleaner = TextCleaner(settings)
    n_rows = len(batch["title"])
    empty: list[Any] = [None] * n_rows
    category_column = "category" if "category" in batch else "main_category"
    categories = batch.get(category_column, empty)
    descriptions = batch.get("description", empty)
    features = batch.get("features", empty)
    details = batch.get("details", empty)
    out: dict[str, list] = {column: [] for column in (*ITEM_COLUMNS, "reject_reason")}
    for row in range(n_rows):
        price, reason = parse_price(batch["price"][row])
        title = batch["title"][row] or ""
        text = ""
        if reason is None and not settings.min_price <= price <= settings.max_price:
            reason = PRICE_OUT_OF_RANGE
        if reason is None and not title.strip():
            reason = MISSING_TITLE
        if reason is None:
            text = cleaner.build(title, descriptions[row], features[row], details[row])
            if len(text) < settings.min_chars:
                reason = TOO_SHORT
        raw_details = details[row]
        out["title"].append(title.strip())
        out["text"].append(text)
        out["price"].append(price)
        out["category"].append(categories[row])
        out["details"].append(
            raw_details
            if isinstance(raw_details, str) or raw_details is None
            else json.dumps(raw_details)
        )
        out["reject_reason"].append(reason)
    return out


def split_rejections(converted: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Separate accepted items from rejected records; count rejections by reason."""
    rejected = converted["reject_reason"].notna()
    counts = converted.loc[rejected, "reject_reason"].value_counts()
    rejections = {reason: int(counts.get(reason, 0)) for reason in REJECTION_REASONS}
    items = converted.loc[~rejected, list(ITEM_COLUMNS)].reset_index(drop=True)
    items["price"] = items["price"].astype(float)
    return items, rejections
