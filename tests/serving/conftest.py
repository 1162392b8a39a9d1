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
from tests.conftest import compose_config, forget_store_ids, small_train_config

CHAMPION_URI = "models:/pricer-synthetic@champion"  # trained on the default data


def constant_champion(price: float, name: str = "pricer-synthetic") -> ModelInfo:
    """A constant pricer of ``price``, logged in the current store and registered as ``name``
    version 1, its champion (seconds, where training one takes longer)."""
    from pricer.models.constant import ConstantPricer
    from pricer.tracking.model import log_pricer

    items = pd.DataFrame({"text": ["Cordless drill", "Replacement cap"]})
    with mlflow.start_run():
        info = log_pricer(ConstantPricer("mean").fit(items, np.array([price, price])))
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
        run_family("tfidf_ridge", small_train_config("tfidf_ridge", folder))
        assert promote(compose_config("promote", ["data=synthetic"])).outcome == "champion"
        yield uri
