from __future__ import annotations

import json

import pytest

from pricer.data.items import (
    INVALID_PRICE,
    MISSING_PRICE,
    MISSING_TITLE,
    PRICE_OUT_OF_RANGE,
    TOO_SHORT,
    TextCleaner,
    convert_batch,
    parse_details,
    parse_price,
)
from pricer.schemas import CleaningSettings
from tests.conftest import columns, compose_config, raw_record


@pytest.fixture(scope="module")
def settings() -> CleaningSettings:
    return CleaningSettings.from_config(compose_config("curate").curation["items"])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("24.99", (24.99, None)),
        ("$1,299.99", (1299.99, None)),
        (" $7 ", (7.0, None)),
        ("1,000,000", (1_000_000.0, None)),
        (12, (12.0, None)),
        ("None", (None, MISSING_PRICE)),
        ("", (None, MISSING_PRICE)),
        (None, (None, MISSING_PRICE)),
        (float("nan"), (None, MISSING_PRICE)),
        ("$15.99 - $22.99", (None, INVALID_PRICE)),
        ("Currently unavailable", (None, INVALID_PRICE)),
        ("-5.00", (None, INVALID_PRICE)),
        (-3, (None, INVALID_PRICE)),
        ("12,99", (None, INVALID_PRICE)),
        (True, (None, INVALID_PRICE)),
        (False, (None, INVALID_PRICE)),
    ],
)
def test_parse_price(raw: object, expected: tuple[float | None, str | None]) -> None:
    assert parse_price(raw) == expected


def test_details_accepts_json_string_dict_or_garbage() -> None:
    assert parse_details('{"Brand": "Acme"}') == {"Brand": "Acme"}
    assert parse_details({"Brand": "Acme"}) == {"Brand": "Acme"}
    assert parse_details("not json {") == {}
    assert parse_details("[1, 2]") == {}
    assert parse_details(None) == {}


def test_text_drops_noise_details_part_numbers_and_punctuation(settings: CleaningSettings) -> None:
    record = raw_record()
    text = TextCleaner(settings).build(
        record["title"], record["description"], record["features"], record["details"]
    )
    title_line, body = text.split("\n", 1)
    assert title_line == "Sturdy Steel Hammer with Fiberglass Handle"
    assert "Brand Ironwood" in body and "Item Weight 1.5 pounds" in body
    for noise in ("Best Sellers", "Date First Available", "Item model number", "IW-HMR-16OZ"):
        assert noise not in text
    assert not set('{}[]":') & set(text)


def test_part_number_rule_keeps_short_tokens(settings: CleaningSettings) -> None:
    cleaner = TextCleaner(settings)
    assert cleaner.scrub("fits 2019 models XR44719B only") == "fits 2019 models only"


def test_text_is_truncated_to_the_word_budget(settings: CleaningSettings) -> None:
    long_description = [" ".join(f"word{i % 7}" for i in range(2000))]
    text = TextCleaner(settings).build("Title", long_description, [], None)
    assert len(text.split()) == settings.max_words


def test_convert_batch_keeps_every_row_and_gives_reasons(settings: CleaningSettings) -> None:
    records = [
        raw_record(),
        raw_record(price="None"),
        raw_record(price="about ten"),
        raw_record(price="1500.00"),
        raw_record(price="0.10"),
        raw_record(title=""),
        raw_record(description=[], features=[], details="{}"),
    ]
    out = convert_batch(columns(records), settings)
    assert out["reject_reason"] == [
        None,
        MISSING_PRICE,
        INVALID_PRICE,
        PRICE_OUT_OF_RANGE,
        PRICE_OUT_OF_RANGE,
        MISSING_TITLE,
        TOO_SHORT,
    ]
    assert out["price"][0] == pytest.approx(24.99)
    assert len(out["text"][0]) >= settings.min_chars
    assert json.loads(out["details"][0])["Brand"] == "Ironwood"  # raw details kept for features


def test_a_number_where_lines_belong_is_read_as_its_text(settings: CleaningSettings) -> None:
    # "description": 12 or "features": 7.5 in a raw line was a TypeError ('int' object is not
    # iterable) out of the converter: a traceback that stopped the whole curation.
    lines = [f"Feature {n}: a sturdy forged steel head with a polished face" for n in range(6)]
    records = [
        raw_record(description=12, features=lines),
        raw_record(description=lines, features=7.5),
    ]
    out = convert_batch(columns(records), settings)
    assert out["reject_reason"] == [None, None]
    assert out["text"][0].split("\n")[1].startswith("12 Feature 0")
    assert "polished face 7.5 Brand Ironwood" in out["text"][1]


def test_category_comes_from_the_source_when_given(settings: CleaningSettings) -> None:
    batch = columns([raw_record()])
    assert convert_batch(batch, settings)["category"] == ["Tools & Home Improvement"]
    batch["category"] = ["Tools_and_Home_Improvement"]
    assert convert_batch(batch, settings)["category"] == ["Tools_and_Home_Improvement"]


def test_settings_reject_an_inverted_price_range() -> None:
    with pytest.raises(ValueError, match="min_price < max_price"):
        CleaningSettings(5.0, 1.0, 300, 120, 7, ())


# A details string nested deeper than Python's JSON reader recurses: RecursionError, which
# every reader of details let through (a curation's, a feature's, the cutoff's traceback)
# while any other unreadable details read as none.
DEEP_DETAILS = "[" * 100_000 + "]" * 100_000


def test_details_nested_too_deep_read_as_unreadable_details(settings: CleaningSettings) -> None:
    from pricer.evaluation.cutoff import first_available
    from pricer.models.signals import details_tokens

    assert parse_details(DEEP_DETAILS) == {}
    assert details_tokens(DEEP_DETAILS) == ""
    assert first_available([DEEP_DETAILS]) == [None]
    out = convert_batch(columns([raw_record(details=DEEP_DETAILS), raw_record()]), settings)
    assert out["reject_reason"] == [None, None]
    assert out["text"][0] == convert_batch(columns([raw_record(details="{")]), settings)["text"][0]
