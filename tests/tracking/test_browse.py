"""pricer runs: what each kind of run sums up to in one row."""

from __future__ import annotations

import mlflow

from pricer.tracking import browse, tags


def test_recent_runs_sum_up_sweeps_and_curations(tracking_uri: str) -> None:
    with mlflow.start_run(run_name="curate-synthetic", tags={tags.KIND: "curation"}):
        mlflow.log_metrics({"data.train_items": 38424.0, "data.test_items": 2000.0})
    with mlflow.start_run(run_name="study-ridge", tags={tags.KIND: "sweep"}) as sweep:
        metrics = {"trials.total": 12.0, "trials.finished": 11.0, "trials.failed": 1.0}
        mlflow.log_metrics({**metrics, "best.validation.mae": 21.5283, "best.test_mae": 26.9})
        with mlflow.start_run(run_name="trial", nested=True, tags={tags.FAMILY: "tfidf_ridge"}):
            mlflow.log_metric("mae", 30.0)
    with mlflow.start_run(run_name="study-empty", tags={tags.KIND: "sweep"}):
        mlflow.log_metrics({"trials.total": 2.0, "trials.finished": 0.0, "trials.failed": 2.0})

    table = browse.recent_runs(None, 10).set_index("name")["result"]

    assert list(table.index) == ["study-empty", "study-ridge", "curate-synthetic"]  # no trial
    assert table["study-ridge"] == "val mae $21.53 (test $26.90), 11/12 trials"
    assert table["study-empty"] == "no trial finished, 2 failed"
    assert table["curate-synthetic"] == "train 38,424 / test 2,000 items"
    assert sweep.info.run_id[: browse.SHORT_ID] in set(browse.recent_runs(None, 10)["run"])


def test_a_run_that_failed_shows_why_where_its_result_would_be(tracking_uri: str) -> None:
    # Before, a FAILED run's result cell was empty: the reason was only in the UI's tags.
    reason = "ConfigError: like_test_weight must be a finite number above 0 or null, got 0.0"
    with mlflow.start_run(run_name="stack · real", tags={tags.FAMILY: "stack"}) as failed:
        mlflow.set_tag(tags.ERROR, reason)
    mlflow.MlflowClient().set_terminated(failed.info.run_id, "FAILED")
    with mlflow.start_run(run_name="xgboost · real", tags={tags.FAMILY: "xgboost"}):
        mlflow.log_metric("mae", 92.78)

    table = browse.recent_runs(None, 10).set_index("name")

    assert table.loc["xgboost · real", "result"] == "mae $92.78"
    assert table.loc["stack · real", "status"] == "FAILED"
    shown = table.loc["stack · real", "result"]
    assert shown.startswith("ConfigError: like_test_weight must") and shown.endswith("…")
    assert len(shown) <= 48


def test_promotions_and_fine_tunings_are_listed_with_their_outcome(tracking_uri: str) -> None:
    # The README says pricer runs lists every lone run; these two kinds were left out.
    with mlflow.start_run(run_name="promote · real", tags={tags.KIND: "promotion"}):
        mlflow.set_tag("pricer.decision", "champion")
        mlflow.log_metric("candidate.mae", 92.781)
    finetune = {tags.ENTRY_POINT: "finetune", tags.FT_FINE_TUNED_MODEL: "ft:gpt-4o-mini:x:y"}
    with mlflow.start_run(run_name="finetune · real", tags=finetune):
        pass

    table = browse.recent_runs(None, 10).set_index("name")["result"]

    assert table["promote · real"] == "champion, candidate mae $92.78"
    assert table["finetune · real"] == "ft:gpt-4o-mini:x:y"
