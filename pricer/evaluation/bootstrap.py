"""Percentile bootstrap for the mean, and a paired bootstrap test between two models.

Resampling is vectorised: each chunk draws a (rows, n) index matrix at once. Chunks bound
memory to about `_CHUNK_ELEMENTS` indices whatever the data size, and the result depends
only on the inputs and the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

# ~2M int32 indices (8 MB) plus the gathered float64 values (16 MB) per chunk.
_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class PairedTest:
    """Result of `paired_bootstrap_test`. Differences are candidate - incumbent errors,
    so a negative `mean_difference` means the candidate has lower error (is better)."""

    mean_difference: float
    p_value: float  # one-sided: P(candidate is NOT better), with +1 correction
    ci_low: float
    ci_high: float
    confidence: float
    n: int
    n_resamples: int

    @property
    def candidate_better(self) -> bool:
        """True when the candidate beats the incumbent at `confidence` (p < 1 - confidence)."""
        return self.p_value < 1.0 - self.confidence


def _check_values(values: ArrayLike, name: str) -> NDArray[np.float64]:
    v = np.asarray(values, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {v.shape}")
    if v.size == 0:
        raise ValueError(f"{name} is empty: nothing to bootstrap")
    if np.isnan(v).any():
        raise ValueError(f"{name} contains NaN; drop failed items before bootstrapping")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} contains infinite values")
    return v


def _check_settings(confidence: float, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")


def _resampled_means(
    values: NDArray[np.float64], n_resamples: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Means of `n_resamples` with-replacement resamples of `values`, in bounded chunks."""
    n = values.size
    rows = max(1, _CHUNK_ELEMENTS // n)
    index_dtype = np.int32 if n < np.iinfo(np.int32).max else np.int64  # int32 draws faster
    means = np.empty(int(n_resamples))
    for start in range(0, int(n_resamples), rows):
        stop = min(start + rows, int(n_resamples))
        idx = rng.integers(0, n, size=(stop - start, n), dtype=index_dtype)
        means[start:stop] = values[idx].mean(axis=1)
    return means


def _percentile_interval(samples: NDArray[np.float64], confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.quantile(samples, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def bootstrap_interval(
    values: ArrayLike, *, confidence: float, n_resamples: int, seed: int
) -> tuple[float, float]:
    """Two-sided percentile bootstrap confidence interval for the mean of `values`; NaN
    bounds (undefined) for a single value."""
    v = _check_values(values, "values")
    _check_settings(confidence, n_resamples)
    if v.size < 2:
        # Every resample of one value is that value: the "interval" was the value itself, and
        # one scored item read "mae $58.83 (95% CI 58-59)", as sure as 2,000 items could make it.
        return math.nan, math.nan
    means = _resampled_means(v, n_resamples, np.random.default_rng(seed))
    return _percentile_interval(means, confidence)


def paired_bootstrap_test(
    errors_candidate: ArrayLike,
    errors_incumbent: ArrayLike,
    *,
    confidence: float,
    n_resamples: int,
    seed: int,
) -> PairedTest:
    """Paired bootstrap of mean(candidate - incumbent) over the SAME items.

    Items are resampled jointly (pairing removes the item-difficulty variance both models
    share). The p-value is the fraction of resampled mean differences >= 0, i.e. resamples in
    which the candidate is not better, as (count + 1) / (n_resamples + 1) so it is never 0.
    Promote only if `p_value < 1 - confidence` (see `PairedTest.candidate_better`).

    A single pair is no evidence: its one difference is every resample's, so a candidate
    better on one item came out better with p = 1 / (n_resamples + 1). Its p-value is 1 and
    its interval undefined (NaN).
    """
    cand = _check_values(errors_candidate, "errors_candidate")
    inc = _check_values(errors_incumbent, "errors_incumbent")
    if cand.size != inc.size:
        raise ValueError(
            f"paired test needs errors on the same items: got {cand.size} candidate vs "
            f"{inc.size} incumbent errors"
        )
    _check_settings(confidence, n_resamples)
    diff = cand - inc
    if diff.size < 2:
        return PairedTest(
            mean_difference=float(diff.mean()),
            p_value=1.0,
            ci_low=math.nan,
            ci_high=math.nan,
            confidence=float(confidence),
            n=int(diff.size),
            n_resamples=int(n_resamples),
        )
    means = _resampled_means(diff, n_resamples, np.random.default_rng(seed))
    not_better = int(np.count_nonzero(means >= 0.0))
    low, high = _percentile_interval(means, confidence)
    return PairedTest(
        mean_difference=float(diff.mean()),
        p_value=(not_better + 1) / (int(n_resamples) + 1),
        ci_low=low,
        ci_high=high,
        confidence=float(confidence),
        n=int(diff.size),
        n_resamples=int(n_resamples),
    )
