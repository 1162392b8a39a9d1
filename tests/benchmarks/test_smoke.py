"""Every benchmark script runs end to end at a tiny size, so none of them rots.

Figures are not checked (they depend on the machine); the shape of each report is, and the
reports go to a temporary folder, never over the committed ones in benchmarks/results. The
two that need a real MLflow store are marked e2e; the others take about 15 s together.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import (
    curation,
    leaderboard,
    llm,
    stack_stages,
    startup,
    tracking_overhead,
    training,
    validation_holdout,
)


def report(folder: Path, name: str) -> dict:
    data = json.loads((folder / f"{name}.json").read_text())
    assert data["machine"]["cores_logical"] >= 1 and data["machine"]["load_average_1_5_15"]
    return data


def test_curation(tmp_path: Path) -> None:
    curation.main(["--sizes", "6000", "--num-proc", "1", "--results-dir", str(tmp_path)])
    (run,) = report(tmp_path, "curation")["runs"]
    assert run["ok"], run.get("stderr_tail")
    assert run["n_records"] == 6000 and run["items"] + sum(run["rejections"].values()) == 6000
    assert set(run["stage_seconds"]) == {"generate", "clean", "filter", "sample", "split", "save"}
    assert run["tree_peak_rss_mib"] > 0 and run["child_peak_rss_mib"] > 0


def test_startup(tmp_path: Path) -> None:
    startup.main(["--repeats", "1", "--apps", "curate", "--results-dir", str(tmp_path)])
    rows = report(tmp_path, "startup")["rows"]
    assert [(row["app"], row["what"]) for row in rows] == [
        ("curate", "typo"),
        ("curate", "help"),
        ("curate", "worker"),
    ]
    assert all(row["seconds"] > 0 and row["peak_mib"] > 0 for row in rows)


def test_training(tmp_path: Path) -> None:
    training.main(
        [
            "--families",
            "constant",
            "--sizes",
            "300",
            "--raw-records",
            "4000",
            "--model-override",
            "model.statistic=median",
            "--report-name",
            "training_median",
            "--results-dir",
            str(tmp_path),
        ]
    )
    figures = report(tmp_path, "training_median")
    assert figures["model_overrides"] == ["model.statistic=median"]
    assert figures["split"]["test"] > 0
    runs = figures["runs"]
    assert [run["family"] for run in runs] == ["constant"]
    assert all(run["ok"] and run["fit_seconds"] >= 0 for run in runs), runs
    assert runs[0]["model"]["statistic"] == "median"  # the override reached the measured fit


# The LightGBM members with few trees: a smoke run times the stages, not the members.
SMALL_MEMBERS = [
    f"model.members.{name}.estimator.n_estimators=20" for name in ("lgbm_log", "lgbm_l1")
]


def test_stack_stages(tmp_path: Path) -> None:
    # The residual moves are off by default (nineteenth accuracy round); switched on, their
    # stage is timed too.
    residuals = ["model.neighbour_residuals=0.5", "model.title_residuals=0.5"]
    figures = stack_stages.main(
        [
            "--size",
            "300",
            "--raw-records",
            "4000",
            *(f"--model-override={override}" for override in [*SMALL_MEMBERS, *residuals]),
            "--results-dir",
            str(tmp_path),
        ]
    )
    assert report(tmp_path, "stack_stages")["stages"] == figures["stages"]
    stages = [stage["stage"] for stage in figures["stages"]]
    # The features part by part, then each member three times on its folds and once on every
    # row (n_jobs at a time: in any order across members), the neighbour residuals, then the
    # whole fit.
    features = [stage for stage in stages if stage.startswith("features")]
    assert stages[: len(features)] == features and features[-1].startswith("features (")
    parts = [stage.removeprefix("features: ") for stage in features if " / " not in stage]
    assert parts[:-1] == ["words", "chars", "title", "details", "hand"]
    assert "features: words / NeighbourPrices" in features
    assert stages[-3].startswith("neighbour residuals") and stages[-2] == "whole fit"
    for member in ("lgbm_log", "lgbm_l1", "xgb_log"):
        fits = [stage for stage in stages if stage.startswith(member + " ")]
        assert sorted(fit.split(" (")[0] for fit in fits) == [
            f"{member} fold fit 1",
            f"{member} fold fit 2",
            f"{member} fold fit 3",
            f"{member} refit",
        ]


def test_llm(tmp_path: Path) -> None:
    llm.main(
        [
            "--items",
            "6",
            "--latency",
            "0.02",
            "--burst",
            "2",
            "--retry-after",
            "0.05",
            "--records",
            "4000",
            "--rpm",
            "240",
            "--limit-burst",
            "0.5",
            "--results-dir",
            str(tmp_path),
        ]
    )
    unpaced, paced = report(tmp_path, "llm")["enforced_limit"]
    assert unpaced["limit_429"] >= 1 and paced["items_lost"] == 0  # 6 at once vs 2 allowed
    runs = report(tmp_path, "llm")["runs"]
    assert [run["run"] for run in runs] == ["sequential", "configured", "configured + 429s"]
    assert all(run["items_lost"] == 0 for run in runs)
    assert runs[2]["retries"] >= 1 and runs[0]["max_in_flight"] == 1


@pytest.mark.e2e  # a real MLflow store in a child process: about 20 s
def test_tracking_overhead(tmp_path: Path) -> None:
    tracking_overhead.main(
        [
            "--families",
            "constant",
            "--train-items",
            "500",
            "--records",
            "4000",
            "--results-dir",
            str(tmp_path),
        ]
    )
    (run,) = report(tmp_path, "tracking_overhead")["runs"]
    assert run["ok"], run.get("stderr_tail")
    assert 0 < run["logging_seconds"] <= run["run_seconds"]
    assert run["artifacts_mib"] > 0


@pytest.mark.e2e  # the real `python -m pricer.leaderboard`: about 25 s
def test_leaderboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Ids of the user's own store (or exported by mlflow.set_experiment) name nothing in the
    # benchmark's private store: the child must not inherit them.
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "424242")
    monkeypatch.setenv("MLFLOW_RUN_ID", "0123456789abcdef0123456789abcdef")
    leaderboard.main(
        [
            "families=[constant]",
            "data.n_records=3000",
            "curation.split.test_size=100",
            "eval.n_resamples=100",
            "--results-dir",
            str(tmp_path),
        ]
    )
    data = report(tmp_path, "leaderboard")
    assert data["runs"][0]["ok"], data["runs"][0].get("stderr_tail")
    assert [family["family"] for family in data["families"]] == ["constant"]


@pytest.mark.e2e  # two real 3-trial sweeps of tfidf_ridge on the real data: about a minute
def test_validation_holdout(tmp_path: Path, shared_data: Path) -> None:
    validation_holdout.main(
        ["--family", "tfidf_ridge", "--trials", "3", "--results-dir", str(tmp_path)]
    )
    rows = {row["holdout"]: row for row in report(tmp_path, "validation_holdout")["rows"]}
    assert set(rows) == {"random", "like_test", "best setting"}
    for name in ("random", "like_test"):
        assert 1 <= rows[name]["pick rank"] <= 3
        assert rows[name]["pick test mae"] >= rows["best setting"]["pick test mae"]
    # The like-test rows are dearer than a random holdout's, as the test set is.
    assert rows["like_test"]["validation mae"][0] > rows["random"]["validation mae"][0]


def test_accuracy_yardstick_is_the_canonical_training_rows(shared_data: Path) -> None:
    """The paired-CV yardstick: 1,500 canonical rows found inside the real training items."""
    from benchmarks.accuracy import real_split

    train, test, rows = real_split()
    assert len(test) == 250 and len(rows) == 1500
    assert rows.max() < len(train) and not set(train["text"].iloc[rows]) & set(test["text"])


def test_accuracy_other_yardsticks_are_rows_never_chosen_on(
    shared_data: Path, tmp_path: Path
) -> None:
    """The two checking yardsticks hold no canonical row, nor each other's, and their folds
    cache apart from the canonical ones (other rows held out are other fits)."""
    import pandas as pd

    from benchmarks.accuracy import Folds, real_split

    train, _, canonical = real_split("canonical")
    _, _, head = real_split("train_head")
    _, _, alt = real_split("alt_test")
    # 250 rows, one of them with the text of a canonical test row: left out.
    assert len(head) == 249 and train["category"].iloc[head].isna().all()
    assert len(alt) == 1992 and not {"Automotive", "Electronics"} & set(train["category"].iloc[alt])
    assert not set(canonical) & set(head) and not set(canonical) & set(alt)
    assert not set(head) & set(alt)
    empty = pd.DataFrame()
    assert (
        Folds(empty, empty, head, 7, tmp_path, "train_head").cache == tmp_path / "train_head/seed7"
    )
    assert Folds(empty, empty, canonical, 7, tmp_path).cache == tmp_path / "seed7"


def test_accuracy_recipes_name_members_and_steps_that_exist(tmp_path: Path) -> None:
    """A recipe's members are the stack's or candidates, and it builds on another recipe."""
    import pandas as pd

    from benchmarks.accuracy import FEATURE_SETS, RECIPES, Folds

    folds = Folds(pd.DataFrame(), pd.DataFrame(), np.arange(10), 42, tmp_path)
    names = [recipe.name for recipe in RECIPES]
    assert len(set(names)) == len(names)
    for recipe in RECIPES:
        assert set(recipe.members) <= set(folds.member_settings), recipe.name
        assert recipe.builds_on is None or recipe.builds_on in names, recipe.name
        assert recipe.feature_set in FEATURE_SETS, recipe.name


def test_accuracy_variations_differ_from_their_base_only_in_what_they_override() -> None:
    """A ``~`` recipe is its base with one idea changed: a default committed after both were
    measured (a later switch) must be pinned in both, or the variation's row stops
    reproducing its figure (stack~residual_clip07 once picked up like_test_weight: 4)."""
    from omegaconf import OmegaConf

    from benchmarks.accuracy import RECIPES
    from benchmarks.common import compose

    def settings(recipe) -> dict[str, object]:
        overrides = [f"model={recipe.family}", "seed=42", *recipe.overrides]
        model = OmegaConf.to_container(compose("train", overrides).model)
        return {key: json.dumps(value, sort_keys=True) for key, value in model.items()}

    recipes = {recipe.name: recipe for recipe in RECIPES}
    variations = [recipe for recipe in RECIPES if "~" in recipe.name]
    assert variations
    for recipe in variations:
        base = recipes[recipe.builds_on]
        own, theirs = settings(recipe), settings(base)
        differ = {key for key in own.keys() | theirs.keys() if own.get(key) != theirs.get(key)}
        varied = set(recipe.overrides) - set(base.overrides)
        named = {override.split("=")[0].removeprefix("model.") for override in varied}
        assert differ <= named, (recipe.name, sorted(differ - named))


def test_accuracy_paired_error_over_seeds_is_over_items() -> None:
    """Repeated CV: each item's difference is averaged over the seeds before its error."""
    from benchmarks.accuracy import band_bias, paired

    rng = np.random.default_rng(0)
    reference = rng.uniform(0, 100, size=(2, 500))
    swing = rng.uniform(5, 10, size=500)
    # Each item is better by `swing` on one seed and worse by it on the other: per item the
    # recipes tie, so the difference and its error are zero; pooled rows would say +-0.3.
    errors = reference + np.stack([swing, -swing])
    assert paired(errors, reference) == pytest.approx((0.0, 0.0), abs=1e-12)
    # One seed keeps the plain paired figure.
    diff, se = paired(errors[0], reference[0])
    assert diff == pytest.approx(swing.mean())
    assert se == pytest.approx(swing.std(ddof=1) / np.sqrt(500))
    truth = np.array([50.0, 700.0])
    bias = band_bias(truth, np.array([[60.0, 600.0], [40.0, 500.0]]))
    assert bias == {"bias 0-100": 0.0, "bias 500-1000": -150.0}


def test_accuracy_error_by_category_is_each_items_mean_over_seeds() -> None:
    """Per category: its rows, their MAE and their share of the error, largest share first."""
    from benchmarks.accuracy import category_error

    truth = np.array([100.0, 100.0, 10.0, 50.0])
    # Two seeds: the first item misses by 20 and 40 (30 on average), the second by 10 both times.
    prices = np.array([[120.0, 110.0, 10.0, 50.0], [60.0, 90.0, 14.0, 50.0]])
    errors = category_error(truth, prices, ["Tools", "Tools", "Toys", None])
    assert list(errors) == ["Tools", "Toys", "unknown"]
    assert errors["Tools"] == {"rows": 2, "MAE": 20.0, "share": pytest.approx(40 / 42)}
    assert errors["Toys"] == {"rows": 1, "MAE": 2.0, "share": pytest.approx(2 / 42)}
    assert errors["unknown"] == {"rows": 1, "MAE": 0.0, "share": 0.0}


def test_accuracy_cache_file_is_whole_or_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fit stopped while its prices are written leaves no half file for the next run."""
    import pandas as pd

    from benchmarks.accuracy import Folds, Recipe

    prices = np.linspace(5.0, 300.0, 30)
    train = pd.DataFrame(
        {
            "text": [f"item {i} steel widget" for i in range(30)],
            "title": [f"item {i}" for i in range(30)],
            "category": "Tools_and_Home_Improvement",
            "details": "{}",
            "price": prices,
        }
    )
    folds = Folds(train, train.head(2), np.arange(10), 42, tmp_path)
    constant = Recipe("constant", None, "the median", family="constant", overrides=())

    def stopped(target: object, *args: object, **kwargs: object) -> None:
        handle = open(target, "wb") if isinstance(target, str | Path) else target  # noqa: SIM115
        handle.write(b"\x93NUMPY half")
        handle.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", stopped)
    with pytest.raises(KeyboardInterrupt):
        folds.recipe_prices(constant, 0)
    assert list(folds.cache.iterdir()) == []
    monkeypatch.undo()  # numpy's own np.save again
    held = folds.recipe_prices(constant, 0)
    assert held.shape == (2,) and np.all(held == held[0]) and 5.0 <= held[0] <= 300.0
    assert [path.suffix for path in folds.cache.iterdir()] == [".npy"]


def test_accuracy_report_goes_to_results_dir(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--results-dir is where the table's JSON lands: a trial run must not overwrite the
    committed benchmarks/results/accuracy.json (it did, 2026-12-04)."""
    from benchmarks import accuracy
    from benchmarks.common import RESULTS_DIR

    committed = RESULTS_DIR / "accuracy.json"
    before = committed.read_bytes() if committed.exists() else None

    def cv_prices(self: accuracy.Folds, recipe: accuracy.Recipe) -> np.ndarray:
        truth = self.train["price"].to_numpy()[self.rows]
        return truth + (10.0 if recipe.name == "xgboost" else 4.0)  # no fits: the plumbing

    monkeypatch.setattr(accuracy.Folds, "cv_prices", cv_prices)
    accuracy.main(["--recipes", "xgboost", "stack", "--results-dir", str(tmp_path)])
    report = json.loads((tmp_path / "accuracy.json").read_text())
    assert [row["recipe"] for row in report["rows"]] == ["xgboost", "stack"]
    assert report["rows"][1]["CV MAE"] == pytest.approx(4.0)
    assert (committed.read_bytes() if committed.exists() else None) == before


def test_stack_stages_times_the_family_it_is_given(tmp_path: Path) -> None:
    arguments = ["--size", "300", "--raw-records", "4000", "--family", "stack_budget"]
    overrides = [f"--model-override={override}" for override in SMALL_MEMBERS]
    figures = stack_stages.main([*arguments, *overrides, "--results-dir", str(tmp_path)])
    assert report(tmp_path, "stack_stages")["family"] == "stack_budget"
    stages = [stage["stage"] for stage in figures["stages"]]
    parts = [s.removeprefix("features: ") for s in stages if s.startswith("features: ")]
    assert "chars" not in parts and "words" in parts  # no character n-gram ridge
    assert not [stage for stage in stages if stage.startswith("xgb_log")]  # its member is null
    assert len([stage for stage in stages if stage.startswith("lgbm_l1 ")]) == 4  # 3 folds, refit


def test_a_report_cut_short_leaves_the_last_one_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks.common import write_report

    before = write_report("example", {"figure": 1}, tmp_path).read_bytes()
    real_write = Path.write_text

    def cut_short(self: Path, text: str, *args: object, **kwargs: object) -> int:
        real_write(self, text[:20])
        raise KeyboardInterrupt  # a benchmark stopped while it writes

    monkeypatch.setattr(Path, "write_text", cut_short)
    with pytest.raises(KeyboardInterrupt):
        write_report("example", {"figure": 2}, tmp_path)
    assert (tmp_path / "example.json").read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["example.json"]


def test_the_llama_cpp_server_without_its_package_says_where_to_get_it() -> None:
    """It is not a dependency; without it ``--help`` ended in a ModuleNotFoundError traceback."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("llama_cpp") is not None:
        pytest.skip("llama-cpp-python is installed here")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.llama_cpp_server", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: No module named 'llama_cpp'; ")
    assert "pip install 'llama-cpp-python[server]'" in done.stderr
