"""The pyfunc model logged for every family, as MLflow "models from code".

MLflow copies this file into each logged model and runs it at load time, so the model is
defined by code rather than by a pickled Python object; only the fitted pricer is pickled.
"""

from __future__ import annotations

import pickle
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from pricer.models.base import Pricer, as_items


class PricerModel(mlflow.pyfunc.PythonModel):
    """Items in (``text`` required; ``title``, ``category``, ``details`` optional), dollars out."""

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["pricer"], "rb") as file:
            self.pricer: Pricer = pickle.load(file)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        return np.asarray(self.pricer.predict(as_items(model_input)), dtype=float)


mlflow.models.set_model(PricerModel())
