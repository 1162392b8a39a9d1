"""The pyfunc model logged for every family, as MLflow "models from code".

MLflow copies this file into each logged model and runs it at load time, so the model is
defined by code rather than by a pickled Python object. The fitted pricer is a skops file,
loaded trusting only the classes its own code is made of (``pricer.tracking.model_files``):
a tampered file is refused, never run.

Items without usable text (null, empty, only a number) are refused: the whole batch fails
with an MlflowException naming the rows, which ``mlflow models serve`` answers with a 400.

An item a pricer could not price (an LLM's refusal, a reply with no amount) is NaN in
Python; in MLflow's scoring server it is None, which the server writes as ``null``: its JSON
encoder wrote NaN as a bare ``NaN``, no JSON (RFC 8259) at all, so strict clients (browsers'
``JSON.parse``, Go, Java) failed on the whole answer. The answer stays a list of prices, as
MLflow's clients expect, with no room to say why an item went unpriced.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.environment_variables import _MLFLOW_IS_IN_SERVING_ENVIRONMENT
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, TEMPORARILY_UNAVAILABLE

from pricer.errors import UserError
from pricer.models.base import Pricer, UnusableItems, as_items, require_usable_text
from pricer.tracking.model_files import load_pricer


class PricerModel(mlflow.pyfunc.PythonModel):
    """Items in (``text`` required; ``title``, ``category``, ``details`` optional), dollars out."""

    def load_context(self, context: Any) -> None:
        self.pricer: Pricer = load_pricer(context.artifacts["pricer"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        try:
            require_usable_text(model_input)
        except UnusableItems as error:
            # INVALID_PARAMETER_VALUE: the scoring server answers 400 with this message.
            raise MlflowException.invalid_parameter_value(str(error)) from error
        if len(model_input) == 0:  # scikit-learn's steps refuse 0 rows: no items, no prices
            return np.empty(0, dtype=float)
        # Set by MLflow's scoring server (and ``mlflow models predict``) as it starts, before
        # any request: its answer is JSON, a notebook's is an array it computes with.
        serving = bool(_MLFLOW_IS_IN_SERVING_ENVIRONMENT.get())
        try:
            prices = np.asarray(self.pricer.predict(as_items(model_input)), dtype=float)
        except UserError as error:
            if not serving:  # Python callers keep the error they can catch by its type
                raise
            raise served_error(error) from None
        return as_json_numbers(prices) if serving else prices


def served_error(error: UserError) -> MlflowException:
    """A pricer's own error (an LLM's server unreachable, its key refused) as the scoring
    server's answer: MLflow wrapped any other exception as a 400 saying "Verify that the
    serialized input Dataframe is compatible with the model", with a traceback, which sent
    the client looking at its request. Now the one line that says why, as a server's error:
    503 for a server it could not reach, 500 otherwise."""
    code = TEMPORARILY_UNAVAILABLE if isinstance(error, ConnectionError) else INTERNAL_ERROR
    return MlflowException(" ".join(str(error).split()), error_code=code)


def as_json_numbers(prices: np.ndarray) -> np.ndarray:
    """``prices`` as objects, None where there is no finite price (JSON has no NaN)."""
    answer = prices.astype(object)
    answer[~np.isfinite(prices)] = None
    return answer


mlflow.models.set_model(PricerModel())
