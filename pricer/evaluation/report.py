"""One call that turns (truth, estimate) into every number and table the leaderboard needs.

Estimates may be NaN: those are FAILED predictions (e.g. an LLM reply with no number). They
are counted, kept in the per-item table, and excluded from every error metric; they are never
replaced by 0, which would silently reward or punish a model for not answering.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from pricer.evaluation.bootstrap import bootstrap_interval
from pricer.evaluation.metrics import error_colors, is_hit, price_metrics
from pricer.schemas import EvalSettings
from pricer.wording import counted, interval

FAILED_COLOR = "gray"  # colour of failed items in `Evaluation.items`
GROUP_COLUMNS = ["n", "n_failed", "mae", "hit_rate", "rmsle"]
# The keys of ``Evaluation.metrics``, every evaluation's (what a leaderboard column may name).
METRICS = (
    "mae",
    "mae_ci_low",
    "mae_ci_high",
    "rmsle",
    "hit_rate",
    "r2",
    "n",
    "n_failed",
    "failure_rate",
)


@dataclass
class Evaluation:
    """Everything `evaluate` computes. See `evaluate` for the columns of each table."""

    metrics: dict[str, float]
    items: pd.DataFrame
    by_category: pd.DataFrame
    by_band: pd.DataFrame
    settings: EvalSettings

    def summary_line(self, name: str) -> str:
        """e.g. 'gpt-4o: mae $97.12 (95% CI 88-106) rmsle 0.81 hits 43.2% on 250 items'."""
        m = self.metrics
        level = f"{self.settings.confidence * 100:g}%"
        if math.isnan(m["mae"]):
            line = f"{name}: mae n/a rmsle n/a hits n/a"
        else:
            low, high = m["mae_ci_low"], m["mae_ci_high"]
            # Undefined over a single priced item (``bootstrap_interval``).
            known = not (math.isnan(low) or math.isnan(high))
            ci = interval(low, high, around=m["mae"]) if known else "n/a"
            line = (
                f"{name}: mae ${m['mae']:.2f} ({level} CI {ci}) "
                f"rmsle {m['rmsle']:.2f} hits {m['hit_rate']:.1%}"
            )
        total = int(m["n"] + m["n_failed"])
        failed = int(m["n_failed"])
        if not failed:
            return f"{line} on {counted(total, 'item')}"  # eval.size=50 and the 250 read apart
        if failed == total:
            return f"{line}: no price for any of {counted(total, 'item')}"
        # The figures are over the priced items only, and say so.
        return (
            f"{line} over the {int(m['n'])} of {counted(total, 'item')} priced "
            f"({failed} failed, {m['failure_rate']:.1%})"
        )


def _check_inputs(
    truth: ArrayLike, estimate: ArrayLike, categories: ArrayLike | None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.object_] | None]:
    t = np.asarray(truth, dtype=float)
    e = np.asarray(estimate, dtype=float)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"truth must be a non-empty 1-D array, got shape {t.shape}")
    if e.shape != t.shape:
        raise ValueError(f"estimate has shape {e.shape}, truth has {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError("truth must be finite (true prices are never missing)")
    if np.isinf(e).any():
        raise ValueError("estimate contains inf; use NaN to mark a failed prediction")
    if categories is None:
        return t, e, None
    c = np.asarray(categories, dtype=object)
    if c.shape != t.shape:
        raise ValueError(f"categories has shape {c.shape}, truth has {t.shape}")
    return t, e, c


def _price_bands(truth: NDArray[np.float64], settings: EvalSettings) -> pd.Categorical:
    edges = np.asarray(settings.price_bands)
    labels = settings.band_labels()
    position = np.searchsorted(edges, truth, side="right") - 1
    position[truth == edges[-1]] = len(labels) - 1  # close the last band on the right
    inside = (position >= 0) & (position < len(labels))
    outside = f"outside ${edges[0]:g}-{edges[-1]:g}"
    names = np.array([*labels, outside], dtype=object)[np.where(inside, position, len(labels))]
    order = labels if inside.all() else [*labels, outside]
    return pd.Categorical(names, categories=order, ordered=True)


def _item_table(
    t: NDArray[np.float64],
    e: NDArray[np.float64],
    categories: NDArray[np.object_] | None,
    settings: EvalSettings,
) -> pd.DataFrame:
    answered = ~np.isnan(e)
    color = np.full(t.size, FAILED_COLOR, dtype=object)
    color[answered] = error_colors(t[answered], e[answered], thresholds=settings.thresholds)
    hit = np.zeros(t.size, dtype=bool)  # a failure is never a hit
    hit[answered] = is_hit(t[answered], e[answered], thresholds=settings.thresholds)
    items = pd.DataFrame({"truth": t, "estimate": e, "error": e - t, "abs_error": np.abs(e - t)})
    items["color"] = color
    items["hit"] = hit
    items["failed"] = ~answered
    if categories is not None:
        items["category"] = categories
    items["price_band"] = _price_bands(t, settings)
    return items


def _group_row(group: pd.DataFrame, settings: EvalSettings) -> dict[str, float]:
    ok = group[~group["failed"]]
    m = price_metrics(ok["truth"], ok["estimate"], thresholds=settings.thresholds)
    return {
        "n": m["n"],
        "n_failed": int(group["failed"].sum()),
        "mae": m["mae"],
        "hit_rate": m["hit_rate"],
        "rmsle": m["rmsle"],
    }


def _group_table(items: pd.DataFrame, key: str, settings: EvalSettings) -> pd.DataFrame:
    """n (answered), n_failed, mae, hit_rate, rmsle per value of `key`."""
    grouped = items.groupby(key, observed=False, sort=True, dropna=False)
    rows = {name: _group_row(group, settings) for name, group in grouped}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=GROUP_COLUMNS)
    table.index.name = key
    return table


def _largest_first(table: pd.DataFrame) -> pd.DataFrame:
    total = (table["n"] + table["n_failed"]).to_numpy()
    return table.iloc[np.argsort(-total, kind="stable")]


def _empty_group_table(key: str) -> pd.DataFrame:
    table = pd.DataFrame(columns=GROUP_COLUMNS, dtype=float)
    table.index.name = key
    return table


def _overall_metrics(items: pd.DataFrame, settings: EvalSettings) -> dict[str, float]:
    ok = items[~items["failed"]]
    metrics = price_metrics(ok["truth"], ok["estimate"], thresholds=settings.thresholds)
    n_failed = int(items["failed"].sum())
    metrics["n_failed"] = n_failed
    metrics["failure_rate"] = n_failed / len(items)
    if len(ok):
        low, high = bootstrap_interval(
            ok["abs_error"].to_numpy(),
            confidence=settings.confidence,
            n_resamples=settings.n_resamples,
            seed=settings.seed,
        )
    else:
        low = high = float("nan")
    metrics["mae_ci_low"], metrics["mae_ci_high"] = low, high
    return metrics


def evaluate(
    truth: ArrayLike,
    estimate: ArrayLike,
    *,
    categories: ArrayLike | None = None,
    settings: EvalSettings,
) -> Evaluation:
    """Score estimates against true prices.

    metrics: mae, rmsle, hit_rate, r2, n (answered items), n_failed, failure_rate,
        mae_ci_low, mae_ci_high. Error metrics use answered items only (NaN if none).
    items: one row per input item, in input order: truth, estimate, error (estimate - truth,
        positive = overestimate), abs_error, color (green/orange/red, gray if failed), hit,
        failed, category (only if categories given), price_band (band of the TRUE price).
    by_category / by_band: n (answered), n_failed, mae, hit_rate, rmsle per group;
        by_category is empty without categories; by_band lists every configured band in order
        (empty bands have n=0 and NaN metrics) so tables of different models line up.
    """
    t, e, c = _check_inputs(truth, estimate, categories)
    items = _item_table(t, e, c, settings)
    by_category = (
        _largest_first(_group_table(items, "category", settings))
        if c is not None
        else _empty_group_table("category")
    )
    return Evaluation(
        metrics=_overall_metrics(items, settings),
        items=items,
        by_category=by_category,
        by_band=_group_table(items, "price_band", settings),
        settings=settings,
    )
