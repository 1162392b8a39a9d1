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
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pricer.prices import (
    INVALID_PRICE,
    MISSING_PRICE,
    MISSING_PRICE_STRINGS,
    parse_price,
)
from pricer.schemas import CleaningSettings

ITEM_COLUMNS = ("title", "text", "price", "category", "details")
# A curated training item's flag: drawn the way the test set was (the same sampling design).
# The same name as pricer.models.base.LIKE_TEST_COLUMN, which families read in fit (model
# code ships without this package, so it is not imported from there; a test checks both).
LIKE_TEST_COLUMN = "drawn_like_test"

# Rejection reasons, in the order they are checked (missing and invalid prices: pricer.prices).
# A raw JSON Lines line that is no JSON object (malformed, or nested past Python's JSON reader)
# is no record: counted, as a record that is no item is (pricer.data.sources).
UNREADABLE_LINE = "unreadable_line"
PRICE_OUT_OF_RANGE = "price_out_of_range"
MISSING_TITLE = "missing_title"
TOO_SHORT = "too_short"
REJECTION_REASONS = (
    UNREADABLE_LINE,
    MISSING_PRICE,
    INVALID_PRICE,
    PRICE_OUT_OF_RANGE,
    MISSING_TITLE,
    TOO_SHORT,
)

# The same amount pattern for Arrow's RE2, which runs over a whole price column at once. RE2's
# \d and \s are ASCII-only, so it is used on ASCII strings only (with Python's ASCII
# whitespace spelled out); any other string goes through ``parse_price``.
_PRICE_RE2 = (
    r"^(?:US[\t\n\v\f\r\x1c-\x1f ]?)?\$?[\t\n\v\f\r\x1c-\x1f ]*"
    r"(?P<amount>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)$"
)
# Punctuation left over from JSON and bullet formatting carries no meaning for pricing. Mapping
# it to spaces with str.translate, then splitting on whitespace, gives the words that a regex
# substitution of ``[:\[\]"{}【】\s]+`` would, about four times faster: that regex was the
# hottest line of curation.
_JSON_PUNCTUATION_TO_SPACE = str.maketrans(dict.fromkeys(':[]"{}【】', " "))
_DIGIT = re.compile(r"\d")
_decode_json = json.JSONDecoder().decode


def parse_prices(values: Sequence[object]) -> tuple[list[float | None], list[str | None]]:
    """``parse_price`` over a whole column: the same answers, vectorised with Arrow.

    Plain ASCII strings (all a real price column holds) are trimmed, matched and converted in
    Arrow's compute kernels; anything else (numbers, non-ASCII text) goes through
    ``parse_price`` one by one, so the answers are the same as calling it on every value.
    """
    values = list(values)
    prices: list[float | None] = [None] * len(values)
    reasons: list[str | None] = [MISSING_PRICE] * len(values)
    strings = [i for i, value in enumerate(values) if type(value) is str]
    if strings:
        column = pa.array([values[i] for i in strings], pa.string())
        ascii_only = pc.string_is_ascii(column).to_numpy(zero_copy_only=False)
        trimmed = pc.utf8_trim_whitespace(column)
        missing = pc.is_in(pc.utf8_lower(trimmed), pa.array(sorted(MISSING_PRICE_STRINGS)))
        missing = missing.to_numpy(zero_copy_only=False)
        amount = pc.struct_field(pc.extract_regex(trimmed, _PRICE_RE2), "amount")
        matched = amount.is_valid().to_numpy(zero_copy_only=False)
        parsed = pc.cast(pc.replace_substring(amount, ",", ""), pa.float64())
        parsed = parsed.to_numpy(zero_copy_only=False)
        for position, row in enumerate(strings):
            if not ascii_only[position]:
                prices[row], reasons[row] = parse_price(values[row])
            elif missing[position]:
                continue  # MISSING_PRICE, set above
            elif matched[position]:
                prices[row], reasons[row] = float(parsed[position]), None
            else:
                reasons[row] = INVALID_PRICE
    for row, value in enumerate(values):
        if value is not None and type(value) is not str:
            prices[row], reasons[row] = parse_price(value)
    return prices, reasons


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
        self._part_number_min_length = settings.part_number_min_length
        # Bound the work on very long listings: only the first words can survive truncation.
        self._body_char_budget = settings.max_words * 15

    def scrub(self, text: str) -> str:
        # Words are the runs between whitespace and JSON punctuation; a word is dropped when it
        # is long and holds a digit. The length test comes first: most words end there.
        min_length = self._part_number_min_length
        words = text.translate(_JSON_PUNCTUATION_TO_SPACE).split()
        text = " ".join(
            [word for word in words if len(word) < min_length or not _DIGIT.search(word)]
        )
        return text.replace(" ,", ",").replace(",,", ",")

    def details_text(self, details: object) -> str:
        if isinstance(details, str) and details:
            try:
                parsed = _decode_json(details)
            except (json.JSONDecodeError, RecursionError):  # nested past the reader's depth
                return ""
            if not isinstance(parsed, dict):
                return ""
        else:
            parsed = parse_details(details)
        drop = self._drop_keys
        return ", ".join(
            [
                f"{key} {value}" if isinstance(value, str) else f"{key} {json.dumps(value)}"
                for key, value in parsed.items()
                if key not in drop
            ]
        )

    def build(
        self, title: str, description: Sequence[str], features: Sequence[str], details: object
    ) -> str:
        lines = [*_as_lines(description), *_as_lines(features)]
        head = "\n".join([line for line in lines if line])
        if len(head) >= self._body_char_budget:
            body = head[: self._body_char_budget]  # the details would be cut off: skip them
        else:
            details_text = self.details_text(details)
            body = f"{head}\n{details_text}" if head and details_text else head or details_text
            body = body[: self._body_char_budget]
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
    except (json.JSONDecodeError, RecursionError):  # nested past the reader's depth
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _as_lines(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Iterable):
        # A raw line's number where a list of lines belongs ("description": 12): its text. It
        # was a TypeError traceback that stopped the whole curation.
        return [str(value)]
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
    categories = list(batch.get(category_column, empty))
    descriptions = batch.get("description", empty)
    features = batch.get("features", empty)
    details = list(batch.get("details", empty))
    # A missing title arrives as None, or as NaN from a pandas string column.
    titles = [title.strip() if isinstance(title, str) else "" for title in batch["title"]]
    # Price, range and title checks are cheap and reject about a third of raw records: they run
    # first, over whole columns, so the costly text work is done for candidate items only.
    prices, reasons = parse_prices(batch["price"])
    low, high = settings.min_price, settings.max_price
    texts = [""] * n_rows
    for row in range(n_rows):
        if reasons[row] is not None:
            continue
        if not low <= prices[row] <= high:
            reasons[row] = PRICE_OUT_OF_RANGE
        elif not titles[row]:
            reasons[row] = MISSING_TITLE
        else:
            texts[row] = cleaner.build(titles[row], descriptions[row], features[row], details[row])
            if len(texts[row]) < settings.min_chars:
                reasons[row] = TOO_SHORT
    return {
        "title": titles,
        "text": texts,
        "price": prices,
        "category": categories,
        "details": [
            value if value is None or isinstance(value, str) else json.dumps(value)
            for value in details
        ],
        "reject_reason": reasons,
    }


def split_rejections(converted: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Separate accepted items from rejected records; count rejections by reason."""
    rejected = converted["reject_reason"].notna()
    counts = converted.loc[rejected, "reject_reason"].value_counts()
    rejections = {reason: int(counts.get(reason, 0)) for reason in REJECTION_REASONS}
    items = converted.loc[~rejected, list(ITEM_COLUMNS)].reset_index(drop=True)
    items["price"] = items["price"].astype(float)
    return items, rejections


def accepted_items(converted: Mapping[str, list]) -> tuple[pd.DataFrame, dict[str, int]]:
    """``split_rejections`` on ``convert_batch``'s columns, before they become a frame.

    Only accepted rows are turned into a frame, which saves building (and then discarding)
    the text of every rejected record.
    """
    reasons = converted["reject_reason"]
    counts = Counter(reason for reason in reasons if reason is not None)
    rejections = {reason: counts.get(reason, 0) for reason in REJECTION_REASONS}
    keep = [row for row, reason in enumerate(reasons) if reason is None]
    items = pd.DataFrame(
        {column: [converted[column][row] for row in keep] for column in ITEM_COLUMNS}
    )
    items["price"] = items["price"].astype(float)
    return items, rejections
