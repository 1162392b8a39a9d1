"""Where items come from: raw record sources (synthetic, Amazon) and curated item files.

Raw sources yield raw records that ``items.convert_batch`` turns into items; the ``items``
source reads files that are already curated and only validates them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from pricer.data.items import (
    ITEM_COLUMNS,
    CleaningSettings,
    convert_batch,
    split_rejections,
)


class DataError(ValueError):
    """Input data that pricer cannot use; the message says what and where."""


class SourceUnavailableError(RuntimeError):
    """A remote data source could not be reached."""


REQUIRED_ITEM_COLUMNS = ("title", "text", "price")


def convert_raw_batches(
    batches: Iterator[pd.DataFrame], settings: CleaningSettings, total: int | None, desc: str
) -> tuple[pd.DataFrame, dict[str, int], int]:
    """Clean every raw batch; return items, rejection counts and the raw record count."""
    item_frames: list[pd.DataFrame] = []
    rejections: Counter[str] = Counter()
    n_raw = 0
    with tqdm(total=total, desc=desc, unit="rec", unit_scale=True) as progress:
        for batch in batches:
            converted = pd.DataFrame(convert_batch(batch.to_dict("list"), settings))
            items, rejected = split_rejections(converted)
            item_frames.append(items)
            rejections.update(rejected)
            n_raw += len(batch)
            progress.update(len(batch))
    items = pd.concat(item_frames, ignore_index=True) if item_frames else _empty_items()
    return items, dict(rejections), n_raw


def load_synthetic(cfg: Mapping[str, Any], settings: CleaningSettings):
    """Items from the embedded synthetic generator of raw records."""
    from pricer.data.synthetic import iter_raw_batches

    batches = iter_raw_batches(
        cfg["n_records"], cfg["seed"], cfg["batch_size"], **dict(cfg["generator"])
    )
    return convert_raw_batches(batches, settings, cfg["n_records"], "synthetic records")


def load_amazon(cfg: Mapping[str, Any], settings: CleaningSettings):
    """Items from the Amazon-Reviews-2023 raw metadata files, one per category.

    Lines are read as text and parsed in the batch converter: the ``details`` objects have
    different keys in every record, which Arrow's JSON reader would turn into a struct with
    thousands of mostly-null fields.
    """
    import datasets

    item_frames, rejections, n_raw = [], Counter(), 0
    for category in cfg["categories"]:
        data_files = cfg["data_files"].format(category=category)
        try:
            lines = datasets.load_dataset(
                "text", data_files=data_files, split="train", cache_dir=cfg["cache_dir"]
            )
        except Exception as error:  # the hub, DNS, or a missing file: all mean "not here"
            raise SourceUnavailableError(
                f"could not load {data_files!r} ({type(error).__name__}: {error}). "
                "The Amazon source needs the Hugging Face hub. Offline alternatives: "
                "data=synthetic (the embedded generator) or data=items "
                "data.train_paths=[...] (curated JSONL/Parquet files), e.g. data=real."
            ) from error
        converted = lines.map(
            _convert_json_lines,
            batched=True,
            batch_size=cfg["batch_size"],
            num_proc=cfg["num_proc"],
            remove_columns=lines.column_names,
            fn_kwargs={"settings": settings, "category": category},
            desc=f"clean {category}",
        )
        items, rejected = split_rejections(converted.to_pandas())
        item_frames.append(items)
        rejections.update(rejected)
        n_raw += len(lines)
    return pd.concat(item_frames, ignore_index=True), dict(rejections), n_raw


def _convert_json_lines(
    batch: Mapping[str, Sequence[str]], settings: CleaningSettings, category: str
) -> dict[str, list]:
    records = [json.loads(line) for line in batch["text"]]
    columns = ("title", "description", "features", "details", "price")
    raw = {column: [record.get(column) for record in records] for column in columns}
    raw["category"] = [category] * len(records)
    return convert_batch(raw, settings)


def read_item_files(paths: Sequence[str]) -> pd.DataFrame:
    """Read curated item files (JSONL or Parquet) and check them; keep the file order."""
    if not paths:
        raise DataError("no item files given: set data.train_paths=[...]")
    frames = [_read_item_file(Path(path)) for path in paths]
    return pd.concat(frames, ignore_index=True)


def _read_item_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"item file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in {".jsonl", ".json"}:
            frame = pd.read_json(path, lines=True, dtype={"price": object})
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            raise DataError(
                f"{path}: unsupported item file type {suffix!r} (use .jsonl or .parquet)"
            )
    except ValueError as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"{path}: not readable as {suffix[1:]}: {error}") from error
    return validate_items(frame, str(path))


def validate_items(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Check an item table's columns and prices; return it in the standard column layout."""
    missing = [column for column in REQUIRED_ITEM_COLUMNS if column not in frame.columns]
    if missing:
        raise DataError(
            f"{origin}: missing required column(s) {missing}; item files need "
            f"{list(REQUIRED_ITEM_COLUMNS)} and may have 'category' and 'details'"
        )
    prices = pd.to_numeric(frame["price"], errors="coerce")
    bad = prices.isna() & frame["price"].notna() | frame["price"].isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(
            f"{origin}: {int(bad.sum())} unparseable or missing price(s), first at row {row}: "
            f"{frame['price'].iloc[row]!r}"
        )
    if (prices < 0).any():
        row = int((prices < 0).to_numpy().nonzero()[0][0])
        raise DataError(f"{origin}: negative price {prices.iloc[row]} at row {row}")
    items = pd.DataFrame(
        {
            "title": frame["title"].fillna("").astype(str),
            "text": frame["text"].fillna("").astype(str),
            "price": prices.astype(float),
            "category": frame.get("category"),
            "details": frame.get("details"),
        }
    )
    items["details"] = items["details"].map(_details_as_json)
    return items


def _details_as_json(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value != value:
        return None
    return json.dumps(value)


def _empty_items() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=object) for column in ITEM_COLUMNS})
