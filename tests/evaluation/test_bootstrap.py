import math
import time

import numpy as np
import pytest

from pricer.evaluation import bootstrap
from pricer.evaluation.bootstrap import bootstrap_interval, paired_bootstrap_test

SETTINGS = {"confidence": 0.95, "n_resamples": 2000, "seed": 42}


def _sample(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(2.0, 50.0, n)


def test_interval_contains_mean_and_narrows_with_more_data() -> None:
    small, large = _sample(50), _sample(5000)
    lo_s, hi_s = bootstrap_interval(small, **SETTINGS)
    lo_l, hi_l = bootstrap_interval(large, **SETTINGS)
    assert lo_s < small.mean() < hi_s
    assert lo_l < large.mean() < hi_l
    # width shrinks ~ 1/sqrt(n): 10x narrower for 100x data; demand at least 5x
    assert (hi_l - lo_l) * 5 < hi_s - lo_s


def test_interval_is_deterministic_per_seed() -> None:
    values = _sample(300)
    assert bootstrap_interval(values, **SETTINGS) == bootstrap_interval(values, **SETTINGS)
    other = bootstrap_interval(values, confidence=0.95, n_resamples=2000, seed=7)
    assert other != bootstrap_interval(values, **SETTINGS)


def test_interval_of_constant_values_is_a_point() -> None:
    assert bootstrap_interval([3.0] * 10, **SETTINGS) == pytest.approx((3.0, 3.0))


def test_one_value_has_no_interval() -> None:
    # Every resample of one value is that value: the "interval" was a point, read as certainty.
    low, high = bootstrap_interval([58.83], **SETTINGS)
    assert math.isnan(low) and math.isnan(high)
    assert bootstrap_interval([58.83, 60.0], **SETTINGS) == pytest.approx((58.83, 60.0))


def test_one_pair_is_no_evidence_that_a_candidate_is_better() -> None:
    # A candidate better on the one item compared came out better with p = 1/2001.
    result = paired_bootstrap_test([10.0], [30.0], **SETTINGS)
    assert result.mean_difference == -20.0
    assert result.p_value == 1.0 and not result.candidate_better
    assert math.isnan(result.ci_low) and math.isnan(result.ci_high)
    assert result.n == 1


def test_higher_confidence_gives_wider_interval() -> None:
    values = _sample(200)
    lo90, hi90 = bootstrap_interval(values, confidence=0.90, n_resamples=2000, seed=1)
    lo99, hi99 = bootstrap_interval(values, confidence=0.99, n_resamples=2000, seed=1)
    assert lo99 < lo90 < hi90 < hi99


def test_chunking_does_not_change_the_answer_materially(monkeypatch: pytest.MonkeyPatch) -> None:
    values = _sample(400)
    whole = bootstrap_interval(values, **SETTINGS)
    monkeypatch.setattr(bootstrap, "_CHUNK_ELEMENTS", 1000)  # 2 resamples per chunk
    chunked = bootstrap_interval(values, **SETTINGS)
    assert chunked == pytest.approx(whole, rel=0.03)


def test_paired_clearly_better_candidate() -> None:
    incumbent = _sample(500) + 20.0
    candidate = incumbent - 20.0 + np.random.default_rng(1).normal(0.0, 5.0, 500)
    result = paired_bootstrap_test(candidate, incumbent, **SETTINGS)
    assert result.mean_difference == pytest.approx(float(np.mean(candidate - incumbent)))
    assert result.mean_difference < 0
    # no resample has difference >= 0, so p is the +1-corrected floor
    assert result.p_value == pytest.approx(1 / 2001)
    assert result.ci_low < result.mean_difference < result.ci_high < 0
    assert result.candidate_better
    assert result.n == 500


def test_paired_worse_candidate_has_large_p() -> None:
    incumbent = _sample(500)
    result = paired_bootstrap_test(incumbent + 10.0, incumbent, **SETTINGS)
    assert result.p_value == pytest.approx(1.0)
    assert not result.candidate_better


def test_paired_identical_models_are_not_better() -> None:
    errors = _sample(300)
    result = paired_bootstrap_test(errors, errors.copy(), **SETTINGS)
    assert result.mean_difference == 0.0
    assert result.p_value == pytest.approx(1.0)  # every resampled difference is exactly 0
    assert not result.candidate_better


def test_paired_balanced_differences_give_p_near_half() -> None:
    incumbent = np.full(1000, 50.0)
    candidate = incumbent + np.tile([5.0, -5.0], 500)  # observed difference exactly 0
    result = paired_bootstrap_test(candidate, incumbent, **SETTINGS)
    assert 0.4 < result.p_value < 0.6
    assert result.ci_low < 0 < result.ci_high


def test_paired_is_deterministic_per_seed() -> None:
    a, b = _sample(200, 1), _sample(200, 2)
    assert paired_bootstrap_test(a, b, **SETTINGS) == paired_bootstrap_test(a, b, **SETTINGS)


@pytest.mark.parametrize(
    ("candidate", "incumbent", "message"),
    [
        ([1.0, 2.0], [1.0], "same items"),
        ([], [], "empty"),
        ([1.0, np.nan], [1.0, 2.0], "NaN"),
        ([1.0, 2.0], [np.nan, 2.0], "NaN"),
    ],
)
def test_paired_rejects_bad_input(candidate: list, incumbent: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_bootstrap_test(candidate, incumbent, **SETTINGS)


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval([1.0, 2.0], confidence=1.0, n_resamples=10, seed=0)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_interval([1.0, 2.0], confidence=0.9, n_resamples=0, seed=0)


def test_ten_thousand_resamples_of_two_thousand_items_is_fast() -> None:
    a, b = _sample(2000, 1), _sample(2000, 2)
    start = time.perf_counter()
    paired_bootstrap_test(a, b, confidence=0.95, n_resamples=10_000, seed=0)
    assert time.perf_counter() - start < 1.0
