from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from hydra.errors import HydraException
from omegaconf import DictConfig

from pricer.data import sources
from pricer.data.cache import remove_stale_staging
from pricer.data.dataset import (
    MIN_TRAIN_ITEMS,
    SOURCES,
    CuratedData,
    CurationReport,
    build_from_raw,
    check_item_files,
    describe_source,
    frame_digest,
    load_curated,
    read_curated,
    rows_digest,
    save_curated,
)
from pricer.data.items import LIKE_TEST_COLUMN
from pricer.data.sources import DataError, StageTimes
from pricer.errors import ConfigError, UserError
from pricer.identity import comparable
from pricer.models import base as models_base
from pricer.paths import CONFIG_DIR, PROJECT_ROOT
from pricer.preparation import run_curation
from tests.conftest import compose_config, raw_record


def write_items(path: Path, n: int, category: str, start: int = 0) -> str:
    rows = [
        {"title": f"item {i}", "text": f"text of item {i}", "price": 10.0 + i, "category": category}
        for i in range(start, start + n)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def items_config(tmp_path: Path, **data: object):
    cfg = compose_config("train", ["data=items"])
    for key, value in data.items():
        cfg.data[key] = value
    return cfg


def test_head_of_test_files_is_the_test_set_and_the_rest_trains(tmp_path: Path) -> None:
    cfg = items_config(
        tmp_path,
        train_paths=[write_items(tmp_path / "train.jsonl", 30, "Toys")],
        test_paths=[write_items(tmp_path / "test.jsonl", 10, "Toys", start=100)],
        test_rows=4,
    )
    curated = load_curated(cfg.data, cfg.curation)
    assert curated.test["title"].tolist() == ["item 100", "item 101", "item 102", "item 103"]
    assert len(curated.train) == 36
    assert curated.report.train == 36 and curated.report.test == 4


@pytest.mark.parametrize(
    ("test_rows", "with_test_files", "message"),
    [
        (-5, True, r"data.test_rows must be >= 1 or null, got -5"),
        (0, True, r"data.test_rows must be >= 1 or null, got 0"),
        (4, False, r"data.test_rows=4 needs data.test_paths"),
    ],
)
def test_test_rows_that_cannot_mean_what_they_say_are_refused(
    tmp_path: Path, test_rows: int, with_test_files: bool, message: str
) -> None:
    # -5 made every test row but the last five a test item (those five trained); 0 said "the
    # test set is empty after filtering"; without test files the rows were ignored and a
    # random split of curation.split.test_size items was scored instead.
    test = [write_items(tmp_path / "test.jsonl", 10, "Toys", start=100)]
    cfg = items_config(
        tmp_path,
        train_paths=[write_items(tmp_path / "train.jsonl", 30, "Toys")],
        test_paths=test if with_test_files else [],
        test_rows=test_rows,
    )
    cfg.curation.split.test_size = 5
    with pytest.raises(DataError, match=message):
        load_curated(cfg.data, cfg.curation)


def like_test_config(tmp_path: Path) -> DictConfig:
    """Item files of 30 training items, 6 drawn like the test set, 10 test rows of which the
    first 4 are the test set (the other 6 train, flagged as drawn like it)."""
    return items_config(
        tmp_path,
        train_paths=[write_items(tmp_path / "train.jsonl", 30, "Toys")],
        like_test_paths=[write_items(tmp_path / "like.jsonl", 6, "Toys", start=50)],
        test_paths=[write_items(tmp_path / "test.jsonl", 10, "Toys", start=100)],
        test_rows=4,
    )


def test_items_drawn_like_the_test_set_are_flagged_for_training_only(tmp_path: Path) -> None:
    cfg = like_test_config(tmp_path)
    curated = load_curated(cfg.data, cfg.curation)
    assert LIKE_TEST_COLUMN == models_base.LIKE_TEST_COLUMN  # the name the families read
    flagged = curated.train.loc[curated.train[LIKE_TEST_COLUMN], "title"]
    # The like-test file and the test file's rows past the test set; not the other file.
    expected = [f"item {i}" for i in [*range(50, 56), *range(104, 110)]]
    assert flagged.tolist() == expected
    assert len(curated.train) == 42 and curated.report.train == 42
    assert LIKE_TEST_COLUMN not in curated.test.columns  # a test item carries no such flag
    # Without test files the test set is a random split of one pool: every item is alike.
    cfg.data.test_paths, cfg.data.test_rows = [], None
    cfg.curation.split.test_size = 5
    split = load_curated(cfg.data, cfg.curation)
    assert split.train[LIKE_TEST_COLUMN].all() and LIKE_TEST_COLUMN not in split.test.columns


def test_a_curated_split_keeps_its_flags_of_items_drawn_like_the_test_set(tmp_path: Path) -> None:
    # Read back with data=curated, every training item of a split pricer curate wrote was
    # flagged False: data=real's 1,749 were weighed as any other, and validation.like_test
    # found none to hold out.
    cfg = like_test_config(tmp_path)
    save_curated(load_curated(cfg.data, cfg.curation), tmp_path / "split")
    cfg = compose_config("train", ["data=curated", f"data.curated_dir={tmp_path / 'split'}"])
    curated = load_curated(cfg.data, cfg.curation)
    flagged = curated.train.loc[curated.train[LIKE_TEST_COLUMN], "title"]
    assert flagged.tolist() == [f"item {i}" for i in [*range(50, 56), *range(104, 110)]]
    assert curated.train[LIKE_TEST_COLUMN].dtype == bool
    assert LIKE_TEST_COLUMN not in curated.test.columns


def test_an_item_files_flag_that_is_not_true_or_false_is_one_line(tmp_path: Path) -> None:
    rows = [
        {"title": f"item {i}", "text": f"text {i}", "price": 5.0 + i, LIKE_TEST_COLUMN: flag}
        for i, flag in enumerate([True, None, "false"] * 5)
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cfg = items_config(tmp_path, train_paths=[str(path)])
    cfg.curation.split.test_size = 3
    with pytest.raises(DataError, match=f"^{path}: {LIKE_TEST_COLUMN} holds 'false'; it is true,"):
        load_curated(cfg.data, cfg.curation)
    rows = [{**row, LIKE_TEST_COLUMN: row[LIKE_TEST_COLUMN] is True} for row in rows[:2]] * 8
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cfg.data.test_paths = [write_items(tmp_path / "test.jsonl", 3, "Toys", start=100)]
    flags = load_curated(cfg.data, cfg.curation).train[LIKE_TEST_COLUMN]
    assert flags.tolist() == [True, False] * 8


def test_training_copies_of_test_items_are_dropped(tmp_path: Path) -> None:
    cfg = items_config(
        tmp_path,
        train_paths=[write_items(tmp_path / "train.jsonl", 30, "Toys")],
        test_paths=[write_items(tmp_path / "test.jsonl", 5, "Toys", start=28)],
    )
    curated = load_curated(cfg.data, cfg.curation)
    assert curated.report.dropped["duplicate_of_test"] == 2
    assert not set(curated.train["text"]) & set(curated.test["text"])


def test_training_copies_of_test_items_differing_in_spacing_or_case_are_dropped(
    tmp_path: Path,
) -> None:
    # Only identical texts were dropped: the same 50 items, their text ending in a space,
    # stayed in training and were scored as test items (duplicate_of_test: 0).
    train = write_items(tmp_path / "train.jsonl", 30, "Toys")
    test = tmp_path / "test.jsonl"
    rows = [json.loads(line) for line in Path(train).read_text().splitlines()[26:]]
    respelled = [" text of item 26 ", "text of item 27\r\n", "TEXT OF ITEM 28", "text  of item 29"]
    for row, text in zip(rows, respelled, strict=True):
        row["text"] = text
    test.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cfg = items_config(tmp_path, train_paths=[train], test_paths=[str(test)])
    curated = load_curated(cfg.data, cfg.curation)
    assert curated.report.dropped["duplicate_of_test"] == 4
    assert curated.train["title"].tolist() == [f"item {i}" for i in range(26)]


def test_a_test_item_listed_twice_is_scored_once(tmp_path: Path) -> None:
    # data.test_paths=[test.jsonl, test.jsonl] (or a file with repeated rows) scored every
    # item twice: the same mae over twice the items, and a bootstrap interval that narrow.
    test = write_items(tmp_path / "test.jsonl", 10, "Toys", start=100)
    cfg = items_config(
        tmp_path,
        train_paths=[write_items(tmp_path / "train.jsonl", 30, "Toys")],
        test_paths=[test, test],
    )
    curated = load_curated(cfg.data, cfg.curation)
    assert curated.test["title"].tolist() == [f"item {i}" for i in range(100, 110)]
    assert curated.report.test == 10 and curated.report.dropped["repeated_test_item"] == 10


def test_excluded_categories_must_exist(tmp_path: Path) -> None:
    train = [
        write_items(tmp_path / "a.jsonl", 30, "Toys"),
        write_items(tmp_path / "b.jsonl", 30, "Software", start=50),
    ]
    cfg = items_config(tmp_path, train_paths=train, test_paths=[], exclude_categories=["Software"])
    cfg.curation.split.test_size = 5
    curated = load_curated(cfg.data, cfg.curation)
    assert set(curated.train["category"]) | set(curated.test["category"]) == {"Toys"}
    assert curated.report.dropped["excluded_category"] == 30
    cfg.data.exclude_categories = ["Softwear"]
    with pytest.raises(DataError, match=r"unknown category \['Softwear'\]"):
        load_curated(cfg.data, cfg.curation)


def test_nothing_left_after_filtering_is_an_error(tmp_path: Path) -> None:
    cfg = items_config(
        tmp_path,
        train_paths=[write_items(tmp_path / "train.jsonl", 10, "Toys")],
        test_paths=[write_items(tmp_path / "test.jsonl", 5, "Software", start=50)],
        exclude_categories=["Software"],
    )
    with pytest.raises(DataError, match="test set is empty"):
        load_curated(cfg.data, cfg.curation)


def test_raw_sources_are_curated_once_then_read_from_the_cache(tmp_path: Path) -> None:
    cfg = compose_config(
        "train",
        ["data.n_records=3000", f"curation.cache_dir={tmp_path}", "curation.split.test_size=100"],
    )
    first = load_curated(cfg.data, cfg.curation)
    entries = list(tmp_path.iterdir())
    assert len(entries) == 1 and (entries[0] / "report.json").is_file()
    second = load_curated(cfg.data, cfg.curation)
    pd.testing.assert_frame_equal(first.train, second.train)
    assert frame_digest(first.test) == frame_digest(second.test)
    assert first.report == second.report
    assert first.report.raw_records == 3000
    assert sum(first.report.rejections.values()) + first.report.items == 3000
    cfg.data.seed = 43  # other settings, other entry
    load_curated(cfg.data, cfg.curation)
    assert len(list(tmp_path.iterdir())) == 2


def test_the_cache_key_holds_the_values_settings_interpolate() -> None:
    # curation.split.seed=${seed}: seed=1 and seed=2 had one key, as the text "${seed}" was
    # hashed, and the second run read the first one's split under its own seed.
    from pricer.data.dataset import _cache_key

    keys = {
        _cache_key(cfg.data, cfg.curation)
        for cfg in (
            compose_config("train", ["curation.split.seed=${seed}", f"seed={seed}"])
            for seed in (1, 2)
        )
    }
    assert len(keys) == 2


def test_the_cache_key_holds_the_price_reading_code(monkeypatch: pytest.MonkeyPatch) -> None:
    # pricer/prices.py (how raw price strings are read while cleaning) moved out of
    # pricer/data, whose files alone were hashed: a change to it kept the old splits.
    from pricer import prices
    from pricer.data import dataset

    cfg = compose_config("train", [])
    before = dataset._cache_key(cfg.data, cfg.curation)
    source = Path(prices.__file__).read_bytes()
    reads = Path.read_bytes

    def changed(path: Path) -> bytes:
        return source + b"# changed\n" if path == Path(prices.__file__) else reads(path)

    monkeypatch.setattr(Path, "read_bytes", changed)
    assert dataset._cache_key(cfg.data, cfg.curation) != before


def test_a_local_copy_of_the_raw_files_changed_is_curated_again(tmp_path: Path) -> None:
    # The split curated from the old copy was read from the cache: the settings had not
    # changed, only the files they name.
    def write(shift: int) -> None:
        for category in ("Toys_and_Games", "Automotive"):
            rows = [
                raw_record(title=f"Hammer model {category} {i}", price=f"{10 + i + shift}.00")
                for i in range(30)
            ]
            path = tmp_path / f"meta_{category}.jsonl"
            path.write_text("".join(json.dumps(row) + "\n" for row in rows))

    cfg = compose_config(
        "curate",
        [
            "data=amazon",
            "data.categories=[Toys_and_Games,Automotive]",
            "data.num_proc=1",
            f"data.cache_dir={tmp_path / 'hf'}",
            f"curation.cache_dir={tmp_path / 'cache'}",
            "curation.split.test_size=10",
        ],
    )
    cfg.data.data_files = str(tmp_path / "meta_{category}.jsonl")  # braces: not an override
    write(0)
    assert load_curated(cfg.data, cfg.curation).train["price"].max() < 40
    write(100)
    assert load_curated(cfg.data, cfg.curation).train["price"].min() > 100
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_a_local_raw_file_that_is_not_there_is_named_before_any_run(tmp_path: Path) -> None:
    # Found once the categories before it were cleaned, in a FAILED run whose error said
    # "The Amazon source needs the Hugging Face hub".
    (tmp_path / "meta_Automotive.jsonl").write_text(json.dumps(raw_record()) + "\n")
    cfg = compose_config("curate", ["data=amazon", "data.categories=[Automotive,Appliances]"])
    cfg.data.data_files = str(tmp_path / "meta_{category}.jsonl")
    missing = tmp_path / "meta_Appliances.jsonl"
    said = f"^data.data_files: no file {missing} for category Appliances: download it, or "
    with pytest.raises(DataError, match=said):
        check_item_files(cfg.data, cfg.curation)
    cfg.data.data_files = str(tmp_path / "meta_*{category}.jsonl")  # a glob matches
    missing.write_text(json.dumps(raw_record()) + "\n")
    check_item_files(cfg.data, cfg.curation)
    cfg.data.data_files = "hf://datasets/x/meta_{category}.jsonl"  # the hub's to find
    check_item_files(cfg.data, cfg.curation)


def test_a_cache_dir_inside_a_file_is_one_line_before_any_curation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The data were built first, then saving them failed with a NotADirectoryError traceback.
    from pricer.data import dataset
    from pricer.errors import ConfigError

    taken = tmp_path / "notes.txt"
    taken.write_text("not a folder\n")
    cfg = compose_config("train", [f"curation.cache_dir={taken}/cache"])
    monkeypatch.setattr(dataset, "build_from_raw", lambda *_: pytest.fail("curated first"))
    with pytest.raises(ConfigError, match=rf"curation.cache_dir: {taken} is a file, not a folder"):
        load_curated(cfg.data, cfg.curation)
    assert taken.read_text() == "not a folder\n"


def test_digest_tracks_content_and_order() -> None:
    frame = pd.DataFrame({"text": ["a", "b"], "price": [1.0, 2.0]})
    assert frame_digest(frame) == frame_digest(frame.copy())
    assert frame_digest(frame) != frame_digest(frame.iloc[::-1])
    assert frame_digest(frame) != frame_digest(frame.assign(price=[1.0, 2.5]))


def test_digest_tracks_column_names_and_kinds_of_value() -> None:
    # The same values under other names were the same digest: a table whose title and text
    # had swapped names was recorded in MLflow as the data of the run before.
    frame = pd.DataFrame({"title": ["Oak desk"], "text": ["An oak desk, 120 cm"], "price": [99.0]})
    swapped = frame.rename(columns={"title": "text", "text": "title"})
    assert frame_digest(frame) != frame_digest(swapped)
    assert frame_digest(frame) != frame_digest(frame.rename(columns={"price": "cost"}))
    flagged = frame.assign(flag=[1])
    assert frame_digest(flagged) != frame_digest(flagged.assign(flag=[True]))
    # Text held as str, object or Arrow-backed (read from Parquet or built) is the same text.
    for dtype in (object, "string[pyarrow]"):
        assert frame_digest(frame) == frame_digest(frame.astype({"title": dtype, "text": dtype}))


def test_the_evaluation_items_tag_reads_as_before_so_champions_stay_comparable() -> None:
    # pricer.eval_digest matches a candidate to its champion's items: a new formula would
    # have left every champion in a store with no candidate to compare.
    items = pd.DataFrame(
        {
            "title": ["Oak desk", "Steel bolt"],
            "text": ["An oak desk", "A steel bolt, 10 pack"],
            "price": [129.99, 4.5],
            "category": ["Office_Products", None],
            "details": [None, '{"Brand": "B"}'],
        }
    )
    assert rows_digest(items) == "88524b37a8dd36f7"


def test_build_from_raw_times_each_stage_on_request() -> None:
    cfg = compose_config("train", ["data.n_records=3000", "curation.split.test_size=100"])
    times = StageTimes()
    curated = build_from_raw(cfg.data, cfg.curation, times)
    assert curated.report.train == len(curated.train) and curated.report.test == 100
    assert times.generate > 0 and times.clean > 0 and times.wall >= times.generate
    assert times.sample > 0 and times.split > 0


def test_a_split_that_leaves_too_few_training_items_is_one_line() -> None:
    # The test set took all but a few sampled items: the fit that followed was scikit-learn's
    # traceback ("Cannot have number of splits n_splits=5 greater than the number of samples").
    cfg = compose_config(
        "train", ["data.n_records=3000", "curation.split.test_size=1985", "curation.cache_dir=null"]
    )
    with pytest.raises(DataError, match=r"^only \d training items in the split of \d+ sampled"):
        build_from_raw(cfg.data, cfg.curation)


def test_a_record_the_raw_data_repeats_is_one_item_on_one_side_of_the_split() -> None:
    # The synthetic source repeats 1% of its records: a repeat split apart left a test item
    # in training (frontier_rag showed it to the model as its own example, with its price).
    # Dropping training copies after the split left fewer training items than asked
    # (curation.split.train_size), which the benchmarks' fixed sizes refused.
    cfg = compose_config(
        "train",
        [
            "data.n_records=8000",
            "curation.split.test_size=500",
            "curation.split.train_size=3000",
            "curation.cache_dir=null",
        ],
    )
    curated = build_from_raw(cfg.data, cfg.curation)
    train, test = comparable(curated.train["text"]), comparable(curated.test["text"])
    assert not test.isin(set(train)).any()
    assert not train.duplicated().any() and not test.duplicated().any()
    assert curated.report.dropped["repeated_record"] > 0  # the seed does repeat some
    assert (len(curated.train), len(curated.test)) == (3000, 500)


def test_course_scale_preset_is_the_synthetic_catalogue_at_the_course_split() -> None:
    cfg = compose_config("curate", ["experiment=course_scale"])
    assert cfg.data.source == "synthetic" and cfg.data.n_records == 2_800_000
    assert cfg.curation.split.train_size == 400_000 and cfg.curation.split.test_size == 2_000
    assert cfg.curation.sample.max_per_slot == 1600
    # Everything else keeps the default recipe.
    default = compose_config("curate")
    assert cfg.curation["items"] == default.curation["items"]
    assert cfg.curation.sample.take_all_from == default.curation.sample.take_all_from


# --- The curated-data cache: an entry is complete and verified, or rebuilt with a warning ---

SMALL = ["data.n_records=3000", "curation.split.test_size=100"]


def cached_config(cache_dir: Path):
    return compose_config("train", [*SMALL, f"curation.cache_dir={cache_dir}"])


def only_entry(cache_dir: Path) -> Path:
    [entry] = list(cache_dir.iterdir())  # nothing else: no staging or retired folders
    return entry


def truncate_train(entry: Path) -> str:
    path = entry / "train.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return "train.parquet"


def empty_report(entry: Path) -> str:
    (entry / "report.json").write_text("")
    return "report.json"


def delete_test_file(entry: Path) -> str:
    (entry / "test.parquet").unlink()
    return "test.parquet is missing"


@pytest.mark.parametrize("damage", [truncate_train, empty_report, delete_test_file])
def test_a_damaged_cache_entry_is_rebuilt_with_a_warning(
    tmp_path: Path, damage, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = cached_config(tmp_path)
    first = load_curated(cfg.data, cfg.curation)
    entry = only_entry(tmp_path)
    what = damage(entry)
    with caplog.at_level(logging.WARNING):
        again = load_curated(cfg.data, cfg.curation)
    pd.testing.assert_frame_equal(first.train, again.train)
    assert first.report == again.report
    [warning] = [r.getMessage() for r in caplog.records if "unusable" in r.getMessage()]
    assert str(entry) in warning and what in warning
    # The rebuilt entry is whole again: a third load reads it without a word.
    assert only_entry(tmp_path) == entry and (entry / "manifest.json").is_file()
    caplog.clear()
    third = load_curated(cfg.data, cfg.curation)
    assert not caplog.records
    pd.testing.assert_frame_equal(first.test, third.test)


def test_a_cache_that_cannot_be_written_warns_and_the_split_is_still_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A full disk while the entry was written: an OSError traceback once the items had been
    # curated, and the run ended FAILED. The cache only spares the next run the work.
    cfg = cached_config(tmp_path / "cache")
    expected = load_curated(cfg.data, {**cfg.curation, "cache_dir": None})
    writes = pd.DataFrame.to_parquet

    def disk_full(self: pd.DataFrame, path: object, *args: object, **kwargs: object) -> None:
        if "population" in str(path):  # two files written, the third fails part-way
            Path(str(path)).write_bytes(b"PAR1")
            raise OSError(28, "No space left on device")
        writes(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    with caplog.at_level(logging.WARNING):
        curated = load_curated(cfg.data, cfg.curation)
    pd.testing.assert_frame_equal(curated.train, expected.train)
    pd.testing.assert_frame_equal(curated.test, expected.test)
    [warning] = [r.getMessage() for r in caplog.records if "not cached" in r.getMessage()]
    assert "(No space left on device): the next run curates again" in warning
    assert list((tmp_path / "cache").iterdir()) == []  # no entry, whole or part


KILLED_SAVE = """
import os, sys, time
import pandas as pd
from pricer.data.dataset import build_from_raw, save_curated, _cache_key
from tests.conftest import compose_config
from pathlib import Path

cfg = compose_config("train", sys.argv[2:])
curated = build_from_raw(cfg.data, cfg.curation)
write = pd.DataFrame.to_parquet

def slow_write(frame, path, *args, **kwargs):
    write(frame, path, *args, **kwargs)
    Path(sys.argv[1]).write_text("one file written")
    time.sleep(120)  # killed here, half-way through the save

pd.DataFrame.to_parquet = slow_write
save_curated(curated, Path(cfg.curation.cache_dir) / _cache_key(cfg.data, cfg.curation))
"""


def test_a_save_killed_half_way_leaves_nothing_a_later_run_trips_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache_dir, marker = tmp_path / "cache", tmp_path / "written"
    overrides = [*SMALL, f"curation.cache_dir={cache_dir}"]
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVE, str(marker), *overrides], cwd=PROJECT_ROOT
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, "the saving process ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        process.kill()  # SIGKILL: nothing can be cleaned up on the way out
        process.wait()
    assert list(cache_dir.iterdir())  # the half-written save left its staging folder

    cfg = cached_config(cache_dir)
    with caplog.at_level(logging.WARNING):
        curated = load_curated(cfg.data, cfg.curation)
    assert any("did not finish" in record.getMessage() for record in caplog.records)
    entry = only_entry(cache_dir)  # the staging folder is gone
    assert (entry / "manifest.json").is_file()
    pd.testing.assert_frame_equal(read_curated(entry).train, curated.train)


def test_a_staging_folder_of_a_live_writer_is_left_alone(tmp_path: Path) -> None:
    parent = tmp_path / "cache"
    live = parent / f".entry.partial-{os.getppid()}-abc"  # the test runner's parent is alive
    live.mkdir(parents=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    stale = parent / f".entry.partial-{dead.stdout.strip()}-abc"
    stale.mkdir()
    remove_stale_staging(parent)
    assert live.is_dir() and not stale.exists()


# --- Item files: curation's price range, rejections counted by reason, clear errors ---


def write_rows(path: Path, prices: list, start: int = 0) -> str:
    lines = [
        json.dumps({"title": f"item {i}", "text": f"text of item {i}", "price": price})
        for i, price in enumerate(prices, start)
    ]
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_item_prices_outside_curations_range_are_rejected_and_counted(tmp_path: Path) -> None:
    bad = [0, 1e9, float("inf"), 1e300, "twelve", -4, None]
    cfg = items_config(
        tmp_path,
        train_paths=[write_rows(tmp_path / "train.jsonl", [*bad, *range(10, 40)])],
        test_paths=[write_rows(tmp_path / "test.jsonl", [0.2, 5, 6, 7], start=100)],
    )
    curated = load_curated(cfg.data, cfg.curation)
    low, high = cfg.curation["items"].min_price, cfg.curation["items"].max_price
    for frame in (curated.train, curated.test):
        assert frame["price"].between(low, high).all()
    assert len(curated.train) == 30 and len(curated.test) == 3
    assert curated.report.rejections == {
        "unreadable_line": 0,  # a malformed item file is refused whole
        "missing_price": 1,
        "invalid_price": 2,  # "twelve" and -4
        "price_out_of_range": 5,  # 0, 1e9, inf, 1e300 and the test file's 0.2
        "missing_title": 0,
        "too_short": 0,
    }
    assert curated.report.raw_records == 7 + 30 + 4
    assert curated.report.as_metrics()["data.rejected.price_out_of_range"] == 5


def test_item_files_with_no_valid_price_fail_with_one_line(tmp_path: Path) -> None:
    cfg = items_config(
        tmp_path,
        train_paths=[write_rows(tmp_path / "train.jsonl", [0, 1e9, None, "x"])],
        test_paths=[write_rows(tmp_path / "test.jsonl", [5, 6], start=100)],
    )
    with pytest.raises(DataError, match="no usable items") as error:
        load_curated(cfg.data, cfg.curation)
    message = str(error.value)
    assert "\n" not in message
    assert "price_out_of_range: 2" in message and "missing_price: 1" in message


def test_too_few_training_items_is_a_clear_error(tmp_path: Path) -> None:
    cfg = items_config(
        tmp_path,
        train_paths=[write_rows(tmp_path / "train.jsonl", [10, 20])],
        test_paths=[write_rows(tmp_path / "test.jsonl", [5, 6], start=100)],
    )
    with pytest.raises(DataError, match=f"only 2 training items.*at least {MIN_TRAIN_ITEMS}"):
        load_curated(cfg.data, cfg.curation)


def test_a_json_array_file_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_text(json.dumps([{"title": "a", "text": "b", "price": 3.0}] * 20))
    cfg = items_config(tmp_path, train_paths=[str(path)], test_paths=[])
    with pytest.raises(DataError, match="JSON array; JSON Lines expected") as error:
        load_curated(cfg.data, cfg.curation)
    assert str(path) in str(error.value)


def test_every_data_config_names_a_source_from_the_one_dispatch_table() -> None:
    names = sorted(path.stem for path in (CONFIG_DIR / "data").glob("*.yaml"))
    assert {"synthetic", "amazon", "items", "real", "curated"} <= set(names)
    origins = {}
    for name in names:
        data = compose_config("train", [f"data={name}"]).data
        assert data.source in SOURCES, name
        origins[name] = describe_source(data)
    assert origins["synthetic"].startswith("synthetic:n_records=")
    assert origins["amazon"].startswith("hf:McAuley-Lab/Amazon-Reviews-2023:")
    # The test items' origin is the test files: it was the training files, for every set.
    real = compose_config("train", ["data=real"]).data
    assert describe_source(real, test=True) == str(real.test_paths[0])
    assert describe_source(real).split(",") == [
        *map(str, [*real.train_paths, *real.like_test_paths]),
        str(real.test_paths[0]),  # its rows past data.test_rows train
    ]
    curated = compose_config("train", ["data=curated"]).data
    assert describe_source(curated, test=True).endswith("test.parquet")
    assert describe_source(curated).endswith("train.parquet")
    items = compose_config("train", ["data=items", "data.train_paths=[a.jsonl]"]).data
    assert describe_source(items, test=True) == describe_source(items) == "a.jsonl"  # a split
    assert describe_source(compose_config("train").data, test=True) == origins["synthetic"]
    cfg = compose_config("train")
    cfg.data.source = "csv"
    with pytest.raises(DataError, match=r"unknown data source 'csv'; choose one of \['synth"):
        load_curated(cfg.data, cfg.curation)


def _version(tag: str) -> CuratedData:
    def items(start: int, n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "title": [f"{tag} item {i}" for i in range(start, start + n)],
                "text": [f"text of {tag} item {i}" for i in range(start, start + n)],
                "price": [10.0 + i for i in range(start, start + n)],
                "category": ["Toys"] * n,
            }
        )

    train, test = items(0, 30), items(100, 5)
    report = CurationReport("items", 35, {}, 35, 35, 30, 5)
    return CuratedData(train, test, pd.concat([train, test])[["price", "category"]], report)


def test_a_curated_folder_replaced_while_it_is_read_gives_one_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `pricer curate` replacing data=curated's folder between a run's two reads gave that
    # run the old version's training items and the new version's test items.
    folder = tmp_path / "curated"
    save_curated(_version("old"), folder)
    real_read, replaced = sources.read_item_files, []

    def read_then_replace(paths: list[str], price_range: tuple[float, float]):
        read = real_read(paths, price_range)
        if not replaced:  # once, between the training and the test file
            replaced.append(True)
            save_curated(_version("new"), folder, replace=True)
        return read

    monkeypatch.setattr(sources, "read_item_files", read_then_replace)
    cfg = compose_config("train", ["data=curated", f"data.curated_dir={folder}"])
    curated = load_curated(cfg.data, cfg.curation)
    assert {title.split()[0] for title in curated.train["title"]} == {"new"}
    assert {title.split()[0] for title in curated.test["title"]} == {"new"}


def test_a_curated_folder_that_keeps_being_replaced_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "curated"
    save_curated(_version("old"), folder)
    real_read = sources.read_item_files

    def read_then_replace(paths: list[str], price_range: tuple[float, float]):
        read = real_read(paths, price_range)
        save_curated(_version("new"), folder, replace=True)
        return read

    monkeypatch.setattr(sources, "read_item_files", read_then_replace)
    cfg = compose_config("train", ["data=curated", f"data.curated_dir={folder}"])
    with pytest.raises(DataError, match=r"was replaced while it was read, 3 times: pricer curate"):
        load_curated(cfg.data, cfg.curation)


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda f: (f.mkdir(), (f / "notes.txt").write_text("mine")), r"files .*: notes\.txt"),
        (lambda f: f.write_text("mine"), r"a file, not a folder"),
    ],
    ids=["a folder of someone's files", "a file"],
)
def test_replacing_a_split_leaves_what_curate_did_not_write(tmp_path: Path, make, why) -> None:
    # `pricer curate output_dir=<an existing folder>` swapped the whole folder for the split
    # and deleted what it held; a file there was renamed out of sight.
    folder = tmp_path / "mine"
    make(folder)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UserError, match=rf"^output_dir {folder} .*{why}"):
        save_curated(_version("new"), folder, replace=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert "mine" in (
        folder.read_text() if folder.is_file() else (folder / "notes.txt").read_text()
    )


def test_a_split_and_an_empty_folder_are_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "curated"
    folder.mkdir()
    save_curated(_version("old"), folder, replace=True)  # an empty folder: nothing to keep
    save_curated(_version("new"), folder, replace=True)  # a split curate wrote: replaced
    assert read_curated(folder).train["title"].iloc[0] == "new item 0"


def _curate_config(split: Path, bins: str) -> DictConfig:
    return compose_config(
        "curate",
        [
            f"output_dir={split}",
            f"histogram_bins={bins}",
            "data.n_records=3000",
            "curation.split.test_size=200",
            "curation.cache_dir=null",
        ],
    )


@pytest.mark.parametrize("bins", ["abc", "2.5", "[50,10]"])
def test_curate_types_histogram_bins_while_composing(tmp_path: Path, bins: str) -> None:
    # numpy's ValueError or TypeError, a traceback once the split had been saved, and the
    # curation run ended FAILED. Typed by pricer.schemas.CurateConfig: Hydra names the key.
    with pytest.raises(HydraException, match="histogram_bins"):
        _curate_config(tmp_path / "split", bins)


def test_curate_refuses_histogram_bins_out_of_range_before_it_curates(
    tracking_uri: str, tmp_path: Path
) -> None:
    split = tmp_path / "split"
    with pytest.raises(ConfigError, match=r"^histogram_bins must be >= 1, got 0$"):
        run_curation(_curate_config(split, "0"))
    # 100000 drew each chart for minutes, once the split had been saved.
    with pytest.raises(ConfigError, match=r"^histogram_bins must be <= 1000 \(a bin per dol"):
        run_curation(_curate_config(split, "100000"))
    assert not split.exists()
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_curate_refuses_an_output_dir_it_cannot_write_before_it_curates(
    tracking_uri: str, tmp_path: Path
) -> None:
    # The items were curated, then the split failed to be written ("File exists"), in a
    # FAILED run: minutes of work at the course's scale for a path mistyped.
    (tmp_path / "notes.txt").write_text("mine")
    split = tmp_path / "notes.txt" / "split"
    with pytest.raises(UserError) as refused:
        run_curation(_curate_config(split, "10"))
    assert str(refused.value) == (
        f"cannot write {split}: {tmp_path / 'notes.txt'} is a file, not a folder; "
        "choose another output_dir"
    )
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_curate_reads_a_parquet_files_categories_stored_as_a_dictionary(
    tracking_uri: str, tmp_path: Path
) -> None:
    # pandas writes a "category" column as a Parquet dictionary and reads it back as one: the
    # charts' "unknown" for a missing category was a TypeError traceback, once the split had
    # been saved, and the curation run FAILED.
    rows = [
        {"title": f"item {i}", "text": f"text of item {i}", "price": 5.0 + i} for i in range(40)
    ]
    frame = pd.DataFrame(rows).assign(category=["Toys", "Tools", None, "Toys"] * 10)
    frame.astype({"category": "category"}).to_parquet(tmp_path / "items.parquet")
    cfg = compose_config(
        "curate",
        [
            "data=items",
            f"data.train_paths=[{tmp_path / 'items.parquet'}]",
            "curation.split.test_size=5",
            f"output_dir={tmp_path / 'split'}",
        ],
    )
    run_curation(cfg)
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FINISHED"
    assert read_curated(tmp_path / "split").population["category"].isna().sum() == 10


def test_a_curated_split_read_back_carries_its_curations_counts(
    tracking_uri: str, tmp_path: Path
) -> None:
    # Counted as item files: data.raw_records was the items in train and test.parquet, and no
    # record had been rejected, where the curation had read 3,000 and rejected a third.
    split = tmp_path / "split"
    run_curation(_curate_config(split, "10"))
    written = read_curated(split)
    cfg = compose_config("train", ["data=curated", f"data.curated_dir={split}"])
    read = load_curated(cfg.data, cfg.curation)
    metrics = read.report.as_metrics()
    assert metrics == {
        **written.report.as_metrics(),
        "data.dropped.repeated_test_item": 0.0,
        "data.dropped.duplicate_of_test": 0.0,
    }
    assert metrics["data.raw_records"] == 3000 and metrics["data.rejected.missing_price"] > 0
    pd.testing.assert_frame_equal(read.population, written.population)
    # Other files beside the split's are other data: this read's own counts.
    cfg.data.like_test_paths = [write_items(tmp_path / "more.jsonl", 5, "Toys", start=100)]
    mixed = load_curated(cfg.data, cfg.curation).report
    assert mixed.raw_records == len(written.train) + len(written.test) + 5


def test_a_split_that_cannot_be_written_is_one_line_and_the_old_split_stays(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full disk while the split was written: an OSError traceback, exit 1. A UserError is
    # one line on the terminal (pricer.cli.run).
    split = tmp_path / "split"
    run_curation(_curate_config(split, "10"))
    before = {path.name: path.read_bytes() for path in split.iterdir()}
    writes = pd.DataFrame.to_parquet

    def disk_full(self: pd.DataFrame, path: object, *args: object, **kwargs: object) -> None:
        if "test" in Path(str(path)).name:  # the second file, cut short
            Path(str(path)).write_bytes(b"PAR1")
            raise OSError(28, "No space left on device")
        writes(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    with pytest.raises(UserError) as refused:
        run_curation(_curate_config(split, "10"))
    assert str(refused.value) == (
        f"cannot write {split}: No space left on device; the split there is as it was"
    )
    assert {path.name: path.read_bytes() for path in split.iterdir()} == before
    beside = [path.name for path in tmp_path.glob(".split*")]
    assert beside == [".split.lock"]  # the swap's lock alone: no partial split beside it
    [failed, _] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert failed.info.status == "FAILED"
    assert failed.data.tags["error"].endswith("the split there is as it was")


def test_a_split_is_readable_as_any_new_folder_is(tmp_path: Path) -> None:
    # Made by tempfile.mkdtemp, the split's folder was 0700 whatever the umask: a split
    # curated for the team (data=curated) could be read by its writer alone.
    umask = os.umask(0o022)
    try:
        save_curated(_version("new"), tmp_path / "curated", replace=True)
    finally:
        os.umask(umask)
    assert (tmp_path / "curated").stat().st_mode & 0o777 == 0o755


def test_a_curated_folder_that_is_not_there_points_at_pricer_curate(tmp_path: Path) -> None:
    # It said "item file not found: .../train.parquet", nothing of how to make one.
    cfg = compose_config("train", ["data=curated", f"data.curated_dir={tmp_path / 'none'}"])
    with pytest.raises(DataError, match=r"no curated split in .*none: write one with pricer cur"):
        load_curated(cfg.data, cfg.curation)


def test_check_item_files_names_the_first_missing_file_or_the_missing_curated_split(
    tmp_path: Path,
) -> None:
    # Run before any run exists (pricer.experiment): each try with a typo left a FAILED run.
    cfg = compose_config("train", ["data=curated", f"data.curated_dir={tmp_path / 'none'}"])
    with pytest.raises(DataError, match=r"no curated split in .*none: write one with pricer cur"):
        check_item_files(cfg.data)
    there = tmp_path / "there.jsonl"
    there.write_text("")  # only existence is checked here; the contents are judged in the run
    missing = tmp_path / "gone.jsonl"
    cfg = compose_config(
        "train", ["data=items", f"data.train_paths=[{there}]", f"data.test_paths=[{missing}]"]
    )
    with pytest.raises(DataError, match=f"^item file not found: {missing}$"):
        check_item_files(cfg.data)
    check_item_files(compose_config("train", ["data=items", f"data.train_paths=[{there}]"]).data)
    check_item_files(compose_config("train").data)  # synthetic: generated, nothing to check


@pytest.mark.parametrize(
    ("option", "key", "holding"),
    [
        ("curated", "curated_dir", "the split pricer curate wrote (its output_dir)"),
        ("real", "shared_dir", "the real item files"),
    ],
)
def test_an_empty_data_folder_is_said_to_be_empty(option: str, key: str, holding: str) -> None:
    # "item file not found: /train.parquet": the files' paths, their folder left out.
    cfg = compose_config("train", [f"data={option}", f"data.{key}="])
    said = "^" + re.escape(f"data.{key} is empty: point it at the folder holding {holding}") + "$"
    with pytest.raises(ConfigError, match=said):
        check_item_files(cfg.data)
    with pytest.raises(ConfigError, match=said):  # the apps that check no item files first
        load_curated(cfg.data, cfg.curation)
    blank = compose_config("train", [f"data={option}", f"data.{key}='  '"])
    with pytest.raises(ConfigError, match=said):
        check_item_files(blank.data)


def swap_test_for_training_rows(split: Path) -> str:
    pd.read_parquet(split / "train.parquet").head(5).to_parquet(split / "test.parquet")
    return "test.parquet has"


def cut_train_short(split: Path) -> str:
    data = (split / "train.parquet").read_bytes()
    (split / "train.parquet").write_bytes(data[: len(data) // 2])
    return "train.parquet has"


def edit_a_test_price(split: Path) -> str:
    # The same size, another price: only the checksum tells.
    test = pd.read_parquet(split / "test.parquet")
    data = (split / "test.parquet").read_bytes()
    test.assign(price=test["price"] + 1).to_parquet(split / "test.parquet")
    assert len((split / "test.parquet").read_bytes()) == len(data)
    return "test.parquet does not match its sha256 checksum"


def remove_the_manifest(split: Path) -> str:
    (split / "manifest.json").unlink()
    return "no manifest.json"


@pytest.mark.parametrize(
    "damage", [swap_test_for_training_rows, cut_train_short, edit_a_test_price, remove_the_manifest]
)
def test_a_curated_split_changed_after_curation_is_refused_in_one_line(
    tmp_path: Path, damage
) -> None:
    # data=curated read whatever the folder held: a test.parquet swapped for training rows
    # scored a FINISHED run on items it had trained on (they were dropped from training as
    # "duplicates of test items", without a word).
    folder = tmp_path / "curated"
    save_curated(_version("old"), folder)
    said = damage(folder)
    cfg = compose_config("train", ["data=curated", f"data.curated_dir={folder}"])
    with pytest.raises(DataError) as refused:
        load_curated(cfg.data, cfg.curation)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{folder} is not the split pricer curate wrote: {said}")
    assert message.endswith(f"curate it again (pricer curate output_dir={folder})")


def test_a_manifest_that_leaves_out_a_file_read_vouches_for_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "curated"
    save_curated(_version("old"), folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["test.parquet"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    cfg = compose_config("train", ["data=curated", f"data.curated_dir={folder}"])
    with pytest.raises(DataError, match=r"test\.parquet is not in its manifest\.json; curate it"):
        load_curated(cfg.data, cfg.curation)


def test_a_whole_curated_split_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "curated"
    save_curated(_version("old"), folder)
    cfg = compose_config("train", ["data=curated", f"data.curated_dir={folder}"])
    curated = load_curated(cfg.data, cfg.curation)
    assert (len(curated.train), len(curated.test)) == (30, 5)
