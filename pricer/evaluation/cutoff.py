"""Leakage check: an LLM's error on items first sold before and after its knowledge cut-off.

A model may have read a product's price during training. Amazon item details often carry
"Date First Available"; items first available on or before the model's knowledge cut-off could
be in its training data, later ones cannot. ``cutoff_split`` scores the two groups apart.

How to read it: a clearly lower error before the cut-off than after hints at memorised prices,
but product age also moves prices (and the "after" group is small on a 2023 data set), so
compare the same split of a classical family's errors as a control before calling it leakage.
On the stub server the answers are a hash of the prompt, so both groups err alike: the control
that the split itself adds nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

DATE_KEY = "Date First Available"
DATE_FORMATS = ("%B %d, %Y", "%b %d, %Y", "%Y-%m-%d")  # "June 1, 2017", "Jun 1, 2017"
MIN_GROUP = 30  # fewer items than this in a group: report it, draw no conclusion


def first_available(details: Sequence[str | None]) -> list[dt.date | None]:
    """The "Date First Available" of each item's details JSON; None when absent or unreadable."""
    dates: list[dt.date | None] = []
    for text in details:
        value = None
        try:
            parsed = json.loads(text) if isinstance(text, str) and text else {}
        except (json.JSONDecodeError, RecursionError):  # nested past the reader's depth
            parsed = {}
        raw = parsed.get(DATE_KEY) if isinstance(parsed, dict) else None
        if isinstance(raw, str):
            for fmt in DATE_FORMATS:
                try:
                    value = dt.datetime.strptime(raw.strip(), fmt).date()
                    break
                except ValueError:
                    continue
        dates.append(value)
    return dates


@dataclass(frozen=True)
class CutoffSplit:
    metrics: dict[str, float]  # {prefix}mae_before_cutoff, ..._after_cutoff, counts, gap
    line: str  # one line for the run description


def cutoff_split(
    truth: ArrayLike,
    estimate: ArrayLike,
    dates: Sequence[dt.date | None],
    cutoff: dt.date | None,
    *,
    prefix: str = "llm.",
) -> CutoffSplit:
    """Mean absolute error of answered items first available on or before ``cutoff``, and
    after it; items without a date are counted as undated, failed ones (NaN) are left out.

    Metrics: ``mae_before_cutoff``, ``mae_after_cutoff``, ``mae_cutoff_gap`` (after - before),
    ``n_before_cutoff``, ``n_after_cutoff``, ``n_undated`` (all prefixed). NaN where a group is
    empty or the cut-off is unknown.
    """
    t = np.asarray(truth, dtype=float)
    e = np.asarray(estimate, dtype=float)
    if t.shape != e.shape or len(dates) != t.size:
        raise ValueError(f"{t.size} truths, {e.size} estimates and {len(dates)} dates differ")
    answered = ~np.isnan(e)
    dated = np.array([d is not None for d in dates], dtype=bool)
    if cutoff is None:
        before = after = np.zeros(t.size, dtype=bool)
    else:
        on_or_before = np.array([d is not None and d <= cutoff for d in dates], dtype=bool)
        before = answered & on_or_before
        after = answered & dated & ~on_or_before
    errors = np.abs(e - t)

    def mae(mask: np.ndarray) -> float:
        return float(errors[mask].mean()) if mask.any() else math.nan

    mae_before, mae_after = mae(before), mae(after)
    metrics = {
        "mae_before_cutoff": mae_before,
        "mae_after_cutoff": mae_after,
        "mae_cutoff_gap": mae_after - mae_before,
        "n_before_cutoff": float(before.sum()),
        "n_after_cutoff": float(after.sum()),
        "n_undated": float((answered & ~dated).sum()),
    }
    return CutoffSplit({f"{prefix}{k}": v for k, v in metrics.items()}, _line(metrics, cutoff))


def _line(m: dict[str, float], cutoff: dt.date | None) -> str:
    if cutoff is None:
        return "Knowledge cut-off unknown: no before/after split of the error."

    def group(mae: float, n: float) -> str:
        return f"mae ${mae:.2f} on {n:.0f} items" if n else "no items"

    before = group(m["mae_before_cutoff"], m["n_before_cutoff"])
    after = group(m["mae_after_cutoff"], m["n_after_cutoff"])
    line = (
        f"Knowledge cut-off {cutoff.isoformat()}: {before} first available before it, "
        f"{after} after ({m['n_undated']:.0f} undated)"
    )
    if min(m["n_before_cutoff"], m["n_after_cutoff"]) < MIN_GROUP:
        return f"{line}; under {MIN_GROUP} items in a group: too few to compare."
    return f"{line}; compare with a classical family's split before reading it as leakage."
