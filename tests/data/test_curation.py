from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pricer.data.curation import balanced_sample, split_items
from pricer.schemas import SampleSettings, SplitSettings


def items_with(prices: list[float], categories: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "title": "t",
            "text": [f"item {i}" for i in range(len(prices))],
            "price": prices,
            "category": categories,
            "details": None,
        }
    )


def settings(**changes: object) -> SampleSettings:
    values = {
        "enabled": True,
        "take_all_from": 240,
        "max_per_slot": 10,
        "category_weights": {"Automotive": 1},
        "default_weight": 5,
        "seed": 7,
    }
    return SampleSettings(**{**values, **changes})


def test_crowded_cheap_slots_are_capped_and_expensive_slots_kept_whole() -> None:
    prices = [19.6] * 50 + [20.2] * 3 + [300.0] * 40
    sample = balanced_sample(items_with(prices, ["Toys"] * len(prices)), settings())
    slot_counts = np.floor(sample["price"] + 0.5).value_counts()
    assert slot_counts[20] == 10  # 53 items in the $20 slot, capped
    assert slot_counts[300] == 40  # above take_all_from: all kept


def test_category_weights_thin_the_heavy_category() -> None:
    categories = ["Automotive"] * 500 + ["Toys"] * 500
    sample = balanced_sample(items_with([10.0] * 1000, categories), settings(max_per_slot=100))
    automotive_share = (sample["category"] == "Automotive").mean()
    # Weight 1 against 5 in equal numbers: about 1/6 of the sample, far from 1/2.
    assert 0.08 < automotive_share < 0.28


def test_sampling_is_seeded_and_disabled_sampling_keeps_everything() -> None:
    items = items_with(list(np.linspace(1, 30, 400)), ["Toys"] * 400)
    first = balanced_sample(items, settings(max_per_slot=3))
    again = balanced_sample(items, settings(max_per_slot=3))
    other = balanced_sample(items, settings(max_per_slot=3, seed=8))
    pd.testing.assert_frame_equal(first, again)
    assert not first["text"].equals(other["text"])
    assert len(balanced_sample(items, settings(enabled=False))) == 400


def test_split_sizes_are_disjoint_and_seeded() -> None:
    items = items_with(list(range(1, 101)), ["Toys"] * 100)
    train, test = split_items(items, SplitSettings(test_size=20, train_size=None, seed=1))
    assert (len(train), len(test)) == (80, 20)
    assert not set(train["text"]) & set(test["text"])
    train_cap, test_same = split_items(items, SplitSettings(test_size=20, train_size=30, seed=1))
    assert len(train_cap) == 30
    pd.testing.assert_frame_equal(test, test_same)


def test_split_refuses_too_little_data() -> None:
    with pytest.raises(ValueError, match="not enough for a test set"):
        split_items(items_with([1.0] * 5, ["Toys"] * 5), SplitSettings(5, None, 0))


def test_settings_reject_bad_weights() -> None:
    with pytest.raises(ValueError, match="weights must be > 0"):
        settings(default_weight=0)
