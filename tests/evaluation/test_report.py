import math
import re

import numpy as np
import pytest
from hydra.errors import HydraException

from pricer.evaluation.report import METRICS, evaluate
from pricer.schemas import EvalSettings
from tests.conftest import compose_config

CONFIG = {
    "size": 250,
    "hit_dollars": 40,
    "hit_fraction": 0.2,
    "near_dollars": 80,
    "near_fraction": 0.4,
    "confidence": 0.95,
    "n_resamples": 500,
    "seed": 42,
    "price_bands": [0, 25, 50, 100, 250, 500, 1000],
    "max_failure_rate": 0.05,
}
SETTINGS = EvalSettings.from_config(CONFIG)


def test_composed_config_gives_the_settings() -> None:
    settings = EvalSettings.from_config(compose_config("train").eval)
    assert settings.size == 250
    assert settings.thresholds.hit_dollars == 40
    assert settings.thresholds.near_fraction == pytest.approx(0.4)
    assert settings.confidence == pytest.approx(0.95)
    assert settings.price_bands == [0, 25, 50, 100, 250, 500, 1000]
    assert settings.band_labels()[0] == "$0-25"


def test_from_config_rejects_missing_and_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"missing mandatory value: seed"):
        EvalSettings.from_config({k: v for k, v in CONFIG.items() if k != "seed"})
    # Named as typed, with the nearest right name: not "Key 'sise' not in 'EvalSettings'".
    with pytest.raises(ValueError, match=r"unknown key 'eval.sise' \(did you mean 'eval.size'\?\)"):
        EvalSettings.from_config({**CONFIG, "sise": 10})


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("eval.size=abc", "size"),
        ("eval.sise=10", "sise"),
        ("eval.price_bands=[0,x]", "price_bands"),
    ],
)
def test_composition_checks_keys_and_types(override: str, key: str) -> None:
    # Hydra checks the group against its schema while composing: before any data loads.
    with pytest.raises(HydraException, match=key):
        compose_config("train", [override])


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("price_bands", [0, 50, 25]),
        ("price_bands", [0]),
        ("confidence", 1.5),
        ("n_resamples", 2.5),
        ("size", 0),
        ("size", True),
    ],
)
def test_from_config_rejects_bad_values(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        EvalSettings.from_config({**CONFIG, key: value})


@pytest.mark.parametrize(
    ("confidence", "too_few", "enough"), [(0.95, 39, 40), (0.99, 199, 200), (0.9, 19, 20)]
)
def test_too_few_resamples_for_the_confidence_are_refused(
    confidence: float, too_few: int, enough: int
) -> None:
    # eval.n_resamples=1 logged "95% CI 39-51" around a mae of $50.30; under 20 at 95% the
    # paired test's smallest p-value, 1/(n+1), can never be under 0.05: promote crowned none.
    with pytest.raises(ValueError, match=f"n_resamples={too_few} is too few .* at least {enough}"):
        EvalSettings.from_config({**CONFIG, "confidence": confidence, "n_resamples": too_few})
    settings = {**CONFIG, "confidence": confidence, "n_resamples": enough}
    assert EvalSettings.from_config(settings).n_resamples == enough


def test_size_may_be_null() -> None:
    assert EvalSettings.from_config({**CONFIG, "size": None}).size is None


def test_failures_are_excluded_and_counted_never_zeroed() -> None:
    truth = [100.0, 200.0, 50.0, 80.0]
    estimate = [110.0, 150.0, 50.0, np.nan]
    ev = evaluate(truth, estimate, settings=SETTINGS)
    m = ev.metrics
    assert m["n"] == 3
    assert m["n_failed"] == 1
    assert m["failure_rate"] == pytest.approx(0.25)
    assert m["mae"] == pytest.approx(20.0)  # (10 + 50 + 0) / 3; a 0 would give 15 + 80/4
    assert m["hit_rate"] == pytest.approx(2 / 3)
    assert m["mae_ci_low"] <= m["mae"] <= m["mae_ci_high"]
    failed = ev.items.iloc[3]
    assert bool(failed["failed"]) and not bool(failed["hit"])
    assert failed["color"] == "gray"
    assert math.isnan(failed["estimate"]) and math.isnan(failed["abs_error"])


def test_metrics_names_every_metric_an_evaluation_gives() -> None:
    # The names a leaderboard's columns are checked against (pricer.experiment).
    for estimate in ([110.0, 150.0], [np.nan, np.nan]):
        assert sorted(evaluate([100.0, 200.0], estimate, settings=SETTINGS).metrics) == sorted(
            METRICS
        )


def test_everything_failed_gives_nan_metrics() -> None:
    ev = evaluate([10.0, 20.0], [np.nan, np.nan], settings=SETTINGS)
    m = ev.metrics
    assert m["n"] == 0 and m["n_failed"] == 2 and m["failure_rate"] == 1.0
    for key in ("mae", "rmsle", "hit_rate", "r2", "mae_ci_low", "mae_ci_high"):
        assert math.isnan(m[key]), key
    assert ev.summary_line("broken") == (
        "broken: mae n/a rmsle n/a hits n/a: no price for any of 2 items"
    )


def test_item_table_columns_and_values() -> None:
    ev = evaluate([100.0, 100.0, 100.0], [139.0, 140.0, 20.0], settings=SETTINGS)
    items = ev.items
    assert list(items.columns) == [
        "truth", "estimate", "error", "abs_error", "color", "hit", "failed", "price_band"
    ]  # fmt: skip
    assert items["error"].tolist() == [39.0, 40.0, -80.0]
    assert items["abs_error"].tolist() == [39.0, 40.0, 80.0]
    assert items["color"].tolist() == ["green", "orange", "red"]
    assert items["hit"].tolist() == [True, False, False]


def test_by_category() -> None:
    truth = [100.0, 200.0, 50.0, 80.0, 10.0]
    estimate = [110.0, 150.0, 50.0, np.nan, 30.0]
    categories = ["Toys", "Toys", "Tools", "Toys", "Tools"]
    ev = evaluate(truth, estimate, categories=categories, settings=SETTINGS)
    table = ev.by_category
    assert list(table.index) == ["Toys", "Tools"]  # most items first
    assert list(table.columns) == ["n", "n_failed", "mae", "hit_rate", "rmsle"]
    assert table.loc["Toys", "n"] == 2 and table.loc["Toys", "n_failed"] == 1
    assert table.loc["Toys", "mae"] == pytest.approx(30.0)  # (10 + 50) / 2
    assert table.loc["Tools", "mae"] == pytest.approx(10.0)  # (0 + 20) / 2
    assert table.loc["Tools", "hit_rate"] == pytest.approx(1.0)
    assert ev.items["category"].tolist() == categories


def test_by_category_empty_without_categories() -> None:
    ev = evaluate([10.0], [12.0], settings=SETTINGS)
    assert ev.by_category.empty
    assert list(ev.by_category.columns) == ["n", "n_failed", "mae", "hit_rate", "rmsle"]
    assert "category" not in ev.items.columns


def test_by_band_lists_every_band_with_closed_last_edge() -> None:
    truth = [0.0, 24.99, 25.0, 999.0, 1000.0]
    ev = evaluate(truth, truth, settings=SETTINGS)
    table = ev.by_band
    assert list(table.index) == ["$0-25", "$25-50", "$50-100", "$100-250", "$250-500", "$500-1000"]
    assert table["n"].tolist() == [2, 1, 0, 0, 0, 2]
    assert math.isnan(table.loc["$50-100", "mae"])
    assert table.loc["$0-25", "mae"] == pytest.approx(0.0)


def test_prices_outside_bands_get_their_own_band() -> None:
    ev = evaluate([10.0, 1500.0], [10.0, 1400.0], settings=SETTINGS)
    assert ev.items["price_band"].tolist() == ["$0-25", "outside $0-1000"]
    assert ev.by_band.loc["outside $0-1000", "n"] == 1


def test_summary_line_format() -> None:
    truth = np.linspace(10, 500, 60)
    estimate = truth * 1.1
    ev = evaluate(truth, estimate, settings=SETTINGS)
    line = ev.summary_line("linear")
    pattern = r"linear: mae \$\d+\.\d\d \(95% CI \d+-\d+\) rmsle \d\.\d\d hits \d+\.\d% on 60 items"
    assert re.fullmatch(pattern, line), line
    assert f"mae ${ev.metrics['mae']:.2f}" in line
    assert "failed" not in line


def test_summary_line_says_the_figures_are_over_the_priced_items_only() -> None:
    # "on 100 items failed 99/100" read as a mae over 100 items; it was over one.
    ev = evaluate([10.0, 20.0, 30.0, 40.0], [10.0, 20.0, 30.0, np.nan], settings=SETTINGS)
    assert ev.summary_line("m").endswith(" over the 3 of 4 items priced (1 failed, 25.0%)")


def test_the_interval_shown_always_holds_the_mae_shown() -> None:
    # Items all missed by $815.50: a bootstrap interval of one value, shown as "CI 816-816"
    # beside "mae $815.50". Otherwise each end is rounded to the nearest dollar, as before.
    ev = evaluate([100.0, 200.0, 300.0], [915.5, 1015.5, np.nan], settings=SETTINGS)
    assert "mae $815.50 (95% CI 815-816)" in ev.summary_line("m")


def test_one_priced_item_has_no_interval() -> None:
    # One item has no spread to resample: its interval was the item's error itself, "mae
    # $815.50 (95% CI 815-816)", as sure as thousands of items could make it.
    ev = evaluate([100.0, 200.0], [915.5, np.nan], settings=SETTINGS)
    assert math.isnan(ev.metrics["mae_ci_low"]) and math.isnan(ev.metrics["mae_ci_high"])
    assert ev.summary_line("m").startswith("m: mae $815.50 (95% CI n/a) rmsle ")


def test_evaluate_is_deterministic() -> None:
    truth = np.linspace(1, 999, 100)
    estimate = truth + np.random.default_rng(0).normal(0, 50, 100)
    a = evaluate(truth, estimate, settings=SETTINGS).metrics
    b = evaluate(truth, estimate, settings=SETTINGS).metrics
    assert a == b


@pytest.mark.parametrize(
    ("truth", "estimate", "categories", "message"),
    [
        ([1.0, 2.0], [1.0], None, "shape"),
        ([1.0, np.nan], [1.0, 2.0], None, "truth"),
        ([1.0, 2.0], [1.0, np.inf], None, "inf"),
        ([1.0, 2.0], [1.0, 2.0], ["a"], "categories"),
        ([], [], None, "non-empty"),
    ],
)
def test_evaluate_rejects_bad_input(
    truth: list, estimate: list, categories: list | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate(truth, estimate, categories=categories, settings=SETTINGS)
