"""Sweeps through the real CLI: one parent run, one nested child run per trial."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from tests.e2e.conftest import run_cli, runs

pytestmark = pytest.mark.e2e

SMALL = [
    "data.n_records=4000",
    "curation.split.test_size=200",
    "validation.size=200",
    "tracking.log_model=false",
]


@pytest.fixture(scope="module")
def curation_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Curated data shared by the sweeps of this module (curating takes seconds)."""
    return tmp_path_factory.mktemp("curation_cache")


def sweep_runs(tracking_uri: str) -> tuple[pd.Series, pd.DataFrame]:
    """The one sweep parent, and its children; fails if any run lies outside the sweep."""
    table = runs(tracking_uri)
    parents = table[table["tags.pricer.kind"] == "sweep"]
    assert len(parents) == 1, table[["run_id", "tags.mlflow.runName", "status"]]
    parent = parents.iloc[0]
    children = table[table["tags.mlflow.parentRunId"] == parent["run_id"]]
    assert len(children) == len(table) - 1  # no trial scattered into a run of its own
    return parent, children


def train_multirun(
    overrides: list[str], tracking_uri: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """``pricer.train -m`` as a user runs it, its Hydra folders under ``tmp_path``."""
    return run_cli(
        [
            sys.executable,
            "-m",
            "pricer.train",
            "-m",
            *overrides,
            f"hydra.sweep.dir={tmp_path}/multirun",
        ],
        tracking_uri,
        tmp_path,
    )


def test_grid_sweep_is_one_parent_with_a_child_per_trial(
    tracking_uri: str, tmp_path: Path, curation_cache: Path
) -> None:
    result = train_multirun(
        [
            "model=constant",
            "model.statistic=mean,median",
            *SMALL,
            f"curation.cache_dir={curation_cache}",
        ],
        tracking_uri,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = sweep_runs(tracking_uri)
    assert parent["status"] == "FINISHED"
    assert sorted(children["params.model.statistic"]) == ["mean", "median"]
    assert (children["status"] == "FINISHED").all()
    # Ranked on validation items held out of training; the test items are only reported.
    assert children["metrics.validation.mae"].notna().all()
    assert children["metrics.mae"].notna().all()
    assert (children["metrics.validation.n"] == 200).all()
    best = children.loc[children["metrics.validation.mae"].idxmin()]
    assert parent["tags.pricer.sweep.best_run_id"] == best["run_id"]
    assert parent["params.best.model.statistic"] == best["params.model.statistic"]
    assert parent["metrics.best.validation.mae"] == best["metrics.validation.mae"]
    assert f"sweep: best trial {int(best['tags.pricer.sweep.trial'])}" in result.stdout


def test_an_optuna_grid_search_that_covers_its_grid_finishes(
    tracking_uri: str, tmp_path: Path, curation_cache: Path
) -> None:
    # Optuna's GridSampler calls study.stop() as the grid's last trial is told, which Optuna
    # allows only inside study.optimize (a sweeper asks and tells): a RuntimeError traceback,
    # exit 1, and the parent FAILED, after every trial had run and been told.
    grid = {"alpha": 1.0, "ngram_max": 2, "min_df": 2, "sublinear_tf": "true"}
    fixed = [f'model.{key}:"choice({value})"' for key, value in grid.items()]
    space = ",".join([*fixed, 'model.max_features:"choice(50,100)"'])  # a grid of two
    result = train_multirun(
        [
            "hparams_search=tfidf_ridge",
            f"hydra.sweeper.params={{{space}}}",
            "hydra/sweeper/sampler=grid",
            *SMALL,
            f"curation.cache_dir={curation_cache}",
        ],
        tracking_uri,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    parent, children = sweep_runs(tracking_uri)
    assert parent["status"] == "FINISHED"
    assert sorted(children["params.model.max_features"].astype(int)) == [50, 100]
    results = (tmp_path / "multirun" / "optimization_results.yaml").read_text()
    assert "best_value" in results


def test_the_optuna_sweepers_best_of_tied_trials_is_the_one_the_sweep_names(
    tracking_uri: str, tmp_path: Path, curation_cache: Path
) -> None:
    # Two trials of equal objective (4,000 records have fewer words than either vocabulary
    # size): the sweeper's "Best trial" line and optimization_results.yaml named Optuna's
    # first, trial 0, while the parent run, pricer runs and the view named the later run's.
    fixed = {"alpha": 1.0, "ngram_max": 2, "min_df": 2, "sublinear_tf": "true"}
    space = [f'model.{key}:"choice({value})"' for key, value in fixed.items()]
    result = train_multirun(
        [
            "hparams_search=tfidf_ridge",
            f"hydra.sweeper.params={{{','.join(space)},model.max_features:'choice(50000,100000)'}}",
            "hydra/sweeper/sampler=grid",
            *SMALL,
            f"curation.cache_dir={curation_cache}",
        ],
        tracking_uri,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = sweep_runs(tracking_uri)
    assert children["metrics.validation.mae"].nunique() == 1 and len(children) == 2
    trial, features = parent["params.best.trial"], parent["params.best.model.max_features"]
    said = [line for line in result.stdout.splitlines() if "Best trial" in line]
    assert len(said) == 1 and f"Best trial {trial}: " in said[0], said
    results = yaml.safe_load((tmp_path / "multirun" / "optimization_results.yaml").read_text())
    assert str(results["best_params"]["model.max_features"]) == features


def test_of_trials_tied_on_the_objective_the_best_is_the_one_the_view_lists_first(
    tracking_uri: str, tmp_path: Path, curation_cache: Path
) -> None:
    # Two trials of equal objective: the sweep named the first by trial number best, its tags
    # and `pricer runs` with it, while the saved view ("trials, best first") listed the other
    # (the later run) first. One rule now: the view's order (pricer.tracking.views).
    result = train_multirun(
        [
            "model=constant",
            "+tracking.tags.probe=a,b",
            *SMALL,
            f"curation.cache_dir={curation_cache}",
        ],
        tracking_uri,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = sweep_runs(tracking_uri)
    objectives = children["metrics.validation.mae"]
    assert len(children) == 2 and objectives.nunique() == 1  # the probe changes nothing
    key = "pricer-sweep_constant_synthetic"
    experiment = mlflow.get_experiment(parent["experiment_id"])
    state = json.loads(json.loads(experiment.tags[f"mlflow.sharedViewState.{key}"])["state"])
    listed = mlflow.search_runs(  # what the UI asks the server for, sorted as it sorts
        experiment_ids=[experiment.experiment_id],
        filter_string=state["searchFilter"],
        order_by=[f"{state['orderByKey']} {'ASC' if state['orderByAsc'] else 'DESC'}"],
        output_format="list",
    )
    first = listed[0]
    assert parent["tags.pricer.sweep.best_run_id"] == first.info.run_id
    assert parent["params.best.trial"] == first.data.tags["pricer.sweep.trial"]
    assert f"sweep: best trial {first.data.tags['pricer.sweep.trial']} " in result.stdout
    shown = run_cli(
        [str(Path(sys.executable).with_name("pricer")), "runs", parent["run_id"][:8]],
        tracking_uri,
        tmp_path,
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    rows = {
        " ".join(row.split()[:2]): row.split()[2:]
        for row in shown.stdout.splitlines()
        if row.startswith(("best trial ", "best run "))
    }
    assert rows == {
        "best trial": [first.data.tags["pricer.sweep.trial"]],
        "best run": [first.info.run_id[:8]],
    }, shown.stdout


def test_optuna_search_runs_trials_in_parallel_under_mlflow_run(
    tracking_uri: str, tmp_path: Path, curation_cache: Path
) -> None:
    overrides = [
        *SMALL,
        "hydra.sweeper.n_trials=2",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"curation.cache_dir={curation_cache}",
        f"hydra.sweep.dir={tmp_path}/multirun",
    ]
    result = run_cli(
        [
            "mlflow",
            "run",
            ".",
            "-e",
            "sweep",
            "--env-manager",
            "local",
            "--experiment-name",
            "pricer",
            "-P",
            f"overrides=hparams_search=tfidf_ridge {' '.join(overrides)}",
        ],
        tracking_uri,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = sweep_runs(tracking_uri)
    # The run mlflow run created is the parent: trials did not resume it or scatter.
    assert parent["tags.mlflow.project.entryPoint"] == "sweep"
    assert parent["status"] == "FINISHED"
    assert parent["params.sweep.sweeper"] == "OptunaSweeper"
    assert parent["params.sweep.launcher"] == "JoblibLauncher"
    assert sorted(children["tags.pricer.sweep.trial"].astype(int)) == [0, 1]
    assert (children["status"] == "FINISHED").all()
    assert children["params.model.alpha"].nunique() == 2  # Optuna chose each trial's alpha
    # The two trials ran in two worker processes (the basic launcher runs both in one). Not
    # asserted: that they overlapped in time. The workers import pricer while unpickling
    # their trial, and on a loaded machine one finished its 1-second trial before the other
    # had started its run (CI, 2026-12-03: 0.17 s apart).
    assert children["tags.pricer.pid"].nunique() == 2
    best = children.loc[children["metrics.validation.mae"].idxmin()]
    assert parent["params.best.model.alpha"] == best["params.model.alpha"]
    charts = mlflow.MlflowClient().list_artifacts(parent["run_id"], "sweep")
    assert {a.path for a in charts} == {"sweep/objective.png", "sweep/trials.json"}


def test_a_sweep_whose_trials_all_fail_says_why_on_its_parent(
    tracking_uri: str, tmp_path: Path, curation_cache: Path
) -> None:
    # The parent run said only "the sweep stopped before its end: see its trials": the reason
    # was on the terminal and nowhere in the record.
    result = train_multirun(
        [
            "hparams_search=tfidf_ridge",
            *SMALL,
            "validation.size=100000",
            f"curation.cache_dir={curation_cache}",  # not the checkout's data_cache/
        ],
        tracking_uri,
        tmp_path,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    said = [line for line in result.stderr.splitlines() if line.startswith("error: ")][-1]
    assert "validation.size=100000 leaves nothing to train on" in said
    [parent] = [
        row for _, row in runs(tracking_uri).iterrows() if row["tags.pricer.kind"] == "sweep"
    ]
    assert parent["status"] == "FAILED"
    assert parent["tags.error"] == said.removeprefix("error: ")


def test_a_sweeper_that_cannot_be_built_is_refused_before_any_run(
    tracking_uri: str, tmp_path: Path
) -> None:
    # Found as the sweeper was built, after the parent run had been opened: a FAILED parent
    # (and, with a storage, a study) for a typo.
    result = train_multirun(
        ["hparams_search=tfidf_ridge", "+hydra.sweeper.sampler.bogus=1"], tracking_uri, tmp_path
    )
    assert result.returncode == 2, result.stderr[-3000:]
    said = result.stderr.strip().splitlines()[-1]
    assert said.startswith("error: hydra.sweeper") and "bogus" in said
    assert "hydra.sweeper: hydra.sweeper" not in said
    assert runs(tracking_uri).empty


def test_a_sweep_refused_before_its_trials_says_why_in_one_error_line(
    tracking_uri: str, tmp_path: Path
) -> None:
    # It printed the bare message and exited 1, unlike every other refusal (error: ..., 2).
    result = train_multirun(
        ["hparams_search=tfidf_ridge", "validation.size=0"], tracking_uri, tmp_path
    )
    assert result.returncode == 2, result.stderr[-3000:]
    [said] = [line for line in result.stderr.splitlines() if line.strip()]
    assert said.startswith("error: a sweep ranks its trials by validation.mae")


@pytest.mark.parametrize("shown", [["--cfg", "job"], ["--cfg=hydra"], ["--info"]])
def test_a_multirun_asked_to_print_instead_is_one_line(
    tracking_uri: str, tmp_path: Path, shown: list[str]
) -> None:
    # Hydra refuses -m with --cfg (or --info) in a ValueError raised outside its error
    # handling: a 20-line traceback, exit 1. (Its flags after the overrides, as typed at the
    # end of a command: argparse takes no override after them.)
    command = [sys.executable, "-m", "pricer.train", "-m", "hparams_search=tfidf_ridge"]
    result = run_cli(
        [*command, f"hydra.sweep.dir={tmp_path}/multirun", *shown], tracking_uri, tmp_path
    )
    assert result.returncode == 2, result.stderr[-3000:]
    [said] = [line for line in result.stderr.splitlines() if line.strip()]
    flag = shown[0].split("=")[0]
    assert said.startswith(f"error: -m (--multirun) and {flag} cannot be combined: "), said
    if flag == "--cfg":
        assert "leave out -m to print the config" in said
    assert result.stdout == "" and runs(tracking_uri).empty
