"""Claims on requests in flight: identical runs at once on one cache pay for each call once.

Two runs (processes, threads, or one batch's identical items) asking the same request at the
same time each paid for it: the cache was read before the batch, and both found it empty.
Everything here runs the real pricer against the stub server over HTTP, whose counter is
what was paid for.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pricer.models.llm.cache import ResponseCache, request_key
from pricer.models.llm.frontier import FrontierPricer

CHAT = "POST /chat/completions"

# One run in its own process, as `pricer train model=frontier` is: it fits, then waits for
# the go file so that two of them ask at the same moment (started apart, the second would
# find the first's answers in the cache, and the test would pass without claims).
RUN = """
import pickle, sys, time
from pathlib import Path
import pandas as pd
import pytest
items = pd.read_json(sys.argv[2], orient="records", lines=True)
pricer = pickle.loads(Path(sys.argv[1]).read_bytes()).fit(items, items["price"])
go = Path(sys.argv[3])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
report = pricer.predict_report(items)
assert report.stats["llm.failures"] == 0, report.stats
"""

# A run killed mid-call: it holds the claim on its only request when the SIGKILL lands.
ASK = """
import pickle, sys
import pandas as pd
import pytest
items = pd.read_json(sys.argv[2], orient="records", lines=True)
pricer = pickle.loads(open(sys.argv[1], "rb").read())
pricer.fit(items, items["price"]).predict_report(items)
"""

# A run that hangs holding a claim (stopped, deadlocked): alive, so its lock stays held.
HANG = """
import fcntl, os, sys, time
descriptor = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o666)
fcntl.flock(descriptor, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


def claim_files(folder: Path) -> list[Path]:
    return list(folder.rglob(".*.claim"))


def key_of(pricer: FrontierPricer, items: pd.DataFrame, i: int = 0) -> str:
    return request_key({"base_url": pricer.server(), **pricer.requests(items)[i]})


def fitted(pricer: FrontierPricer, make_items) -> FrontierPricer:
    """Fitted on a catalogue's range of prices (up to a TV's): the stub's answers, a hash's
    price up to $999, are then plausible however few items are priced."""
    train = make_items(40, seed=9)
    return pricer.fit(train, train["price"])


def wait_until(condition, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.005)


def test_two_identical_runs_at_once_pay_for_each_call_once(
    make_pricer, make_items, stub, tmp_path
) -> None:
    items = make_items(12, seed=21)
    items_file, go = tmp_path / "items.jsonl", tmp_path / "go"
    items.to_json(items_file, orient="records", lines=True)
    cache = tmp_path / "llm_cache"
    stub.state.latency = 0.1  # calls in flight long enough for the other run to ask too
    pricer_file = tmp_path / "pricer.pkl"
    pricer_file.write_bytes(pickle.dumps(make_pricer(cache_dir=str(cache), max_concurrency=3)))
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", RUN, str(pricer_file), str(items_file), str(go)],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        assert [run.stdout.readline().strip() for run in runs] == ["ready", "ready"]
        go.touch()
        assert [run.wait(timeout=120) for run in runs] == [0, 0]
    finally:
        for run in runs:
            run.kill()
    distinct = {str(request["messages"]) for request in stub.state.chat_requests}
    assert len(distinct) == len(items)
    assert stub.state.counters[CHAT] == len(items)  # was 2 * len(items): each run paid all
    assert len(list(cache.rglob("*.json"))) == len(items)
    assert claim_files(cache) == []  # every claim file removed as its holder let go


def test_threads_of_one_process_and_one_batchs_twins_pay_once(
    make_pricer, make_items, stub, tmp_path
) -> None:
    # Two threads of one process (a notebook's, a server's) running the same batch, whose
    # items hold the same product twice: each distinct request is asked once in all.
    once = make_items(6, seed=22)
    items = pd.concat([once, once.iloc[:3]], ignore_index=True)  # three twins in one batch
    stub.state.latency = 0.1
    pricers = [
        make_pricer(cache_dir=str(tmp_path), max_concurrency=4).fit(items, items["price"])
        for _ in range(2)
    ]
    start = threading.Barrier(2)
    reports = []

    def run(pricer: FrontierPricer) -> None:
        start.wait()
        reports.append(pricer.predict_report(items))

    threads = [threading.Thread(target=run, args=(pricer,)) for pricer in pricers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(reports) == 2
    assert stub.state.counters[CHAT] == len(once)  # was 2 * len(items) = 18
    first, second = (report.prices for report in reports)
    assert not np.isnan(first).any()
    np.testing.assert_array_equal(first, second)  # the answers each run paid for or read
    assert sum(report.stats["llm.cache_hits"] for report in reports) == 2 * len(items) - len(once)
    assert claim_files(tmp_path) == []


def test_a_holder_whose_call_fails_leaves_the_waiter_to_ask_itself(
    make_pricer, make_items, stub, tmp_path
) -> None:
    # Failures are not cached: a waiter that found no entry once the holder let go used to
    # be the risk (read nothing and fail). It asks the server itself, and gets its price.
    once = make_items(1, seed=23)
    items = pd.concat([once, once], ignore_index=True)
    stub.state.latency = 0.2
    stub.state.fail_next(1, 500)  # the holder's call: a server error, no retry
    pricer = make_pricer(cache_dir=str(tmp_path), max_concurrency=2, max_retries=0)
    report = fitted(pricer, make_items).predict_report(items)
    assert stub.state.counters[CHAT] == 2
    assert report.stats["llm.failures"] == 1
    assert np.isnan(report.prices).sum() == 1  # the holder's item; the waiter's is priced


def test_a_holder_killed_mid_call_does_not_block_the_next_asker(
    make_pricer, make_items, stub, tmp_path
) -> None:
    items = make_items(1, seed=24)
    items_file = tmp_path / "items.jsonl"
    items.to_json(items_file, orient="records", lines=True)
    cache = tmp_path / "llm_cache"
    stub.state.delay_next(1, 30.0)  # the killed run's call is in flight when it dies
    # A minute's patience each: a claim still held by the dead run would show as that wait.
    pricer = make_pricer(cache_dir=str(cache), timeout=60.0, max_retries=0)
    pricer_file = tmp_path / "pricer.pkl"
    pricer_file.write_bytes(pickle.dumps(pricer))
    child = subprocess.Popen(
        [sys.executable, "-c", ASK, str(pricer_file), str(items_file)], env=dict(os.environ)
    )
    try:
        wait_until(lambda: stub.state.counters[CHAT] == 1, "the killed run's call")
    finally:
        child.send_signal(signal.SIGKILL)  # no handler, no clean-up: the kernel lets go
        child.wait()
    fitted(pricer, make_items)
    left = ResponseCache(cache).claim_path(key_of(pricer, items))
    assert left.exists()  # the dead run held the request's claim, and left its file
    began = time.monotonic()
    report = pricer.predict_report(items)
    assert time.monotonic() - began < 10  # not the minute a held claim would cost
    assert stub.state.counters[CHAT] == 2 and report.stats["llm.failures"] == 0
    assert not left.exists()  # taken over, then removed as the new holder let go


def test_a_hung_holder_is_waited_for_no_longer_than_a_call_can_take(
    make_pricer, make_items, stub, tmp_path, caplog
) -> None:
    items = make_items(1, seed=25)
    pricer = fitted(make_pricer(cache_dir=str(tmp_path), timeout=1.0, max_retries=0), make_items)
    claim = ResponseCache(tmp_path).claim_path(key_of(pricer, items))
    claim.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HANG, str(claim)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        began = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="pricer.models.llm.cache"):
            report = pricer.predict_report(items)
        waited = time.monotonic() - began
    finally:
        holder.kill()
        holder.wait()
    assert 1.0 <= waited < 10  # the 1 s one call can take (1 attempt of 1 s), then asked
    assert stub.state.counters[CHAT] == 1 and report.stats["llm.failures"] == 0
    assert "longer than its call can take: asking for the answer too" in caplog.text


def test_a_damaged_entry_read_again_at_its_turn_is_one_warning(
    make_pricer, make_items, stub, tmp_path, caplog
) -> None:
    # A missed entry is read again just before its call (another run may have answered it
    # meanwhile): a damaged one must not be reported twice.
    items = make_items(1, seed=26)
    pricer = fitted(make_pricer(cache_dir=str(tmp_path)), make_items)
    entry = ResponseCache(tmp_path)._path(key_of(pricer, items))
    entry.parent.mkdir(parents=True)
    entry.write_text('{"answer": {"answ', encoding="utf-8")  # cut short
    with caplog.at_level(logging.WARNING, logger="pricer.models.llm.cache"):
        report = pricer.predict_report(items)
    assert caplog.text.count("ignoring unreadable LLM cache entry") == 1
    assert stub.state.counters[CHAT] == 1 and report.stats["llm.failures"] == 0
    assert ResponseCache(tmp_path).get(key_of(pricer, items)) is not None  # replaced


def test_an_interrupt_as_a_claim_is_taken_leaves_the_request_free_in_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KeyboardInterrupt landing just after the request's name was taken in the process (as
    the guard was let go, before the try that frees it) left it taken: the process's next ask
    of the request waited out its whole patience (about 19 minutes)."""
    from pricer.models.llm import claims

    real = claims._held_guard
    interrupts = [KeyboardInterrupt()]

    class InterruptedGuard:
        """The process's guard, with a Ctrl-C landing once as it is first let go."""

        def __enter__(self) -> None:
            real.acquire()

        def __exit__(self, *exc: object) -> None:
            real.release()
            if interrupts:
                raise interrupts.pop()

    monkeypatch.setattr(claims, "_held_guard", InterruptedGuard())
    path = tmp_path / "request.claim"
    with pytest.raises(KeyboardInterrupt):
        claims._try_claim(path)
    assert not interrupts  # it landed where it was meant to
    descriptor = claims._try_claim(path)  # the next ask claims it at once, not after patience
    assert descriptor is not None
    claims.let_go(path, descriptor)
