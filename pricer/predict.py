"""python -m pricer.predict: prices from a registered model (the champion unless told otherwise).

    python -m pricer.predict "Cordless drill, 20V, two batteries ..." ["another item" ...]
    python -m pricer.predict --input items.jsonl [--output prices.csv]
    python -m pricer.predict --alias challenger "..."      # or --model-uri models:/pricer/3

A plain argparse CLI rather than a Hydra app: product text is free text (quotes, commas,
parentheses, '=') that Hydra's override grammar would reject as a positional argument. The
settings still come from conf/predict.yaml; the options override them.

File mode reads JSONL or CSV with a ``text`` column (``title``, ``category``, ``details``
optional; other columns are carried through) and writes the items with a price column, as CSV
or JSONL (by the output's extension), to a file or to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig

from pricer.errors import UserError
from pricer.models.base import OPTIONAL_COLUMNS, REQUIRED_COLUMN
from pricer.paths import CONFIG_DIR

READERS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}


class PredictError(UserError, RuntimeError):
    """Bad input or no model to price with: reported as one line, exit status 2."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pricer.predict",
        description="Price items with a registered pricer model (default: the champion).",
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="item descriptions to price")
    parser.add_argument("-i", "--input", type=Path, help="JSONL or CSV file with a text column")
    parser.add_argument(
        "-o", "--output", type=Path, help="where file mode writes (.csv or .jsonl); default stdout"
    )
    parser.add_argument("--model-name", help="registered model (conf: registry.model_name)")
    parser.add_argument("--alias", help="alias of the version to load (conf: alias)")
    parser.add_argument("--model-uri", help="any MLflow model URI instead of name@alias")
    args = parser.parse_args(argv)
    if bool(args.texts) == (args.input is not None):
        parser.error("give either item texts or --input FILE (not both)")
    if args.output is not None and args.input is None:
        parser.error("--output is for file mode (--input)")
    return args


def load_config(args: argparse.Namespace) -> DictConfig:
    overrides = []
    if args.model_name:
        overrides.append(f"registry.model_name={args.model_name}")
    if args.alias:
        overrides.append(f"alias={args.alias}")
    if args.model_uri:
        overrides.append(f"model_uri={args.model_uri}")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="predict", overrides=overrides)


def model_uri(cfg: DictConfig) -> str:
    return cfg.model_uri or f"models:/{cfg.registry.model_name}@{cfg.alias}"


def load_model(cfg: DictConfig) -> mlflow.pyfunc.PyFuncModel:
    mlflow.set_tracking_uri(cfg.tracking.uri)
    uri = model_uri(cfg)
    try:
        return mlflow.pyfunc.load_model(uri)
    except MlflowException as error:
        hint = (
            " (run python -m pricer.promote to register a champion)"
            if not cfg.model_uri and cfg.alias == cfg.registry.champion_alias
            else ""
        )
        raise PredictError(f"cannot load {uri} from {cfg.tracking.uri}: {error}{hint}") from error


def read_items(path: Path) -> pd.DataFrame:
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise PredictError(f"{path}: unknown file type; use one of {sorted(READERS)}")
    if not path.is_file():
        raise PredictError(f"input file not found: {path}")
    try:
        if kind == "csv":
            # Text stays text: no NaN for empty cells, no numbers guessed from digits.
            items = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            items = pd.read_json(path, lines=True, dtype=False)
    except ValueError as error:
        raise PredictError(f"{path}: not valid {kind}: {error}") from error
    if REQUIRED_COLUMN not in items.columns:
        raise PredictError(
            f"{path}: items need a {REQUIRED_COLUMN!r} column; found {list(items.columns)}"
        )
    if items.empty:
        raise PredictError(f"{path}: no items")
    return items


def model_input(items: pd.DataFrame) -> pd.DataFrame:
    """The columns the model's signature knows, as strings (missing optional values: '')."""
    columns = [REQUIRED_COLUMN, *(c for c in OPTIONAL_COLUMNS if c in items.columns)]
    return pd.DataFrame({column: items[column].map(_as_text) for column in columns})


def _as_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def write_prices(items: pd.DataFrame, output: Path | None) -> None:
    if output is None:
        items.to_csv(sys.stdout, index=False)
        return
    kind = READERS[output.suffix.lower()]  # checked before pricing
    output.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        items.to_csv(output, index=False)
    else:
        items.to_json(output, orient="records", lines=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.output is not None and args.output.suffix.lower() not in READERS:
            raise PredictError(f"{args.output}: unknown output type; use one of {sorted(READERS)}")
        cfg = load_config(args)
        items = (
            read_items(args.input)
            if args.input is not None
            else pd.DataFrame({REQUIRED_COLUMN: args.texts})
        )
        model = load_model(cfg)
        prices = np.asarray(model.predict(model_input(items)), dtype=float).reshape(-1)
    except PredictError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.input is None:
        for price in prices:
            print(f"{price:.2f}")
        return 0
    write_prices(items.assign(**{cfg.price_column: prices}), args.output)
    if args.output is not None:
        print(f"{len(items)} prices written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
