"""From a ``data`` + ``curation`` config to a curated train/test split, with an on-disk cache.

Raw sources (synthetic, amazon) go through cleaning, balanced sampling and the split;
curated item files (items) are validated, filtered by category and split only when no test
files are given. The result carries a report of what was kept and rejected, so every run can
log how its data came to be.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf

from pricer.configs import check_data_settings
from pricer.data import cache, curation, sources
from pricer.data.items import LIKE_TEST_COLUMN, CleaningSettings
from pricer.errors import ConfigError, UserError
from pricer.files import folder_problem
from pricer.identity import comparable
from pricer.schemas import MIN_TRAIN_ITEMS, CurationConfig

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Source:
    """One ``data.source``: where its items come from and how a run names its origin.

    A raw source (``load_raw``) is cleaned, sampled and split, and the result is cached; item
    files are already curated and read fast, so caching them buys nothing.
    """

    describe: Callable[[Mapping[str, Any], bool], str]  # (settings, of the test set?)
    load_raw: Callable[..., tuple[pd.DataFrame, dict[str, int], int]] | None = None


def _item_files(cfg: Mapping[str, Any], test: bool) -> str:
    """The files a set's items come from: the test set from the test files (from the training
    ones when curation.split draws it), the training set from the training and like-test files
    and the test files' rows past ``data.test_rows``."""
    train = [*cfg["train_paths"], *(cfg["like_test_paths"] or [])]
    tests = list(cfg["test_paths"] or [])
    if test:
        return ",".join(str(path) for path in tests or train)
    surplus = tests if cfg["test_rows"] is not None else []
    return ",".join(str(path) for path in [*train, *surplus])


SOURCES: dict[str, Source] = {
    "synthetic": Source(
        lambda cfg, _: f"synthetic:n_records={cfg['n_records']},seed={cfg['seed']}",
        sources.load_synthetic,
    ),
    "amazon": Source(
        lambda cfg, _: f"hf:{cfg['dataset']}:{','.join(cfg['categories'])}", sources.load_amazon
    ),
    "items": Source(_item_files),
}


def source_of(data_cfg: Mapping[str, Any]) -> Source:
    """The source ``data.source`` names; a clear error for an unknown one."""
    name = data_cfg["source"]
    if name not in SOURCES:
        raise sources.DataError(f"unknown data source {name!r}; choose one of {list(SOURCES)}")
    return SOURCES[name]


def describe_source(data_cfg: Mapping[str, Any], *, test: bool = False) -> str:
    """A short, human-readable origin of the training items (of the test items with ``test``),
    used as the dataset source."""
    return source_of(data_cfg).describe(data_cfg, test)


def check_curation_settings(curation_cfg: Mapping[str, Any]) -> None:
    """Before a run exists: the curation settings' ranges (their schemas' checks, a training
    set of at least ``MIN_TRAIN_ITEMS`` among them). ``curation.split.train_size=0`` was a
    fit's traceback once the curation was done, its run FAILED."""
    CurationConfig.from_config(curation_cfg)


def check_item_files(
    data_cfg: Mapping[str, Any], curation_cfg: Mapping[str, Any] | None = None
) -> None:
    """Before a run exists: the item files it would read are there. A typo in a path left a
    FAILED run in the list for every try, where a setting out of range leaves none.
    ``curation_cfg``, when given, is checked too (``check_curation_settings``).

    Only that they exist: what is in them is read, and judged, inside the run. A curated folder
    that `pricer curate` is replacing lacks its files between two renames, so a miss is looked
    at again before it is an error. The data settings are checked first (their schema's
    ranges and non-empty folders): an empty folder setting named no file at all.
    """
    check_data_settings(data_cfg)
    if curation_cfg is not None:
        check_curation_settings(curation_cfg)
    if source_of(data_cfg).load_raw is not None:  # raw sources: generated or downloaded
        # Local copies are files too: a missing one was found once the categories before it
        # were cleaned, in a FAILED run saying the hub was needed.
        for category, name, matches in sources.local_category_files(data_cfg):
            if not matches:
                raise sources.DataError(
                    f"data.data_files: no file {name} for category {category}: download it, "
                    "or leave the category out of data.categories"
                )
        return
    paths = [
        *(data_cfg.get("train_paths") or []),
        *(data_cfg.get("like_test_paths") or []),
        *(data_cfg.get("test_paths") or []),
    ]
    for attempt in range(_VERSION_ATTEMPTS):
        missing = [str(path) for path in paths if not Path(path).is_file()]
        if not missing:
            return
        time.sleep(0.05 * attempt)
    folder = data_cfg.get("curated_dir")
    if folder and not Path(folder).exists():
        raise sources.DataError(_no_curated_split(folder))
    raise sources.DataError(sources.missing_file(Path(missing[0])))


def _no_curated_split(folder: str) -> str:
    return (
        f"no curated split in {folder}: write one with pricer curate (its output_dir), "
        "or point data.curated_dir at one"
    )


def load_curated(data_cfg: Mapping[str, Any], curation_cfg: Mapping[str, Any]) -> CuratedData:
    """The curated split for these settings: from the cache when a complete entry is there,
    else built (and cached). An incomplete or corrupted entry is rebuilt, with a warning."""
    check_data_settings(data_cfg)  # the apps that call no check_item_files first too
    source = source_of(data_cfg)
    if source.load_raw is None:
        folder, paths = data_cfg.get("curated_dir"), _item_paths(data_cfg)
        return _one_version(
            folder,
            lambda: _as_curated(folder, paths, _build_from_item_files(data_cfg, curation_cfg)),
            paths,
        )
    cache_dir = curation_cfg["cache_dir"]
    if not cache_dir:
        return build_from_raw(data_cfg, curation_cfg)
    if (why := folder_problem(Path(cache_dir))) is not None:  # before the work it would keep
        raise ConfigError(f"curation.cache_dir: {why}; point it elsewhere, or null for none")
    entry = Path(cache_dir) / _cache_key(data_cfg, curation_cfg)
    cache.remove_stale_staging(entry.parent)  # what killed saves left behind
    problem = cache.problem(entry)
    if problem is None:
        try:
            return read_curated(entry)
        except (OSError, ValueError, TypeError, KeyError) as error:  # checksums match, yet
            problem = f"unreadable: {type(error).__name__}: {error}"  # written by other code
    if problem != "absent":
        cache.discard(entry, problem)
    curated = build_from_raw(data_cfg, curation_cfg)
    try:
        save_curated(curated, entry)
    except OSError as error:
        # The cache only spares the next run this work, and the entry is whole or absent
        # (its staging folder removed): a full disk or a folder that refuses files failed the
        # run after the curation with a traceback (minutes of work at the course's scale).
        why = error.strerror or str(error)
        log.warning("curated split not cached in %s (%s): the next run curates again", entry, why)
    return curated


# Reads of a folder that `pricer curate` replaced each time; then it is busy: say so.
_VERSION_ATTEMPTS = 3


def _one_version(
    folder: str | None, read: Callable[[], CuratedData], paths: list[str]
) -> CuratedData:
    """``read()`` of a curated folder (``data=curated``), whose files all come from one version
    and are the files `pricer curate` wrote there (``_check_split``).

    `pricer curate` replaces its folder by renaming a complete new one into place; a run
    reading it meanwhile took train.parquet from the old version and test.parquet from the
    new, so its test items could be training items of the other. The folder's identity
    (``_identity``) is the same before and after a read only if no replace came between: else
    it is read again.
    """
    if not folder:
        return read()
    path = Path(folder)
    if not path.exists():
        try:
            return read()  # its files may be named elsewhere (data.train_paths)
        except sources.DataError:  # "item file not found: ..." said nothing of curate
            raise sources.DataError(_no_curated_split(folder)) from None
    for _ in range(_VERSION_ATTEMPTS):
        before = _identity(path)
        try:
            _check_split(path, paths)
            curated = read()
        except sources.DataError:
            if _identity(path) == before:  # nothing moved: the error is the answer
                raise
            continue  # its files vanished between the two renames of a replace
        if _identity(path) == before:
            return curated
    raise sources.DataError(
        f"{folder} was replaced while it was read, {_VERSION_ATTEMPTS} times: pricer curate is "
        "writing it; run again once it has finished"
    )


def _as_curated(folder: str | None, paths: list[str], read: CuratedData) -> CuratedData:
    """A split read back (``data=curated``) with the counts and population of the curation
    that wrote it, this read's own drops and rejections added.

    Counted as item files, a curated split's run logged ``data.raw_records`` as the items in
    its two files and no rejection at all (1,991 and none, for a synthetic curation of 3,000
    records that rejected 765 missing prices). Only when the split's own two files are all
    that is read: other files make other data, which this read's counts describe.
    """
    if not folder:
        return read
    split = Path(folder)
    if sorted(Path(path).resolve() for path in paths) != [
        (split / name).resolve() for name in ("test.parquet", "train.parquet")
    ]:
        return read
    try:
        written = CurationReport(**json.loads((split / "report.json").read_text()))
        population = pd.read_parquet(split / "population.parquet")
    except (OSError, ValueError, TypeError):  # not written by this version: this read's own
        return read
    added = read.report
    report = CurationReport(
        source=written.source,
        raw_records=written.raw_records,
        rejections=_added(written.rejections, added.rejections),
        items=written.items,
        sampled=written.sampled,
        train=added.train,
        test=added.test,
        dropped=_added(written.dropped, added.dropped),
    )
    return CuratedData(read.train, read.test, population, report)


def _added(first: Mapping[str, int], second: Mapping[str, int]) -> dict[str, int]:
    """Counts by reason summed, zeros kept (a Counter's sum drops them, and their metrics)."""
    return {reason: first.get(reason, 0) + second.get(reason, 0) for reason in {**first, **second}}


def _item_paths(data_cfg: Mapping[str, Any]) -> list[str]:
    """Every item file the data settings name."""
    keys = ("train_paths", "like_test_paths", "test_paths")
    return [str(path) for key in keys for path in (data_cfg.get(key) or [])]


def _check_split(folder: Path, paths: list[str]) -> None:
    """Raise ``DataError`` unless the files read from ``folder`` are the split `pricer curate`
    wrote there, as its manifest lists them (``cache.problem``).

    A test.parquet swapped for training rows, cut short or edited after curation was read as
    the split: its run FINISHED, scored on items it had trained on. A folder with no manifest
    was never completed (or never written by curate). Hashing costs about a tenth of reading:
    0.16-0.3 s for a 260 MB, 400k-item train.parquet that takes 1.5-2.6 s to read.
    """
    inside = sorted({Path(p).name for p in paths if Path(p).resolve().parent == folder.resolve()})
    if not inside:  # data.train_paths pointed elsewhere: this folder is not read
        return
    why = cache.problem(folder, inside)
    if why is not None and why != "absent":  # absent: a replace's gap, or a file (read says)
        raise sources.DataError(
            f"{folder} is not the split pricer curate wrote: {why}; "
            f"curate it again (pricer curate output_dir={folder})"
        )


def _identity(path: Path) -> tuple[int, int, int] | None:
    """Which folder ``path`` is: an inode freed by one replace is soon another's (seen in
    tests), so its change time, to the nanosecond, is part of it."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_ctime_ns


def build_from_raw(
    data_cfg: Mapping[str, Any],
    curation_cfg: Mapping[str, Any],
    times: sources.StageTimes | None = None,
) -> CuratedData:
    """Raw records -> items -> balanced sample -> split (no cache); ``times`` gets each
    stage's seconds when given."""
    times = times if times is not None else sources.StageTimes()
    cleaning = CleaningSettings.from_config(curation_cfg["items"])
    load_raw = source_of(data_cfg).load_raw
    if load_raw is None:
        raise sources.DataError(f"data.source={data_cfg['source']!r} is not a raw source")
    items, rejections, n_raw = load_raw(data_cfg, cleaning, times=times)
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
    # A record the raw data repeats (the synthetic source repeats 1% on purpose) is one item.
    # Split apart, its copies sat on both sides (16 of 500 test items at 8,000 synthetic
    # records): frontier_rag showed a test item, price included, as its own nearest example,
    # and every family was scored on an item it had trained on. One copy is kept, before the
    # split, so that the split still has the sizes asked (curation.split.train_size).
    repeated = comparable(sampled["text"]).duplicated().to_numpy()
    sampled = sampled.loc[~repeated].reset_index(drop=True)
    sampled_at = time.perf_counter()
    split = curation.SplitSettings.from_config(curation_cfg["split"])
    train, test = curation.split_items(sampled, split)
    times.sample, times.split = sampled_at - started, time.perf_counter() - sampled_at
    if len(train) < MIN_TRAIN_ITEMS:  # as item files are held to: else a fit's traceback
        raise sources.DataError(
            f"only {len(train)} training items in the split of {len(sampled)} sampled items "
            f"(curation.split.test_size={split.test_size}); pricer needs at least "
            f"{MIN_TRAIN_ITEMS} to fit a model: lower test_size, or curate more records"
        )
    report = CurationReport(
        source=data_cfg["source"],
        raw_records=n_raw,
        rejections=rejections,
        items=n_items,
        sampled=len(sampled),
        train=len(train),
        test=len(test),
        dropped={"repeated_record": int(repeated.sum())},
    )
    return CuratedData(train, test, population, report)


def _build_from_item_files(
    data_cfg: Mapping[str, Any], curation_cfg: Mapping[str, Any]
) -> CuratedData:
    test_rows = data_cfg["test_rows"]
    if test_rows is not None and int(test_rows) < 1:
        raise sources.DataError(f"data.test_rows must be >= 1 or null, got {test_rows}")
    if test_rows is not None and not data_cfg["test_paths"]:
        raise sources.DataError(
            f"data.test_rows={test_rows} needs data.test_paths: it keeps the first rows of the "
            "test files as the test set (without test files, curation.split draws one)"
        )
    cleaning = CleaningSettings.from_config(curation_cfg["items"])
    price_range = (cleaning.min_price, cleaning.max_price)
    train, rejections = sources.read_item_files(list(data_cfg["train_paths"]), price_range)
    # As the files flag them (a split pricer curate wrote), else not drawn like the test set.
    flags = train.get(LIKE_TEST_COLUMN, pd.Series(False, index=train.index))
    train[LIKE_TEST_COLUMN] = flags.eq(True)  # a file without them: NaN
    like_test_paths = list(data_cfg["like_test_paths"] or [])
    if like_test_paths:
        like, like_rejections = sources.read_item_files(like_test_paths, price_range)
        rejections = {reason: n + like_rejections[reason] for reason, n in rejections.items()}
        train = pd.concat([train, like.assign(**{LIKE_TEST_COLUMN: True})], ignore_index=True)
    n_read = len(train) + sum(rejections.values())
    test_paths = list(data_cfg["test_paths"] or [])
    test = None
    if test_paths:
        test, test_rejections = sources.read_item_files(test_paths, price_range)
        test = test.drop(columns=LIKE_TEST_COLUMN, errors="ignore")  # flags training items
        rejections = {reason: n + test_rejections[reason] for reason, n in rejections.items()}
        n_read += len(test) + sum(test_rejections.values())
    n_items = len(train) + (0 if test is None else len(test))
    excluded = list(data_cfg["exclude_categories"] or [])
    dropped: dict[str, int] = {}
    if excluded:
        train, test, dropped["excluded_category"] = _exclude_categories(train, test, excluded)
    population = pd.concat([train, test]) if test is not None else train
    if test is None:
        split = curation.SplitSettings.from_config(curation_cfg["split"])
        # A random split of one pool: every training item is drawn the way the test set is.
        train, test = curation.split_items(train.assign(**{LIKE_TEST_COLUMN: True}), split)
        test = test.drop(columns=LIKE_TEST_COLUMN)
    elif data_cfg["test_rows"] is not None:
        # The head of the test files is the test set; the rest is more training data, drawn
        # the way the test set is.
        n_test = int(data_cfg["test_rows"])
        rest = test.iloc[n_test:].assign(**{LIKE_TEST_COLUMN: True})
        train = pd.concat([train, rest], ignore_index=True)
        test = test.iloc[:n_test].reset_index(drop=True)
    if data_cfg["drop_test_duplicates"]:
        # An item scored twice counts twice in the mae and narrows its interval for nothing.
        repeated = pd.DataFrame({"text": comparable(test["text"]), "price": test["price"]})
        repeated = repeated.duplicated().to_numpy()
        dropped["repeated_test_item"] = int(repeated.sum())
        test = test.loc[~repeated].reset_index(drop=True)
        # The same item, however its text is spaced or cased, is the same item.
        duplicate = comparable(train["text"]).isin(set(comparable(test["text"])))
        dropped["duplicate_of_test"] = int(duplicate.sum())
        train = train.loc[~duplicate].reset_index(drop=True)
    if test.empty:
        raise sources.DataError(f"the test set is empty after filtering ({dropped})")
    if len(train) < MIN_TRAIN_ITEMS:
        raise sources.DataError(
            f"only {len(train)} training items after filtering (rejected: "
            f"{sources.count_text(rejections)}; dropped: {sources.count_text(dropped)}); "
            f"pricer needs at least {MIN_TRAIN_ITEMS} to fit a model"
        )
    # Fields in order: nothing is sampled from item files, so every kept item counts as sampled.
    report = CurationReport(
        "items", n_read, rejections, n_items, len(population), len(train), len(test), dropped
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


# Modules outside pricer/data whose code decides what a split holds: how raw prices are read,
# how texts are compared for duplicates, the sampling and split settings' own logic.
_CURATION_MODULES = ("prices.py", "identity.py", "schemas.py")


def _cache_key(data_cfg: Mapping[str, Any], curation_cfg: Mapping[str, Any]) -> str:
    """Settings plus the data code, data files and local raw files: a change to any builds a
    fresh split."""
    data = {key: _plain(value) for key, value in data_cfg.items()}
    settings = {key: _plain(value) for key, value in curation_cfg.items() if key != "cache_dir"}
    stamps = _local_raw_files(data_cfg)
    digest = hashlib.sha256(
        json.dumps([data, settings, stamps], sort_keys=True, default=str).encode()
    )
    package = Path(__file__).parent
    modules = [*package.glob("*.py"), *package.glob("*.json")]
    modules += [package.parent / name for name in _CURATION_MODULES]
    for module in sorted(modules):
        digest.update(module.read_bytes())
    return f"{data_cfg['source']}-{digest.hexdigest()[:16]}"


def _local_raw_files(data_cfg: Mapping[str, Any]) -> list[list[Any]]:
    """Path, size and modification time of each local raw file ``data.data_files`` names.

    A local copy of the Amazon files downloaded again, or edited, kept its settings, so the
    split curated from the old copy was read from the cache. Their size and time, not their
    bytes: the raw files are gigabytes, hashed on every run. Remote files (``hf://``) are the
    hub's to version.
    """
    stamps: list[list[Any]] = []
    for _, name, matches in sources.local_category_files(data_cfg):
        for path in matches or [name]:
            try:
                stat = os.stat(path)
            except OSError:  # loading it will say why
                stamps.append([path, None, None])
            else:
                stamps.append([path, stat.st_size, stat.st_mtime_ns])
    return stamps


def _plain(value: Any) -> Any:
    """A setting's value with its interpolations resolved: hashed as text, a nested node kept
    ``${seed}``, so two seeds shared one key and the second run read the first one's split."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


# What save_curated writes in a split's folder, the manifest included: all a replace may delete.
SPLIT_FILES = frozenset(
    {"train.parquet", "test.parquet", "population.parquet", "report.json", cache.MANIFEST}
)


class NotASplit(UserError, FileExistsError):
    """``pricer curate``'s output_dir holds something it did not write."""


def check_replaceable(folder: Path) -> None:
    """Raise ``NotASplit`` unless ``folder`` is absent, empty or a split: a replace swaps the
    whole folder, and ``output_dir=<an existing folder>`` deleted whatever else it held."""
    if not folder.exists():
        return
    if not folder.is_dir():  # it was renamed out of sight, to a hidden name beside it
        raise NotASplit(f"output_dir {folder} is a file, not a folder: choose another output_dir")
    foreign = sorted(path.name for path in folder.iterdir() if path.name not in SPLIT_FILES)
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise NotASplit(
            f"output_dir {folder} holds files pricer curate did not write: "
            f"{', '.join(foreign[:5])}{more}; a split replaces the whole folder: choose another "
            "output_dir, or move them"
        )


def save_curated(curated: CuratedData, folder: Path, *, replace: bool = False) -> None:
    """Write a split to a folder (train/test/population Parquet + report.json), atomically and
    verifiably: see ``pricer.data.cache`` (a manifest of checksums is written last, and the
    folder appears in one rename). With ``replace`` an existing folder is swapped out only
    once the new one is complete, and only if it holds nothing but a split
    (``check_replaceable``)."""
    if replace:
        check_replaceable(folder)

    def write(staging: Path) -> None:
        curated.train.to_parquet(staging / "train.parquet")
        curated.test.to_parquet(staging / "test.parquet")
        curated.population.to_parquet(staging / "population.parquet")
        (staging / "report.json").write_text(json.dumps(asdict(curated.report), indent=2))

    cache.write_entry(folder, write, replace=replace)


def read_curated(folder: Path) -> CuratedData:
    return CuratedData(
        train=pd.read_parquet(folder / "train.parquet"),
        test=pd.read_parquet(folder / "test.parquet"),
        population=pd.read_parquet(folder / "population.parquet"),
        report=CurationReport(**json.loads((folder / "report.json").read_text())),
    )


def frame_digest(frame: pd.DataFrame) -> str:
    """A digest of an item table, its columns' names and kinds of value included (row and
    column order matter): equal digests, equal tables.

    Rows alone said that a table whose title and text columns swapped names was the same
    data. Kinds, not dtypes: one table read from Parquet or built in memory has ``str`` or
    Arrow-backed text columns, which hold the same values. MLflow's own digest
    (``mlflow.data.from_pandas``) is no fit: it reads the first 10,000 rows only and leaves
    out a column holding a None or booleans (``category``, ``drawn_like_test``).
    """
    layout = [[str(name), _value_kind(dtype)] for name, dtype in frame.dtypes.items()]
    digest = hashlib.sha256(json.dumps(layout).encode())
    digest.update(rows_digest(frame).encode())
    return digest.hexdigest()[:16]


def rows_digest(frame: pd.DataFrame) -> str:
    """A digest of an item table's values, row by row in order, its column names left out.

    The evaluation items' tag (``pricer.eval_digest``), which promotion matches a candidate to
    its champion by: the items' columns are pricer's own (``items.ITEM_COLUMNS``), so their
    values tell the items apart, and every champion's tag was written this way.
    """
    hashed = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()[:16]


def _value_kind(dtype: Any) -> str:
    kind = getattr(dtype, "kind", "O")
    return {"b": "bool", "i": "integer", "u": "integer", "f": "float", "c": "complex"}.get(
        kind, "datetime" if kind in "mM" else "other"
    )
