"""Accuracy against cost and latency: the leaderboard's trade-off table and its two charts.

Every family is priced the same way, so none is ever shown as free:

- compute: the fit and predict seconds the family's run measured, priced at an hourly rate for
  the CPUs the machine has (``ComputePrice``, from ``conf/tradeoff/default.yaml``). The fit is
  spread over the evaluated items, an upper bound for a model that then prices more items;
- tokens (LLM families): ``llm.cost_per_1k_items_usd``, the catalogue's token prices, plus
  any calls made at fit (``llm.fit_cost_usd``: an ensemble's LLM member pricing its validation
  split), spread over the evaluated items as the fit seconds are.

- a person's time (the human family): ``human.cost_per_1k_items_usd`` and, as its latency,
  ``human.seconds_per_item``, from the family's settings; unknown (NaN) when not given.

Cost per 1,000 items is their sum. Latency per item is the median call latency for LLM
families (``llm.latency_p50_s``: what one user waits for one item, a cached answer's its
entry kept; unknown when no call was made and the cache entries kept no seconds), else the
predict seconds divided by the items (a batch, amortised). A family is on the Pareto front
when no other family is at least as good on both axes and better on one.

Pure functions: a leaderboard DataFrame in, a DataFrame and Matplotlib figures out.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox
from numpy.typing import ArrayLike

from pricer.schemas import ComputePrice
from pricer.wording import interval

SECONDS_PER_HOUR = 3600.0
COST = "cost_per_1k_usd"
LATENCY = "latency_per_item_s"
TABLE_COLUMNS = [
    "mae",
    "mae_ci_low",
    "mae_ci_high",
    "items",
    "compute_per_1k_usd",
    "tokens_per_1k_usd",
    "person_per_1k_usd",
    COST,
    LATENCY,
    "latency_source",
    "pareto_cost",
    "pareto_latency",
    "ranked",
]
# The leaderboard figures ``tradeoff_table`` reads from its board, whatever columns the
# leaderboard shows (``columns`` in conf/leaderboard.yaml): a table of mae alone made every cost
# and latency unknown, and one without the llm.* figures billed an LLM for its CPU seconds only
# and gave it a batch's latency. Any llm.* figure marks an LLM's row: these are the ones every
# LLM run logs.
BOARD_COLUMNS = (
    "mae",
    "mae_ci_low",
    "mae_ci_high",
    "n",
    "n_failed",
    "time.fit_seconds",
    "time.predict_seconds",
    "llm.cost_per_1k_items_usd",
    "llm.fit_cost_usd",
    "llm.fit_calls",
    "llm.latency_p50_s",
    "llm.latency_p95_s",
    "llm.items_per_second",
    "llm.calls",
    "human.guesses",
    "human.cost_per_1k_items_usd",
    "human.seconds_per_item",
)
# Where an LLM's latency would come from when every answer came from the cache: none.
CACHED = "answer cache"
# The Pareto column's word for a family that is not ranked (it left items unpriced).
INCOMPLETE = "incomplete"


def pareto_front(cost: ArrayLike, error: ArrayLike) -> np.ndarray:
    """True where no other point has cost <= and error <= with one of them strictly lower.
    Points with a NaN coordinate are never on the front (nor dominate anything)."""
    x = np.asarray(cost, dtype=float)
    y = np.asarray(error, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    front = ok.copy()
    for i in np.flatnonzero(ok):
        dominated = ok & (x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i]))
        front[i] = not dominated.any()
    return front


def _column(board: pd.DataFrame, name: str) -> pd.Series:
    if name in board.columns:
        return pd.to_numeric(board[name], errors="coerce").astype(float)
    return pd.Series(math.nan, index=board.index, dtype=float)


def tradeoff_table(
    board: pd.DataFrame,
    compute: ComputePrice,
    *,
    n_items: int | None = None,
    ranked: pd.Series | None = None,
) -> pd.DataFrame:
    """The trade-off of each family (the board's index) as the charts plot it.

    ``board`` is the leaderboard: ``mae`` (required), ``mae_ci_low``/``mae_ci_high``,
    ``time.fit_seconds``, ``time.predict_seconds``, ``llm.cost_per_1k_items_usd``,
    ``llm.fit_cost_usd`` (LLM calls made at fit, amortised over the items),
    ``llm.latency_p50_s``, and the items evaluated as ``n`` (+ ``n_failed``) columns or, when
    absent, ``n_items``. ``ranked`` says which families may be on a Pareto front (the
    leaderboard's rule: those that priced every item; None: all): the others' mae is over
    fewer items, so they are never on it, nor push another off it. Columns: see
    ``TABLE_COLUMNS``; costs are NaN where unknown (an LLM missing from the catalogue), never 0.
    Sorted by mae, the ranked families first.
    """
    if "mae" not in board.columns:
        raise ValueError(f"leaderboard needs an 'mae' column, has {list(board.columns)}")
    if "n" in board.columns:
        items = _column(board, "n") + _column(board, "n_failed").fillna(0.0)
    elif n_items is not None and n_items > 0:
        items = pd.Series(float(n_items), index=board.index)
    else:
        raise ValueError("the evaluated item count is unknown: give 'n' columns or n_items")
    items = items.where(items > 0)
    seconds = _column(board, "time.fit_seconds") + _column(board, "time.predict_seconds")
    compute_per_1k = pd.Series(compute.usd(seconds), index=board.index) / items * 1000
    # An LLM row has some llm.* figure (an unknown model: latency but a NaN cost, kept NaN);
    # a classical row has none and pays no tokens.
    llm_columns = [column for column in board.columns if str(column).startswith("llm.")]
    llm_figures = board[llm_columns].apply(pd.to_numeric, errors="coerce")
    is_llm = llm_figures.notna().any(axis=1)
    # Calls made at fit (an ensemble's LLM member pricing its validation split) are paid once,
    # so amortised over the evaluated items as fit seconds are.
    # A family that made no calls at fit has no fit cost (0); an ensemble whose LLM member
    # did (llm.fit_calls) but whose cost is unknown (NaN, or not logged: an answering model
    # without a price, replies without usage) has an unknown total, not its test items' alone.
    fit_cost = _column(board, "llm.fit_cost_usd")
    fit_cost = fit_cost.mask(fit_cost.isna() & _column(board, "llm.fit_calls").isna(), 0.0)
    fit_tokens_per_1k = fit_cost / items * 1000
    tokens_per_1k = (_column(board, "llm.cost_per_1k_items_usd") + fit_tokens_per_1k).where(
        is_llm, 0.0
    )
    call_latency = _column(board, "llm.latency_p50_s")
    batch_latency = _column(board, "time.predict_seconds") / items
    has_call = call_latency.notna()
    # Every answer read back from cache entries that kept no call seconds (written before they
    # were): no call was timed, and the batch time is the cache's (0.09 ms an item), which put
    # a rerun LLM on the latency front ahead of every classical family. Unknown, as its cost
    # would be without a price.
    cached = is_llm & (_column(board, "llm.calls") == 0) & ~has_call
    batch_latency = batch_latency.mask(cached)
    # A person's guesses (the human family, known by its guess count) cost the person's time:
    # NaN (unknown) unless the run was told it; never the seconds it took to read them back.
    is_person = _column(board, "human.guesses").notna()
    person_per_1k = _column(board, "human.cost_per_1k_items_usd").where(is_person, 0.0)
    person_latency = _column(board, "human.seconds_per_item")
    table = pd.DataFrame(
        {
            "mae": _column(board, "mae"),
            "mae_ci_low": _column(board, "mae_ci_low"),
            "mae_ci_high": _column(board, "mae_ci_high"),
            "items": items,
            "compute_per_1k_usd": compute_per_1k,
            "tokens_per_1k_usd": tokens_per_1k,
            "person_per_1k_usd": person_per_1k,
            COST: compute_per_1k + tokens_per_1k + person_per_1k,
            LATENCY: call_latency.where(has_call, batch_latency).mask(is_person, person_latency),
            "latency_source": np.select(
                [is_person, has_call, cached],
                ["a person's time", "p50 call", CACHED],
                "batch predict / items",
            ),
        },
        index=board.index,
    )
    ranks = pd.Series(True, index=board.index) if ranked is None else ranked
    table["ranked"] = ranks.reindex(board.index, fill_value=False).astype(bool)
    error = table["mae"].where(table["ranked"])  # NaN: never on the front, dominates none
    table["pareto_cost"] = pareto_front(table[COST], error)
    table["pareto_latency"] = pareto_front(table[LATENCY], error)
    table = table.sort_values("mae", na_position="last", kind="stable")
    return table.sort_values("ranked", ascending=False, kind="stable")[TABLE_COLUMNS]


def significant(value: float, digits: int = 2) -> str:
    """``value`` to ``digits`` significant figures, never in scientific notation: costs span
    seven orders of magnitude (a constant's $0.0000003 per 1,000 items, a person's $375), and
    "<$0.001" hid which of two cheap families is cheaper."""
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def _latency(seconds: float, source: str) -> str:
    how = {"p50 call": "p50 call", "a person's time": "person"}.get(source, "batch")
    if seconds < 1:
        return f"{significant(seconds * 1000)} ms ({how})"
    return f"{significant(seconds)} s ({how})"


# Dropped first, in this order, when the table is wider than its budget (a terminal's).
TRADEOFF_EXPENDABLE = ["compute $/1k", "person $/1k", "tokens $/1k"]


def display_tradeoff(table: pd.DataFrame, width: int | None = None) -> pd.DataFrame:
    """``tradeoff_table``'s table as people read it: the terminal, a leaderboard's description
    and ``pricer runs RUN`` show it alike. Costs in dollars per 1,000 items to two significant
    figures (``unknown`` for NaN, never a blank read as free), latency with where it comes
    from, and on which Pareto front a family sits. The tokens and person columns only when
    some family pays them (and then compute beside them, else it is the total); within
    ``width`` characters if given."""
    shown = pd.DataFrame(index=table.index.astype(str))
    shown.index.name = "family"

    def known(value: float) -> bool:
        return not (isinstance(value, float) and math.isnan(value))

    def dollars(column: str) -> list[str]:
        return [significant(v) if known(v) else "unknown" for v in table[column]]

    shown["mae (95% CI)"] = [
        f"${mae:,.2f} ({interval(lo, hi, around=mae)})"
        if known(lo) and known(hi)
        else (f"${mae:,.2f}" if known(mae) else "")
        for mae, lo, hi in zip(table["mae"], table["mae_ci_low"], table["mae_ci_high"], strict=True)
    ]
    shown["compute $/1k"] = dollars("compute_per_1k_usd")
    for header, column in (
        ("tokens $/1k", "tokens_per_1k_usd"),
        ("person $/1k", "person_per_1k_usd"),
    ):
        if (table[column].fillna(1.0) != 0).any():  # NaN: an LLM or a person, cost unknown
            shown[header] = dollars(column)
    if len(shown.columns) == 2:  # no family pays tokens or a person: compute is the total
        shown = shown.drop(columns=["compute $/1k"])
    shown["total $/1k items"] = dollars(COST)
    shown["latency per item"] = [
        _latency(v, source) if known(v) else ("unknown (cached)" if source == CACHED else "unknown")
        for v, source in zip(table[LATENCY], table["latency_source"], strict=True)
    ]
    # A table stored before "ranked" was: every family was ranked then.
    ranks = table["ranked"] if "ranked" in table else pd.Series(True, index=table.index)
    # Unranked with a mae: it priced some items, not all. Without one it failed (the table
    # above says so), and "incomplete" said it had priced some.
    shown["Pareto front"] = [
        ", ".join(name for name, on in (("cost", cost), ("latency", latency)) if on)
        if ranked
        else (INCOMPLETE if known(mae) else "")
        for cost, latency, ranked, mae in zip(
            table["pareto_cost"], table["pareto_latency"], ranks, table["mae"], strict=True
        )
    ]
    for header in TRADEOFF_EXPENDABLE:
        if width is None or max(map(len, shown.to_string().splitlines())) <= width:
            break
        shown = shown.drop(columns=[header], errors="ignore")
    return shown


def _escape(text: str) -> str:
    """Matplotlib reads text between two '$' as mathtext: dollars stay dollars."""
    return text.replace("$", r"\$")


def _chart(table: pd.DataFrame, x: str, xlabel: str, title: str, front: str) -> Figure:
    fig = Figure(figsize=(10.0, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    plotted = table[np.isfinite(table[x]) & np.isfinite(table["mae"]) & (table[x] > 0)]
    missing = [str(name) for name in table.index if name not in plotted.index]
    ranks = plotted["ranked"] if "ranked" in plotted else pd.Series(True, index=plotted.index)
    on_front = plotted[plotted[front]]
    off_front = plotted[~plotted[front] & ranks]
    unranked = plotted[~ranks.astype(bool)]
    for part, colour, label in (
        (off_front, "steelblue", "family"),
        (on_front, "crimson", "Pareto front"),
        (unranked, "grey", "incomplete: not ranked"),
    ):
        if part.empty:
            continue
        low = (part["mae"] - part["mae_ci_low"]).clip(lower=0).fillna(0)
        high = (part["mae_ci_high"] - part["mae"]).clip(lower=0).fillna(0)
        ax.errorbar(
            part[x],
            part["mae"],
            yerr=np.vstack([low.to_numpy(), high.to_numpy()]),
            fmt="o",
            color=colour,
            ecolor=colour,
            alpha=0.85,
            capsize=3,
            label=label,
        )
    if len(on_front) > 1:  # the front as a staircase: cheaper (or faster) costs accuracy
        ordered = on_front.sort_values(x)
        ax.step(ordered[x], ordered["mae"], where="post", color="crimson", linewidth=1, alpha=0.6)
    ax.set_xscale("log")  # costs and latencies span several orders of magnitude
    ax.set_xlabel(_escape(xlabel))
    ax.set_ylabel(_escape("mean absolute error ($), with its confidence interval"))
    subtitle = f"not plotted (unknown or zero): {', '.join(missing)}" if missing else ""
    ax.set_title(_escape(f"{title}\n{subtitle}" if subtitle else title))
    if not plotted.empty:
        ax.legend(loc="best")
    _label(fig, ax, [(str(name), row[x], row["mae"]) for name, row in plotted.iterrows()])
    return fig


# Where a label may sit beside its point (points from it; negative x: the label ends there).
LABEL_OFFSETS = ((5, 5), (5, -14), (-5, 5), (-5, -14), (5, 16), (5, -25))
MARKER_PIXELS = 4  # a point's marker and error-bar cap reach about this far from it


def _label(fig: Figure, ax: Axes, points: list[tuple[str, float, float]]) -> None:
    """Name each point, in x order, at the first offset where its label overlaps no label
    placed before it and no other family's point (else the first offset). Families with like
    costs and errors sit close on a log axis: fixed offsets wrote "tfidf_ridge" over
    "random_forest", and a label beside the other point reads as that point's ("linear" next
    to bow_linear's point on the leaderboard of 2026-12-05)."""
    fig.draw_without_rendering()  # settle the layout, so that label boxes are final
    renderer = fig.canvas.get_renderer()
    placed: list[Bbox] = []
    where = {name: ax.transData.transform((x, y)) for name, x, y in points}
    for name, x, y in sorted(points, key=lambda point: point[1]):
        others = [point for other, point in where.items() if other != name]
        for offset in LABEL_OFFSETS:
            text = ax.annotate(
                _escape(name),
                (x, y),
                xytext=offset,
                textcoords="offset points",
                ha="left" if offset[0] > 0 else "right",
            )
            box = text.get_window_extent(renderer)
            near = box.padded(MARKER_PIXELS)
            if not any(box.overlaps(other) for other in placed) and not any(
                near.contains(px, py) for px, py in others
            ):
                break
            text.remove()
        else:
            box = ax.annotate(
                _escape(name), (x, y), xytext=LABEL_OFFSETS[0], textcoords="offset points"
            ).get_window_extent(renderer)
        placed.append(box)


def cost_chart(table: pd.DataFrame, title: str = "Error against cost") -> Figure:
    """Mean absolute error (with its interval) against cost per 1,000 items (log scale), the
    Pareto front in red. ``table`` is ``tradeoff_table``'s."""
    return _chart(table, COST, "cost per 1,000 items ($, log scale)", title, "pareto_cost")


def latency_chart(table: pd.DataFrame, title: str = "Error against latency") -> Figure:
    """Mean absolute error (with its interval) against latency per item (log scale), the
    Pareto front in red. ``table`` is ``tradeoff_table``'s."""
    return _chart(table, LATENCY, "latency per item (s, log scale)", title, "pareto_latency")
