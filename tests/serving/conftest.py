"""A store with a champion, shared by the serving tests (training it takes seconds)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models.model import ModelInfo

from pricer.experiment import run_family
from pricer.tracking.registry import promote
from tests.conftest import compose_config, forget_store_ids

CHAMPION_URI = "models:/pricer-synthetic@champion"  # trained on the default data


def constant_champion(price: float, name: str = "pricer-synthetic") -> ModelInfo:
    """A constant pricer of ``price``, logged in the current store and registered as ``name``
    version 1, its champion (seconds, where training one takes longer)."""
    from pricer.models.constant import ConstantPricer
    from pricer.tracking.model import log_pricer

    items = pd.DataFrame({"text": ["Cordless drill", "Replacement cap"]})
    with mlflow.start_run():
        info = log_pricer(ConstantPricer("mean").fit(items, np.array([price, price])), items)
    mlflow.register_model(info.model_uri, name)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", "1")
    return info


@pytest.fixture(scope="session")
def champion_store(tmp_path_factory: pytest.TempPathFactory, migrated_store: Path) -> Iterator[str]:
    """A store whose ``pricer-synthetic`` has a tfidf_ridge champion; yields its URI."""
    folder = tmp_path_factory.mktemp("champion")
    shutil.copyfile(migrated_store, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", uri)
        forget_store_ids(env)
        mlflow.set_tracking_uri(uri)
        cfg = compose_config(
            "train",
            [
                "model=tfidf_ridge",
                "family=tfidf_ridge",  # not ${hydra:...}: no Hydra app runs here
                "data.n_records=4000",
                "curation.split.test_size=200",
                "eval.size=50",
                f"curation.cache_dir={folder / 'cache'}",
                f"tracking.artifact_location={folder / 'artifacts'}",
            ],
        )
        run_family("tfidf_ridge", cfg)
        assert promote(compose_config("promote", ["data=synthetic"])).outcome == "champion"
        yield uri
