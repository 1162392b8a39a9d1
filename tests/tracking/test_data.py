from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.code_dataset_source import CodeDatasetSource

from pricer.tracking.data import SCHEMA_ROWS, ItemsDataset


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
