"""From a ``data`` + ``curation`` config to a curated train/test split, with an on-disk cache.

Raw sources (synthetic, amazon) go through cleaning, balanced sampling and the split;
curated item files (items) are validated, filtered by category and split only when no test
files are given. The result carries a report of what was kept and rejected, so every run can
log how its data came to be.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pricer.data import curation, sources
from pricer.data.items import CleaningSettings

RAW_SOURCES = {"synthetic": sources.load_synthetic, "amazon": sources.load_amazon}


@dataclass
class CurationReport:
    """What happened to the data on its way to the split."""

    source: str
    raw_records: int
    rejections: dict[str, int]
    items: int
    sampled: int
    train: int = 0
    test: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def as_metrics(self) -> dict[str, float]:
        metrics = {
            "data.raw_records": self.raw_records,
            "data.items": self.items,
            "data.sampled": self.sampled,
            "data.train_items": self.train,
            "data.test_items": self.test,
        }
        metrics |= {f"data.rejected.{reason}": n for reason, n in self.rejections.items()}
        metrics |= {f"data.dropped.{reason}": n for reason, n in self.dropped.items()}
        return {key: float(value) for key, value in metrics.items()}


@dataclass
class CuratedData:
    train: pd.DataFrame
    test: pd.DataFrame
    population: pd.DataFrame  # price and category of every accepted item, before sampling
    report: CurationReport


def load_curated(data_cfg: Mapping[str, Any], curation_cfg: Mapping[str, Any]) -> CuratedData:
    """The curated split for these settings: from the cache when present, else built."""
    source = data_cfg["source"]
    if source in RAW_SOURCES:
        build = build_from_raw
    elif source == "items":
        build = _build_from_item_files
    else:
        raise sources.DataError(
            f"unknown data source {source!r}; choose one of {[*RAW_SOURCES, 'items']}"
        )
    cache_dir = curation_cfg["cache_dir"]
    if not cache_dir or source == "items":  # item files are read fast; caching buys nothing
        return build(data_cfg, curation_cfg)
    entry = Path(cache_dir) / _cache_key(data_cfg, curation_cfg)
    if (entry / "report.json").is_file():
        return read_curated(entry)
    curated = build(data_cfg, curation_cfg)
    save_curated(curated, entry)
    return curated


def build_from_raw(
    data_cfg: Mapping[str, Any],
    curation_cfg: Mapping[str, Any],
    times: sources.StageTimes | None = None,
) -> CuratedData:
    """Raw records -> items -> balanced sample -> split (no cache); ``times`` gets each
    stage's seconds when given."""
    times = times if times is not None else sources.StageTimes()
    cleaning = CleaningSettings.from_config(curation_cfg["items"])
    items, rejections, n_raw = RAW_SOURCES[data_cfg["source"]](data_cfg, cleaning, times=times)
    if items.empty:
        raise sources.DataError(
            f"no usable items among {n_raw} raw records (rejected: {rejections}); "
            "check the source and curation.items"
        )
    population, n_items = items[["price", "category"]].copy(), len(items)
    started = time.perf_counter()
    sampled = curation.balanced_sample(
        items, curation.SampleSettings.from_config(curation_cfg["sample"])
    )
    del items  # every accepted item's text (GBs at millions of records) is not needed any more
    sampled_at = time.perf_counter()
    train, test = curation.split_items(
        sampled, curation.SplitSettings.from_config(curation_cfg["split"])
    )
    times.sample, times.split = sampled_at - started, time.perf_counter() - sampled_at
    report = CurationReport(
        source=data_cfg["source"],
        raw_records=n_raw,
        rejections=rejections,
        items=n_items,
        sampled=len(sampled),
        train=len(train),
        test=len(test),
    )
    return CuratedData(train, test, population, report)


def _build_from_item_files(
    data_cfg: Mapping[str, Any], curation_cfg: Mapping[str, Any]
) -> CuratedData:
    train = sources.read_item_files(list(data_cfg["train_paths"]))
    test_paths = list(data_cfg["test_paths"] or [])
    test = sources.read_item_files(test_paths) if test_paths else None
    excluded = list(data_cfg["exclude_categories"] or [])
    dropped: dict[str, int] = {}
    if excluded:
        train, test, dropped["excluded_category"] = _exclude_categories(train, test, excluded)
    population = pd.concat([train, test]) if test is not None else train
    if test is None:
        split = curation.SplitSettings.from_config(curation_cfg["split"])
        train, test = curation.split_items(train, split)
    elif data_cfg["test_rows"] is not None:
        # The head of the test files is the test set; the rest is more training data.
        n_test = int(data_cfg["test_rows"])
        train = pd.concat([train, test.iloc[n_test:]], ignore_index=True)
        test = test.iloc[:n_test].reset_index(drop=True)
    if data_cfg["drop_test_duplicates"]:
        duplicate = train["text"].isin(set(test["text"]))
        dropped["duplicate_of_test"] = int(duplicate.sum())
        train = train.loc[~duplicate].reset_index(drop=True)
    for name, frame in (("training", train), ("test", test)):
        if frame.empty:
            raise sources.DataError(f"the {name} set is empty after filtering ({dropped})")
    report = CurationReport(
        source="items",
        raw_records=len(population),
        rejections={},
        items=len(population),
        sampled=len(population),
        train=len(train),
        test=len(test),
        dropped=dropped,
    )
    return CuratedData(train, test, population[["price", "category"]].copy(), report)


def _exclude_categories(
    train: pd.DataFrame, test: pd.DataFrame | None, excluded: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame | None, int]:
    frames = [train] if test is None else [train, test]
    known = set().union(*(set(frame["category"].dropna()) for frame in frames))
    unknown = sorted(set(excluded) - known)
    if unknown:
        raise sources.DataError(
            f"unknown category {unknown} in data.exclude_categories; "
            f"categories in the data: {sorted(known)}"
        )
    kept = [frame.loc[~frame["category"].isin(excluded)].reset_index(drop=True) for frame in frames]
    n_dropped = sum(len(frame) for frame in frames) - sum(len(frame) for frame in kept)
    return kept[0], (kept[1] if test is not None else None), n_dropped


def _cache_key(data_cfg: Mapping[str, Any], curation_cfg: Mapping[str, Any]) -> str:
    """Settings plus the data code and data files: a change to any builds a fresh split."""
    settings = {key: value for key, value in curation_cfg.items() if key != "cache_dir"}
    digest = hashlib.sha256(
        json.dumps([dict(data_cfg), settings], sort_keys=True, default=str).encode()
    )
    package = Path(__file__).parent
    for module in sorted([*package.glob("*.py"), *package.glob("*.json")]):
        digest.update(module.read_bytes())
    return f"{data_cfg['source']}-{digest.hexdigest()[:16]}"


def save_curated(curated: CuratedData, folder: Path, *, replace: bool = False) -> None:
    """Write a split to a folder (train/test/population Parquet + report.json), atomically.

    Files are written to a temporary sibling that is renamed into place: a crash never leaves a
    half-written split. With ``replace`` an existing folder is swapped out only once the new
    one is complete.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        curated.train.to_parquet(staging / "train.parquet")
        curated.test.to_parquet(staging / "test.parquet")
        curated.population.to_parquet(staging / "population.parquet")
        (staging / "report.json").write_text(json.dumps(asdict(curated.report), indent=2))
        if replace and folder.exists():
            retired = folder.with_name(f".{folder.name}-old-{staging.name}")
            folder.rename(retired)
            staging.rename(folder)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if replace or not (folder / "report.json").is_file():  # a parallel writer may have won
            raise


def read_curated(folder: Path) -> CuratedData:
    return CuratedData(
        train=pd.read_parquet(folder / "train.parquet"),
        test=pd.read_parquet(folder / "test.parquet"),
        population=pd.read_parquet(folder / "population.parquet"),
        report=CurationReport(**json.loads((folder / "report.json").read_text())),
    )


def frame_digest(frame: pd.DataFrame) -> str:
    """A content digest of an item table (row order matters): equal digests, equal data."""
    hashed = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()[:16]
