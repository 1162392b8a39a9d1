"""A leaderboard on its parent run, and on the terminal: what a person compares, at a glance.

The parent run gets each family's mae (``mae.<family>``), ``best_mae``, a ``best_family`` tag
and a Markdown description (run descriptions render Markdown in the MLflow UI) holding the
leaderboard rounded for reading; the unrounded table stays an artifact (JSON for the UI's
table view, CSV) beside the bar chart. The terminal gets the same table in under 100 columns,
the best family and the parent run's address in the MLflow UI.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mlflow
import pandas as pd

from pricer.evaluation import leaderboard_chart
from pricer.evaluation.tradeoff import (
    COST,
    cost_chart,
    display_tradeoff,
    latency_chart,
    significant,
)
from pricer.tracking import tags
from pricer.tracking.views import (
    FAMILIES_LINE,
    RunsView,
    children_filter,
    children_view_url,
    leaderboard_key,
    listed_order,
    save_view,
    started,
    ui_base,
    unchanged_line,
    view_url,
)
from pricer.wording import interval

NOTE_TAG = tags.NOTE
TERMINAL_WIDTH = 100
# What the terminal says before the leaderboard run's address (after the families line's).
RUN_LINE = "leaderboard run (its tables and charts): "
# The lines printed under the table (which server answered an LLM family, what it left
# unanswered, whose the course figures are): `pricer runs RUN` prints them again.
NOTES_FILE = "leaderboard/notes.txt"
TRADEOFF_FILE = "leaderboard/tradeoff.json"
# Said by a leaderboard with a failed family, in its description and under its table.
VIEW_LEFT = "Families failed: this leaderboard did not take over the saved view"
# A finished family that left items unpriced: its status wherever it is listed (the tables'
# status column, the charts' labels, the trade-off's Pareto column).
INCOMPLETE = "incomplete"
# How the saved view, and every line to it, says it orders families none of which is ranked.
NONE_RANKED = "none ranked (every family incomplete)"
# Logged on each ranked family's run (``rankable``: it priced every item) by its leaderboard,
# its mae: the saved view sorts by it, so families that left items unpriced, which have
# none, come after the ranked ones (MLflow's search lists runs without the sort key last).
RANKED_MAE = "ranked_mae"
# Said above the trade-off table wherever it is shown: what its columns and front mean.
TRADEOFF_HEADING = (
    "Trade-off ($ per 1,000 items; on a Pareto front: no family is cheaper, or faster, and "
    "as accurate)"
)

Format = Callable[[Any], str]


def _dollars(value: float) -> str:
    return f"${value:,.2f}"


def _seconds(value: float) -> str:
    return f"{value:,.1f}"


def _per_1k(value: float) -> str:
    """Two significant figures, as the trade-off table shows them: "$0.00044" and "$0.000061"
    both read "<$0.001" before, and a person's time "$375"."""
    return f"${significant(value)}"


# Display columns in order: (header, source column, format). Dropped when no family has a value.
DISPLAY: list[tuple[str, str, Format]] = [
    ("mae", "mae", _dollars),
    ("95% CI", "mae_ci_low", lambda v: v),  # filled from both bounds below
    ("hits", "hit_rate", lambda v: f"{v:.1%}"),
    ("rmsle", "rmsle", lambda v: f"{v:.2f}"),
    ("r2", "r2", lambda v: f"{v:.2f}"),
    ("failed", "failure_rate", lambda v: f"{v:.1%}"),
    ("fit s", "time.fit_seconds", _seconds),
    ("predict s", "time.predict_seconds", _seconds),
    # Every family's whole cost when the trade-off is known (COST: compute, plus tokens for an
    # LLM), else an LLM's token cost alone: no family is free, and a blank read as $0.
    ("$/1k items", COST, lambda v: _per_1k(v)),
    ("p50 s", "llm.latency_p50_s", lambda v: f"{v:.2f}"),
    ("p95 s", "llm.latency_p95_s", lambda v: f"{v:.2f}"),
    ("items/s", "llm.items_per_second", lambda v: f"{v:,.1f}"),
    ("course mae", "reference_mae", lambda v: f"${v:,.0f}"),
]
# The family runs' own metrics shown side by side in the MLflow UI's runs table (the saved
# view a leaderboard writes), in the terminal table's order, and those charted as bars.
VIEW_COLUMNS = [
    "mae",
    "mae_ci_low",
    "mae_ci_high",
    "hit_rate",
    "rmsle",
    "failure_rate",
    "time.fit_seconds",
    "time.predict_seconds",
    "llm.cost_per_1k_items_usd",
    "llm.latency_p50_s",
]
VIEW_CHARTS = ["mae", "hit_rate", "rmsle", "llm.cost_per_1k_items_usd"]
# Dropped first, in this order, when the table is wider than the terminal budget.
EXPENDABLE = ["r2", "predict s", "p95 s", "items/s", "rmsle"]


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def display_table(table: pd.DataFrame, width: int | None = TERMINAL_WIDTH) -> pd.DataFrame:
    """The leaderboard as strings for reading: dollars as dollars, rounded, only columns with a
    value, a status column only when a family failed or is incomplete (``INCOMPLETE``: it
    left items unpriced, and is not ranked); within ``width`` characters if given."""
    shown = pd.DataFrame(index=table.index.astype(str))
    shown.index.name = "family"
    for header, column, fmt in DISPLAY:
        if header == "$/1k items" and column not in table.columns:
            column = "llm.cost_per_1k_items_usd"
        if column not in table.columns or not table[column].map(_known).any():
            continue
        if header == "95% CI":
            if "mae_ci_high" not in table.columns:
                continue
            shown[header] = [
                interval(lo, hi, around=mae) if _known(lo) and _known(hi) and _known(mae) else ""
                for lo, hi, mae in zip(
                    table["mae_ci_low"], table["mae_ci_high"], table["mae"], strict=True
                )
            ]
            continue
        if header == "failed" and not (table[column].fillna(0) > 0).any():
            continue
        cells = [fmt(v) if _known(v) else "" for v in table[column]]
        if header == "$/1k items":
            # A scored family whose cost is not known (an LLM missing from the catalogue, a
            # person's untimed guesses): a blank beside "$0.001" read as free.
            cells = [
                "unknown" if not cell and _known(mae) else cell
                for cell, mae in zip(cells, table["mae"], strict=True)
            ]
        shown[header] = cells
    partial = incomplete(table)
    if "status" in table.columns and ((table["status"] != "FINISHED") | partial).any():
        status = table["status"].astype(str).where(~partial, INCOMPLETE)
        shown["status"] = status.to_numpy()
    elif partial.any():  # a table without statuses (all finished): incomplete ones said so
        shown["status"] = ["" if not part else INCOMPLETE for part in partial]
    for header in EXPENDABLE:
        if width is None or _width(shown) <= width:
            break
        shown = shown.drop(columns=[header], errors="ignore")
    return shown


def _width(shown: pd.DataFrame) -> int:
    return max(len(line) for line in shown.to_string().splitlines())


# Before each cell but the first: the MLflow UI draws a description's table without cell
# padding, so "$25.12" and its interval "19-32" read as "$25.1219-32" (seen in MLflow 3.17).
CELL_GAP = "&nbsp;&nbsp;"


def markdown_table(shown: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (numbers right-aligned), for the run description."""
    headers = [shown.index.name or "", *shown.columns]
    rows = [[str(index), *map(str, row)] for index, row in shown.iterrows()]
    lines = [
        "| " + " | ".join([cells[0], *(CELL_GAP + cell for cell in cells[1:])]) + " |"
        for cells in [headers, *rows]
    ]
    lines.insert(1, "| " + " | ".join(["---", *["---:" for _ in shown.columns]]) + " |")
    return "\n".join(lines)


def rankable(table: pd.DataFrame) -> pd.Series:
    """The one rule for which families are ranked (named best, ordered by mae in the saved
    view, on a Pareto front): those that FINISHED with a mae having priced every item.

    A family's mae is over the items it priced: one that left some unpriced (an LLM's
    refusals, within eval.max_failure_rate) is measured on other, perhaps easier, items, and
    its mae is not comparable with the others'. It is still listed, after the ranked ones, and
    said to be incomplete (``INCOMPLETE``) wherever it is.
    """
    ranks = _scored(table)
    if "failure_rate" in table:
        ranks &= table["failure_rate"].astype(float).fillna(0.0) == 0.0
    return ranks


def incomplete(table: pd.DataFrame) -> pd.Series:
    """Families that finished with a mae over only some of the items (not ranked)."""
    return _scored(table) & ~rankable(table)


def _scored(table: pd.DataFrame) -> pd.Series:
    """Families that FINISHED with a mae, over all of the items or some."""
    if "mae" not in table:
        return pd.Series(False, index=table.index)
    finished = table["status"] == "FINISHED" if "status" in table else True
    return (pd.Series(finished, index=table.index) & table["mae"].map(_known)).astype(bool)


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard in the order the saved view shows its family runs: the ranked families
    (``rankable``) by mae, those of equal mae in ``listed_order`` (the run that started later
    first); then the incomplete ones, which have no ``RANKED_MAE`` for the view to sort by,
    in ``listed_order`` as MLflow lists runs its sort cannot tell apart; then those the view
    does not show (failed, no mae).

    The view holds one sort key, the UI's, and MLflow breaks ties by its own natural order;
    the terminal kept the order the families ran in, so two families of equal mae were
    listed, and named best, one way there and the other way in the view. Only tied and
    incomplete families' runs are read for their start times.
    """
    if "mae" not in table:
        return table
    mae = table["mae"].astype(float)
    ranks, unranked = rankable(table), incomplete(table)
    tied = mae.where(ranks).duplicated(keep=False) & ranks
    ids = table["run_id"].astype(str) if "run_id" in table else pd.Series("", index=table.index)
    starts = {family: started(ids[family]) for family in table.index[tied | unranked]}

    def key(family: Any) -> tuple[int, float, tuple[bool, int, str], str]:
        value = mae[family]
        order = listed_order(ids[family], starts.get(family))
        if ranks[family]:
            return (0, value, order, str(family))
        if unranked[family]:
            return (1, 0.0, order, str(family))
        return (2, value if _known(value) else math.inf, (False, 0, ids[family]), str(family))

    return table.loc[sorted(table.index, key=key)]


def best_family(table: pd.DataFrame) -> tuple[str, float] | None:
    """The ranked family (``rankable``: it priced every item) with the lowest mae, the first
    of those tied for it (in the table's order: ``ranked``'s once logged); None when no
    family is ranked, even when some priced only part of the items."""
    tied = best_families(table)
    return None if tied is None else (tied[0][0], tied[1])


def best_families(table: pd.DataFrame) -> tuple[list[str], float] | None:
    """Every family that could be best (see ``best_family``) with the lowest mae, in the
    table's order, and that mae.

    Tied when their maes are equal exactly, not to the cent as shown: two maes a fraction of
    a cent apart are ordered by their value alike in the terminal and in the view, and their
    intervals say whether that gap means anything; equal ones are ordered by neither, and
    naming one of them best said what the figures do not.
    """
    ranks = rankable(table)
    if not ranks.any():
        return None
    maes = table.loc[ranks, "mae"].astype(float)
    best = float(maes.min())
    return [str(family) for family in maes.index[maes == best]], best


def unanswered_notes(table: pd.DataFrame) -> list[str]:
    """A line per incomplete family (it left items unanswered): its mae is over fewer items,
    and it is not ranked."""
    if not {"failure_rate", "n", "n_failed"} <= set(table.columns):
        return []
    rows = table[incomplete(table)]
    return [  # n counts the items priced, n_failed the others
        f"{family}: incomplete, mae over the {int(row['n'])} of "
        f"{int(row['n']) + int(row['n_failed'])} items it priced ({int(row['n_failed'])} "
        "unanswered): not ranked, as only families that priced every item are (best, the "
        "saved view's order, the Pareto front)"
        for family, row in rows.iterrows()
    ]


def parent_metrics(table: pd.DataFrame) -> dict[str, float]:
    """``mae.<family>`` for every family with a mae, and ``best_mae``."""
    metrics = {f"mae.{family}": float(v) for family, v in table["mae"].items() if _known(v)}
    best = best_family(table)
    if best is not None:
        metrics["best_mae"] = best[1]
    return metrics


# The MLflow UI (3.17) shows a run's description collapsed to its first 100 pixels, the lower
# 60 of them fading out under "Show more": two lines of text read plainly, the wide table's
# header and first row only faintly. The lines shown there are kept to this many characters:
# one line each in the narrowest description column measured, 537 pixels (a 1600-pixel
# window) in DejaVu Sans, the only font of a bare Debian (the UI's own fonts are not there),
# where a line of 87 characters took 577 pixels and its wrapped end went into the fade. 110
# fitted a narrower fallback font at 1920 pixels.
GLANCE_WIDTH = 80
# Two spaces end a Markdown line with a line break: the next line stays in the same
# paragraph, without a paragraph's margin between them (which pushed it into the fade).
LINE_BREAK = "  "


def at_a_glance(table: pd.DataFrame, data: str) -> list[str]:
    """The description's first lines, which the UI shows before "Show more": who won and by
    how much (the best family's mae, its lead over the next), then the ranked families best
    first with their mae and interval, as many as fit ``GLANCE_WIDTH``; the first line ends
    in a line break when the second follows it.

    The description opened on the best line and the wide table: collapsed, the UI showed the
    table's header and one row, so the runner-up and the gap to it were a click away.
    """
    best = best_families(table)
    if not best:
        if incomplete(table).any():
            return [f"No family priced every item on {data} data: none is ranked."]
        return [f"No family finished on {data} data."]
    tied, mae = best
    headline = f"**Best: {_named(tied)}, mae {_dollars(mae)}** on {data} data"
    maes = table["mae"].astype(float)
    # Stable: families of equal mae stay in the table's order (the view's, once ranked).
    ranked_families = sorted(map(str, table.index[rankable(table)]), key=lambda f: maes[f])
    others = [family for family in ranked_families if family not in tied]
    if not others:  # no other family ranked: no lead, no list
        return [f"{headline}."]
    runner_up = others[0]
    headline += f": {_dollars(float(maes[runner_up]) - mae)} less than {runner_up}."
    # The intervals, when the best and the runner-up fit with theirs; else the maes alone, so
    # that the line does not wrap into the fade (ties and long names make it wider).
    line = _ranked_line(table, [*tied, *others], len(tied), with_ci=True)
    if len(line) > GLANCE_WIDTH:
        line = _ranked_line(table, [*tied, *others], len(tied), with_ci=False)
    return [headline + LINE_BREAK, line]


def _ranked_line(table: pd.DataFrame, families: list[str], n_tied: int, *, with_ci: bool) -> str:
    """The "By mae" line over ``families`` in order, as many as fit ``GLANCE_WIDTH``; the
    tied best and the runner-up always (so the line may be longer)."""
    with_ci = with_ci and {"mae_ci_low", "mae_ci_high"} <= set(table.columns)
    maes = table["mae"].astype(float)
    line = "By mae (95% CI):" if with_ci else "By mae:"
    for count, family in enumerate(families):
        entry = f"{family} {_dollars(float(maes[family]))}"
        if with_ci:
            lo, hi = table.loc[family, "mae_ci_low"], table.loc[family, "mae_ci_high"]
            if _known(lo) and _known(hi):
                entry += f" ({interval(float(lo), float(hi), around=float(maes[family]))})"
        longer = f"{line} {entry}" if count == 0 else f"{line} · {entry}"
        if count > n_tied and len(longer) > GLANCE_WIDTH:  # the runner-up always shown
            break
        line = longer
    return line


def description(
    table: pd.DataFrame,
    data: str,
    notes: Sequence[str] = (),
    tradeoff: pd.DataFrame | None = None,
    families_link: str | None = None,
    view_left: bool = False,
) -> str:
    """The parent run's Markdown description: who won and by how much (``at_a_glance``: what
    the UI shows before "Show more"), the table, where the figures come from,
    and the trade-off of accuracy against cost and latency when it is known; a link to the
    family runs side by side in the UI's runs table when there is one, or (``view_left``) why
    there is none."""
    parts = [*at_a_glance(table, data), "", markdown_table(display_table(table, width=None))]
    for note in notes:
        parts += ["", note]
    if tradeoff is not None:
        parts += ["", TRADEOFF_HEADING, "", markdown_table(display_tradeoff(tradeoff))]
    # Under both tables, so it names both files (it stood under the trade-off naming one).
    files = "`leaderboard/leaderboard.csv`"
    files += f", `{TRADEOFF_FILE}`" if tradeoff is not None else ""
    parts += ["", f"Rounded for reading; unrounded figures: {files}."]
    if families_link:
        parts += ["", f"[The family runs side by side, {view_order(table)}]({families_link})"]
    elif view_left:  # a link to the view would open another leaderboard's families
        parts += ["", f"{VIEW_LEFT} of {data} data, which shows finished leaderboards only."]
    return "\n".join(parts)


def run_url(run: Any, ui_url: str | None) -> str:
    """The run's page in the MLflow UI (opened on model training, not the GenAI overview)."""
    base = ui_base(ui_url).rstrip("/")
    experiment, run_id = run.info.experiment_id, run.info.run_id
    return f"{base}/#/experiments/{experiment}/runs/{run_id}?workflowType=machine_learning"


def run_line(run: Any, ui_url: str | None) -> str:
    """The terminal's line opening the leaderboard's run page, saying what it holds: printed
    after the families line (the comparison), which answers the question first."""
    return f"{RUN_LINE}{run_url(run, ui_url)}"


def view_order(table: pd.DataFrame) -> str:
    """How the saved view orders the family runs, as its title and the description's link say
    it: with every family incomplete none has the ``RANKED_MAE`` it sorts by, and "best mae
    first" named an order the view did not have."""
    if rankable(table).any():
        return "best mae first"
    return NONE_RANKED


def families_view(table: pd.DataFrame, data: str, parent_run_id: str) -> RunsView:
    """The UI's runs page on this leaderboard's family runs, best first: sorted by
    ``RANKED_MAE``, so the incomplete families, which have none (a blank in its column), come
    after the ranked ones."""

    def known(column: str) -> bool:
        return column in table.columns and table[column].map(_known).any()

    return RunsView(
        key=leaderboard_key(data),
        name=f"pricer · {data}: latest finished leaderboard, {view_order(table)}",
        search_filter=children_filter(parent_run_id),
        order_by=RANKED_MAE,
        ascending=True,
        columns=[RANKED_MAE, *(column for column in VIEW_COLUMNS if known(column))],
        charts=[column for column in VIEW_CHARTS if known(column)],
        section=f"Leaderboard · {data}",
    )


def families_lead(table: pd.DataFrame) -> str:
    """What the terminal says before the saved view's address: the order the view's title
    names. With every family incomplete it said "best first" of a view that ranks none."""
    if rankable(table).any():
        return FAMILIES_LINE
    return f"families, {NONE_RANKED}: "


def shown_order(run_id: str) -> str:
    """How the saved view orders leaderboard ``run_id``'s families, said where a failed
    leaderboard names the one the view still shows: one that ranked none logged no
    ``best_mae`` (a run deleted since is read as the usual order)."""
    try:
        metrics = mlflow.MlflowClient().get_run(run_id).data.metrics
    except mlflow.exceptions.MlflowException:
        return "best first"
    return "best first" if "best_mae" in metrics else NONE_RANKED


def families_line(run: Any, table: pd.DataFrame, ui_url: str | None) -> str | None:
    """The terminal's line opening the saved view of ``run``'s family runs (``table``, its
    leaderboard), None when the view of its data shows another leaderboard's (a later one took
    it over) or there is none."""
    data = run.data.tags.get(tags.DATA)
    if not data:
        return None
    url = children_view_url(mlflow.MlflowClient(), run, leaderboard_key(data), ui_url)
    return None if url is None else f"{families_lead(table)}{url}"


def log_leaderboard(
    table: pd.DataFrame,
    *,
    data: str,
    notes: Sequence[str] = (),
    ui_url: str | None = None,
    tradeoff: pd.DataFrame | None = None,
    labels: Mapping[str, str] | None = None,
) -> None:
    """Log the leaderboard on the active (parent) run and print it for the terminal.

    ``notes`` are lines said under the table (whose the ``course mae`` figures are, which
    server answered an LLM family); ``labels`` rename families on the charts, where no note
    stands beside a point (``frontier (127.0.0.1:8765)``);
    ``tradeoff`` is ``pricer.evaluation.tradeoff.tradeoff_table``'s table: logged with the
    error-against-cost and error-against-latency charts, Pareto front marked.
    """
    run = mlflow.active_run()
    table = ranked(table)  # as the view lists the family runs: csv, description, terminal
    tied = best_families(table)  # the first is the view's top row: the best_family tag
    best = None if tied is None else (tied[0][0], tied[1])
    notes = [*notes, *unanswered_notes(table)]
    # Only a leaderboard that finishes takes its data's view over. One with a failed family
    # ends FAILED (pricer.experiment.LeaderboardIncomplete): it took the view, and with it the
    # families line, from the last finished leaderboard on that data, which pointed nowhere.
    finishes = "status" not in table or bool((table["status"] == "FINISHED").all())
    view = None if run is None or not finishes else families_view(table, data, run.info.run_id)
    # Relative: the description is read in the UI, at whatever address it is served from.
    link = None if view is None else view_url("", run.info.experiment_id, view.key)
    # What people read (the run's description, the terminal) shows every family's cost.
    shown = table if tradeoff is None else table.assign(**{COST: tradeoff[COST]})
    mlflow.log_metrics(parent_metrics(table))
    mlflow.set_tags(
        {
            NOTE_TAG: description(
                shown, data, notes, tradeoff, families_link=link, view_left=view is None
            ),
            **({tags.BEST_FAMILY: best[0]} if best else {}),
        }
    )
    mlflow.log_table(table.reset_index(), "leaderboard/leaderboard.json")
    # With the whole cost, so that `pricer runs RUN` prints the table the terminal printed.
    mlflow.log_text(shown.to_csv(), "leaderboard/leaderboard.csv")
    mlflow.log_text("".join(f"{note}\n" for note in notes), NOTES_FILE)
    title = f"Mean absolute error by family, {data} data"
    renamed = dict(labels or {})
    for family in table.index[incomplete(table)]:  # said wherever a family is listed
        renamed[family] = f"{renamed.get(family, family)} ({INCOMPLETE})"
    chart = leaderboard_chart(
        table.rename(index=renamed), title, ranked=rankable(table).rename(index=renamed)
    )
    mlflow.log_figure(chart, "leaderboard/mae_by_family.png")
    if tradeoff is not None:
        tradeoff_charted = tradeoff.rename(index=renamed)
        mlflow.log_table(tradeoff.reset_index(), TRADEOFF_FILE)
        cost = cost_chart(tradeoff_charted, f"Error against cost per 1,000 items, {data} data")
        mlflow.log_figure(cost, "leaderboard/mae_vs_cost.png")
        latency = latency_chart(tradeoff_charted, f"Error against latency per item, {data} data")
        mlflow.log_figure(latency, "leaderboard/mae_vs_latency.png")
    if view is not None:  # last: a leaderboard that fails logging the above leaves it alone
        client = mlflow.MlflowClient()
        log_ranked_maes(client, table)
        save_view(client, run.info.experiment_id, view)
    print("", display_table(shown).to_string(), sep="\n", flush=True)
    for line in terminal_notes(notes):
        print(line, flush=True)
    if tradeoff is not None:
        print("", *tradeoff_lines(tradeoff), sep="\n", flush=True)
    if tied:
        print(best_line(*tied, data), flush=True)
    if run is not None and view is not None:
        # The comparison first: the view answers "which family is best", the run page holds
        # the tables and charts behind it (and, at 1600 pixels, shows its description last).
        families = view_url(ui_base(ui_url), run.info.experiment_id, view.key)
        print(f"{families_lead(table)}{families}", flush=True)
        print(run_line(run, ui_url), flush=True)
    elif run is not None:  # which leaderboard the view still shows: not this one's families
        print(run_line(run, ui_url), flush=True)  # this leaderboard's own figures: first
        line = unchanged_line(
            mlflow.MlflowClient(),
            run.info.experiment_id,
            leaderboard_key(data),
            view=f"the saved view of {data} data",
            why="families failed: it shows finished leaderboards only",
            shows="leaderboard {id}'s families",
            ui_url=ui_url,
            order=shown_order,
        )
        print(line, flush=True)


def log_ranked_maes(client: mlflow.MlflowClient, table: pd.DataFrame) -> None:
    """``RANKED_MAE`` on each ranked family's run: the key the saved view sorts by."""
    if "run_id" not in table:
        return
    for family in table.index[rankable(table)]:
        run_id = str(table.loc[family, "run_id"])
        if not run_id:  # a family whose run was never started
            continue
        try:
            client.log_metric(run_id, RANKED_MAE, float(table.loc[family, "mae"]))
        except mlflow.exceptions.MlflowException as error:
            # A run deleted meanwhile is not in the view to sort; any other error is raised.
            # Deleted in the UI (or `mlflow runs delete`), a run is kept but refused as not
            # active (INVALID_PARAMETER_VALUE), not as missing: this leaderboard then failed
            # at its very end, its view unsaved.
            if error.error_code != "RESOURCE_DOES_NOT_EXIST" and not _deleted(client, run_id):
                raise


def terminal_notes(notes: Sequence[str]) -> list[str]:
    """The notes under the table as the terminal shows them: within the table's width
    (``TERMINAL_WIDTH``), each note's further lines indented under its first. The course's
    note was 158 characters on one line beside a table kept to 100. An address or a word
    longer than the width stays whole (cut, it would not open); the run's description and
    its notes file keep each note on one line (Markdown reflows it)."""
    return [
        line
        for note in notes
        for line in textwrap.wrap(
            note,
            width=TERMINAL_WIDTH,
            subsequent_indent="  ",
            break_long_words=False,
            break_on_hyphens=False,
        )
        or [note]  # a blank note stays a blank line
    ]


def _deleted(client: mlflow.MlflowClient, run_id: str) -> bool:
    """Whether ``run_id`` is deleted (or gone altogether)."""
    try:
        return client.get_run(run_id).info.lifecycle_stage == "deleted"
    except mlflow.exceptions.MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return True
        raise


def tradeoff_lines(tradeoff: pd.DataFrame) -> list[str]:
    """The trade-off table for the terminal, under its heading (``pricer runs RUN`` too)."""
    shown = display_tradeoff(tradeoff, width=TERMINAL_WIDTH)
    return [TRADEOFF_HEADING, shown.to_string()]


def best_line(families: Sequence[str], mae: float, data: str | None) -> str:
    """The best line: "best: xgboost, mae $92.78 on real data"; families tied for it all named,
    in the order the table and the saved view list them: "best: linear, tfidf_ridge (tied, mae
    $25.05)"."""
    where = f" on {data} data" if data else ""
    if len(families) > 1:
        return f"best: {', '.join(families)} (tied, mae {_dollars(mae)}){where}"
    return f"best: {families[0]}, mae {_dollars(mae)}{where}"


def _named(families: Sequence[str]) -> str:
    return families[0] if len(families) == 1 else f"{', '.join(families)} (tied)"


def family_run_id(family: str) -> str:
    """The id of ``family``'s latest child run under the active run ('' if it has none).

    For a family that failed: its own run, not the parent (``mlflow.last_active_run()`` is the
    parent while the parent is open) nor the previous family's run (when the failure came
    before its run started).
    """
    parent = mlflow.active_run()
    if parent is None:
        return ""
    runs = mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=(
            f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
            f" AND tags.`{tags.FAMILY}` = '{family}'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return runs[0].info.run_id if runs else ""
