from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pricer.data.dataset import build_from_raw, frame_digest, load_curated
from pricer.data.sources import DataError, StageTimes
from tests.conftest import compose_config


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


def test_training_copies_of_test_items_are_dropped(tmp_path: Path) -> None:
    cfg = items_config(
        tmp_path,
        train_paths=[write_items(tmp_path / "train.jsonl", 30, "Toys")],
        test_paths=[write_items(tmp_path / "test.jsonl", 5, "Toys", start=28)],
    )
    curated = load_curated(cfg.data, cfg.curation)
    assert curated.report.dropped["duplicate_of_test"] == 2
    assert not set(curated.train["text"]) & set(curated.test["text"])


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


def test_digest_tracks_content_and_order() -> None:
    frame = pd.DataFrame({"text": ["a", "b"], "price": [1.0, 2.0]})
    assert frame_digest(frame) == frame_digest(frame.copy())
    assert frame_digest(frame) != frame_digest(frame.iloc[::-1])
    assert frame_digest(frame) != frame_digest(frame.assign(price=[1.0, 2.5]))


def test_build_from_raw_times_each_stage_on_request() -> None:
    cfg = compose_config("train", ["data.n_records=3000", "curation.split.test_size=100"])
    times = StageTimes()
    curated = build_from_raw(cfg.data, cfg.curation, times)
    assert curated.report.train == len(curated.train) and curated.report.test == 100
    assert times.generate > 0 and times.clean > 0 and times.wall >= times.generate
    assert times.sample > 0 and times.split > 0


def test_course_scale_preset_is_the_synthetic_catalogue_at_the_course_split() -> None:
    cfg = compose_config("curate", ["experiment=course_scale"])
    assert cfg.data.source == "synthetic" and cfg.data.n_records == 2_800_000
    assert cfg.curation.split.train_size == 400_000 and cfg.curation.split.test_size == 2_000
    assert cfg.curation.sample.max_per_slot == 1600
    # Everything else keeps the default recipe.
    default = compose_config("curate")
    assert cfg.curation["items"] == default.curation["items"]
    assert cfg.curation.sample.take_all_from == default.curation.sample.take_all_from
