from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex, to_rgb
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.text import Text

from pricer.evaluation import plots
from pricer.evaluation.plots import (
    category_bars,
    category_pie,
    error_histogram,
    leaderboard_chart,
    objective_trace,
    price_histogram,
    truth_vs_estimate,
)
from pricer.evaluation.report import Evaluation, evaluate
from pricer.schemas import EvalSettings

SETTINGS = EvalSettings.from_config(
    {
        "size": 250,
        "hit_dollars": 40,
        "hit_fraction": 0.2,
        "near_dollars": 80,
        "near_fraction": 0.4,
        "confidence": 0.95,
        "n_resamples": 200,
        "seed": 42,
        "price_bands": [0, 25, 50, 100, 250, 500, 1000],
        "max_failure_rate": 0.05,
    }
)
PNG_MAGIC = b"\x89PNG"


def _bars(fig: Figure) -> BarContainer:
    return next(c for c in fig.axes[0].containers if isinstance(c, BarContainer))


def _saves_png(fig: Figure, path: Path) -> None:
    fig.savefig(path)
    assert path.read_bytes()[:4] == PNG_MAGIC


@pytest.fixture
def evaluation() -> Evaluation:
    truth = np.array([100.0, 100.0, 100.0, 300.0, 50.0])
    estimate = np.array([110.0, 150.0, 250.0, np.nan, 60.0])  # green, orange, red, failed, green
    return evaluate(truth, estimate, settings=SETTINGS)


def test_truth_vs_estimate(evaluation: Evaluation, tmp_path: Path) -> None:
    fig = truth_vs_estimate(evaluation, "demo")
    ax = fig.axes[0]
    assert len(ax.collections) == 1
    points = ax.collections[0]
    assert len(points.get_offsets()) == 4  # failed item is not plotted
    assert np.asarray(points.get_offsets())[:, 0].tolist() == [100.0, 100.0, 100.0, 50.0]
    expected = [to_rgb(c) for c in ("green", "orange", "red", "green")]
    assert np.allclose(points.get_facecolors()[:, :3], expected)
    assert ax.get_xlim()[0] == 0 and ax.get_ylim()[0] == 0
    assert ax.get_xlim()[1] >= 250  # covers the largest estimate
    diagonal = ax.lines[0]
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata())  # y = x
    assert "mae $" in ax.get_title() and "failed 1" in ax.get_title()
    _saves_png(fig, tmp_path / "scatter.png")


def test_error_histogram_counts_answered_items(evaluation: Evaluation, tmp_path: Path) -> None:
    fig = error_histogram(evaluation, "errors")
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert sum(heights) == 4
    _saves_png(fig, tmp_path / "errors.png")


def test_price_histogram(tmp_path: Path) -> None:
    prices = [10.0, 20.0, 30.0, 40.0, 1000.0]
    fig = price_histogram(prices, "prices", bins=10)
    ax = fig.axes[0]
    assert len(ax.patches) == 10
    assert sum(p.get_height() for p in ax.patches) == 5
    assert "mean $220.00" in ax.get_title() and "median $30.00" in ax.get_title()
    _saves_png(fig, tmp_path / "prices.png")


def test_category_charts(tmp_path: Path) -> None:
    counts = pd.Series({"Toys": 30, "Tools": 20, "Music": 5})
    bars = category_bars(counts, "categories")
    assert [p.get_height() for p in bars.axes[0].patches] == [30, 20, 5]
    pie = category_pie(counts, "categories")
    assert len(pie.axes[0].patches) == 3
    _saves_png(bars, tmp_path / "bars.png")
    _saves_png(pie, tmp_path / "pie.png")


def test_leaderboard_sorted_with_error_bars_and_references(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {
            "mae": [90.0, 40.0, 65.0],
            "mae_ci_low": [80.0, 35.0, 60.0],
            "mae_ci_high": [100.0, 45.0, 70.0],
            "reference_mae": [88.0, np.nan, 60.0],
        },
        index=["linear", "gpt", "forest"],
    )
    fig = leaderboard_chart(table, "leaderboard")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["gpt", "forest", "linear"]
    assert [p.get_width() for p in ax.patches] == [40.0, 65.0, 90.0]
    assert _bars(fig).errorbar is not None
    references = [c for c in ax.collections if len(c.get_offsets()) == 2]
    assert len(references) == 1  # the two known references, NaN skipped
    assert sorted(np.asarray(references[0].get_offsets())[:, 0]) == [60.0, 88.0]
    _saves_png(fig, tmp_path / "board.png")


def test_leaderboard_puts_models_not_ranked_after_the_ranked_ones_in_grey() -> None:
    table = pd.DataFrame({"mae": [90.0, 40.0, np.nan, 65.0]}, index=["a", "partial", "x", "b"])
    ranked = pd.Series({"a": True, "partial": False, "x": False, "b": True})
    ax = leaderboard_chart(table, "board", ranked=ranked).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "a", "partial", "x"]
    colours = [to_hex(p.get_facecolor(), keep_alpha=False) for p in ax.patches]
    assert colours[:2] == [to_hex("steelblue")] * 2
    assert colours[2] == to_hex("grey")


def test_leaderboard_with_mae_only_and_failed_model(tmp_path: Path) -> None:
    table = pd.DataFrame({"mae": [np.nan, 50.0]}, index=["broken", "ok"])
    fig = leaderboard_chart(table, "plain")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["ok", "broken"]
    assert len(ax.patches) == 2
    assert _bars(fig).errorbar is None
    assert not ax.collections  # no reference markers
    _saves_png(fig, tmp_path / "plain.png")
    with pytest.raises(ValueError, match="mae"):
        leaderboard_chart(pd.DataFrame({"rmsle": [1.0]}), "bad")


def test_objective_trace_running_best(tmp_path: Path) -> None:
    values = [5.0, 3.0, np.nan, 4.0, 1.0]
    fig = objective_trace(values, "sweep", direction="minimize")
    trials, best = fig.axes[0].lines
    assert len(trials.get_xdata()) == 4  # NaN trial not drawn
    assert list(best.get_ydata()) == [5.0, 3.0, 3.0, 3.0, 1.0]
    up = objective_trace(values, "sweep", direction="maximize").axes[0].lines[1]
    assert list(up.get_ydata()) == [5.0, 5.0, 5.0, 5.0, 5.0]
    _saves_png(fig, tmp_path / "trace.png")
    with pytest.raises(ValueError, match="direction"):
        objective_trace(values, "sweep", direction="sideways")  # type: ignore[arg-type]


def test_objective_trace_puts_points_at_their_trial_numbers() -> None:
    default = objective_trace([2.0, 1.0], "sweep", direction="minimize").axes[0].lines[0]
    assert list(default.get_xdata()) == [0, 1]  # as Hydra numbers a sweep's jobs
    numbered = objective_trace([2.0, np.nan, 1.0], "s", direction="minimize", trials=[3, 5, 8])
    points, best = numbered.axes[0].lines
    assert list(points.get_xdata()) == [3, 8]
    assert list(best.get_xdata()) == [3, 5, 8]
    with pytest.raises(ValueError, match="trial numbers"):
        objective_trace([1.0], "s", direction="minimize", trials=[0, 1])


def test_figures_do_not_touch_pyplot(evaluation: Evaluation) -> None:
    pyplot = pytest.importorskip("matplotlib.pyplot")
    before = pyplot.get_fignums()
    truth_vs_estimate(evaluation, "a")
    leaderboard_chart(pd.DataFrame({"mae": [1.0]}, index=["m"]), "b")
    assert pyplot.get_fignums() == before


DOLLAR_TITLE = "budget $5 to $10"  # two dollars: mathtext would eat everything between them


def _every_figure(evaluation: Evaluation) -> dict[str, Figure]:
    counts = pd.Series({"Toys": 30, "Tools": 20})
    board = pd.DataFrame(
        {"mae": [40.0, 65.0], "reference_mae": [38.0, np.nan]}, index=["gpt", "forest"]
    )
    return {
        "truth_vs_estimate": truth_vs_estimate(evaluation, DOLLAR_TITLE),
        "error_histogram": error_histogram(evaluation, DOLLAR_TITLE),
        "price_histogram": price_histogram([10.0, 20.0, 30.0], DOLLAR_TITLE, bins=3),
        "category_bars": category_bars(counts, DOLLAR_TITLE),
        "category_pie": category_pie(counts, DOLLAR_TITLE),
        "leaderboard_chart": leaderboard_chart(board, DOLLAR_TITLE),
        "objective_trace": objective_trace([2.0, 1.0], DOLLAR_TITLE, direction="minimize"),
    }


def test_every_plot_draws_dollars_literally(evaluation: Evaluation) -> None:
    figures = _every_figure(evaluation)
    assert set(figures) == set(plots.__all__), "a new plot function needs a case here"
    for name, fig in figures.items():
        fig.canvas.draw()  # tick labels and legends exist only once drawn
        shown = []
        for text in fig.findobj(Text):
            raw = text.get_text()
            # What the renderer does with the string: mathtext ("$a$b" -> math) or plain.
            displayed, is_math = text._preprocess_math(raw)
            assert not is_math, f"{name}: {raw!r} is drawn as mathtext"
            assert displayed.count("$") == raw.count("$"), f"{name}: {raw!r} loses dollars"
            shown.append(displayed)
        assert any(DOLLAR_TITLE in s for s in shown), f"{name}: title not shown as given"


def test_error_histogram_title_keeps_both_dollar_figures(evaluation: Evaluation) -> None:
    fig = error_histogram(evaluation, "errors")
    fig.canvas.draw()
    title = fig.axes[0].title
    displayed, is_math = title._preprocess_math(title.get_text())
    assert not is_math
    assert "mean error " in displayed and "median " in displayed
    # Signed as amounts are written: -$5.94, not $-5.94.
    errors = evaluation.items.loc[~evaluation.items["failed"], "error"]
    mean = errors.mean()
    assert f"mean error {'-' if mean < 0 else '+'}${abs(mean):,.2f}" in displayed
    assert "$-" not in displayed and "$+" not in displayed
