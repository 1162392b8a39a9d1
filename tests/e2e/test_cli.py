"""The real command-line apps against a real SQLite MLflow store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from benchmarks.common import store_env
from tests.e2e.conftest import pricer_app, run_cli, runs, small_leaderboard

pytestmark = pytest.mark.e2e

SMALL_SYNTHETIC = ["data.n_records=4000", "curation.split.test_size=200"]


def test_train_logs_a_complete_run_on_real_items(
    tracking_uri: str, tmp_path: Path, real_slice: dict[str, str]
) -> None:
    result = run_cli(
        pricer_app(
            "train",
            "model=tfidf_ridge",
            "data=items",
            f"data.train_paths=[{real_slice['train']}]",
            f"data.test_paths=[{real_slice['test']}]",
            "eval.size=50",
            workdir=tmp_path,
        ),
        tracking_uri,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tfidf_ridge · items: mae $" in result.stdout
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FINISHED"
    assert run.data.tags["pricer.family"] == "tfidf_ridge"
    assert run.data.tags["pricer.eval_size"] == "50"
    # Its page, printed: a lone run said only its summary, and comparing or promoting it went
    # through `pricer runs` first.
    assert f"/runs/{run.info.run_id}?workflowType=machine_learning" in result.stdout
    for metric in (
        "mae",
        "rmsle",
        "hit_rate",
        "r2",
        "mae_ci_low",
        "mae_ci_high",
        "data.train_items",  # a lone run is its own curation record
        "time.fit_seconds",
    ):
        assert np.isfinite(run.data.metrics[metric]), metric
    assert (
        run.data.metrics["mae_ci_low"] < run.data.metrics["mae"] < run.data.metrics["mae_ci_high"]
    )
    assert run.data.params["model.alpha"] and run.data.params["eval.size"] == "50"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {"plots/truth_vs_estimate.png", "plots/error_histogram.png"}
    contexts = {i.tags[0].value for i in run.inputs.dataset_inputs}
    assert contexts == {"training", "test", "evaluation"}
    assert all(i.dataset.digest for i in run.inputs.dataset_inputs)

    # The logged model reproduces the logged metric from the test file alone.
    [model] = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    test = pd.read_parquet(real_slice["test"]).head(50)
    prices = mlflow.pyfunc.load_model(model.model_uri).predict(
        test[["text", "title", "category", "details"]]
    )
    assert np.abs(prices - test["price"]).mean() == pytest.approx(run.data.metrics["mae"])
    table = json.loads(
        mlflow.artifacts.load_text(f"{run.info.artifact_uri}/evaluation/predictions.json")
    )
    assert len(table["data"]) == 50


def test_a_missing_item_file_is_refused_before_any_run_exists(
    tracking_uri: str, tmp_path: Path
) -> None:
    # A typo in a path left a FAILED run in the list for every try; a setting out of range
    # leaves none, and neither does this now.
    missing = tmp_path / "nowhere.jsonl"
    for app, selection in (("train", "model=constant"), ("leaderboard", "families=[constant]")):
        result = run_cli(
            pricer_app(
                app, selection, "data=items", f"data.train_paths=[{missing}]", workdir=tmp_path
            ),
            tracking_uri,
            tmp_path,
        )
        assert result.returncode == 2, result.stderr[-3000:]
        assert result.stderr.strip().splitlines()[-1] == f"error: item file not found: {missing}"
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_an_empty_curated_dir_is_said_to_be_empty_before_any_run(
    tracking_uri: str, tmp_path: Path
) -> None:
    # It said "item file not found: /train.parquet", the split's paths without their folder.
    for app, selection in (("train", "model=constant"), ("leaderboard", "families=[constant]")):
        result = run_cli(
            pricer_app(app, selection, "data=curated", "data.curated_dir=", workdir=tmp_path),
            tracking_uri,
            tmp_path,
        )
        assert result.returncode == 2, result.stderr[-3000:]
        assert result.stderr.strip().splitlines() == [
            "error: data.curated_dir is empty: point it at the folder holding the split pricer "
            "curate wrote (its output_dir)"
        ]
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_an_experiment_whose_artifact_location_cannot_hold_files_starts_no_run(
    tracking_uri: str, tmp_path: Path
) -> None:
    # Each try left a FAILED run whose first artifact raised NotADirectoryError: a traceback.
    (tmp_path / "notes.txt").write_text("mine")
    location = tmp_path / "notes.txt" / "runs"
    mlflow.create_experiment("old", artifact_location=str(location))
    for app, selection in (
        ("train", "model=constant"),
        ("curate", f"curation.cache_dir={tmp_path}"),
    ):
        result = run_cli(
            pricer_app(
                app, selection, "tracking.experiment=old", *SMALL_SYNTHETIC, workdir=tmp_path
            ),
            tracking_uri,
            tmp_path,
        )
        assert result.returncode == 2, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1] == (
            f"error: experiment 'old' keeps its run files at {location}: {tmp_path / 'notes.txt'} "
            "is a file, not a folder; fix that place, or send runs to another experiment "
            "(tracking.experiment=NAME, tracking.artifact_location=FOLDER)"
        )
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_bad_data_fails_the_run_with_a_specific_message(tracking_uri: str, tmp_path: Path) -> None:
    # The file is there, so the run starts; what is in it is judged inside the run, which
    # ends FAILED and says why.
    priceless = tmp_path / "priceless.jsonl"
    priceless.write_text('{"title": "a", "text": "a thing", "price": "n/a"}\n')
    result = run_cli(
        pricer_app(
            "train", "model=constant", "data=items", f"data.train_paths=[{priceless}]",
            workdir=tmp_path,
        ),
        tracking_uri,
        tmp_path,
    )  # fmt: skip
    assert result.returncode != 0
    assert f"no usable items in ['{priceless}']" in result.stderr
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FAILED"
    assert "no usable items" in run.data.tags["error"]


def test_leaderboard_has_a_parent_and_one_child_per_family(
    tracking_uri: str, tmp_path: Path
) -> None:
    small_leaderboard(tracking_uri, tmp_path, "tracking.log_model=false")
    table = runs(tracking_uri)
    parent = table[table["tags.mlflow.runName"] == "leaderboard · synthetic"]
    children = table[table["tags.mlflow.parentRunId"] == parent["run_id"].item()]
    assert sorted(children["tags.pricer.family"]) == ["constant", "tfidf_ridge"]
    assert (children["status"] == "FINISHED").all()
    maes = children.set_index("tags.pricer.family")["metrics.mae"]
    assert maes["tfidf_ridge"] < maes["constant"]  # the synthetic data is learnable
    # Both were scored on the very same items.
    assert children["tags.pricer.eval_digest"].nunique() == 1
    board = mlflow.artifacts.load_text(
        f"{parent['artifact_uri'].item()}/leaderboard/leaderboard.csv"
    )
    assert board.splitlines()[1].startswith("tfidf_ridge")  # best first


def test_curate_saves_a_split_that_train_can_use(tracking_uri: str, tmp_path: Path) -> None:
    out = tmp_path / "curated"
    result = run_cli(
        pricer_app(
            "curate",
            *SMALL_SYNTHETIC,
            f"output_dir={out}",
            "curation.cache_dir=null",
            workdir=tmp_path,
        ),
        tracking_uri,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == {
        "train.parquet",
        "test.parquet",
        "population.parquet",
        "report.json",
        "manifest.json",  # sizes and sha256 of the others, written last (pricer.data.cache)
    }
    report = json.loads((out / "report.json").read_text())
    assert report["raw_records"] == 4000 and report["test"] == 200
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    charts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "curation")}
    assert "curation/prices_before.png" in charts and "curation/category_shares_after.png" in charts
    assert run.data.metrics["data.rejected.missing_price"] > 0

    trained = run_cli(
        pricer_app(
            "train",
            "model=constant",
            "data=curated",
            f"data.curated_dir={out}",
            "tracking.log_model=false",
            workdir=tmp_path,
        ),
        tracking_uri,
        tmp_path,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    train_run = mlflow.search_runs(
        search_all_experiments=True,
        filter_string="tags.`pricer.family` = 'constant'",
        output_format="list",
    )[0]
    assert train_run.data.metrics["data.test_items"] == 200


def test_mlflow_run_entry_point_resumes_the_run_mlflow_created(
    tracking_uri: str, tmp_path: Path
) -> None:
    overrides = " ".join(
        [
            *SMALL_SYNTHETIC,
            f"curation.cache_dir={tmp_path}/cache",
            "tracking.log_model=false",
            f"hydra.run.dir={tmp_path}/hydra",
        ]
    )
    result = run_cli(
        [
            "mlflow",
            "run",
            ".",
            "-e",
            "constant",
            "--env-manager",
            "local",
            "-P",
            f"overrides={overrides}",
        ],
        tracking_uri,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.entryPoint"] == "constant"
    assert run.data.tags["pricer.family"] == "constant" and "mae" in run.data.metrics


def test_a_reader_that_goes_away_does_not_fail_the_run(tracking_uri: str, tmp_path: Path) -> None:
    """``python -m pricer.train ... | head -1``: the terminal's reader is not the record.

    Every print after the pipe closed raised BrokenPipeError inside the run, which ended FAILED
    with it as its error, though the model had been fitted and scored.
    """
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the app prints its first line
    env = store_env(tracking_uri)
    app = pricer_app(
        "train",
        "model=constant",
        *SMALL_SYNTHETIC,
        f"curation.cache_dir={tmp_path}/cache",
        workdir=tmp_path,
    )
    done = subprocess.run(
        app, stdout=write_end, stderr=subprocess.PIPE, text=True, env=env, timeout=600
    )
    os.close(write_end)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "BrokenPipeError" not in done.stderr
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FINISHED" and "error" not in run.data.tags
    assert np.isfinite(run.data.metrics["mae"])


def test_a_secret_in_a_refused_familys_error_stays_off_the_terminal(
    tracking_uri: str, tmp_path: Path
) -> None:
    # "frontier: FAILED: environment variable sk-proj-... (named by api_key_env) is not set":
    # the key pasted where its variable's name goes was printed, though redacted in the store.
    # The family is now refused before any run (pricer.models.llm.client.check_api_keys), in
    # a line that names it as the failed family's did.
    secret = "sk-proj-" + "Rx7Kq2Lm9Vb4Nc8Zt1Wy5Hd3Fg6Js0Pa"
    result = run_cli(
        pricer_app(
            "leaderboard",
            "data.n_records=4000",
            "curation.split.test_size=200",
            f"curation.cache_dir={tmp_path}/cache",
            "families=[constant,frontier]",
            "+model@models.frontier=frontier",
            f"models.frontier.api_key_env={secret}",
            "tracking.log_model=false",
            workdir=tmp_path,
        ),
        tracking_uri,
        tmp_path,
    )
    said = result.stdout + result.stderr
    assert result.returncode == 2, said[-3000:]
    assert "error: frontier: api_key_env must name the environment variable" in said, said[-3000:]
    assert secret not in said


def test_a_second_curate_into_the_same_folder_is_refused_while_the_first_runs(
    tracking_uri: str, tmp_path: Path
) -> None:
    # Both ran to the end, FINISHED: the first saved its split, the second swapped its own in,
    # and the first run's record (its inputs' digests, its report) described files not there.
    out = tmp_path / "curated"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    env.pop("MLFLOW_RUN_ID", None)

    def curate(seed: int) -> subprocess.Popen[str]:
        app = pricer_app(
            "curate", *SMALL_SYNTHETIC, f"data.seed={seed}", f"output_dir={out}",
            "curation.cache_dir=null", workdir=tmp_path / f"hydra{seed}",
        )  # fmt: skip
        return subprocess.Popen(
            app, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    first = curate(1)
    try:
        # The first is held still once it has opened its run (a slow curation, at the course's
        # scale), and the second runs meanwhile.
        deadline = time.monotonic() + 300
        while not mlflow.search_runs(search_all_experiments=True, output_format="list"):
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()[-3000:]
            time.sleep(0.1)
        os.kill(first.pid, signal.SIGSTOP)
        try:
            second = curate(2)
            _, err = second.communicate(timeout=600)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        _, first_err = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 0, first_err[-3000:]
    assert second.returncode == 2, err[-3000:]
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(f"error: {out} is being written by another pricer curate (pid {first.pid} on ")
    )
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FINISHED" and run.data.params["data.seed"] == "1"
    assert not (tmp_path / ".curated.writer").exists()  # the first's hold went with it
    curate(3).communicate(timeout=600)  # the folder is free again
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == 2
