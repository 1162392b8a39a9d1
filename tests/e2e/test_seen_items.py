"""A logged model used as an ensemble member is never scored on items it was trained on.

Its prices for them are in-sample: the run recorded a FINISHED score the ensemble did not earn,
with nothing in the record to say so. A logged model now keeps the fingerprints of its training
items (texts compared without case or spacing), and a run that would score it on them stops.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pricer.identity import fingerprints
from tests.e2e.conftest import pricer_app, run_cli

pytestmark = pytest.mark.e2e


def test_fingerprints_compare_texts_without_case_or_spacing() -> None:
    seen = fingerprints(["Red  Kettle 1.5 L", "blue mug"])
    assert seen.dtype == np.uint64 and len(seen) == 2
    asked = fingerprints(["red kettle 1.5 l", " BLUE MUG ", "green mug", "blue mug"])
    assert np.isin(asked, seen).sum() == 2  # each item once, whatever its spacing or case
    assert len(fingerprints(["a b", "A  B"])) == 1


def items_run(tmp_path: Path, train: str, test: str, *extra: str) -> list[str]:
    return pricer_app(
        "train",
        "data=items",
        f"data.train_paths=[{train}]",
        f"data.test_paths=[{test}]",
        f"curation.cache_dir={tmp_path / 'cache'}",
        *extra,
        workdir=tmp_path,
    )


def test_an_ensemble_is_not_scored_on_items_its_logged_member_learned(
    tracking_uri: str, tmp_path: Path, real_slice: dict[str, str], shared_data: Path
) -> None:
    first = run_cli(
        items_run(tmp_path, real_slice["train"], real_slice["test"], "model=linear"),
        tracking_uri,
        tmp_path,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    [trained] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    [model] = mlflow.search_logged_models(
        experiment_ids=[trained.info.experiment_id], output_format="list"
    )
    member = [
        "model=ensemble",
        "~model.members.xgboost",
        "~model.members.tfidf_ridge",
        "+model.members.best._target_=pricer.tracking.model.logged_pricer",
        f"+model.members.best.model_uri=models:/{model.model_id}",
    ]
    # Some of its 400 training items made into the test file of the next run.
    learned = pd.read_json(real_slice["train"], lines=True)
    reused = tmp_path / "reused.jsonl"
    canonical = pd.read_json(shared_data / "pricer_canonical_test_rest_1750.jsonl", lines=True)
    others = canonical.iloc[100:160]  # not among the next run's 60 training items
    pd.concat([learned.head(7), others]).to_json(reused, orient="records", lines=True)
    refused = run_cli(
        items_run(tmp_path, real_slice["test"], str(reused), *member), tracking_uri, tmp_path
    )
    assert refused.returncode == 2, refused.stderr[-2000:]
    error = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert error == [
        f"error: ensemble member best (models:/{model.model_id}) was trained on 7 of the 67 "
        "test items: its prices for them are in-sample and the score would be one it did not "
        "earn; score it on items it has not seen, or leave it out"
    ]
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    ensemble = [run for run in runs if run.data.tags.get("pricer.family") == "ensemble"]
    assert [run.info.status for run in ensemble] == ["FAILED"]
    assert "mae" not in ensemble[0].data.metrics

    # On its own split the member has seen none of the test items: scored, and the fit says
    # how many training items the stacker sees in-sample prices of.
    fine = run_cli(
        items_run(tmp_path, real_slice["train"], real_slice["test"], *member),
        tracking_uri,
        tmp_path,
    )
    assert fine.returncode == 0, fine.stderr[-2000:]
    assert "was trained on 400 of these 400 training items" in fine.stdout + fine.stderr


def test_a_damaged_or_foreign_fingerprint_file_is_refused(tmp_path: Path) -> None:
    from pricer.tracking.model import TRAINED_ON_FILE, trained_on
    from pricer.tracking.model_files import UnsafeModelFile

    path = tmp_path / "artifacts" / TRAINED_ON_FILE
    assert trained_on(tmp_path) is None  # logged before models kept them: unknown
    path.parent.mkdir()
    np.save(path, fingerprints(["a", "b"]), allow_pickle=False)
    assert trained_on(tmp_path).tolist() == fingerprints(["a", "b"]).tolist()
    path.write_bytes(path.read_bytes()[:-5])  # cut short
    with pytest.raises(UnsafeModelFile, match="damaged"):
        trained_on(tmp_path)
    np.save(path, np.array([1.5, 2.5]), allow_pickle=False)
    with pytest.raises(UnsafeModelFile, match="not item fingerprints"):
        trained_on(tmp_path)
    np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)  # a pickle inside
    with pytest.raises(UnsafeModelFile, match="damaged"):
        trained_on(tmp_path)
