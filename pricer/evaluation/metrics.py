"""Point metrics for price estimates: error summaries and the course's hit/colour rule.

Everything here works on answered items only (finite estimates). Failed predictions (NaN)
are the business of `report.evaluate`, which filters and counts them before calling in.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pricer.schemas import HitThresholds

GREEN = "green"
ORANGE = "orange"
RED = "red"


def _as_pair(truth: ArrayLike, estimate: ArrayLike) -> tuple[NDArray[np.float64], ...]:
    """Validate two aligned 1-D finite float arrays."""
    t = np.asarray(truth, dtype=float)
    e = np.asarray(estimate, dtype=float)
    if t.ndim != 1 or e.ndim != 1:
        raise ValueError(f"truth and estimate must be 1-D, got shapes {t.shape} and {e.shape}")
    if t.shape != e.shape:
        raise ValueError(f"truth and estimate differ in length: {t.size} vs {e.size}")
    if not (np.isfinite(t).all() and np.isfinite(e).all()):
        raise ValueError(
            "truth and estimate must be finite; filter failed (NaN) predictions first "
            "(report.evaluate does this and counts them)"
        )
    if (t < 0).any():
        raise ValueError("true prices must be >= 0")
    return t, e


def _within(
    abs_error: NDArray[np.float64], truth: NDArray[np.float64], dollars: float, fraction: float
) -> NDArray[np.bool_]:
    # Strict '<' on both rules: an error of exactly $40 is not a hit.
    return (abs_error < dollars) | (abs_error < fraction * truth)


def is_hit(
    truth: ArrayLike, estimate: ArrayLike, *, thresholds: HitThresholds
) -> NDArray[np.bool_]:
    """Boolean per item: abs error < hit_dollars or < hit_fraction of the true price."""
    t, e = _as_pair(truth, estimate)
    return _within(np.abs(e - t), t, thresholds.hit_dollars, thresholds.hit_fraction)


def error_colors(
    truth: ArrayLike, estimate: ArrayLike, *, thresholds: HitThresholds
) -> NDArray[np.str_]:
    """'green' for hits, 'orange' for near misses, 'red' otherwise (per item)."""
    t, e = _as_pair(truth, estimate)
    abs_error = np.abs(e - t)
    hit = _within(abs_error, t, thresholds.hit_dollars, thresholds.hit_fraction)
    near = _within(abs_error, t, thresholds.near_dollars, thresholds.near_fraction)
    return np.where(hit, GREEN, np.where(near, ORANGE, RED))


def _r2(t: NDArray[np.float64], e: NDArray[np.float64]) -> float:
    # Undefined (NaN) when the truth has no variance, rather than sklearn's forced 0/1.
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    if ss_tot == 0.0:
        return float("nan")
    return 1.0 - float(np.sum((e - t) ** 2)) / ss_tot


def price_metrics(
    truth: ArrayLike, estimate: ArrayLike, *, thresholds: HitThresholds
) -> dict[str, float]:
    """mae, rmsle, hit_rate, r2 and n for answered items.

    rmsle clips negative estimates at 0 before log1p (a negative price is just a bad guess).
    With no items, every error metric is NaN and n is 0.
    """
    t, e = _as_pair(truth, estimate)
    n = int(t.size)
    if n == 0:
        nan = float("nan")
        return {"mae": nan, "rmsle": nan, "hit_rate": nan, "r2": nan, "n": 0}
    abs_error = np.abs(e - t)
    log_diff = np.log1p(np.clip(e, 0.0, None)) - np.log1p(t)
    hits = _within(abs_error, t, thresholds.hit_dollars, thresholds.hit_fraction)
    return {
        "mae": float(abs_error.mean()),
        "rmsle": float(np.sqrt(np.mean(log_diff**2))),
        "hit_rate": float(hits.mean()),
        "r2": _r2(t, e),
        "n": n,
    }
