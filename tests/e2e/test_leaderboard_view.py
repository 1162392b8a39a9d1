"""A leaderboard through the real CLI: what the terminal and the MLflow UI's lists show."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tests.e2e.conftest import pricer_app, run_cli, small_leaderboard

pytestmark = pytest.mark.e2e


def test_leaderboard_names_runs_and_models_and_prints_a_quiet_summary(
    tracking_uri: str, tmp_path: Path
) -> None:
    result = small_leaderboard(tracking_uri, tmp_path, "tracking.log_model=true")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    [parent] = [run for run in runs if run.data.tags.get("pricer.kind") == "leaderboard"]
    children = {run.data.tags["pricer.family"]: run for run in runs if run is not parent}
    assert parent.info.run_name == "leaderboard · synthetic"
    assert {run.info.run_name for run in children.values()} == {
        "constant · synthetic",
        "tfidf_ridge · synthetic",
    }
    assert {run.data.tags["pricer.data"] for run in runs} == {"synthetic"}

    # The parent holds what a person compares; curation counts only there.
    maes = {family: run.data.metrics["mae"] for family, run in children.items()}
    assert parent.data.metrics["mae.constant"] == pytest.approx(maes["constant"])
    assert parent.data.metrics["best_mae"] == pytest.approx(min(maes.values()))
    assert parent.data.tags["best_family"] == min(maes, key=maes.get)
    note = parent.data.tags["mlflow.note.content"]
    assert "| family | &nbsp;&nbsp;mae |" in note and f"${maes['constant']:,.2f}" in note
    assert "course" not in note  # synthetic data: the course's real-data figures stay out
    assert any(key.startswith("data.") for key in parent.data.metrics)
    for run in children.values():
        assert not any(key.startswith("data.") for key in run.data.metrics)

    # Logged models are named by family and data, their metrics linked to the evaluation set.
    models = mlflow.search_logged_models(
        experiment_ids=[parent.info.experiment_id], output_format="list"
    )
    assert sorted(m.name for m in models) == ["constant-synthetic", "tfidf_ridge-synthetic"]
    for model in models:
        linked = {m.key: m.dataset_name for m in model.metrics}
        assert linked["mae"].startswith("synthetic-evaluation-")  # and its size

    # The terminal: no MLflow chatter, one summary line per family, a narrow table, the URL.
    output = result.stdout + result.stderr
    assert "Validating input example" not in output and "Downloading artifacts" not in output
    assert "system_metrics" not in output  # the monitor's start/stop lines, once per run
    for family, mae in maes.items():
        assert f"{family} · synthetic: mae ${mae:.2f}" in result.stdout
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("family"))
    table = lines[header - 1 : header + 3]  # column names, index name, two families
    assert "tfidf_ridge" in table[-1] or "tfidf_ridge" in table[-2]
    assert all(len(line) <= 100 for line in table)
    assert f"best: {parent.data.tags['best_family']}, mae $" in result.stdout
    url = f"/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}"
    assert url in result.stdout


def test_a_failed_family_points_at_its_own_failed_run(tracking_uri: str, tmp_path: Path) -> None:
    """Its leaderboard row names its own FAILED child run, not the parent (the fix: before, the
    row held ``mlflow.last_active_run()``, which is the parent while the parent is open)."""
    result = run_cli(
        pricer_app(
            "leaderboard",
            "families=[constant,frontier]",
            "+model@models.frontier=frontier",
            "models.frontier.base_url=http://127.0.0.1:9/v1",  # nothing listens: fails fast
            "models.frontier.tier=null",
            f"models.frontier.cache_dir={tmp_path}/llm_cache",  # not the checkout's llm_cache/
            "data.n_records=4000",
            "curation.split.test_size=200",
            f"curation.cache_dir={tmp_path}/cache",
            workdir=tmp_path,
        ),
        tracking_uri,
        tmp_path,
        env={"OPENAI_API_KEY": "test-key-never-used"},
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "families failed: frontier (see their runs)" in result.stderr
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    [parent] = [run for run in runs if run.data.tags.get("pricer.kind") == "leaderboard"]
    children = {run.data.tags["pricer.family"]: run for run in runs if run is not parent}
    assert children["frontier"].info.status == "FAILED"
    table = mlflow.artifacts.load_dict(f"{parent.info.artifact_uri}/leaderboard/leaderboard.json")
    rows = pd.DataFrame(table["data"], columns=table["columns"]).set_index("family")
    assert rows.loc["frontier", "run_id"] == children["frontier"].info.run_id
    assert rows.loc["constant", "run_id"] == children["constant"].info.run_id
