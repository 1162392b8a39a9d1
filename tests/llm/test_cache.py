"""The on-disk answer cache: keys, round trips, damaged entries, concurrent writers."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

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


@pytest.mark.parametrize(
    "answer",
    [
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
