"""Where items come from: raw record sources (synthetic, Amazon) and curated item files.

Raw sources yield raw records that ``items.convert_batch`` turns into items; the ``items``
source reads files that are already curated and only validates them.
"""

from __future__ import annotations

import glob
import json
import logging
import multiprocessing
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pricer.data.items import (
    ITEM_COLUMNS,
    LIKE_TEST_COLUMN,
    PRICE_OUT_OF_RANGE,
    REJECTION_REASONS,
    TOO_SHORT,
    UNREADABLE_LINE,
    CleaningSettings,
    accepted_items,
    convert_batch,
    parse_prices,
    split_rejections,
)
from pricer.errors import UserError
from pricer.interrupt import die_with_parent, stop_processes

log = logging.getLogger(__name__)


class DataError(UserError, ValueError):
    """Input data that pricer cannot use; the message says what and where."""


class SourceUnavailableError(UserError, RuntimeError):
    """A remote data source could not be reached."""


REQUIRED_ITEM_COLUMNS = ("title", "text", "price")


# Raw records per cleaning task. Cleaning is row-independent, so generator batches (the unit
# of the synthetic seed, 100k records by default) are cut into smaller tasks: two workers share
# even a single batch, and the per-task overhead (pickling a slice, about 3 us a record) stays
# small.
CLEAN_CHUNK_ROWS = 25_000
# Below this many raw records, worker processes cost more than they save: each one starts
# fresh and imports pandas (1-2 s).
PARALLEL_MIN_RECORDS = 100_000
# How long a stopped cleaning worker may take to exit before it is killed (it exits at once
# on SIGTERM: no handler of its own).
STOP_WORKERS_SECONDS = 5.0
# The raw columns cleaning reads; only these travel to the workers.
_CLEANING_COLUMNS = (
    "title",
    "description",
    "features",
    "details",
    "price",
    "category",
    "main_category",
)


@dataclass
class StageTimes:
    """Where curation spends its time; filled in when a caller (a benchmark) asks for it.

    Cleaning and filtering run in worker processes, so their seconds (elapsed inside each
    worker) are summed over workers, while ``wall`` is the elapsed time of the whole stream
    of raw records. ``sample`` and ``split`` are the balanced sample and the split.
    """

    generate: float = 0.0
    clean: float = 0.0
    filter: float = 0.0
    wall: float = 0.0
    processes: int = 1
    sample: float = 0.0
    split: float = 0.0

    def add(self, other: Mapping[str, float]) -> None:
        self.clean += other["clean"]
        self.filter += other["filter"]


def clean_raw_frame(
    frame: pd.DataFrame, settings: CleaningSettings
) -> tuple[pd.DataFrame, dict[str, int], int, dict[str, float]]:
    """Clean one frame of raw records: accepted items, rejections by reason, count, timings."""
    started = time.perf_counter()
    columns = {name: frame[name].tolist() for name in _CLEANING_COLUMNS if name in frame}
    converted = convert_batch(columns, settings)
    cleaned = time.perf_counter()
    items, rejections = accepted_items(converted)
    filtered = time.perf_counter()
    return items, rejections, len(frame), {"clean": cleaned - started, "filter": filtered - cleaned}


def convert_raw_batches(
    batches: Iterator[pd.DataFrame],
    settings: CleaningSettings,
    total: int | None,
    desc: str,
    *,
    num_proc: int = 1,
    times: StageTimes | None = None,
) -> tuple[pd.DataFrame, dict[str, int], int]:
    """Clean every raw batch; return items, rejection counts and the raw record count.

    Batches are consumed as they come and only accepted items are kept, so the raw records
    are never all in memory. With ``num_proc`` > 1, chunks of each batch are cleaned by that
    many worker processes while this process produces the next batch; items come back in
    the same order, so the result does not depend on ``num_proc``.
    """
    times = times if times is not None else StageTimes()
    item_frames: list[pd.DataFrame] = []
    rejections: Counter[str] = Counter()
    n_raw = 0

    def collect(result: tuple[pd.DataFrame, dict[str, int], int, dict[str, float]]) -> None:
        nonlocal n_raw
        items, rejected, n_records, seconds = result
        item_frames.append(items)
        rejections.update(rejected)
        n_raw += n_records
        times.add(seconds)
        progress.update(n_records)

    started = time.perf_counter()
    parallel = num_proc > 1 and (total is None or total >= PARALLEL_MIN_RECORDS)
    times.processes = num_proc if parallel else 1
    with tqdm(total=total, desc=desc, unit="rec", unit_scale=True) as progress:
        if not parallel:
            for batch in _timed(batches, times):
                collect(clean_raw_frame(batch, settings))
        else:
            try:
                _clean_in_pool(batches, settings, num_proc, times, collect)
            except BrokenProcessPool as error:
                raise RuntimeError(
                    f"a cleaning worker process died ({error}). Workers are started with "
                    "'spawn', which re-imports the main script: a script that curates must "
                    'guard its entry point with `if __name__ == "__main__":`, or set '
                    "data.num_proc=1 to clean in this process"
                ) from error
    times.wall = time.perf_counter() - started
    items = pd.concat(item_frames, ignore_index=True) if item_frames else _empty_items()
    return items, dict(rejections), n_raw


def _clean_in_pool(
    batches: Iterator[pd.DataFrame],
    settings: CleaningSettings,
    num_proc: int,
    times: StageTimes,
    collect: Callable[[tuple[pd.DataFrame, dict[str, int], int, dict[str, float]]], None],
) -> None:
    # 'spawn', not 'fork': the parent may hold MLflow's and tqdm's threads (and their locks).
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(num_proc, mp_context=context, initializer=die_with_parent)
    try:
        pending: deque[Future] = deque()
        for batch in _timed(batches, times):
            columns = [name for name in _CLEANING_COLUMNS if name in batch]
            for start in range(0, len(batch), CLEAN_CHUNK_ROWS):
                # Bounded read-ahead: at most two chunks per worker wait in memory.
                while len(pending) >= 2 * num_proc:
                    collect(pending.popleft().result())
                chunk = batch.iloc[start : start + CLEAN_CHUNK_ROWS][columns]
                pending.append(pool.submit(clean_raw_frame, chunk, settings))
            del batch  # let the raw batch go once its chunks are queued
        while pending:
            collect(pending.popleft().result())
    except BaseException:
        # An error or an interrupt (SIGTERM/Ctrl-C): `with ProcessPoolExecutor` would first
        # clean every queued chunk (seconds each); drop them and stop the workers now.
        _stop_pool(pool)
        raise
    pool.shutdown()


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel queued work and end the pool's worker processes (SIGTERM, then SIGKILL)."""
    workers = list((getattr(pool, "_processes", None) or {}).values())  # pid -> Process
    pool.shutdown(wait=False, cancel_futures=True)
    stop_processes(workers, STOP_WORKERS_SECONDS)


def _timed(batches: Iterator[pd.DataFrame], times: StageTimes) -> Iterator[pd.DataFrame]:
    """The batches, with the time spent producing them added to ``times.generate``."""
    iterator = iter(batches)
    while True:
        started = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            return
        finally:
            times.generate += time.perf_counter() - started
        yield batch
        del batch  # not held while the next batch is generated


def load_synthetic(
    cfg: Mapping[str, Any], settings: CleaningSettings, *, times: StageTimes | None = None
):
    """Items from the embedded synthetic generator of raw records.

    ``num_proc`` (default 1; null: every core) worker processes clean the records while this
    process generates them.
    """
    from pricer.data.synthetic import iter_raw_batches

    batches = iter_raw_batches(
        cfg["n_records"], cfg["seed"], cfg["batch_size"], **dict(cfg["generator"])
    )
    num_proc = cfg.get("num_proc", 1)
    return convert_raw_batches(
        batches,
        settings,
        cfg["n_records"],
        "synthetic records",
        num_proc=(os.cpu_count() or 1) if num_proc is None else int(num_proc),
        times=times,
    )


def load_amazon(
    cfg: Mapping[str, Any], settings: CleaningSettings, *, times: StageTimes | None = None
):
    """Items from the Amazon-Reviews-2023 raw metadata files, one per category.

    Lines are read as text and parsed in the batch converter: the ``details`` objects have
    different keys in every record, which Arrow's JSON reader would turn into a struct with
    thousands of mostly-null fields. ``times`` gets the wall time and process count only:
    reading, parsing and cleaning all happen inside ``datasets``.
    """
    import datasets

    started = time.perf_counter()

    item_frames, rejections, n_raw = [], Counter(), 0
    for category in cfg["categories"]:
        data_files = category_files(cfg["data_files"], category)
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
            # Declared, not inferred from the first batch: a batch whose rows were all accepted
            # has only None reasons (and one all rejected, None texts), typed null by Arrow.
            features=datasets.Features(
                {
                    **{column: datasets.Value("string") for column in ITEM_COLUMNS},
                    "price": datasets.Value("float64"),
                    "reject_reason": datasets.Value("string"),
                }
            ),
            fn_kwargs={"settings": settings, "category": category},
            desc=f"clean {category}",
        )
        items, rejected = split_rejections(converted.to_pandas())
        if rejected[UNREADABLE_LINE]:
            log.warning(
                "%s: %d of %d lines are no JSON object (malformed, or nested too deep to "
                "read): counted as %s and left out",
                data_files,
                rejected[UNREADABLE_LINE],
                len(lines),
                UNREADABLE_LINE,
            )
        item_frames.append(items)
        rejections.update(rejected)
        n_raw += len(lines)
    if times is not None:
        times.wall, times.processes = time.perf_counter() - started, cfg["num_proc"] or 1
    return pd.concat(item_frames, ignore_index=True), dict(rejections), n_raw


def category_files(pattern: str, category: str) -> str:
    """``data.data_files`` for one category: its ``{category}`` filled in. Another name in
    braces was a KeyError traceback."""
    try:
        return pattern.format(category=category)
    except (KeyError, IndexError, ValueError) as error:
        raise DataError(
            f"data.data_files={pattern!r}: {{category}} is the one name it may hold in braces "
            f"({type(error).__name__}: {error})"
        ) from None


def local_category_files(cfg: Mapping[str, Any]) -> list[tuple[str, str, list[str]]]:
    """For each category whose ``data.data_files`` is on this machine: the category, its file
    pattern, and the files that pattern matches (it may be a glob)."""
    pattern = cfg.get("data_files")
    if not pattern:
        return []
    found = []
    for category in cfg.get("categories") or []:
        name = category_files(str(pattern), category).removeprefix("file://")
        if "://" not in name:  # hf:// and other remote files are the loader's to find
            found.append((category, name, sorted(glob.glob(name))))
    return found


def _convert_json_lines(
    batch: Mapping[str, Sequence[str]], settings: CleaningSettings, category: str
) -> dict[str, list]:
    records = [_record(line) for line in batch["text"]]
    columns = ("title", "description", "features", "details", "price")
    raw = {column: [(record or {}).get(column) for record in records] for column in columns}
    raw["category"] = [category] * len(records)
    converted = convert_batch(raw, settings)
    converted["reject_reason"] = [
        UNREADABLE_LINE if record is None else reason
        for record, reason in zip(records, converted["reject_reason"], strict=True)
    ]
    return converted


def _record(line: str) -> dict[str, Any] | None:
    """A raw line's record; None for a line that is no JSON object. A malformed line was a
    JSONDecodeError, one nested 100,000 brackets deep a RecursionError, and a JSON array an
    AttributeError: each a traceback that stopped the whole curation."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def read_item_files(
    paths: Sequence[str], price_range: tuple[float, float]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Read curated item files (JSONL or Parquet), keeping the file order.

    Rows whose price curation would reject (missing, not a price, outside ``price_range``:
    ``curation.items.min_price`` to ``max_price``) are dropped and counted by reason, exactly
    as curation counts raw records; an error when no row is left.
    """
    if not paths:
        raise DataError("no item files given: set data.train_paths=[...]")
    frames, rejections = [], Counter({reason: 0 for reason in REJECTION_REASONS})
    for path in paths:
        items, rejected = _read_item_file(Path(path), price_range)
        frames.append(items)
        rejections.update(rejected)
    items = pd.concat(frames, ignore_index=True)
    if items.empty:
        raise DataError(
            f"no usable items in {list(paths)}: every row was rejected "
            f"({count_text(rejections)}); curation.items keeps prices from "
            f"{price_range[0]} to {price_range[1]}"
        )
    return items, dict(rejections)


def _read_item_file(
    path: Path, price_range: tuple[float, float]
) -> tuple[pd.DataFrame, dict[str, int]]:
    if not path.is_file():
        raise DataError(missing_file(path))
    suffix = path.suffix.lower()
    try:
        if suffix in {".jsonl", ".json"}:
            refuse_json_array(path)
            frame = pd.read_json(path, lines=True, dtype={"price": object}, encoding="utf-8-sig")
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            raise DataError(
                f"{path}: unsupported item file type {suffix!r} (use .jsonl or .parquet)"
            )
    except (ValueError, TypeError) as error:
        if isinstance(error, DataError):
            raise
        # A line of JSON that is no object was pandas' TypeError, a traceback, or its words
        # about "dictionary update sequence elements", naming neither the line nor the cause.
        if isinstance(error, UnicodeDecodeError):
            raise DataError(f"{path}: {_not_utf8(path, error)}") from error
        why = _line_not_an_object(path) if suffix != ".parquet" else None
        raise DataError(f"{path}: {why or f'not readable as {suffix[1:]}: {error}'}") from error
    except OSError as error:  # a file its reader may not open (PermissionError): a traceback
        raise DataError(f"{path}: cannot read it: {error.strerror or error}") from error
    if frame.empty and frame.columns.empty:
        raise DataError(f"{path}: no items (the file is empty)")
    return validate_items(frame, str(path), price_range)


def _line_not_an_object(path: Path) -> str | None:
    """Which line of a JSON Lines file is no JSON object (``null``, ``5``, ``[1, 2]``), if any."""
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            text = line.strip()
            if text.startswith("\ufeff"):  # invisible: "no JSON object ({...)" misled
                return (
                    f"line {number} starts with a byte order mark (files joined together?): "
                    "remove it"
                )
            if text and not text.startswith("{"):
                return (
                    f"line {number} is no JSON object ({text[:40]}); JSON Lines of item "
                    "objects expected, one a line"
                )
    return None


def _not_utf8(path: Path, error: UnicodeDecodeError) -> str:
    """What a JSON Lines file that is no UTF-8 text is. PowerShell's ``>`` writes UTF-16:
    such a file was "line 1 is no JSON object", its NUL bytes printed to the terminal, and
    before that the codec's words about a byte 0xff."""
    with path.open("rb") as handle:
        head = handle.read(2)
    if head in (b"\xff\xfe", b"\xfe\xff"):
        return "saved as UTF-16 text; save it as UTF-8"
    if head == b"\x1f\x8b":  # gzip's magic number: "save it as UTF-8" would mislead
        return "a gzip-compressed file; decompress it (gunzip) and name the .jsonl file"
    return f"not UTF-8 text (byte {error.start}: {error.reason}); save it as UTF-8"


def missing_file(path: Path) -> str:
    """Why an item file named in the settings is not one to read: a folder there was said to be
    "not found", and its user looked for a typo in a path that was right."""
    if path.is_dir():
        return f"{path} is a folder, not an item file: name the .jsonl or .parquet files in it"
    return f"item file not found: {path}"


def refuse_json_array(path: Path) -> None:
    """A JSON array file parses as one odd row per line; say what is wrong instead."""
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        raise DataError(
            f"{path}: a JSON array; JSON Lines expected (one JSON object per line, no brackets)"
        )


def validate_items(
    frame: pd.DataFrame, origin: str, price_range: tuple[float, float]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Check an item table's columns; return its usable rows in the standard column layout and
    the rejected rows counted by reason (``items.REJECTION_REASONS``)."""
    missing = [column for column in REQUIRED_ITEM_COLUMNS if column not in frame.columns]
    if missing:
        raise DataError(
            f"{origin}: missing required column(s) {missing}; item files need "
            f"{list(REQUIRED_ITEM_COLUMNS)} and may have 'category' and 'details'"
        )
    prices, reasons = parse_prices(frame["price"].tolist())
    low, high = price_range
    for row, price in enumerate(prices):
        if reasons[row] is None and not low <= price <= high:  # inf and 1e300 land here too
            reasons[row] = PRICE_OUT_OF_RANGE
    for row, text in enumerate(frame["text"].tolist()):
        # No letter, no product: every family would still price it (pricer.models.base).
        if reasons[row] is None and not (isinstance(text, str) and any(map(str.isalpha, text))):
            reasons[row] = TOO_SHORT
    keep = [reason is None for reason in reasons]
    rejections = Counter(reason for reason in reasons if reason is not None)
    if rejections:
        log.warning(
            "%s: dropped %d of %d rows (%s); curation.items keeps prices from %s to %s",
            origin,
            len(frame) - sum(keep),
            len(frame),
            count_text(rejections),
            low,
            high,
        )
    kept = frame.loc[keep]
    category = kept.get("category")
    if category is not None and isinstance(category.dtype, pd.CategoricalDtype):
        # A Parquet dictionary column reads as a Categorical, which takes no value it does not
        # list: the curation charts' "unknown" for a missing category was a TypeError.
        category = category.astype(object)
    items = pd.DataFrame(
        {
            "title": kept["title"].fillna("").astype(str),
            "text": kept["text"].fillna("").astype(str),
            "price": [price for price, ok in zip(prices, keep, strict=True) if ok],
            "category": category,
            "details": kept.get("details"),
        }
    ).reset_index(drop=True)
    items["price"] = items["price"].astype(float)
    items["details"] = items["details"].map(_details_as_json)
    if LIKE_TEST_COLUMN in frame.columns:
        # The flag of the training items drawn like the test set, as pricer curate writes it
        # (data=real's 1,749): read back by data=curated, every one was counted as not.
        items[LIKE_TEST_COLUMN] = like_test_flags(kept[LIKE_TEST_COLUMN].tolist(), origin)
    return items, {reason: rejections.get(reason, 0) for reason in REJECTION_REASONS}


def like_test_flags(values: Sequence[object], origin: str) -> list[bool]:
    """A file's ``drawn_like_test`` column as booleans, an empty cell as False; anything but
    true or false is refused, as a text "false" would read as true."""
    flags = []
    for value in values:
        if isinstance(value, bool | np.bool_):
            flags.append(bool(value))
        elif value is None or value is pd.NA or (isinstance(value, float) and value != value):
            flags.append(False)
        else:
            raise DataError(
                f"{origin}: {LIKE_TEST_COLUMN} holds {value!r}; it is true, false or empty"
            )
    return flags


def count_text(counts: Mapping[str, int]) -> str:
    """Counts by reason as short text, zeros left out ("price_out_of_range: 2" or "none")."""
    return ", ".join(f"{reason}: {n}" for reason, n in counts.items() if n) or "none"


def _details_as_json(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value != value:
        return None
    return json.dumps(value)


def _empty_items() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=object) for column in ITEM_COLUMNS})
