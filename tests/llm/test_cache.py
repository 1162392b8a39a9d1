"""The on-disk answer cache: keys, round trips, damaged entries, concurrent writers, old
entries (without checksums) and the folders this version has checksummed."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pricer.models.llm.cache import CachedAnswer, ResponseCache, _digest, request_key

REQUEST = {"base_url": "http://x/v1", "model": "m", "messages": [{"role": "user", "content": "a"}]}


def test_key_depends_on_every_part_of_the_request() -> None:
    variants = [
        REQUEST,
        {**REQUEST, "model": "n"},
        {**REQUEST, "base_url": "http://y/v1"},
        {**REQUEST, "temperature": 0.5},
        {**REQUEST, "messages": [{"role": "user", "content": "b"}]},
    ]
    assert len({request_key(v) for v in variants}) == len(variants)
    assert request_key(dict(reversed(list(REQUEST.items())))) == request_key(REQUEST)


def test_round_trip_and_disabled_cache(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    key = request_key(REQUEST)
    assert cache.get(key) is None
    cache.put(key, CachedAnswer("Price is $3.00", 10, 4), REQUEST)
    assert cache.get(key) == CachedAnswer("Price is $3.00", 10, 4)
    off = ResponseCache(None)
    off.put(key, CachedAnswer("x", 1, 1), REQUEST)
    assert off.get(key) is None and not off.enabled


def test_a_damaged_entry_is_a_miss_with_a_warning_and_gets_overwritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ResponseCache(tmp_path)
    key = request_key(REQUEST)
    cache.put(key, CachedAnswer("1", 1, 1), REQUEST)
    (entry,) = tmp_path.rglob("*.json")
    entry.write_text('{"answer": {"answ')  # a crash mid-write of some other tool
    with caplog.at_level(logging.WARNING, logger="pricer.models.llm.cache"):
        assert cache.get(key) is None
    assert f"ignoring unreadable LLM cache entry {entry}" in caplog.text
    cache.put(key, CachedAnswer("2", 1, 1), REQUEST)
    assert cache.get(key).answer == "2"


def test_concurrent_writers_and_readers_never_see_half_an_entry(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    requests = [{**REQUEST, "seed": i} for i in range(20)]
    keys = [request_key(request) for request in requests]
    seen: list[CachedAnswer | None] = []

    def write() -> None:
        for key, request in zip(keys, requests, strict=True):
            cache.put(key, CachedAnswer("Price is $9.99" * 200, 5, 5), request)

    def read() -> None:
        for _ in range(5):
            seen.extend(cache.get(key) for key in keys)

    threads = [threading.Thread(target=f) for f in (write, read, write, read, write)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(entry is None or entry.answer == "Price is $9.99" * 200 for entry in seen)
    assert all(cache.get(key) is not None for key in keys)
    assert not list(tmp_path.rglob(".*"))  # no temporary (hidden) file left behind


def test_a_failed_write_costs_the_entry_not_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("")  # the cache folder is a file: every write fails
    cache = ResponseCache(tmp_path / "file")
    key = request_key(REQUEST)
    with caplog.at_level(logging.WARNING, logger="pricer.models.llm.cache"):
        cache.put(key, CachedAnswer("Price is $3.00", 1, 1), REQUEST)
    assert "cannot write LLM cache entry" in caplog.text
    assert cache.get(key) is None


def test_an_entry_edited_or_moved_but_still_readable_is_a_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A readable entry was trusted as it stood: a digit changed by hand (or by a bad disk)
    became the recorded answer, and an entry copied under another request's name answered
    that request with this one's price."""
    cache = ResponseCache(tmp_path)
    key, other = request_key(REQUEST), request_key({**REQUEST, "model": "n"})
    cache.put(key, CachedAnswer("Price is $120.00", 10, 4), REQUEST)
    path = tmp_path / key[:2] / f"{key}.json"
    original = path.read_text(encoding="utf-8")
    moved = tmp_path / other[:2] / f"{other}.json"
    moved.parent.mkdir(parents=True, exist_ok=True)
    moved.write_text(original, encoding="utf-8")
    path.write_text(original.replace("$120.00", "$920.00"), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert cache.get(key) is None
        assert cache.get(other) is None
    assert caplog.text.count("does not match") == 2
    cache.put(key, CachedAnswer("Price is $120.00", 10, 4), REQUEST)  # asked again
    assert cache.get(key) == CachedAnswer("Price is $120.00", 10, 4)


def test_an_entry_from_before_the_checksum_is_still_read(tmp_path: Path) -> None:
    # Entries written before answers carried a checksum: their request is checked, and they
    # are not paid for again.
    cache = ResponseCache(tmp_path)
    key = request_key(REQUEST)
    path = tmp_path / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True)
    answer = {"answer": "Price is $3.00", "input_tokens": 10, "output_tokens": 4}
    path.write_text(json.dumps({"request": REQUEST, "answer": answer}), encoding="utf-8")
    assert cache.get(key) == CachedAnswer("Price is $3.00", 10, 4)


def test_an_entry_keeps_its_calls_seconds_and_an_older_one_still_reads(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    key = request_key(REQUEST)
    cache.put(key, CachedAnswer("Price is $3.00", 10, 4, "m", 0.25), REQUEST)
    assert cache.get(key) == CachedAnswer("Price is $3.00", 10, 4, "m", 0.25)
    # Written before the seconds were kept: its checksum still holds, its latency unknown.
    old = CachedAnswer("Price is $3.00", 10, 4, "m")
    path = tmp_path / key[:2] / f"{key}.json"
    entry = {"request": REQUEST, "answer": old.stored(), "checksum": _digest([key, old.stored()])}
    path.write_text(json.dumps(entry), encoding="utf-8")
    assert "latency" not in entry["answer"] and cache.get(key) == old


@pytest.mark.parametrize(
    "answer",
    [
        {"answer": "$45", "input_tokens": 10, "output_tokens": 4, "latency": -1.0},
        {"answer": "$45", "input_tokens": 10, "output_tokens": 4, "latency": "fast"},
        {"answer": 45, "input_tokens": 10, "output_tokens": 4},  # was a TypeError in predict
        {"answer": ["$45"], "input_tokens": 10, "output_tokens": 4},
        {"answer": None, "input_tokens": 10, "output_tokens": 4},
        {"answer": "$45", "input_tokens": "ten", "output_tokens": 4},  # crashed the token sums
        {"answer": "$45", "input_tokens": -100, "output_tokens": 4},  # a negative cost
        {"answer": "$45", "input_tokens": 10, "output_tokens": 4.5},
        {"answer": "$45", "input_tokens": True, "output_tokens": 4},
        {"answer": "$45", "input_tokens": 10**400, "output_tokens": 4},  # crashed the cost
    ],
)
@pytest.mark.parametrize("with_checksum", [False, True])
def test_an_entry_of_the_wrong_types_is_a_miss_not_a_crash_or_a_negative_cost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, answer: dict, with_checksum: bool
) -> None:
    # Hand-written, or by another tool: the checksum proves it unchanged, not well formed.
    cache = ResponseCache(tmp_path)
    key = request_key(REQUEST)
    path = tmp_path / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True)
    entry: dict = {"request": REQUEST, "answer": answer}
    if with_checksum:
        entry["checksum"] = _digest([key, answer])  # as the cache computes it
    path.write_text(json.dumps(entry), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="pricer.models.llm.cache"):
        assert cache.get(key) is None
    assert f"ignoring unreadable LLM cache entry {path}" in caplog.text


def test_a_cache_that_cannot_be_written_warns_once_per_batch_not_per_item(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A full disk or a read-only shared cache: 250 items gave 250 warnings, burying the rest.
    (tmp_path / "file").write_text("")  # every write fails, as on a read-only folder
    cache = ResponseCache(tmp_path / "file")
    with caplog.at_level(logging.WARNING, logger="pricer.models.llm.cache"):
        for seed in range(20):
            request = {**REQUEST, "seed": seed}
            cache.put(request_key(request), CachedAnswer("Price is $3.00", 1, 1), request)
    assert caplog.text.count("cannot write LLM cache entry") == 1


def old_entry(folder: Path, request: dict, text: str) -> Path:
    """An entry as versions before the checksum wrote it (no checksum, no model)."""
    key = request_key(request)
    path = folder / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    answer = {"answer": text, "input_tokens": 10, "output_tokens": 4}
    path.write_text(json.dumps({"request": request, "answer": answer}), encoding="utf-8")
    return path


def test_an_entry_without_a_checksum_in_a_folder_this_version_wrote_is_a_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A hand edit that also deleted the checksum passed for an entry from before checksums,
    # and became the recorded answer. This version has written here: every entry of its
    # has a checksum, so one without is an edit.
    cache = ResponseCache(tmp_path)
    other = {**REQUEST, "seed": 1}
    cache.put(request_key(other), CachedAnswer("Price is $5.00", 10, 4), other)
    key = request_key(REQUEST)
    cache.put(key, CachedAnswer("Price is $120.00", 10, 4), REQUEST)
    path = tmp_path / key[:2] / f"{key}.json"
    edited = json.loads(path.read_text(encoding="utf-8"))
    del edited["checksum"]
    edited["answer"]["answer"] = "Price is $920.00"
    path.write_text(json.dumps(edited), encoding="utf-8")
    for reader in (cache, ResponseCache(tmp_path)):  # this run's, and a later run's
        with caplog.at_level(logging.WARNING, logger="pricer.models.llm.cache"):
            assert reader.get(key) is None
        assert f"ignoring LLM cache entry {path}: it has no checksum" in caplog.text
        caplog.clear()
    assert cache.get(request_key(other)) == CachedAnswer("Price is $5.00", 10, 4)


def test_an_old_folder_is_checksummed_when_this_version_first_writes_there(
    tmp_path: Path,
) -> None:
    # Old caches keep working without paying again: their entries read before this version
    # writes there and after (they get their checksums then), in a folder where an entry
    # without one is an edit from then on.
    requests = [{**REQUEST, "seed": seed} for seed in range(3)]
    paths = [
        old_entry(tmp_path, request, f"Price is ${seed}.50")
        for seed, request in enumerate(requests)
    ]
    # An old entry moved under another request's name: not checksummed, a miss either way.
    moved = old_entry(tmp_path, {**REQUEST, "seed": 99}, "Price is $1.00")
    moved = moved.rename(moved.with_name(f"{request_key({**REQUEST, 'seed': 98})}.json"))
    before = ResponseCache(tmp_path)
    assert [before.get(request_key(r)) for r in requests] == [
        CachedAnswer(f"Price is ${seed}.50", 10, 4) for seed in range(3)
    ]
    assert not (tmp_path / "CHECKSUMMED").exists()  # read only: nothing written, nothing marked
    new = {**REQUEST, "seed": 50}
    before.put(request_key(new), CachedAnswer("Price is $7.00", 10, 4), new)
    assert (tmp_path / "CHECKSUMMED").exists()
    assert all("checksum" in json.loads(path.read_text()) for path in paths)
    assert "checksum" not in json.loads(moved.read_text())
    after = ResponseCache(tmp_path)
    assert [after.get(request_key(r)) for r in [*requests, new]] == [
        *(CachedAnswer(f"Price is ${seed}.50", 10, 4) for seed in range(3)),
        CachedAnswer("Price is $7.00", 10, 4),
    ]
    assert after.get(moved.stem) is None


def test_an_old_folder_that_cannot_be_written_is_not_rescanned_by_every_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read-only shared cache from before checksums: each batch read every entry for the
    # one-time checksum pass, then failed quietly at the first write, and the next batch did
    # it all again. Run as root here (permissions would not stop a write), the folder is made
    # unwritable by monkeypatching: os.access says so, or (where it cannot tell: a root-squashed
    # NFS export, an ACL) the first write fails.
    from pricer.models.llm import cache as cache_module

    requests = [{**REQUEST, "seed": seed} for seed in range(3)]
    for seed, request in enumerate(requests):
        old_entry(tmp_path, request, f"Price is ${seed}.50")
    scanned: list[Path] = []
    scan = cache_module._checksum_old_entries

    def counted(directory: Path) -> int:
        scanned.append(directory)
        return scan(directory)

    def refused(path: Path) -> Any:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cache_module, "_checksum_old_entries", counted)
    monkeypatch.setattr(cache_module, "replaced_atomically", refused)
    for _ in range(3):  # three batches, each with its cache object, in one process
        batch = ResponseCache(tmp_path)
        batch.prepare_to_write()
        assert batch.get(request_key(requests[0])) == CachedAnswer("Price is $0.50", 10, 4)
    assert len(scanned) <= 1
    assert not (tmp_path / "CHECKSUMMED").exists()

    # A folder os.access calls unwritable is not scanned at all.
    other = tmp_path / "other"
    old_entry(other, REQUEST, "Price is $2.00")
    writable = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda path, mode, **kw: (
            False if Path(path) == other and mode & os.W_OK else writable(path, mode, **kw)
        ),
    )
    scanned.clear()
    ResponseCache(other).prepare_to_write()
    assert scanned == []
    assert ResponseCache(other).get(request_key(REQUEST)) == CachedAnswer("Price is $2.00", 10, 4)


def test_a_rerun_on_an_old_cache_pays_only_for_new_items_and_closes_the_hole(
    make_pricer, make_items, stub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The same through the pricer: a cache an older version filled (entries without
    # checksums, no CHECKSUMMED) is read, not paid again, by a batch that also asks new
    # items; after it, a checksum deleted with a hand edit is asked again.
    train = make_items(40, seed=9)  # a TV's price: the stub's answers are all plausible
    old, new = make_items(4, seed=30), make_items(2, seed=31, start=100)
    pricer = make_pricer(cache_dir=str(tmp_path)).fit(train, train["price"])
    paid = pricer.predict_report(old)
    for path in tmp_path.glob("??/*.json"):  # as an older version left them
        entry = json.loads(path.read_text(encoding="utf-8"))
        del entry["checksum"]
        path.write_text(json.dumps(entry), encoding="utf-8")
    (tmp_path / "CHECKSUMMED").unlink(missing_ok=True)  # (none before there was one)
    asked = stub.state.counters["POST /chat/completions"]
    both = pricer.predict_report(pd.concat([old, new], ignore_index=True))
    assert stub.state.counters["POST /chat/completions"] == asked + len(new)
    assert both.stats["llm.cache_hits"] == len(old)
    np.testing.assert_array_equal(both.prices[: len(old)], paid.prices)
    key = request_key({"base_url": pricer.server(), **pricer.requests(old)[0]})
    path = tmp_path / key[:2] / f"{key}.json"
    edited = json.loads(path.read_text(encoding="utf-8"))
    edited.pop("checksum", None)  # (none left before old entries got theirs)
    edited["answer"]["answer"] = "Price is $1.00"
    path.write_text(json.dumps(edited), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="pricer.models.llm.cache"):
        again = pricer.predict_report(old)
    assert stub.state.counters["POST /chat/completions"] == asked + len(new) + 1
    np.testing.assert_array_equal(again.prices, paid.prices)  # the server's, not $1.00
    assert "it has no checksum" in caplog.text
