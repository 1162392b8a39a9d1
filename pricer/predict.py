"""python -m pricer.predict: prices from a registered model (a data's champion by default).

    python -m pricer.predict "Cordless drill, 20V, two batteries ..." ["another item" ...]
    python -m pricer.predict --data real --input items.jsonl [--output prices.csv]
    python -m pricer.predict --alias challenger "..."   # or --model-uri models:/pricer-real/3

Each evaluation data has its own registered model (pricer-real, pricer-synthetic, ...; see
pricer.tracking.registry). ``--data`` picks one; without it the store's only champion is
used, and several champions are an error that lists the choices. Before any price, one line
on stderr says which model version answers and what it was evaluated on; stdout holds only
prices (``$66.49`` per text) or the priced items, so it pipes cleanly.

A plain argparse CLI rather than a Hydra app: product text is free text (quotes, commas,
parentheses, '=') that Hydra's override grammar would reject as a positional argument. The
settings still come from conf/predict.yaml; the options override them.

File mode reads JSONL or CSV with a ``text`` column (``title``, ``category``, ``details``
optional; every column is carried through unchanged, a ``price`` column included) and writes
the items with the prediction in its own column (``predicted_price``, dollars rounded to
cents), as CSV or JSONL (by the output's extension), to a file or to stdout. Items without
usable text (none, blank, or no words: "12.5") are refused, each named, before anything is
priced or written.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from pricer import configs  # noqa: F401  (registers resolvers and config schemas)
from pricer.cli import CommandParser, report, run_command
from pricer.data.sources import DataError, refuse_json_array
from pricer.errors import UserError
from pricer.files import replaced_atomically, unwritable
from pricer.models.base import OPTIONAL_COLUMNS, REQUIRED_COLUMN, UnusableItems, unusable_text
from pricer.paths import require_config_dir
from pricer.tracking.champions import ServedModel, load_served_model

READERS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}


class PredictError(UserError, RuntimeError):
    """Bad input or no model to price with: reported as one line, exit status 2."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = CommandParser(
        prog="pricer predict",  # what users type (the console script), not the module
        description="Price items with a registered pricer model (default: the champion).",
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="item descriptions to price")
    parser.add_argument("-i", "--input", type=Path, help="JSONL or CSV file with a text column")
    parser.add_argument(
        "-o", "--output", type=Path, help="where file mode writes (.csv or .jsonl); default stdout"
    )
    add_model_options(parser)
    args = parser.parse_args(argv)
    check_model_options(parser, args)
    if bool(args.texts) == (args.input is not None):
        parser.error("give either item texts or --input FILE (not both)")
    if args.output is not None and args.input is None:
        parser.error("--output is for file mode (--input)")
    return args


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Which model answers: the options predict and serve share."""
    parser.add_argument(
        "--data", help="whose champion: the data it was evaluated on (real, synthetic, ...)"
    )
    parser.add_argument("--model-name", help="a registered model by name instead of --data")
    parser.add_argument("--alias", help="alias of the version to load (conf: alias)")
    parser.add_argument("--model-uri", help="any MLflow model URI instead of name@alias")


# Options that each name the model on their own: given together, one was silently ignored (a
# URI loaded whatever --data or --model-name said; --model-name won over --data). --alias
# chooses a version of a registered model, which a URI names already.
CONFLICTING_OPTIONS = {
    ("data", "model_name"): "both choose the model",
    ("model_uri", "data"): "both choose the model",
    ("model_uri", "model_name"): "both choose the model",
    ("model_uri", "alias"): "both choose the version (a URI names its own)",
}


def check_model_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, as ``parser``'s error, model options that are empty or name the model twice."""
    for name in ("data", "model_name", "alias", "model_uri"):
        value = getattr(args, name)
        if value is not None and not value.strip():  # '' was taken as not given: the champion
            parser.error(f"{_option(name)} is empty")
    for (first, second), why in CONFLICTING_OPTIONS.items():
        if getattr(args, first) is not None and getattr(args, second) is not None:
            parser.error(f"{_option(first)} and {_option(second)} {why}: give one of them")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def load_config(args: argparse.Namespace) -> DictConfig:
    """conf/predict.yaml with the options as overrides. ``--data`` is a data config of
    conf/data/ (real, synthetic, ...) or a name given to one's own data (``data=items
    data.name=mine``), whose champion is ``<prefix>-mine``: promote names it so."""
    own_data = (
        bool(args.data) and not (require_config_dir() / "data" / f"{args.data}.yaml").is_file()
    )
    overrides = [f"data={args.data}"] if args.data and not own_data else []
    with initialize_config_dir(config_dir=str(require_config_dir()), version_base="1.3"):
        try:
            cfg = compose(config_name="predict", overrides=overrides)
        except Exception as error:  # Hydra's errors for an unknown data=<name> choice
            raise PredictError(str(error).splitlines()[0]) from error
    # Set on the composed config, not as overrides: a name is taken as written. As an override
    # "a,b" was a sweep ("Ambiguous value"), "it's" a lexer error and "${oc.env:HOME}" the
    # home folder.
    if own_data:  # a name of one's own data, no config of conf/data/
        cfg.model_name = f"{cfg.registry.prefix}-{_literal(args.data)}"
    for key, value in (
        ("model_name", args.model_name),
        ("alias", args.alias),
        ("model_uri", args.model_uri),
    ):
        if value:
            cfg[key] = _literal(value)
    return cfg


def _literal(text: str) -> str:
    """``text`` as a config value that reads back as written, never an interpolation."""
    return text.replace("${", "\\${")


def model_settings(cfg: DictConfig) -> dict[str, Any]:
    """The model to price with: --model-uri, --model-name, the --data champion, or the one."""
    data_chosen = OmegaConf.select(cfg, "data.name") is not None
    model_name = cfg.model_name or (cfg.registry.model_name if data_chosen else None)
    return {
        "model_uri": cfg.model_uri,
        "model_name": model_name,
        "prefix": cfg.registry.prefix,
        "alias": cfg.alias,
        "champion_alias": cfg.registry.champion_alias,
        "challenger_alias": cfg.registry.challenger_alias,
    }


def load_model(cfg: DictConfig) -> ServedModel:
    return load_served_model(cfg.tracking.uri, model_settings(cfg))


def read_items(path: Path) -> pd.DataFrame:
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise PredictError(f"{path}: unknown file type; use one of {sorted(READERS)}")
    if path.is_dir():  # "input file not found" sent the user looking for a missing file
        raise PredictError(f"{path} is a folder: --input takes a JSONL or CSV file")
    if not path.is_file():
        raise PredictError(f"input file not found: {path}")
    if _blank(path):  # it said "items need a 'text' column; found []"
        raise PredictError(f"{path}: no items (the file is empty)")
    if kind == "jsonl":
        try:
            refuse_json_array(path)  # read line by line, an array gave "found [0]"
        except DataError as error:
            raise PredictError(str(error)) from None
    try:
        if kind == "csv":
            with warnings.catch_warnings():
                # Rows with more fields than the header: pandas took the first field as the
                # index, so every column shifted (the title was priced as the text) and the
                # text was dropped. index_col=False warns of the lost fields instead: refused.
                warnings.simplefilter("error", pd.errors.ParserWarning)
                # Text stays text: no NaN for empty cells, no numbers guessed from digits.
                items = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False)
            # Unnamed columns (an export's trailing commas) are told apart as "Unnamed: 2".
            _refuse_repeated([name for name in _csv_header(path) if name], "the header")
        else:
            items = _read_json_lines(path)
    except (ValueError, pd.errors.ParserWarning) as error:
        raise PredictError(f"{path}: not valid {kind}: {error}") from error
    if len(items) == 0:
        raise PredictError(f"{path}: no items")
    if REQUIRED_COLUMN not in items.columns:
        raise PredictError(
            f"{path}: items need a {REQUIRED_COLUMN!r} column; found {list(items.columns)}"
        )
    return items


def _read_json_lines(path: Path) -> pd.DataFrame:
    """The items of a JSON Lines file, each value as its line gave it (a ValueError naming the
    line that is no JSON object).

    Read by pandas, the columns were typed as wholes: an id of 123456789012345678 in a column
    with a missing one became a float, written back as 1.23456789e+17 (its last digits gone),
    and every whole number of such a column as 7.0. Kept as objects, the output carries each
    column through unchanged. utf-8-sig: a file saved with a byte order mark reads too.
    """
    records: list[dict[str, Any]] = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(
                    line,
                    parse_float=_finite,
                    parse_int=_whole,
                    parse_constant=_no_constant,
                    object_pairs_hook=_object,
                )
            except json.JSONDecodeError as error:
                raise ValueError(f"line {number}, column {error.colno}: {error.msg}") from None
            except RecursionError:  # "[[[[..." a hundred thousand deep: a traceback, exit 1
                raise ValueError(
                    f"line {number}: nested deeper than the JSON reader goes"
                ) from None
            except ValueError as error:  # a number no reader keeps, a name twice, half a character
                raise ValueError(f"line {number}: {error}") from None
            if not isinstance(record, dict):
                shown = json.dumps(record)
                shown = shown if len(shown) <= 40 else f"{shown[:39]}…"
                raise ValueError(f"a line is no JSON object (line {number}: {shown})")
            records.append(record)
    return pd.DataFrame(records, dtype=object)


def _lone_surrogate(text: str) -> str | None:
    """The first code point of ``text`` that UTF-8 cannot encode, as a JSON escape (``\\ud800``),
    or None. JSON may escape half a surrogate pair, and Python puts bytes that are no UTF-8 in
    argv as such halves: either reached pandas' text arrays, a UnicodeEncodeError traceback
    after the line naming the model."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"\\u{ord(text[error.start]):04x}"
    return None


def _csv_header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


def _refuse_repeated(names: Sequence[str], where: str) -> None:
    """A name given twice is refused: pandas renamed a CSV's second ``text`` to ``text.1`` and
    priced the first, and JSON's reader kept a line's last ``"text"``, each without a word."""
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{where} names {', '.join(map(repr, repeated))} more than once")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Each JSON object of a line as it is read: its names once each, and no half character in
    a name or a text (nested objects come here on their own; a list's texts are looked at)."""
    _refuse_repeated([key for key, _ in pairs], "an object")
    for key, value in pairs:
        for text in (key, *(value if isinstance(value, list) else (value,))):
            if isinstance(text, str) and (escape := _lone_surrogate(text)) is not None:
                raise ValueError(
                    f"{escape} is half of a character (a lone surrogate), which no text can hold"
                )
    return dict(pairs)


def _finite(text: str) -> float:
    """A JSON number as a float, refused if no float holds it.

    1e400 read as inf and was written back as ``Infinity`` (no JSON; ``inf`` in CSV): not the
    value written, nor one a JSON reader takes. No writer here can put the number back as its
    line wrote it, so the line is refused rather than carried through changed.
    """
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(
            f"{text} is beyond the range of a float, so it cannot be carried through as "
            f'written: write it as a string ("{text}")'
        )
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # Python's advice was sys.set_int_max_str_digits()
        raise ValueError(
            f"a whole number of {len(text.lstrip('-')):,} digits is more than Python reads "
            f"({sys.get_int_max_str_digits():,}): write it as a string"
        ) from None


def _no_constant(name: str) -> float:
    """Python's reader takes NaN and Infinity, which JSON has not: NaN came out as null,
    Infinity as Infinity again (no JSON)."""
    raise ValueError(f"{name} is no JSON value: write null, a number or a string")


def require_text(items: pd.DataFrame, where: str) -> None:
    """Refuse items no model can price, before any model loads, naming each (1-based) with why.

    The same test as every pricer's (``unusable_text``: missing, blank, or no letter at all,
    like "12.5"), made here so that the refusal is one line: raised inside the logged model,
    it would reach us as MLflow's exception, for serving's HTTP 400.
    """
    problems = unusable_text(items[REQUIRED_COLUMN])
    if problems:
        refused = UnusableItems(problems, len(items), first=1, noun="item")
        raise PredictError(f"{where}: {refused}")


def model_input(items: pd.DataFrame) -> pd.DataFrame:
    """The columns the model's signature knows, as strings (missing optional values: '')."""
    columns = [REQUIRED_COLUMN, *(c for c in OPTIONAL_COLUMNS if c in items.columns)]
    return pd.DataFrame({column: items[column].map(_as_text) for column in columns})


def _as_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _as_json(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value


def _blank(path: Path) -> bool:
    """Whether the file holds nothing but white space; read until the first thing it holds,
    not whole (pandas reads it next)."""
    with path.open("rb") as handle:
        return not any(chunk.strip() for chunk in iter(lambda: handle.read(1 << 16), b""))


def write_prices(items: pd.DataFrame, output: Path | None) -> None:
    kind = "csv" if output is None else READERS[output.suffix.lower()]  # checked before pricing
    if kind == "csv":  # a JSON object or list (details) as JSON, not as Python's repr
        items = items.copy()
        for name, column in items.items():
            if column.dtype == object:
                # Built as objects: ``map`` typed the result as a whole, so a column of whole
                # numbers with a gap became floats again (7.0, 1.2345678901234568e+17).
                items[name] = pd.Series(
                    [_as_json(value) for value in column], index=column.index, dtype=object
                )
    if output is None:
        items.to_csv(sys.stdout, index=False)
        return
    with replaced_atomically(output) as temporary:  # never a truncated file of prices
        if kind == "csv":
            items.to_csv(temporary, index=False)
        else:
            _write_json_lines(items, temporary)


def _write_json_lines(items: pd.DataFrame, path: Path) -> None:
    """One JSON object per item, each value as read (pandas' writer kept 10 significant
    digits: an id of 123456789012345678 came out as 1.23456789e+17); missing values null."""
    with Path(path).open("w", encoding="utf-8") as handle:
        for record in items.to_dict(orient="records"):
            handle.write(json.dumps({key: _json_value(v) for key, v in record.items()}) + "\n")


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and np.isnan(value):
        return None  # a key missing from its line, or no price
    return value.item() if isinstance(value, np.generic) else value


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.output is not None and args.output.suffix.lower() not in READERS:
            raise PredictError(f"{args.output}: unknown output type; use one of {sorted(READERS)}")
        if args.output is not None and (why := unwritable(args.output)) is not None:
            raise PredictError(f"cannot write {args.output}: {why}")  # before paid pricing
        cfg = load_config(args)
        if args.input is not None:
            items = read_items(args.input)
            require_text(items, str(args.input))
            if cfg.price_column in items.columns:
                raise PredictError(
                    f"{args.input} has a {cfg.price_column!r} column already: rename it, or "
                    "choose another column in conf/predict.yaml (price_column)"
                )
        else:
            for number, text in enumerate(args.texts, start=1):
                if _lone_surrogate(text) is not None:
                    raise PredictError(
                        f"text {number} is not UTF-8 (bytes the terminal or script passed that "
                        "are no character): pass it as UTF-8"
                    )
            items = pd.DataFrame({REQUIRED_COLUMN: args.texts})
            require_text(items, "text")
        served = load_model(cfg)
        print(f"priced by {served.description}", file=sys.stderr, flush=True)
        prices = np.asarray(served.model.predict(model_input(items)), dtype=float).reshape(-1)
    except UserError as error:
        return report(error)
    prices = np.round(prices, 2)  # dollars and cents; NaN (no answer) stays NaN
    if args.input is None:
        for price in prices:
            print("no price" if np.isnan(price) else f"${price:,.2f}")
        return 0
    try:
        write_prices(items.assign(**{cfg.price_column: prices}), args.output)
    except OSError as error:  # a full disk, a folder in the way: the output is left as it was
        return report(PredictError(f"cannot write {args.output}: {error.strerror or error}"))
    if args.output is not None:
        print(f"{len(items)} prices written to {args.output}", file=sys.stderr)
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    """``main`` as a command. SIGTERM and Ctrl-C unwind it instead of ending the process where
    it stands: a killed write left its hidden temporary file of partial prices beside the
    output (60 MB for 300,000 items), and nothing said what became of the output."""
    return run_command(main, argv, "predict", "an --output file is as it was")


if __name__ == "__main__":
    sys.exit(cli())
