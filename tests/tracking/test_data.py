from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.data.code_dataset_source import CodeDatasetSource

from pricer.data.dataset import CuratedData, CurationReport
from pricer.errors import ConfigError
from pricer.experiment import run_family
from pricer.tracking.data import SCHEMA_ROWS, ItemsDataset, log_data_inputs
from tests.conftest import compose_config, small_train_config


def items(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    details = [None if i % 7 else json.dumps({"Brand": f"B{i}"}) for i in range(n)]
    return pd.DataFrame(
        {
            "title": [f"Item {i}" for i in range(n)],
            "text": [f"Item {i}, a thing made of {rng.choice(['oak', 'steel'])}" for i in range(n)],
            "price": rng.uniform(1, 999, n).round(2),
            "category": rng.choice(["Automotive", "Electronics"], n),
            "details": pd.Series(details, dtype="str"),
        }
    )


def test_items_dataset_has_the_full_inference_schema_and_counts_every_row(
    tracking_uri: str,
) -> None:
    frame = items(3 * SCHEMA_ROWS)
    source = CodeDatasetSource(tags={})
    dataset = ItemsDataset(frame, source=source, targets="price", name="t", digest="d")
    full = mlflow.data.from_pandas(frame, source=source, targets="price", digest="d")
    assert dataset.schema == full.schema
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
    (logged,) = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert json.loads(logged.dataset.profile)["num_rows"] == len(frame)
    assert logged.dataset.digest == "d"


@pytest.mark.parametrize("name", ["real.v2", "team/real", "it's"])
def test_a_data_name_mlflow_refuses_in_model_names_fails_before_any_run(
    name: str, tracking_uri: str, tmp_path: Path
) -> None:
    # MLflow refused the logged model's name (<family>-<data>) once the family was fitted:
    # its traceback, and a FAILED run.
    cfg = small_train_config("constant", tmp_path, f'data.name="{name}"')
    with pytest.raises(ConfigError, match=r"^data\.name=.* MLflow refuses"):
        run_family("constant", cfg)
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_datasets_whose_columns_are_named_otherwise_are_recorded_as_other_data(
    tracking_uri: str,
) -> None:
    # Their digests were equal: MLflow's record said the two runs used the same data.
    train = items(40)
    swapped = train.rename(columns={"title": "text", "text": "title"})
    digests = []
    for frame in (train, swapped):
        report = CurationReport("items", 50, {}, 50, 50, 40, 10)
        curated = CuratedData(frame, train.head(10), frame[["price", "category"]], report)
        with mlflow.start_run() as run:
            log_data_inputs(curated, None, compose_config("train").data, curation_counts=False)
        inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
        digests.append({i.dataset.name: i.dataset.digest for i in inputs})
    assert digests[0]["synthetic-training"] != digests[1]["synthetic-training"]
    assert digests[0]["synthetic-test"] == digests[1]["synthetic-test"]


def test_each_logged_dataset_names_the_files_its_items_came_from(
    tracking_uri: str, tmp_path: Path
) -> None:
    # Every set was recorded as coming from the training files: data=curated's test and
    # evaluation items "came from" train.parquet.
    data = compose_config("train", ["data=curated", f"data.curated_dir={tmp_path}"]).data
    report = CurationReport("items", 50, {}, 50, 50, 40, 10)
    frame = items(50)
    curated = CuratedData(frame.head(40), frame.tail(10), frame[["price", "category"]], report)
    with mlflow.start_run() as run:
        log_data_inputs(
            curated, frame.tail(5), data, curation_counts=False, validation_items=frame.head(3)
        )
    inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    origins = {
        i.dataset.name: json.loads(i.dataset.source)["tags"]["pricer.origin"] for i in inputs
    }
    assert origins == {
        "curated-training": f"{tmp_path}/train.parquet",
        "curated-validation-3": f"{tmp_path}/train.parquet",
        "curated-test": f"{tmp_path}/test.parquet",
        "curated-evaluation-5": f"{tmp_path}/test.parquet",
    }
