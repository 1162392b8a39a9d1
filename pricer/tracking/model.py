"""Every family is logged the same way: the fitted pricer, pickled, inside an MLflow pyfunc.

The pyfunc takes a DataFrame of items (``text`` required; ``title``, ``category``, ``details``
optional) and returns prices in dollars, so ``mlflow.pyfunc.load_model`` and
``mlflow models serve`` work for any family without knowing which one it is.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types.schema import ColSpec, Schema

from pricer.models.base import INPUT_COLUMNS, OPTIONAL_COLUMNS, REQUIRED_COLUMN, Pricer, as_items
from pricer.paths import PROJECT_ROOT

# What a logged model needs to run elsewhere; pinned to the versions it was fitted with.
RUNTIME_PACKAGES = ("mlflow", "scikit-learn", "xgboost-cpu", "pandas", "numpy", "openai")

SIGNATURE = ModelSignature(
    inputs=Schema(
        [ColSpec("string", REQUIRED_COLUMN)]
        + [ColSpec("string", column, required=False) for column in OPTIONAL_COLUMNS]
    ),
    outputs=Schema([ColSpec("double", "price")]),
)


@contextmanager
def quiet_model_logging() -> Iterator[None]:
    """Without MLflow's INFO "Validating input example" line and "Downloading artifacts" bar.

    log_model reloads the model to check the input example; both messages then land between
    pricer's progress display and its summary lines, once per family.
    """
    # mlflow.models also says, for LLM families, which environment variables inference reads.
    loggers = [logging.getLogger(name) for name in ("mlflow.pyfunc", "mlflow.models")]
    levels, bar = (
        [lg.level for lg in loggers],
        os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"),
    )
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        if bar is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = bar


def log_pricer(
    pricer: Pricer,
    input_example: pd.DataFrame,
    *,
    name: str = "pricer",
    prompts: Sequence[str] = (),
) -> ModelInfo:
    """Log a fitted pricer as a model of the active run, e.g. named ``xgboost-real``.

    ``prompts``: URIs of registered prompts the pricer uses (``prompts:/name/version``), linked
    to the model so the prompt registry shows which models used each version.
    """
    example = as_items(input_example)[list(INPUT_COLUMNS)].head(2).fillna("")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pricer.pkl"
        # The C pickler, protocol 5: joblib's pure-Python pickler took 5x longer to write (and
        # 10x longer to read back) a fitted vectoriser's vocabulary of 50k small objects.
        with path.open("wb") as file:
            pickle.dump(pricer, file, protocol=5)
        with quiet_model_logging():
            return mlflow.pyfunc.log_model(
                name=name,
                prompts=list(prompts) or None,
                python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                artifacts={"pricer": str(path)},
                signature=SIGNATURE,
                input_example=example,
                code_paths=[str(PROJECT_ROOT / "pricer")],
                pip_requirements=runtime_requirements(),
            )


def runtime_requirements() -> list[str]:
    pins = []
    for package in RUNTIME_PACKAGES:
        try:
            pins.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return pins
