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


def test_a_champion_whose_model_is_gone_is_retired_with_the_command_promote_names(
    tracking_uri: str, tmp_path: Path
) -> None:
    # promote said "delete the champion alias": only the MLflow UI or MlflowClient could, and
    # neither recorded the decision.
    import numpy as np

    from tests.registry.test_registry import BASE, training_run

    mlflow.set_experiment("pricer")
    best = training_run(BASE)
    other = training_run(BASE * 2, family="constant")
    client = MlflowClient()

    def promote(*overrides: str) -> tuple[int, str, str]:
        done = run_cli(pricer_app("promote", *overrides, workdir=tmp_path), tracking_uri, tmp_path)
        return done.returncode, done.stdout, done.stderr

    code, out, err = promote("data=synthetic")
    assert code == 0, err[-3000:]
    assert champion_run_id(client) == best
    model_id = client.get_model_version(MODEL, "1").source.removeprefix("models:/")
    client.delete_logged_model(model_id)  # the champion's model is gone
    code, out, err = promote("data=synthetic")
    said = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err
    assert said.startswith(f"error: {MODEL}@champion (version 1) cannot be loaded")
    command = "pricer promote data=synthetic retire=true"
    assert said.endswith(f"(retire it with {command}, then promote to crown a new one)")

    # A candidate's or comparison's setting beside retire=true is refused, named, before any
    # write: it retired the champion whatever the setting said, and said nothing of it.
    history = client.get_registered_model(MODEL).description
    runs = len(mlflow.search_runs(search_all_experiments=True, output_format="list"))
    for given in (["candidates.family=constant"], ["eval.confidence=0.99", "++eval.size=50"]):
        code, out, err = promote(*command.split()[2:], *given)
        assert code == 2 and err.strip() == (
            f"error: {', '.join(given)}: retire=true retires the champion and chooses or "
            "compares no candidate, so candidates.* and eval.* settings do nothing there: drop "
            f"{'it' if len(given) == 1 else 'them'}"
        ), err
    assert champion_run_id(client) == best
    assert client.get_registered_model(MODEL).description == history
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == runs

    # The command it names, as typed (pricer <app> is python -m pricer.<app>).
    code, out, err = promote(*command.split()[2:])
    assert code == 0, err[-3000:]
    assert out.startswith(f"{MODEL}: retired: version 1 (tfidf_ridge run {best}, mae $")
    assert "champion" not in client.get_registered_model(MODEL).aliases
    run = mlflow.search_runs(
        search_all_experiments=True,
        filter_string="tags.`pricer.decision` = 'retired'",
        output_format="list",
    )
    assert [(r.info.status, r.info.run_name) for r in run] == [("FINISHED", "retire · synthetic")]
    version = client.get_model_version(MODEL, "1")
    assert version.tags["pricer.retired_by_run_id"] == run[0].info.run_id
    assert "(retired by promotion run" in version.description
    history = client.get_registered_model(MODEL).description.splitlines()
    assert " retired: version 1 " in history[1] and "first champion" in history[2]

    # Nothing left to retire, or no such model: one line, exit 2, no run.
    runs = len(mlflow.search_runs(search_all_experiments=True, output_format="list"))
    for data, why in [
        ("synthetic", f"error: {MODEL} has no champion to retire"),
        ("real", "error: pricer-real is not registered"),
    ]:
        code, out, err = promote(f"data={data}", "retire=true")
        assert code == 2 and err.strip().splitlines()[-1].startswith(why), err
        assert len(err.strip().splitlines()) == 1
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == runs

    # promote crowns a new one: the next best, the retired run's model being gone.
    code, out, err = promote("data=synthetic")
    assert code == 0, err[-3000:]
    assert f"champion: first champion of '{MODEL}': version 2" in out
    assert champion_run_id(client) == other
    assert np.isfinite(float(client.get_model_version(MODEL, "2").tags["pricer.mae"]))
