"""Promotion through the real CLI (python -m pricer.promote and mlflow run . -e promote)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from tests.e2e.conftest import pricer_app, run_cli

pytestmark = pytest.mark.e2e

SMALL = ["data.n_records=4000", "curation.split.test_size=200"]
MODEL = "pricer-synthetic"  # the leaderboard below runs on the default data, synthetic


def champion_run_id(client: MlflowClient) -> str:
    return client.get_model_version_by_alias(MODEL, "champion").run_id


def test_promote_crowns_the_first_model_then_refuses_worse_ones(
    tracking_uri: str, tmp_path: Path
) -> None:
    trained = run_cli(
        pricer_app(
            "leaderboard",
            *SMALL,
            "families=[constant,tfidf_ridge]",
            "tracking.log_model=true",
            f"curation.cache_dir={tmp_path}/cache",
            workdir=tmp_path,
        ),
        tracking_uri,
        tmp_path,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    families = {
        run.data.tags["pricer.family"]: run.info.run_id
        for run in mlflow.search_runs(search_all_experiments=True, output_format="list")
        if "pricer.family" in run.data.tags
    }
    client = MlflowClient()

    # Without a data choice: one line that lists the choices, no traceback, nothing registered.
    unchosen = run_cli(pricer_app("promote", workdir=tmp_path), tracking_uri, tmp_path)
    assert unchosen.returncode == 2
    assert unchosen.stderr.strip().splitlines()[-1].startswith("error: say which data")
    assert "synthetic (2 runs)" in unchosen.stderr and "Traceback" not in unchosen.stderr
    assert client.search_registered_models() == []

    # The first model becomes champion directly: the best of the comparable runs.
    first = run_cli(
        [
            "mlflow",
            "run",
            ".",
            "-e",
            "promote",
            "--env-manager",
            "local",
            "--experiment-name",
            "pricer",
            "-P",
            f"overrides=data=synthetic hydra.run.dir={tmp_path}/hydra",
        ],
        tracking_uri,
        tmp_path,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"champion: first champion of '{MODEL}'" in first.stdout
    # It recommended mlflow models serve, which runs the model's code unchecked.
    assert (
        'use it: pricer predict --data synthetic "<text>", or pricer serve --data synthetic\n'
        in first.stdout
    )
    assert champion_run_id(client) == families["tfidf_ridge"]
    promotion = mlflow.search_runs(
        search_all_experiments=True,
        filter_string="tags.`mlflow.project.entryPoint` = 'promote'",
        output_format="list",
    )[0]
    assert promotion.info.status == "FINISHED"
    assert promotion.data.tags["pricer.kind"] == "promotion"

    # A worse family is refused: the champion stays, the candidate waits as challenger.
    worse = run_cli(
        pricer_app("promote", "data=synthetic", "candidates.family=constant", workdir=tmp_path),
        tracking_uri,
        tmp_path,
    )
    assert worse.returncode == 0, worse.stderr[-3000:]
    assert "challenger: version 2 (constant run" in worse.stdout
    assert "is worse than champion version 1" in worse.stdout
    assert champion_run_id(client) == families["tfidf_ridge"]
    assert client.get_model_version_by_alias(MODEL, "challenger").run_id == families["constant"]
