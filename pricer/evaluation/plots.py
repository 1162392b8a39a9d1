"""Matplotlib figures for evaluations, datasets, leaderboards and sweeps.

Figures are built with `matplotlib.figure.Figure` on an Agg canvas instead of pyplot: no
global figure registry, no backend switch, nothing leaks between calls or threads, and the
caller owns (and may simply drop) every figure. Each function returns the Figure.

Every text is literal: matplotlib reads the text between two ``$`` as mathtext, so a title
"mean error $-5.62  median $+0.61" rendered as "mean error -5.62*median*+0.61" (italic, dollars
gone). Each public function builds its figure under `literal_text`, which turns mathtext
parsing off for every Text artist it creates (titles, labels, bar labels, legends, tick labels
given explicitly), whatever a caller passes as a title.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Literal, ParamSpec

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from numpy.typing import ArrayLike

from pricer.evaluation.metrics import GREEN, ORANGE, RED
from pricer.evaluation.report import Evaluation

__all__ = [  # the plot functions (tests render each one)
    "category_bars",
    "category_pie",
    "error_histogram",
    "leaderboard_chart",
    "objective_trace",
    "price_histogram",
    "truth_vs_estimate",
]

P = ParamSpec("P")

_SIZE = (8.0, 6.0)
_WIDE = (10.0, 6.0)


def literal_text(build: Callable[P, Figure]) -> Callable[P, Figure]:
    """Build a figure with mathtext off: a ``$`` in any text it creates is drawn as a dollar.

    ``text.parse_math`` is read when a Text artist is created, so the setting stays with the
    figure's texts after the context ends (tick labels matplotlib makes later at draw time are
    numbers). Escaping each string instead (``\\$``) would miss titles callers pass in.
    """

    @functools.wraps(build)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Figure:
        with rc_context({"text.parse_math": False}):
            return build(*args, **kwargs)

    return wrapper


def _new_figure(size: tuple[float, float] = _SIZE) -> tuple[Figure, Axes]:
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)  # attach an Agg canvas so savefig/draw work without pyplot
    return fig, fig.add_subplot()


def _metrics_caption(evaluation: Evaluation) -> str:
    m = evaluation.metrics
    caption = f"mae ${m['mae']:.2f}  rmsle {m['rmsle']:.2f}  hits {m['hit_rate']:.1%}"
    if m["n_failed"]:
        caption += f"  over {int(m['n'])} priced, failed {m['n_failed']} ({m['failure_rate']:.1%})"
    return caption


@literal_text
def truth_vs_estimate(evaluation: Evaluation, title: str) -> Figure:
    """The course's scatter: truth (x) vs estimate (y), coloured by hit/near/miss, y=x line.

    One scatter collection with one point per answered item; failed items cannot be placed
    and are only counted in the title.
    """
    fig, ax = _new_figure()
    ok = evaluation.items[~evaluation.items["failed"]]
    ax.scatter(ok["truth"], ok["estimate"], c=list(ok["color"]), s=6, alpha=0.7)
    top = float(np.nanmax([evaluation.items["truth"].max(), ok["estimate"].max(), 1.0]))
    top *= 1.05
    ax.plot([0, top], [0, top], color="deepskyblue", linewidth=1.5, label="y = x")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("true price ($)")
    ax.set_ylabel("estimate ($)")
    ax.set_title(f"{title}\n{_metrics_caption(evaluation)}")
    # Proxy legend entries (Line2D) so the axes' collections stay exactly one scatter.
    handles = [
        Line2D([], [], linestyle="", marker="o", color=c, label=lab)
        for c, lab in ((GREEN, "hit"), (ORANGE, "near"), (RED, "miss"))
    ]
    ax.legend(handles=handles, loc="upper left")
    return fig


def _signed_dollars(value: float) -> str:
    """-$5.94, +$0.51: the sign before the dollar sign, as amounts are written ($-5.94 was)."""
    return f"{'-' if value < 0 else '+'}${abs(value):,.2f}"


@literal_text
def error_histogram(evaluation: Evaluation, title: str) -> Figure:
    """Histogram of signed errors (estimate - truth) of answered items; bias in the title."""
    fig, ax = _new_figure()
    errors = evaluation.items.loc[~evaluation.items["failed"], "error"].to_numpy()
    if errors.size:
        ax.hist(errors, bins="auto", color="steelblue", edgecolor="white")
        ax.axvline(0.0, color="black", linewidth=1)
        ax.axvline(float(errors.mean()), color="red", linestyle="--", linewidth=1)
        mean, median = _signed_dollars(errors.mean()), _signed_dollars(np.median(errors))
        bias = f"mean error {mean}  median {median}"
    else:
        bias = "no answered items"
    ax.set_xlabel("estimate - truth ($)")
    ax.set_ylabel("items")
    ax.set_title(f"{title}\n{bias}")
    return fig


@literal_text
def price_histogram(prices: ArrayLike, title: str, bins: int | Sequence[float]) -> Figure:
    """Distribution of prices, e.g. before/after curation; mean and median in the title."""
    p = np.asarray(prices, dtype=float)
    p = p[np.isfinite(p)]
    fig, ax = _new_figure(_WIDE)
    ax.hist(p, bins=bins, color="skyblue", edgecolor="steelblue")
    ax.set_xlabel("price ($)")
    ax.set_ylabel("items")
    stats = f"n={p.size:,}  mean ${p.mean():.2f}  median ${np.median(p):.2f}" if p.size else "n=0"
    ax.set_title(f"{title}\n{stats}")
    return fig


@literal_text
def category_bars(counts: pd.Series, title: str) -> Figure:
    """One vertical bar per category in the given order, labelled with its count."""
    fig, ax = _new_figure(_WIDE)
    bars = ax.bar([str(k) for k in counts.index], counts.to_numpy(), color="goldenrod")
    ax.bar_label(bars, labels=[f"{v:,}" for v in counts.to_numpy()], fontsize=8)
    ax.set_ylabel("items")
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=30)
    return fig


@literal_text
def category_pie(counts: pd.Series, title: str) -> Figure:
    """One wedge per category with its percentage."""
    fig, ax = _new_figure()
    ax.pie(counts.to_numpy(), labels=[str(k) for k in counts.index], autopct="%1.0f%%")
    ax.set_aspect("equal")
    ax.set_title(title)
    return fig


def _ci_errors(table: pd.DataFrame) -> np.ndarray | None:
    """(2, n) distances from mae to its CI bounds; None without CI columns."""
    if not {"mae_ci_low", "mae_ci_high"} <= set(table.columns):
        return None
    low = (table["mae"] - table["mae_ci_low"]).to_numpy(dtype=float)
    high = (table["mae_ci_high"] - table["mae"]).to_numpy(dtype=float)
    # A missing CI draws no whisker rather than failing the whole chart.
    return np.nan_to_num(np.clip(np.vstack([low, high]), 0.0, None), nan=0.0)


@literal_text
def leaderboard_chart(
    table: pd.DataFrame, title: str, *, ranked: pd.Series | None = None
) -> Figure:
    """Horizontal bars of `mae` per model (index), best (lowest) at the top.

    Optional columns: `mae_ci_low`/`mae_ci_high` draw error bars; `reference_mae` draws a
    marker (the course's published figure, for real data only) where it is not NaN. Models
    with NaN mae sort last
    and show an empty bar labelled 'n/a'. ``ranked`` says which models are ranked (None:
    all): the others, whose mae is over fewer items, come after them in grey, whatever their
    mae, as the leaderboard's tables list them (a model that refused the dearest items topped
    the chart, above every model that priced them all).
    """
    if "mae" not in table.columns:
        raise ValueError(f"leaderboard table needs an 'mae' column, has {list(table.columns)}")
    ranks = (
        pd.Series(True, index=table.index)
        if ranked is None
        else ranked.reindex(table.index, fill_value=False).astype(bool)
    )
    order = table.assign(_unranked=~ranks, _mae=table["mae"].astype(float))
    order = order.sort_values(["_unranked", "_mae"], na_position="last", kind="stable")
    board = table.loc[order.index]
    mae = board["mae"].to_numpy(dtype=float)
    colours = ["steelblue" if rank else "grey" for rank in ranks.loc[board.index]]
    y = np.arange(len(board))
    fig, ax = _new_figure((10.0, max(3.0, 0.45 * len(board) + 1.5)))
    bars = ax.barh(
        y, np.nan_to_num(mae), xerr=_ci_errors(board), color=colours, capsize=3, alpha=0.85
    )
    ax.bar_label(
        bars, labels=["n/a" if np.isnan(v) else f"${v:.2f}" for v in mae], padding=4, fontsize=8
    )
    if "reference_mae" in board.columns:
        ref = board["reference_mae"].to_numpy(dtype=float)
        known = ~np.isnan(ref)
        if known.any():
            ax.scatter(
                ref[known],
                y[known],
                marker="D",
                color="darkorange",
                zorder=3,
                label="course's published mae (its own test items)",
            )
            ax.legend(loc="best")
    ax.set_yticks(y, labels=[str(name) for name in board.index])
    ax.invert_yaxis()  # best model on top
    ax.set_xlabel("mean absolute error ($)")
    ax.set_title(title)
    return fig


@literal_text
def objective_trace(
    values: Sequence[float],
    title: str,
    *,
    direction: Literal["minimize", "maximize"],
    trials: Sequence[int] | None = None,
) -> Figure:
    """Objective per trial (points) and running best so far (step line), in trial order.

    ``trials`` numbers the values (a sweep's Hydra job numbers, as its runs are tagged);
    without it they are numbered from 0. NaN values (failed trials) are left out of the
    points and ignored by the running best.
    """
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
    v = np.asarray(values, dtype=float)
    trials = np.arange(v.size) if trials is None else np.asarray(trials)
    if trials.shape != v.shape:
        raise ValueError(f"{trials.size} trial numbers for {v.size} objective values")
    # fmin/fmax skip NaN, so one failed trial does not poison the running best.
    best = (np.fmin if direction == "minimize" else np.fmax).accumulate(v) if v.size else v
    fig, ax = _new_figure(_WIDE)
    ok = ~np.isnan(v)
    ax.plot(trials[ok], v[ok], linestyle="", marker="o", color="gray", label="trial")
    ax.step(trials, best, where="post", color="crimson", label=f"best so far ({direction})")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective")
    ax.set_title(title)
    ax.legend()
    return fig
