"""Hand features from details JSON and text, on listings written for these tests."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import sklearn

from pricer.models.base import as_items
from pricer.models.features import (
    NUMERIC_FEATURES,
    brand_encoder,
    extract_brand_and_category,
    extract_features,
    hand_feature_union,
    tree_feature_union,
)

TEXT = "A sturdy widget for the workshop, made to last."


def features_of(details: dict[str, object] | str | None, text: str = TEXT) -> pd.Series:
    raw = json.dumps(details) if isinstance(details, dict) else details
    frame = pd.DataFrame({"text": [text], "title": ["Sturdy widget"], "details": [raw]})
    return extract_features(frame).iloc[0]


@pytest.mark.parametrize(
    ("weight", "pounds"),
    [
        ("2.5 Pounds", 2.5),
        ("1 pound", 1.0),
        ("8 ounces", 0.5),
        ("12 Ounces", 0.75),
        ("1.5 Kilograms", 1.5 * 2.2046),
        ("500 Grams", 500 * 0.0022046),
        ("1,200 pounds", 1200.0),
    ],
)
def test_item_weight_in_pounds(weight: str, pounds: float) -> None:
    row = features_of({"Item Weight": weight})
    assert row["log_weight_lb"] == pytest.approx(math.log1p(pounds), rel=1e-4)


def test_package_weight_and_weight_after_dimensions_count_when_item_weight_is_absent() -> None:
    assert features_of({"Package Weight": "3 lbs"})["log_weight_lb"] == pytest.approx(
        math.log1p(3.0)
    )
    row = features_of({"Product Dimensions": "10 x 4 x 2 inches; 16 Ounces"})
    assert row["log_weight_lb"] == pytest.approx(math.log1p(1.0))


@pytest.mark.parametrize(
    ("dimensions", "volume", "longest"),
    [
        ("10 x 4 x 2 inches", 80.0, 10.0),
        ("10 x 4 x 2 inches; 3 Pounds", 80.0, 10.0),
        ('12"D x 5"W x 2"H', 120.0, 12.0),
        ("20 x 10 x 5 cm", 1000 * 0.3937**3, 20 * 0.3937),
        ("6 x 3 inches", 18.0, 6.0),
    ],
)
def test_dimensions_give_volume_and_longest_side(
    dimensions: str, volume: float, longest: float
) -> None:
    row = features_of({"Product Dimensions": dimensions})
    assert row["log_volume_in3"] == pytest.approx(math.log1p(volume), rel=1e-4)
    assert row["log_longest_side_in"] == pytest.approx(math.log1p(longest), rel=1e-4)


def test_sales_rank_as_dict_and_as_string() -> None:
    as_dict = features_of({"Best Sellers Rank": {"Tools & Home Improvement": 95657, "Saws": 329}})
    assert as_dict["log_rank"] == pytest.approx(math.log1p(95657))
    assert as_dict["log_sub_rank"] == pytest.approx(math.log1p(329))
    rank = "#1,234 in Toys & Games (See Top 100) #56 in Kites"
    as_string = features_of({"Best Sellers Rank": rank})
    assert as_string["log_rank"] == pytest.approx(math.log1p(1234))
    assert as_string["log_sub_rank"] == pytest.approx(math.log1p(56))


def test_year_brand_and_number_of_detail_keys() -> None:
    row = features_of({"Brand": "Acme", "Date First Available": "March 3, 2019", "Color": "Red"})
    assert row["year"] == 2019
    assert row["has_brand"] == 1.0
    assert row["detail_keys"] == 3


@pytest.mark.parametrize(
    ("details", "text", "pack"),
    [
        ({"Number of Items": "4"}, TEXT, 4),
        ({"Item Package Quantity": "12"}, TEXT, 12),
        ({}, "Spare blades, pack of 6, fit most handles.", 6),
        ({}, "Value 24-Pack of batteries for remotes.", 24),
        ({}, "Ten brushes, 10 pcs in a roll-up case.", 10),
        ({"Number of Items": "2"}, "Set of 50 nails.", 2),  # the details win over the text
    ],
)
def test_pack_size_from_details_or_text(details: dict[str, str], text: str, pack: int) -> None:
    assert features_of(details, text)["log_pack"] == pytest.approx(math.log1p(pack))


@pytest.mark.parametrize(
    ("text", "feature", "value"),
    [
        ("A 1500W space heater for the garage.", "log_watts", 1500),
        ("Runs on 12V or 24 volts.", "log_volts", 12),
        ("A portable 2TB drive in a rugged shell.", "log_storage_gb", 2000),
        ("Holds 512 GB of photos.", "log_storage_gb", 512),
        ("A 5 gallon bucket with lid.", "log_gallons", 5),
        ("A 25-ft tape measure.", "log_feet", 25),
        ('A bright 55" screen for the den.', "log_inches", 55),
        ("A 3.5 hp motor that keeps going.", "log_horsepower", 3.5),
    ],
)
def test_numbers_with_units_in_the_text(text: str, feature: str, value: float) -> None:
    assert features_of({}, text)[feature] == pytest.approx(math.log1p(value))


def test_words_that_only_look_like_units_are_not_read_as_units() -> None:
    row = features_of({}, "Use it 2 a day, 3 ways, with 4 wheels and 1 vase.")
    assert np.isnan(row[["log_watts", "log_volts", "log_amps", "log_storage_gb"]]).all()


def test_missing_details_give_nan_not_zero() -> None:
    for details in (None, "", "{}", "not json at all"):
        row = features_of(details)
        for feature in ("log_weight_lb", "log_volume_in3", "log_rank", "year", "log_pack"):
            assert np.isnan(row[feature]), (details, feature)
        assert row["has_brand"] == 0.0


def test_features_keep_the_frame_index_and_row_order() -> None:
    frame = pd.DataFrame(
        {
            "text": [TEXT, TEXT, TEXT],
            "details": [
                json.dumps({"Item Weight": "1 pounds"}),
                json.dumps({"Item Weight": "2 pounds"}),
                json.dumps({"Item Weight": "3 pounds"}),
            ],
        },
        index=[30, 10, 20],  # not 0..n-1 and not sorted, as after a train/test split
    )
    features = extract_features(frame)
    assert list(features.index) == [30, 10, 20]
    assert list(features.columns) == list(NUMERIC_FEATURES)
    np.testing.assert_allclose(features["log_weight_lb"], np.log1p([1.0, 2.0, 3.0]))


def test_brand_falls_back_to_manufacturer_and_is_normalised() -> None:
    frame = pd.DataFrame(
        {
            "text": [TEXT] * 3,
            "details": [json.dumps({"Brand": " Acme "}), json.dumps({"Manufacturer": "ACME"}), ""],
            "category": ["Tools", None, "Toys"],
        }
    )
    labels = extract_brand_and_category(frame)
    assert list(labels["brand"]) == ["acme", "acme", "unknown"]
    assert list(labels["category"]) == ["Tools", "unknown", "Toys"]


@pytest.mark.parametrize("make_union", [hand_feature_union, tree_feature_union])
def test_feature_unions_give_one_row_per_item_even_without_details(make_union) -> None:
    rng = np.random.default_rng(0)
    frame = as_items(pd.DataFrame({"text": [f"widget number {i}" for i in range(40)]}))
    matrix = make_union(0).fit_transform(frame, rng.normal(size=40))
    assert matrix.shape[0] == 40
    if make_union is hand_feature_union:  # linear models need every value finite
        assert np.isfinite(matrix).all()


def test_brand_encoder_fits_alike_with_metadata_routing_on_and_takes_no_metadata() -> None:
    # scikit-learn 1.9.1's own TargetEncoder raises KeyError('groups') here with routing on,
    # which would stop the stack from routing weights through the pipeline that holds it.
    brands = pd.DataFrame({"brand": ["a", "b", "c", "a", "b"] * 8})
    log_prices = np.random.default_rng(0).normal(3.0, 1.0, len(brands))
    expected = brand_encoder(0).fit_transform(brands, log_prices)
    with sklearn.config_context(enable_metadata_routing=True):
        routed = brand_encoder(0).fit_transform(brands, log_prices)
    np.testing.assert_array_equal(routed, expected)
    with pytest.raises(TypeError, match="takes no metadata"):
        brand_encoder(0).fit_transform(brands, log_prices, groups=np.arange(len(brands)))
