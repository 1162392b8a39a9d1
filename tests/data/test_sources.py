from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from pricer.data.dataset import check_item_files
from pricer.data.items import REJECTION_REASONS
from pricer.data.sources import DataError, SourceUnavailableError, load_amazon, read_item_files
from pricer.schemas import CleaningSettings
from tests.conftest import compose_config, raw_record

PRICES = (0.5, 999.49)  # curation.items' price range


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def item(price: object, text: str = "some product text", **extra: object) -> dict:
    return {"title": "A product", "text": text, "price": price, **extra}


def test_reads_jsonl_and_parquet_in_file_order(tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", [item(3.5, category="Toys"), item(7)])
    pd.DataFrame([item(12.25, details={"Brand": "X"})]).to_parquet(tmp_path / "b.parquet")
    items, rejections = read_item_files([str(first), str(tmp_path / "b.parquet")], PRICES)
    assert items["price"].tolist() == [3.5, 7.0, 12.25]
    assert not any(rejections.values())
    assert items["category"].tolist()[0] == "Toys"
    assert json.loads(items["details"].iloc[2]) == {"Brand": "X"}


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"title": "x", "price": 3}])
    with pytest.raises(DataError, match=r"missing required column\(s\) \['text'\]"):
        read_item_files([str(path)], PRICES)


@pytest.mark.parametrize(
    ("price", "reason"),
    [
        ("twelve", "invalid_price"),
        (-4, "invalid_price"),
        (None, "missing_price"),
        (0, "price_out_of_range"),
        (1e9, "price_out_of_range"),
        (1e300, "price_out_of_range"),
        # JSON's true is no amount: Python counts it as the integer 1, and it was kept as $1.
        (True, "invalid_price"),
        (False, "invalid_price"),
    ],
)
def test_rows_curation_would_reject_are_dropped_by_reason(
    tmp_path: Path, price: object, reason: str
) -> None:
    path = write_jsonl(tmp_path / "items.jsonl", [item(3), item(price), item("$1,299.00")])
    items, rejections = read_item_files([str(path)], (0.5, 2000.0))
    assert items["price"].tolist() == [3.0, 1299.0]
    assert rejections == {**dict.fromkeys(REJECTION_REASONS, 0), reason: 1}


def test_infinite_prices_in_parquet_are_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    pd.DataFrame([item(float("inf")), item(float("nan")), item(4.0)]).to_parquet(path)
    items, rejections = read_item_files([str(path)], PRICES)
    assert items["price"].tolist() == [4.0]
    assert rejections["price_out_of_range"] == 1 and rejections["missing_price"] == 1


def test_a_json_array_says_json_lines_are_expected(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text("\n" + json.dumps([item(3), item(4)], indent=2))
    with pytest.raises(DataError, match=f"{path}: a JSON array; JSON Lines expected"):
        read_item_files([str(path)], PRICES)


def test_missing_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="item file not found"):
        read_item_files([str(tmp_path / "nope.jsonl")], PRICES)
    (tmp_path / "items.csv").write_text("title,text,price\n")
    with pytest.raises(DataError, match="unsupported item file type"):
        read_item_files([str(tmp_path / "items.csv")], PRICES)
    with pytest.raises(DataError, match="no item files given"):
        read_item_files([], PRICES)


def amazon_config(data_files: str, tmp_path: Path) -> dict:
    cfg = compose_config("curate", ["data=amazon"]).data
    return {
        **cfg,
        "categories": ["Toys_and_Games", "Automotive"],
        "data_files": data_files,
        "cache_dir": str(tmp_path / "hf-cache"),
        "num_proc": 1,
        "batch_size": 2,
    }


def test_amazon_loader_cleans_raw_meta_files_offline(tmp_path: Path) -> None:
    """The real loader, on local files in the raw_meta JSONL layout the hub serves."""
    write_jsonl(
        tmp_path / "meta_Toys_and_Games.jsonl",
        [
            # In the raw files details is a JSON object, not a string.
            {
                **raw_record(price="15.00"),
                "details": {"Brand": "Playful", "Item Weight": "8 ounces"},
            },
            raw_record(price="None"),
            raw_record(price="$1,299.00"),
        ],
    )
    write_jsonl(tmp_path / "meta_Automotive.jsonl", [raw_record(price="45.50")])
    settings = CleaningSettings.from_config(compose_config("curate").curation["items"])
    items, rejections, n_raw = load_amazon(
        amazon_config(str(tmp_path / "meta_{category}.jsonl"), tmp_path), settings
    )
    assert n_raw == 4
    assert sorted(items["price"]) == [15.0, 45.5]
    assert set(items["category"]) == {"Toys_and_Games", "Automotive"}
    assert rejections["missing_price"] == 1 and rejections["price_out_of_range"] == 1
    assert json.loads(items.loc[items["price"] == 15.0, "details"].item())["Brand"] == "Playful"


def test_amazon_lines_that_are_no_json_object_are_counted_unreadable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A line nested 100,000 brackets deep was a RecursionError traceback out of the loader, a
    # malformed one a JSONDecodeError, a JSON array an AttributeError: the curation stopped.
    path = tmp_path / "meta_Automotive.jsonl"
    good = json.dumps(raw_record(price="15.00"))
    path.write_text("\n".join([good, "{broken", "[" * 100_000, "[1, 2]", good]) + "\n")
    settings = CleaningSettings.from_config(compose_config("curate").curation["items"])
    cfg = amazon_config(str(tmp_path / "meta_{category}.jsonl"), tmp_path)
    items, rejections, n_raw = load_amazon({**cfg, "categories": ["Automotive"]}, settings)
    assert n_raw == 5 and items["price"].tolist() == [15.0, 15.0]
    assert rejections == {**dict.fromkeys(REJECTION_REASONS, 0), "unreadable_line": 3}
    assert "3 of 5 lines are no JSON object" in caplog.text


def test_amazon_loader_names_offline_alternatives_when_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what "no network" looks like, without waiting
    settings = CleaningSettings.from_config(compose_config("curate").curation["items"])
    hub_files = compose_config("curate", ["data=amazon"]).data["data_files"]
    with pytest.raises(SourceUnavailableError, match="data=synthetic") as error:
        load_amazon(amazon_config(hub_files, tmp_path), settings)
    assert "data=items" in str(error.value)


def test_amazon_loader_cleans_sharded_files_in_worker_processes(tmp_path: Path) -> None:
    """How the full dump is curated on a bigger machine: many shards per category (a glob in
    data_files), cleaned by datasets' multiprocess map; the items are those of one file."""
    records = [
        raw_record(title=f"Sturdy Steel Hammer number {i}", price=f"{10 + i}.00") for i in range(12)
    ]
    records += [raw_record(price="None"), raw_record(price="$2,500.00")]
    write_jsonl(tmp_path / "whole" / "meta_Automotive.jsonl", records)
    for shard in range(3):
        write_jsonl(tmp_path / "shards" / f"meta_Automotive-{shard:05d}.jsonl", records[shard::3])
    settings = CleaningSettings.from_config(compose_config("curate").curation["items"])

    def load(data_files: str, num_proc: int) -> tuple:
        cfg = {**amazon_config(data_files, tmp_path), "categories": ["Automotive"]}
        return load_amazon({**cfg, "num_proc": num_proc}, settings)

    whole, whole_rejections, whole_raw = load(str(tmp_path / "whole" / "meta_{category}.jsonl"), 1)
    sharded, rejections, n_raw = load(str(tmp_path / "shards" / "meta_{category}-*.jsonl"), 2)
    assert n_raw == whole_raw == 14 and rejections == whole_rejections
    assert len(whole) == 12
    key = ["title", "price"]
    pd.testing.assert_frame_equal(
        sharded.sort_values(key).reset_index(drop=True),
        whole.sort_values(key).reset_index(drop=True),
    )


def test_rows_without_usable_text_are_dropped_as_too_short(tmp_path: Path) -> None:
    # They were kept and scored: a test file of 50 items with empty or null text gave a
    # FINISHED run with a mae, though predict and the served model refuse such items.
    rows = [item(3), item(4, text=""), item(5, text="   "), item(6, text=None), item(7, "12.5")]
    path = write_jsonl(tmp_path / "items.jsonl", rows)
    items, rejections = read_item_files([str(path)], PRICES)
    assert items["price"].tolist() == [3.0]
    assert rejections == {**dict.fromkeys(REJECTION_REASONS, 0), "too_short": 4}


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_an_empty_item_file_says_it_is_empty(tmp_path: Path, content: str) -> None:
    # It said "missing required column(s) ['title', 'text', 'price']", which sent people
    # looking for a column-name mistake in a file that held nothing.
    path = tmp_path / "test.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=r"test\.jsonl: no items \(the file is empty\)"):
        read_item_files([str(path)], PRICES)


def test_a_jsonl_file_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    # Windows editors and PowerShell write UTF-8 with a BOM: such a file was refused, "not
    # readable as jsonl: Expected object or value at position 0".
    path = tmp_path / "items.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(item(p)) + "\n" for p in (3, 7)).encode())
    items, _ = read_item_files([str(path)], PRICES)
    assert items["price"].tolist() == [3.0, 7.0]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_file_that_cannot_be_opened_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    # A file its reader has no permission for was PermissionError's traceback. Tests run as
    # root, who may read any file, so the refusal is the operating system's, simulated.
    path = tmp_path / f"items{suffix}"
    if suffix == ".parquet":
        pd.DataFrame([item(3.5)]).to_parquet(path)
    else:
        write_jsonl(path, [item(3.5)])
    opens = open

    def refused(file: object, *args: object, **kwargs: object) -> object:
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return opens(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refused)
    monkeypatch.setattr("io.open", refused)
    monkeypatch.setattr(pd, "read_parquet", lambda file, *a, **k: refused(file))
    with pytest.raises(DataError, match=f"^{path}: cannot read it: Permission denied$"):
        read_item_files([str(path)], PRICES)


def test_a_folder_named_as_an_item_file_is_called_a_folder(tmp_path: Path) -> None:
    # "item file not found: <folder>": the path was right, and it named no file.
    write_jsonl(tmp_path / "data" / "items.jsonl", [item(3.5)])
    said = f"^{tmp_path / 'data'} is a folder, not an item file: name the .jsonl or .parquet"
    with pytest.raises(DataError, match=said):
        read_item_files([str(tmp_path / "data")], PRICES)
    cfg = compose_config("train", ["data=items", f"data.train_paths=[{tmp_path / 'data'}]"])
    with pytest.raises(DataError, match=said):  # before any run is made
        check_item_files(cfg.data)


@pytest.mark.parametrize("line", ["null", "5", "[1, 2]", '"a product"'])
def test_a_json_line_that_is_no_object_is_named(tmp_path: Path, line: str) -> None:
    # pandas' TypeError ("'NoneType' object is not iterable"): a traceback naming no file.
    path = write_jsonl(tmp_path / "items.jsonl", [item(3.5), item(4.5)])
    path.write_text(path.read_text() + line + "\n" + json.dumps(item(5.5)) + "\n")
    said = f"^{path}: line 3 is no JSON object \\({re.escape(line)}\\); JSON Lines of item"
    with pytest.raises(DataError, match=said):
        read_item_files([str(path)], PRICES)


@pytest.mark.parametrize("pattern", ["meta_{cat}.jsonl", "meta_{}.jsonl", "meta_{category.jsonl"])
def test_a_data_files_pattern_with_other_braces_is_one_line(pattern: str) -> None:
    # str.format's KeyError, IndexError or ValueError: a traceback before or during the run.
    cfg = compose_config("curate", ["data=amazon"])
    cfg.data.data_files = pattern
    said = f"^data.data_files={re.escape(repr(pattern))}: {{category}} is the one name it may"
    with pytest.raises(DataError, match=said):
        check_item_files(cfg.data, cfg.curation)
    settings = CleaningSettings.from_config(cfg.curation["items"])
    with pytest.raises(DataError, match=said):
        load_amazon(cfg.data, settings)


@pytest.mark.parametrize(
    ("encoding", "said"),
    [
        ("utf-16", "saved as UTF-16 text; save it as UTF-8"),
        ("latin-1", "not UTF-8 text (byte 35: invalid continuation byte); save it as UTF-8"),
        ("gzip", "a gzip-compressed file; decompress it (gunzip) and name the .jsonl file"),
    ],
)
def test_a_jsonl_file_that_is_not_utf8_says_so(tmp_path: Path, encoding: str, said: str) -> None:
    # PowerShell's `>` writes UTF-16: "line 1 is no JSON object", its NUL bytes on the
    # terminal; a Latin-1 file was the codec's words about a byte; a gzip file too.
    path = tmp_path / "items.jsonl"
    lines = [json.dumps(item(3.5, text="Café table"), ensure_ascii=False)] * 2
    text = "\r\n".join(lines)
    data = gzip.compress(text.encode()) if encoding == "gzip" else text.encode(encoding)
    path.write_bytes(data)
    with pytest.raises(DataError) as refused:
        read_item_files([str(path)], PRICES)
    assert str(refused.value) == f"{path}: {said}"


def test_a_byte_order_mark_inside_a_jsonl_file_is_named(tmp_path: Path) -> None:
    # Two files saved with a BOM, joined (cat a.jsonl b.jsonl): the second's mark, invisible,
    # made its first line "no JSON object ({"title": ...)".
    path = tmp_path / "items.jsonl"
    line = json.dumps(item(3.5))
    path.write_bytes(f"\ufeff{line}\n{line}\n\ufeff{line}\n".encode())
    said = f"{path}: line 3 starts with a byte order mark (files joined together?): remove it"
    with pytest.raises(DataError) as refused:
        read_item_files([str(path)], PRICES)
    assert str(refused.value) == said
