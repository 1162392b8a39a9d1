"""The trade-off table (cost and latency of every family) and its two charts."""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from pricer.evaluation.tradeoff import (
    COST,
    LATENCY,
    TABLE_COLUMNS,
    cost_chart,
    display_tradeoff,
    latency_chart,
    pareto_front,
    significant,
    tradeoff_table,
)
from pricer.schemas import ComputePrice
from pricer.settings import ConfigError
from tests.conftest import compose_config

NAN = math.nan
PRICE = ComputePrice(cpu_hour_usd=0.05, cpus=2)  # $0.10 an hour for the machine


def board() -> pd.DataFrame:
    """A leaderboard as pricer.experiment builds it: classical and LLM rows, NaN where none."""
    rows = {
        "constant": [146.0, 130.0, 160.0, 0.01, 0.01, NAN, NAN, NAN],
        "xgboost": [90.0, 80.0, 100.0, 35.95, 0.05, NAN, NAN, NAN],
        "svr": [95.0, 85.0, 105.0, 71.5, 0.5, NAN, NAN, NAN],
        "frontier": [80.0, 70.0, 90.0, 0.0, 9.0, 0.03, 0.4, 27.0],
        "frontier_rag": [70.0, 62.0, 78.0, 3.6, 10.0, 0.09, 0.5, 25.0],
        "local_llm": [120.0, 100.0, 140.0, 0.0, 90.0, NAN, 2.0, 2.8],  # not in the catalogue
    }
    columns = [
        "mae",
        "mae_ci_low",
        "mae_ci_high",
        "time.fit_seconds",
        "time.predict_seconds",
        "llm.cost_per_1k_items_usd",
        "llm.latency_p50_s",
        "llm.items_per_second",
    ]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    table["status"] = "FINISHED"
    table.index.name = "family"
    return table


def test_pareto_front_keeps_only_undominated_points() -> None:
    cost = [1.0, 2.0, 3.0, 2.0, NAN, 0.5]
    error = [10.0, 5.0, 6.0, 5.0, 1.0, 20.0]
    # (3, 6) is beaten by (2, 5); the two (2, 5) tie and both stay; NaN is never on it.
    assert pareto_front(cost, error).tolist() == [True, True, False, True, False, True]
    assert pareto_front([], []).tolist() == []


def test_every_family_is_priced_and_none_is_free() -> None:
    table = tradeoff_table(board(), PRICE, n_items=250)
    assert list(table.columns) == TABLE_COLUMNS
    assert list(table.index) == [
        "frontier_rag",
        "frontier",
        "xgboost",
        "svr",
        "local_llm",
        "constant",
    ]
    # xgboost: 35.95 + 0.05 s of a $0.10/h machine = $0.001 for 250 items = $0.004 per 1,000.
    assert table.loc["xgboost", COST] == pytest.approx(0.004)
    assert table.loc["xgboost", "tokens_per_1k_usd"] == 0.0
    classical = table.loc[["constant", "xgboost", "svr"]]
    assert (classical[COST] > 0).all()
    # frontier: 9 s of machine ($0.00025 / 250 items) plus $0.03 of tokens per 1,000 items.
    assert table.loc["frontier", COST] == pytest.approx(0.03 + 0.001)
    assert table.loc["frontier", "compute_per_1k_usd"] == pytest.approx(0.001)
    assert math.isnan(table.loc["local_llm", COST])  # unknown token price: unknown, not $0
    assert table.loc["local_llm", LATENCY] == 2.0


def test_llm_calls_made_at_fit_are_amortised_over_the_items_like_fit_seconds() -> None:
    # An ensemble with an LLM member: $0.03 per 1,000 test items, and $0.005 for the 150
    # validation items its member priced at fit, a one-off over the 250 evaluated: +$0.02.
    with_member = board()
    with_member.loc["ensemble"] = [85.0, 75.0, 95.0, 0.0, 9.0, 0.03, NAN, NAN, "FINISHED"]
    with_member["llm.fit_cost_usd"] = NAN
    with_member.loc["ensemble", "llm.fit_cost_usd"] = 0.005
    table = tradeoff_table(with_member, PRICE, n_items=250)
    assert table.loc["ensemble", "tokens_per_1k_usd"] == pytest.approx(0.03 + 0.02)
    assert table.loc["frontier", "tokens_per_1k_usd"] == pytest.approx(0.03)  # none at fit
    assert table.loc["ensemble", "latency_source"] == "batch predict / items"


def test_a_persons_guesses_cost_their_time_and_are_never_free() -> None:
    # The human row read "<$0.001" per 1,000 items: the seconds to read a CSV back, priced as
    # machine time. A person's time is its cost and latency; unknown when no one said.
    people = board()
    people.loc["human"] = [127.0, 110.0, 140.0, 0.0, 0.01, NAN, NAN, NAN, "FINISHED"]
    people.loc["human_timed"] = [120.0, 105.0, 135.0, 0.0, 0.01, NAN, NAN, NAN, "FINISHED"]
    people["human.guesses"] = NAN
    people.loc[["human", "human_timed"], "human.guesses"] = 250.0
    people["human.seconds_per_item"] = NAN
    people.loc["human_timed", "human.seconds_per_item"] = 30.0
    people["human.cost_per_1k_items_usd"] = NAN
    people.loc["human_timed", "human.cost_per_1k_items_usd"] = 250.0  # $30 an hour
    table = tradeoff_table(people, PRICE, n_items=250)
    assert math.isnan(table.loc["human", COST]) and math.isnan(table.loc["human", LATENCY])
    assert table.loc["human_timed", COST] == pytest.approx(250.0, rel=1e-6)
    assert table.loc["human_timed", "person_per_1k_usd"] == 250.0
    assert table.loc["human_timed", LATENCY] == 30.0
    assert table.loc["human_timed", "latency_source"] == "a person's time"
    assert table.loc["xgboost", "person_per_1k_usd"] == 0.0
    assert table.loc["xgboost", COST] == pytest.approx(0.004)
    assert not table.loc["human", "pareto_cost"]  # unknown cost: not placed


def test_latency_is_the_call_for_llms_and_the_amortised_batch_otherwise() -> None:
    table = tradeoff_table(board(), PRICE, n_items=250)
    assert table.loc["frontier", LATENCY] == 0.4
    assert table.loc["frontier", "latency_source"] == "p50 call"
    assert table.loc["constant", LATENCY] == pytest.approx(0.01 / 250)
    assert table.loc["constant", "latency_source"] == "batch predict / items"


def test_an_llm_answered_from_the_cache_alone_has_no_latency_not_the_cache_s() -> None:
    # A rerun served every answer from the answer cache: no call was timed (p50 NaN), and its
    # latency was the cache's read time, 0.09 ms an item, which put it on the latency front
    # ahead of every classical family. Its cost stays what the answers cost.
    rerun = board()
    rerun.loc["frontier_rerun"] = [80.0, 70.0, 90.0, 0.0, 0.02, 0.03, NAN, 12000.0, "FINISHED"]
    rerun["llm.calls"] = NAN
    rerun.loc[["frontier", "frontier_rag", "local_llm"], "llm.calls"] = 250.0
    rerun.loc["frontier_rerun", "llm.calls"] = 0.0
    table = tradeoff_table(rerun, PRICE, n_items=250)
    assert math.isnan(table.loc["frontier_rerun", LATENCY])
    assert not table.loc["frontier_rerun", "pareto_latency"]
    assert table.loc["frontier_rerun", COST] == pytest.approx(table.loc["frontier", COST], rel=0.1)
    assert table.loc["frontier", LATENCY] == 0.4  # calls made: their median, as before
    assert table.loc["constant", "pareto_latency"]
    shown = display_tradeoff(table)
    assert shown.loc["frontier_rerun", "latency per item"] == "unknown (cached)"


def test_pareto_columns_mark_the_best_trades() -> None:
    table = tradeoff_table(board(), PRICE, n_items=250)
    # Cost: constant is cheapest; xgboost is cheaper than the LLMs and better than constant;
    # frontier ($0.031, 80) is beaten by nothing cheaper; frontier_rag is the most accurate.
    # svr is dominated by xgboost (dearer and worse).
    front = set(table.index[table["pareto_cost"]])
    assert front == {"constant", "xgboost", "frontier", "frontier_rag"}
    assert not table.loc["local_llm", "pareto_cost"]  # unknown cost: not placed
    # Latency: the same four (frontier's 0.4 s beats frontier_rag's 0.5 s); local_llm (2 s,
    # $120) and svr (slower and worse than xgboost) are dominated.
    latency_front = set(table.index[table["pareto_latency"]])
    assert latency_front == {"constant", "xgboost", "frontier", "frontier_rag"}


def test_a_family_that_left_items_unpriced_is_never_on_a_pareto_front() -> None:
    # Its mae is over fewer items: frontier_rag, most accurate on the 238 it priced, stood on
    # both fronts and was listed among them as if it were comparable.
    from pricer.tracking.leaderboard import rankable

    counted = board()
    counted["n"], counted["n_failed"], counted["failure_rate"] = 250.0, 0.0, 0.0
    counted.loc["frontier_rag", ["n", "n_failed", "failure_rate"]] = [238.0, 12.0, 0.048]
    table = tradeoff_table(counted, PRICE, ranked=rankable(counted))
    for front in ("pareto_cost", "pareto_latency"):
        assert set(table.index[table[front]]) == {"constant", "xgboost", "frontier"}
    assert list(table.index[~table["ranked"]]) == ["frontier_rag"]
    assert list(table.index)[-1] == "frontier_rag"  # after the ranked ones, best mae as it is
    shown = display_tradeoff(table)
    assert shown.loc["frontier_rag", "Pareto front"] == "incomplete"
    assert shown.loc["xgboost", "Pareto front"] == "cost, latency"
    # A table stored before the column was: every family ranked, as then.
    old = display_tradeoff(table.drop(columns="ranked"))
    assert old.loc["frontier_rag", "Pareto front"] == ""


def test_a_family_that_failed_is_not_called_incomplete_on_the_trade_off() -> None:
    # "incomplete" says a family priced some items, not all: one that failed (no key, its
    # server down) priced none and has no mae, yet its Pareto column read "incomplete".
    from pricer.tracking.leaderboard import rankable

    counted = board()
    counted["status"] = "FINISHED"
    counted.loc["frontier", ["mae", "mae_ci_low", "mae_ci_high", "status"]] = [
        math.nan,
        math.nan,
        math.nan,
        "FAILED",
    ]
    table = tradeoff_table(counted, PRICE, n_items=250, ranked=rankable(counted))
    shown = display_tradeoff(table)
    assert shown.loc["frontier", "mae (95% CI)"] == ""
    assert shown.loc["frontier", "Pareto front"] == ""
    assert shown.loc["xgboost", "Pareto front"] == "cost, latency"


def test_item_counts_come_from_the_board_when_it_has_them() -> None:
    counted = board()
    counted["n"] = 200.0
    counted["n_failed"] = 50.0
    table = tradeoff_table(counted, PRICE)
    assert (table["items"] == 250).all()
    assert table.loc["xgboost", COST] == pytest.approx(0.004)
    with pytest.raises(ValueError, match="item count"):
        tradeoff_table(board(), PRICE)
    with pytest.raises(ValueError, match="mae"):
        tradeoff_table(board().drop(columns="mae"), PRICE, n_items=250)


def test_compute_price_comes_from_conf_and_is_never_zero() -> None:
    price = ComputePrice.from_config(compose_config("leaderboard").tradeoff)
    assert price.cpu_hour_usd > 0 and price.cpus >= 1
    with pytest.raises(ValueError, match="no compute is free"):
        ComputePrice(0.0, 2)
    with pytest.raises(ConfigError, match="gpus"):
        ComputePrice.from_config({"cpu_hour_usd": 0.05, "cpus": 2, "gpus": 1})
    with pytest.raises(ConfigError, match="no compute is free"):
        ComputePrice.from_config({"cpu_hour_usd": 0, "cpus": 2})
    # An infinite price passed: the families ran, then writing their costs was a traceback.
    for price in ("inf", "-inf", "nan"):
        cfg = compose_config("leaderboard", [f"tradeoff.cpu_hour_usd={price}"])
        with pytest.raises(ConfigError, match="must be a finite number > 0"):
            ComputePrice.from_config(cfg.tradeoff)


def texts(figure) -> list[str]:
    """Every text of the figure but the tick labels (Matplotlib writes those as mathtext)."""
    ticks = {
        id(label)
        for ax in figure.axes
        for axis in (ax.xaxis, ax.yaxis)
        for tick in [*axis.majorTicks, *axis.minorTicks]
        for label in (tick.label1, tick.label2)
    }
    shown = [text for text in figure.findobj(Text) if id(text) not in ticks]
    return [text.get_text() for text in shown if text.get_text()]


@pytest.mark.parametrize("chart", [cost_chart, latency_chart])
def test_charts_plot_every_known_family_and_keep_their_dollars(chart) -> None:
    table = tradeoff_table(board(), PRICE, n_items=250)
    figure = chart(table, "Error against $ and seconds")
    ax = figure.axes[0]
    shown = texts(figure)
    known = table.index[np.isfinite(table[COST if chart is cost_chart else LATENCY])]
    for name in known:
        assert name in shown  # every placed family is labelled
    assert ax.get_xscale() == "log"
    # No unescaped '$' anywhere: two of them would turn the text between into mathtext.
    for text in shown:
        assert not re.search(r"(?<!\\)\$", text), text
    front = "pareto_cost" if chart is cost_chart else "pareto_latency"
    red = [line for line in ax.lines if line.get_color() == "crimson" and line.get_marker() == "o"]
    assert len(red[0].get_xdata()) == int(table[front].sum())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")  # renders (mathtext would fail on a stray '$')
    assert buffer.getvalue()[:4] == b"\x89PNG"


def test_labels_of_families_with_like_cost_and_error_do_not_overlap() -> None:
    # Four families within 10% of each other on both axes (the real leaderboard's tfidf_ridge,
    # svr, random_forest and xgboost): fixed offsets wrote one name over another.
    close = board().loc[["svr"] * 4]
    close.index = pd.Index(["tfidf_ridge", "ridge", "random_forest", "forest"], name="family")
    close["time.fit_seconds"] *= [1.0, 1.05, 1.1, 1.15]
    close["mae"] += [0.0, 1.0, 2.0, 3.0]
    families = pd.concat([board().drop(index="svr"), close])  # the rest span the axes
    figure = cost_chart(tradeoff_table(families, PRICE, n_items=250))
    renderer = figure.canvas.get_renderer()
    labels = [text for text in figure.axes[0].texts if text.get_text() in close.index]
    assert sorted(text.get_text() for text in labels) == sorted(close.index)
    boxes = [text.get_window_extent(renderer) for text in labels]
    for index, box in enumerate(boxes):
        assert not any(box.overlaps(other) for other in boxes[index + 1 :]), labels[index]


def test_a_label_does_not_sit_on_another_familys_point() -> None:
    # The real leaderboard of 2026-12-05: linear ($127.61 at $0.000044 per 1,000 items) and
    # bow_linear ($135.99 at $0.000049) sit a few pixels apart; "linear" was written beside
    # bow_linear's point, and "bow_linear" away from both, so each read as the other's.
    table = pd.DataFrame(
        {
            "mae": [127.61, 135.99, 144.79, 92.78, 377.0],
            "mae_ci_low": [112.4, 120.5, 127.5, 80.5, 344.2],
            "mae_ci_high": [144.2, 153.4, 166.3, 106.8, 408.4],
            COST: [4.4e-05, 4.9e-05, 1.9e-07, 7.8e-04, 0.118],
            LATENCY: [1.9e-04, 6.1e-05, 2.9e-06, 3.2e-04, 0.31],
            "pareto_cost": [True, False, True, True, False],
            "pareto_latency": [True, True, True, True, False],
        },
        index=pd.Index(["linear", "bow_linear", "constant", "xgboost", "frontier"], name="family"),
    )
    figure = cost_chart(table)
    ax = figure.axes[0]
    renderer = figure.canvas.get_renderer()
    pixels = ax.transData.transform(table[[COST, "mae"]].to_numpy())
    points = dict(zip(table.index, pixels, strict=True))
    for text in ax.texts:
        name = text.get_text()
        if name not in points:
            continue
        box = text.get_window_extent(renderer).padded(4)  # a marker's radius, in pixels
        for other, (x, y) in points.items():
            if other != name:
                assert not box.contains(x, y), (name, other)


def test_unknown_costs_are_named_not_dropped_silently() -> None:
    figure = cost_chart(tradeoff_table(board(), PRICE, n_items=250))
    assert any("not plotted (unknown or zero): local_llm" in text for text in texts(figure))


def test_significant_figures_tell_cheap_families_apart_without_scientific_notation() -> None:
    # "<$0.001" for both: which of two classical families was cheaper could not be read.
    assert [significant(v) for v in (0.00044, 0.000061, 2.7e-07, 0.0156, 0.1126)] == [
        "0.00044",
        "0.000061",
        "0.00000027",
        "0.016",
        "0.11",
    ]
    assert [significant(v) for v in (0.0, 375.0, 1234.5, -0.05)] == ["0", "375", "1,234", "-0.050"]


def test_display_tradeoff_reads_as_the_readme_table_every_cost_known_or_said_unknown() -> None:
    table = tradeoff_table(board(), PRICE, n_items=250)
    shown = display_tradeoff(table)
    assert list(shown.index) == list(table.index)  # best mae first, as the leaderboard
    assert list(shown.columns) == [
        "mae (95% CI)",
        "compute $/1k",
        "tokens $/1k",  # some family pays tokens; no person column, as none pays for one
        "total $/1k items",
        "latency per item",
        "Pareto front",
    ]
    assert shown.loc["frontier_rag", "mae (95% CI)"] == "$70.00 (62-78)"
    # The model missing from the catalogue: its tokens and total are unknown, not blank or 0.
    assert shown.loc["local_llm", ["tokens $/1k", "total $/1k items"]].tolist() == [
        "unknown",
        "unknown",
    ]
    assert shown.loc["constant", "tokens $/1k"] == "0"
    expected = significant(table.loc["xgboost", COST])
    assert shown.loc["xgboost", "total $/1k items"] == expected
    # Latency says where it comes from: an LLM's median call, else a batch's share.
    assert shown.loc["frontier", "latency per item"] == "400 ms (p50 call)"
    assert shown.loc["local_llm", "latency per item"] == "2.0 s (p50 call)"
    batch_ms = table.loc["svr", LATENCY] * 1000
    assert shown.loc["svr", "latency per item"] == f"{significant(batch_ms)} ms (batch)"
    fronts = {
        family: {"cost": bool(row["pareto_cost"]), "latency": bool(row["pareto_latency"])}
        for family, row in table.iterrows()
    }
    for family, front in fronts.items():
        named = shown.loc[family, "Pareto front"]
        assert ("cost" in named, "latency" in named) == (front["cost"], front["latency"])
    assert any(shown["Pareto front"] == "cost, latency") and any(shown["Pareto front"] == "")


def test_display_tradeoff_fits_a_terminal_by_dropping_the_cost_breakdown_first() -> None:
    table = tradeoff_table(board(), PRICE, n_items=250)
    wide = max(map(len, display_tradeoff(table).to_string().splitlines()))
    narrow = display_tradeoff(table, width=wide - 1)
    assert "compute $/1k" not in narrow.columns and "total $/1k items" in narrow.columns
    assert max(map(len, narrow.to_string().splitlines())) <= wide - 1


def test_display_tradeoff_of_classical_families_shows_one_cost_their_machine_time() -> None:
    # compute and total were two columns of the same figures when no family paid anything else.
    classical = board().loc[["constant", "xgboost", "svr"]]
    shown = display_tradeoff(tradeoff_table(classical, PRICE, n_items=250))
    assert list(shown.columns) == [
        "mae (95% CI)",
        "total $/1k items",
        "latency per item",
        "Pareto front",
    ]
