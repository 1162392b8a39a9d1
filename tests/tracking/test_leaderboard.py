"""The leaderboard as a person reads it: terminal table, parent run metrics and description."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pricer.tracking import names
from pricer.tracking.leaderboard import (
    GLANCE_WIDTH,
    TERMINAL_WIDTH,
    at_a_glance,
    best_family,
    description,
    display_table,
    families_view,
    parent_metrics,
    ranked,
    unanswered_notes,
)
from pricer.tracking.run import SWEEP_TAGS_ENV
from tests.conftest import compose_config

NAN = float("nan")


def board(**extra: list[float]) -> pd.DataFrame:
    """A leaderboard table as pricer.experiment builds it, with every configured column."""
    columns = list(compose_config("leaderboard").columns)
    rows = {
        "xgboost": {"mae": 92.781234, "mae_ci_low": 80.2, "mae_ci_high": 107.4},
        "constant": {"mae": 144.7912, "mae_ci_low": 127.0, "mae_ci_high": 166.1},
        "frontier": {"mae": NAN},
    }
    table = pd.DataFrame(
        {
            family: {
                **{c: values.get(c, 0.123456 if c != "mae" else NAN) for c in columns},
                # Each finished family priced every item (one that did not is not ranked).
                **{c: 0.0 for c in ("failure_rate", "n_failed") if c in columns},
                "status": "FAILED" if np.isnan(values["mae"]) else "FINISHED",
                "run_id": "f" * 32,
            }
            for family, values in rows.items()
        }
    ).T
    for column in columns:  # LLM and human figures: no classical family has them
        if column.startswith(("llm.", "human.")):
            table[column] = NAN
    for column, values in extra.items():
        table[column] = values
    table.index.name = "family"
    return table.astype({c: float for c in columns})


def test_the_terminal_table_fits_100_columns_with_dollars_and_no_empty_columns() -> None:
    shown = display_table(board())
    text = shown.to_string()
    assert max(map(len, text.splitlines())) <= TERMINAL_WIDTH
    assert not any(column.startswith(("$/1k", "p50", "p95", "items/s")) for column in shown)
    assert shown.loc["xgboost", "mae"] == "$92.78" and shown.loc["xgboost", "95% CI"] == "80-107"
    assert shown.loc["frontier", "mae"] == "" and shown.loc["frontier", "status"] == "FAILED"
    assert "0.123" not in text  # rounded for reading: no three-decimal noise
    # Every configured column filled in (an LLM leaderboard) still fits, dropping the least read.
    full = board(**{c: [0.5, 0.5, 0.5] for c in compose_config("leaderboard").columns[6:]})
    assert max(map(len, display_table(full).to_string().splitlines())) <= TERMINAL_WIDTH
    assert "$/1k items" in display_table(full).columns


def test_with_the_trade_off_every_family_shows_its_cost_per_1000_items() -> None:
    # The column showed only an LLM's token cost: classical families had a blank, read as $0.
    costs = {"xgboost": 0.00078, "constant": 1.9e-07, "frontier": 0.0342}
    shown = display_table(board().assign(cost_per_1k_usd=pd.Series(costs)))
    assert shown["$/1k items"].to_dict() == {
        "xgboost": "$0.00078",
        "constant": "$0.00000019",  # "<$0.001" before: as cheap as xgboost, to read
        "frontier": "$0.034",
    }


def test_a_scored_family_of_unknown_cost_says_so_rather_than_a_blank() -> None:
    # A person's guesses with no time noted, an LLM missing from the catalogue: a blank cell
    # beside "$0.001" read as free. A family that failed has no figures at all.
    costs = {"xgboost": 0.00078, "constant": NAN, "frontier": NAN}
    shown = display_table(board().assign(cost_per_1k_usd=pd.Series(costs)))
    assert shown["$/1k items"].to_dict() == {
        "xgboost": "$0.00078",
        "constant": "unknown",
        "frontier": "",
    }
    timed = {"xgboost": 0.00078, "constant": 375.0, "frontier": NAN}  # a person's time
    shown = display_table(board().assign(cost_per_1k_usd=pd.Series(timed)))
    assert shown.loc["constant", "$/1k items"] == "$375"


def test_parent_metrics_and_best_family_skip_failed_families() -> None:
    table = board()
    assert best_family(table) == ("xgboost", pytest.approx(92.781234))
    metrics = parent_metrics(table)
    assert metrics == {
        "mae.xgboost": pytest.approx(92.781234),
        "mae.constant": pytest.approx(144.7912),
        "best_mae": pytest.approx(92.781234),
    }


def test_description_renders_the_rounded_table_and_the_course_figures_only_when_given() -> None:
    table = board(reference_mae=[NAN, 146.0, 80.0])
    text = description(table, "real", ["course mae: the course's published figures"])
    lines = text.splitlines()
    assert lines[0].startswith("**Best: xgboost, mae $92.78** on real data")
    header = next(line for line in lines if line.startswith("| family"))
    gap = "&nbsp;&nbsp;"  # the UI pads no cell: "$92.7880-107" without it
    assert "course mae" in header and f"| {gap}$146 |" in text and "course's published" in text
    assert f"| xgboost | {gap}$92.78 | {gap}80-107 |" in text
    assert "92.781" not in text  # the data stays unrounded in the CSV, not here
    plain = description(board(), "synthetic")
    assert "course" not in plain and "on synthetic data" in plain


def test_the_description_opens_on_who_won_and_by_how_much_before_the_wide_table() -> None:
    # The MLflow UI shows a description collapsed to two lines of text: the best line, then
    # the wide table's header. Who came next, and how far behind, was under "Show more".
    extra = {
        "svr": (97.9, 86.0, 112.0),
        "tfidf_ridge": (97.47, 85.2, 111.4),
        "random_forest": (97.85, 85.0, 113.0),
        "linear": (127.06, 112.0, 143.0),
        "bow_linear": (135.99, 121.0, 153.0),
    }
    table = pd.concat([board()] + [board().iloc[[0]].rename(index={"xgboost": f}) for f in extra])
    for family, (mae, low, high) in extra.items():
        table.loc[family, ["mae", "mae_ci_low", "mae_ci_high"]] = [mae, low, high]
    headline, compact, blank, header = description(table, "real").splitlines()[:4]
    # One paragraph, broken after the best line (two spaces): no margin pushes the second
    # line into the fade.
    assert headline == "**Best: xgboost, mae $92.78** on real data: $4.69 less than tfidf_ridge.  "
    assert compact == "By mae (95% CI): xgboost $92.78 (80-107) · tfidf_ridge $97.47 (85-111)"
    assert len(compact) <= GLANCE_WIDTH and blank == "" and header.startswith("| family |")
    shown = [entry.split()[0] for entry in compact.split(": ", 1)[1].split(" · ")]
    assert shown == ["xgboost", "tfidf_ridge", "random_forest", "svr"][: len(shown)]
    # Tied families are named together and the lead is over the next one; a family that left
    # items unpriced (frontier's 40 over fewer items) or failed is never the runner-up.
    tied = table.copy()
    tied.loc["tfidf_ridge", "mae"] = tied.loc["xgboost", "mae"]
    tied.loc["frontier", ["mae", "status", "failure_rate"]] = [40.0, "FINISHED", 0.04]
    first, second = at_a_glance(tied, "real")
    assert first == (
        "**Best: xgboost, tfidf_ridge (tied), mae $92.78** on real data: "
        "$5.07 less than random_forest.  "
    )
    # Two tied and the runner-up with their intervals would wrap: their maes alone.
    assert second.startswith("By mae: xgboost $92.78 · tfidf_ridge $92.78 · random_forest $97.85")
    assert len(second) <= GLANCE_WIDTH
    assert "frontier" not in first + second
    # One ranked family: no lead, no list; none ranked: said so.
    assert at_a_glance(board(), "real")[1].endswith("constant $144.79 (127-166)")
    alone = board().drop(index="constant")
    assert at_a_glance(alone, "real") == ["**Best: xgboost, mae $92.78** on real data."]
    assert at_a_glance(board().drop(index=["xgboost", "constant"]), "real") == [
        "No family finished on real data."
    ]


def test_run_and_model_names_tell_family_data_and_trial_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SWEEP_TAGS_ENV, raising=False)
    assert names.family_run_name("xgboost", "real") == "xgboost · real"
    assert names.leaderboard_run_name("synthetic") == "leaderboard · synthetic"
    assert names.model_name("xgboost", "real") == "xgboost-real"
    trial = {
        "pricer.sweep.trial": "3",
        "pricer.sweep.overrides": json.dumps(["model=svr", "model.C=0.5", "validation.size=9"]),
    }
    monkeypatch.setenv(SWEEP_TAGS_ENV, json.dumps(trial))
    assert names.family_run_name("svr", "real") == "svr · real · C=0.5"
    trial["pricer.sweep.overrides"] = json.dumps(["seed=1"])
    monkeypatch.setenv(SWEEP_TAGS_ENV, json.dumps(trial))
    assert names.family_run_name("svr", "real") == "svr · real · trial 3"


def test_labels_rename_families_on_the_charts_only(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from pricer.evaluation.tradeoff import ComputePrice, tradeoff_table
    from pricer.tracking import leaderboard

    charted: dict[str, list[str]] = {}

    def spy(name: str, chart):  # the chart as drawn, and which families it names
        def drawn(table: pd.DataFrame, title: str, **options):
            charted[name] = list(table.index)
            return chart(table, title, **options)

        return drawn

    for name in ("leaderboard_chart", "cost_chart", "latency_chart"):
        monkeypatch.setattr(leaderboard, name, spy(name, getattr(leaderboard, name)))
    table = board(n=[250.0, 250.0, 250.0])
    table.loc["frontier", ["mae", "llm.cost_per_1k_items_usd"]] = [377.0, 0.03]
    tradeoff = tradeoff_table(table, ComputePrice(cpu_hour_usd=0.05, cpus=2))
    label = {"frontier": "frontier (127.0.0.1:8765)"}
    with mlflow.start_run():
        leaderboard.log_leaderboard(table, data="real", tradeoff=tradeoff, labels=label)
    for name, families in charted.items():
        assert "frontier (127.0.0.1:8765)" in families and "frontier" not in families, name
    assert list(tradeoff.index).count("frontier") == 1  # the logged tables keep the family


def test_the_bar_chart_lists_an_incomplete_family_after_the_ranked_ones(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # frontier left items unpriced: its mae over the others, lower than any, topped the chart
    # ("best model on top") while the tables and the saved view list it after the ranked.
    import mlflow

    from pricer.tracking.leaderboard import log_leaderboard

    figures = {}
    monkeypatch.setattr(mlflow, "log_figure", lambda fig, path: figures.update({path: fig}))
    table = board(n=[250.0, 250.0, 240.0])
    table.loc["frontier", ["mae", "failure_rate", "n_failed", "status"]] = [
        50.0,
        0.04,
        10.0,
        "FINISHED",
    ]
    with mlflow.start_run():
        log_leaderboard(table, data="real")
    axes = figures["leaderboard/mae_by_family.png"].axes[0]
    assert [label.get_text() for label in axes.get_yticklabels()] == [
        "xgboost",
        "constant",
        "frontier (incomplete)",
    ]


def test_the_notes_under_the_table_keep_to_its_width_in_the_terminal(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The course's note (the real leaderboard's, as conf/leaderboard.yaml has it) was one line
    # of 158 characters under a table kept to 100, printed so again by `pricer runs RUN`.
    import mlflow

    from pricer.tracking import browse
    from pricer.tracking.leaderboard import log_leaderboard

    course = compose_config("leaderboard").reference_note
    address = "http://127.0.0.1:8796/v1/" + "x" * 90  # longer than the width: kept whole
    server = f"frontier: answered by {address}"
    table = board(reference_mae=[NAN, 146.0, 80.0]).drop(index="frontier")
    with mlflow.start_run(tags={"pricer.kind": "leaderboard", "pricer.data": "real"}) as run:
        log_leaderboard(table, data="real", notes=[course, server])
    printed = capsys.readouterr().out.splitlines()
    first = next(i for i, line in enumerate(printed) if line.startswith("course mae: "))
    second = next(i for i, line in enumerate(printed) if line.startswith("frontier: answered"))
    under = printed[first:second]
    assert len(under) > 1 and all(len(line) <= 100 for line in under), under
    assert all(line.startswith("  ") for line in under[1:])  # one note: its lines indented
    assert " ".join(line.strip() for line in under) == course  # every word of it kept
    assert printed[second + 1] == f"  {address}"  # it would not open cut
    # `pricer runs RUN` prints them as the leaderboard did; the description keeps one line.
    stored = mlflow.get_run(run.info.run_id)
    shown = browse.leaderboard_notes(stored, table)
    assert shown[: len(under) + 2] == printed[first : second + 2]
    assert f"\n\n{course}\n\n" in stored.data.tags["mlflow.note.content"]


def test_a_family_that_left_items_unanswered_is_not_crowned_over_complete_ones() -> None:
    # Its mae is over the items it answered: 12 refusals of the hardest items made an LLM
    # "best" at $15 against a complete family's $27.
    table = board(failure_rate=[0.0, 0.0, NAN])
    table.loc["frontier", ["mae", "status", "failure_rate"]] = [15.18, "FINISHED", 0.048]
    assert best_family(table) == ("xgboost", pytest.approx(92.781234))
    table.loc[:, ["n", "n_failed"]] = [[250, 0], [250, 0], [238, 12]]
    assert unanswered_notes(table) == [
        "frontier: incomplete, mae over the 238 of 250 items it priced (12 unanswered): not "
        "ranked, as only families that priced every item are (best, the saved view's order, "
        "the Pareto front)"
    ]
    # With no complete family none is ranked: the partial one is not named best (it was).
    only = table.loc[["frontier"]]
    assert best_family(only) is None and "best_mae" not in parent_metrics(only)
    assert description(only, "real").startswith(
        "No family priced every item on real data: none is ranked."
    )
    # Its saved view has no mae to sort by: titled "best mae first", it said an order it had
    # not. The description's link to it says the same as its title.
    for shown, said in ((table, "best mae first"), (only, "none ranked (every family incomplete)")):
        title = families_view(shown, "real", "p" * 32).name
        assert title == f"pricer · real: latest finished leaderboard, {said}"
        link = description(shown, "real", families_link="#/view").splitlines()[-1]
        assert link == f"[The family runs side by side, {said}](#/view)"
    # Listed, after the ranked families, and said to be incomplete.
    assert display_table(ranked(table))["status"].to_dict() == {
        "xgboost": "FINISHED",
        "constant": "FINISHED",
        "frontier": "incomplete",
    }


def test_the_table_shows_each_run_s_interval_as_its_line_does() -> None:
    # A run missed the two items it priced by $815.50 each: its line and the table both hold
    # the mae shown.
    from pricer.evaluation.report import evaluate
    from pricer.schemas import EvalSettings

    settings = EvalSettings.from_config(compose_config("train").eval)
    run = evaluate([100.0, 200.0, 300.0], [915.5, 1015.5, NAN], settings=settings)
    table = board()
    for column in ("mae", "mae_ci_low", "mae_ci_high"):
        table.loc["xgboost", column] = run.metrics[column]
    shown = display_table(table).loc["xgboost", "95% CI"]
    assert shown == "815-816" and f"(95% CI {shown})" in run.summary_line("xgboost")


def test_the_best_family_is_complete_whatever_columns_the_table_shows() -> None:
    # With columns=[mae] the table had no failure_rate: the LLM that priced 48 of 50 items
    # (its mae over the easier ones) was best_family over the constant that priced all 50.
    from pricer.experiment import FamilyResult, leaderboard_table

    complete = {"mae": 80.03, "n": 50.0, "n_failed": 0.0, "failure_rate": 0.0}
    partial = {"mae": 77.94, "n": 48.0, "n_failed": 2.0, "failure_rate": 0.04}
    results = [
        FamilyResult("constant", "c" * 32, "FINISHED", complete),
        FamilyResult("frontier", "f" * 32, "FINISHED", partial),
    ]
    table = leaderboard_table(results, ["mae"], {})
    assert best_family(table) == ("constant", pytest.approx(80.03))
    assert unanswered_notes(table)[0].startswith("frontier: incomplete, mae over the 48 of 50")
