import math

import numpy as np
import pytest

from pricer.evaluation.metrics import error_colors, is_hit, price_metrics
from pricer.schemas import HitThresholds

COURSE = HitThresholds(hit_dollars=40, hit_fraction=0.2, near_dollars=80, near_fraction=0.4)


def test_price_metrics_hand_computed() -> None:
    truth = [100.0, 200.0, 50.0]
    estimate = [110.0, 150.0, 50.0]
    m = price_metrics(truth, estimate, thresholds=COURSE)

    # abs errors 10, 50, 0
    assert m["mae"] == pytest.approx(20.0)
    # 10 < $40 hit; 50 is neither < $40 nor < 20% of 200 (= 40); 0 hit
    assert m["hit_rate"] == pytest.approx(2 / 3)
    expected_rmsle = math.sqrt((math.log(111 / 101) ** 2 + math.log(151 / 201) ** 2) / 3)
    assert m["rmsle"] == pytest.approx(expected_rmsle)
    # ss_res = 100 + 2500 = 2600; ss_tot around mean 350/3 = 35000/3
    assert m["r2"] == pytest.approx(1 - 2600 / (35000 / 3))
    assert m["n"] == 3


def test_rmsle_clips_negative_estimates_at_zero() -> None:
    m = price_metrics([9.0], [-5.0], thresholds=COURSE)
    assert m["rmsle"] == pytest.approx(math.log(10.0))  # log1p(0) - log1p(9)
    assert m["mae"] == pytest.approx(14.0)  # mae uses the raw estimate


def test_r2_is_nan_when_truth_is_constant() -> None:
    assert math.isnan(price_metrics([5.0, 5.0], [4.0, 6.0], thresholds=COURSE)["r2"])


def test_empty_input_gives_nan_metrics() -> None:
    m = price_metrics([], [], thresholds=COURSE)
    assert m["n"] == 0
    assert all(math.isnan(m[k]) for k in ("mae", "rmsle", "hit_rate", "r2"))


@pytest.mark.parametrize(
    ("estimate", "color"),
    [
        (139.99, "green"),  # just under $40
        (140.0, "orange"),  # exactly $40 is NOT a hit (strict <); 20% of 100 is only $20
        (60.0, "orange"),  # undershoot by exactly $40
        (179.99, "orange"),
        (180.0, "red"),  # exactly $80 is not near either
        (20.0, "red"),
    ],
)
def test_dollar_boundaries(estimate: float, color: str) -> None:
    assert error_colors([100.0], [estimate], thresholds=COURSE).tolist() == [color]


@pytest.mark.parametrize(
    ("estimate", "color"),
    [
        (599.0, "green"),  # $99 < 20% of $500
        (600.0, "orange"),  # exactly 20% is not a hit
        (699.0, "orange"),  # < 40%
        (700.0, "red"),  # exactly 40%
    ],
)
def test_fraction_boundaries(estimate: float, color: str) -> None:
    assert error_colors([500.0], [estimate], thresholds=COURSE).tolist() == [color]


def test_is_hit_agrees_with_green() -> None:
    truth = np.array([100.0, 100.0, 500.0, 10.0])
    estimate = np.array([139.0, 140.0, 599.0, 60.0])
    assert is_hit(truth, estimate, thresholds=COURSE).tolist() == [True, False, True, False]
    colors = error_colors(truth, estimate, thresholds=COURSE)
    assert (colors == "green").tolist() == [True, False, True, False]


def test_metrics_reject_nan_and_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="failed"):
        price_metrics([1.0, 2.0], [1.0, np.nan], thresholds=COURSE)
    with pytest.raises(ValueError, match="length"):
        error_colors([1.0, 2.0], [1.0], thresholds=COURSE)
    with pytest.raises(ValueError, match=">= 0"):
        price_metrics([-1.0], [1.0], thresholds=COURSE)


def test_thresholds_validation() -> None:
    with pytest.raises(ValueError, match="near"):
        HitThresholds(hit_dollars=40, hit_fraction=0.2, near_dollars=30, near_fraction=0.4)
