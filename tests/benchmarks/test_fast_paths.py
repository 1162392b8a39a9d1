"""The fast paths of curation give the answers of the simple ones they replaced.

(Kept beside the benchmarks that motivated them; they test pricer/data.)
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pricer.data import sources
from pricer.data.curation import take_sorted_rows
from pricer.data.items import TextCleaner, parse_price, parse_prices
from pricer.schemas import CleaningSettings
from tests.conftest import compose_config

AWKWARD_PRICES = [
    "24.99", "$1,299.99", " $7 ", "1,000,000", "US$5", "US 5.00", "US\x1c5", "\x1c5\x1f",
    "US\v$ 3", "$\t3.5", "12\n", "$.99", "5.", "0", "1,23", "1,234,56", "1" * 400,
    "None", "N/A", "na", " - ", "", "$15.99 - $22.99", "Currently unavailable", "-5.00",
    "５", "١٢.٥", "\u00a012\u00a0", None, float("nan"), 12, -3, 3.5, True,
]  # fmt: skip


@pytest.fixture(scope="module")
def settings() -> CleaningSettings:
    return CleaningSettings.from_config(compose_config("curate").curation["items"])


def test_vectorised_price_parsing_matches_parse_price() -> None:
    prices, reasons = parse_prices(AWKWARD_PRICES)
    for value, price, reason in zip(AWKWARD_PRICES, prices, reasons, strict=True):
        expected_price, expected_reason = parse_price(value)
        assert reason == expected_reason, repr(value)
        assert price == expected_price or (math.isinf(price) and math.isinf(expected_price))


def test_scrub_matches_the_regex_recipe(settings: CleaningSettings) -> None:
    import re

    punctuation = re.compile(r'[:\[\]"{}【】\s]+')
    part_number = re.compile(r"(?<!\S)(?=\S*\d)\S{7,}(?!\S)")

    def reference(text: str) -> str:
        text = part_number.sub("", punctuation.sub(" ", text))
        return " ".join(text.split()).replace(" ,", ",").replace(",,", ",")

    cleaner = TextCleaner(settings)
    for text in [
        '【Bullet】 text: "quoted" [x] {y} , ,, ok 12345678 abc1234 ab12345c',
        "a\x1cb\x1dc 1234567\x1e tail\u2028next\u00a0nbsp ١٢٣٤٥٦٧٨ XR-44719B",
        "", "   ", "fits 2019 models XR44719B only", "Size: 12x34-5678 (pack of 6)",
    ]:  # fmt: skip
        assert cleaner.scrub(text) == reference(text), repr(text)


def test_parallel_cleaning_gives_the_sequential_result(
    settings: CleaningSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pricer.data.synthetic import iter_raw_batches

    generator = dict(compose_config("curate").data["generator"])
    monkeypatch.setattr(sources, "PARALLEL_MIN_RECORDS", 0)
    monkeypatch.setattr(sources, "CLEAN_CHUNK_ROWS", 700)  # several chunks per batch

    def clean(num_proc: int) -> tuple[pd.DataFrame, dict[str, int], int]:
        batches = iter_raw_batches(3000, 5, 1500, **generator)
        times = sources.StageTimes()
        result = sources.convert_raw_batches(
            batches, settings, 3000, "t", num_proc=num_proc, times=times
        )
        assert times.processes == num_proc
        return result

    sequential, parallel = clean(1), clean(2)
    pd.testing.assert_frame_equal(sequential[0], parallel[0])
    assert sequential[1:] == parallel[1:]
    assert sequential[2] == 3000 and sum(sequential[1].values()) + len(sequential[0]) == 3000


def test_blockwise_take_is_iloc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pricer.data.curation.TAKE_BLOCK_ROWS", 7)
    frames = [
        pd.DataFrame({"text": [f"t{i}-{j}" for j in range(10)], "price": range(10)})
        for i in range(5)
    ]
    frame = pd.concat(frames, ignore_index=True)
    for rows in ([], [0], [3, 7, 8, 13, 14, 49], list(range(50))):
        pd.testing.assert_frame_equal(take_sorted_rows(frame, rows), frame.iloc[rows])
