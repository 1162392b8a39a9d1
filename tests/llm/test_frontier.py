"""The frontier pricer over real HTTP against the stub: faults, concurrency, cache, stats."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from pricer.devtools.stub_chat import count_tokens, default_price
from pricer.devtools.stub_server import StubServer
from pricer.models.llm.catalogue import ModelCatalogue, Price
from pricer.models.llm.client import FAILURE_REASONS, MissingApiKeyError
from pricer.models.llm.failures import failure_summary
from pricer.models.llm.frontier import FrontierPricer

CHAT = "POST /chat/completions"


def expected_prices(pricer: FrontierPricer, items: pd.DataFrame) -> np.ndarray:
    """What the stub answers for each item: the hash price of the rendered user message."""
    return np.array(
        [
            default_price(next(m["content"] for m in r["messages"] if m["role"] == "user"))
            for r in pricer.requests(items)
        ]
    )


@pytest.fixture
def items(make_items: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    return make_items(12, seed=1)


def fitted(pricer: FrontierPricer, items: pd.DataFrame) -> FrontierPricer:
    return pricer.fit(items, items["price"])


def test_prices_come_back_in_item_order(make_pricer, items, stub: StubServer) -> None:
    stub.state.latency = 0.01  # calls finish out of order under concurrency
    pricer = fitted(make_pricer(), items)
    report = pricer.predict_report(items)
    np.testing.assert_allclose(report.prices, expected_prices(pricer, items))
    assert report.stats["llm.failures"] == 0
    assert stub.state.counters[CHAT] == len(items)


def test_429_with_retry_after_is_honoured_and_nothing_is_lost(make_pricer, items, stub) -> None:
    # Sequential calls, so the waits add up. Retry-After 0.05 s twice: ~0.1 s. The SDK's own
    # backoff (0.5 s, then 1 s, less up to 25% jitter) would take more than 1.1 s.
    pricer = fitted(make_pricer(max_concurrency=1), items)
    stub.state.fail_next(2, 429, retry_after=0.05)
    started = time.perf_counter()
    report = pricer.predict_report(items)
    elapsed = time.perf_counter() - started
    np.testing.assert_allclose(report.prices, expected_prices(pricer, items))
    assert report.stats["llm.retries"] == 2
    assert stub.state.counters[CHAT] == len(items) + 2
    assert 0.1 <= elapsed < 0.9


def test_server_errors_are_retried(make_pricer, items, stub) -> None:
    pricer = fitted(make_pricer(max_concurrency=4), items)
    stub.state.fail_next(3, 500, retry_after=0.01)
    report = pricer.predict_report(items)
    np.testing.assert_allclose(report.prices, expected_prices(pricer, items))
    assert report.stats["llm.retries"] == 3
    assert report.stats["llm.failures"] == 0


@pytest.mark.parametrize(("status", "reason"), [(429, "rate_limited"), (500, "server_error")])
def test_exhausted_retries_are_counted_failures(make_pricer, items, stub, status, reason) -> None:
    pricer = fitted(make_pricer(max_concurrency=1, max_retries=1), items)
    stub.state.fail_next(2, status, retry_after=0.01)  # the first item's two attempts
    report = pricer.predict_report(items)
    assert np.isnan(report.prices[0])
    np.testing.assert_allclose(report.prices[1:], expected_prices(pricer, items)[1:])
    assert report.stats[f"llm.failures.{reason}"] == 1
    assert report.stats["llm.failures"] == 1
    assert report.stats["llm.failure_rate"] == pytest.approx(1 / len(items))


def test_refused_calls_say_their_http_status(make_pricer, items, stub) -> None:
    # "api_error 3" was all a run's error said, whether the model name was wrong (404) or the
    # key refused (401): which one is the fix.
    pricer = fitted(make_pricer(max_concurrency=1, max_retries=0), items)
    stub.state.fail_next(2, 404)
    stub.state.fail_next(1, 401)
    stub.state.fail_next(1, 500)  # a server error, no refusal: its own reason says it
    report = pricer.predict_report(items)
    assert report.stats["llm.failures.api_error"] == 3
    assert report.stats["llm.failures.server_error"] == 1
    assert report.stats["llm.refused.http_404"] == 2
    assert report.stats["llm.refused.http_401"] == 1
    assert "llm.refused.http_500" not in report.stats
    assert failure_summary(report.stats) == "api_error 3 (HTTP 401 1, HTTP 404 2), server_error 1"


def test_stuck_calls_time_out_then_retry_or_fail(make_pricer, items, stub) -> None:
    pricer = fitted(make_pricer(max_concurrency=1, timeout=0.15, max_retries=1), items)
    stub.state.delay_next(1, 0.5)  # first attempt stalls, the retry answers
    report = pricer.predict_report(items)
    np.testing.assert_allclose(report.prices, expected_prices(pricer, items))
    assert report.stats["llm.retries"] == 1

    stub.state.delay_next(2, 0.5)  # both attempts stall: a timeout failure
    report = pricer.predict_report(items)
    assert report.stats["llm.failures.timeout"] == 1
    assert np.isnan(report.prices).sum() == 1


def test_answers_without_a_number_are_failures_not_zero(make_pricer, items, stub) -> None:
    pricer = fitted(make_pricer(max_concurrency=1), items)
    stub.state.no_number_next(2)
    report = pricer.predict_report(items)
    assert np.isnan(report.prices[:2]).all()
    assert not (report.prices == 0).any()
    assert report.stats["llm.failures.no_price"] == 2


def test_mixed_faults_under_concurrency_lose_no_item(make_pricer, make_items, stub) -> None:
    items = make_items(30, seed=2)
    pricer = fitted(make_pricer(max_concurrency=6, timeout=0.4, max_retries=1), items)
    stub.state.fail_next(2, 429, retry_after=0.01)
    stub.state.fail_next(2, 500, retry_after=0.01)
    stub.state.no_number_next(3)
    stub.state.delay_next(1, 1.0)
    report = pricer.predict_report(items)
    priced = ~np.isnan(report.prices)
    expected = expected_prices(pricer, items)
    np.testing.assert_allclose(report.prices[priced], expected[priced])
    assert priced.sum() + report.stats["llm.failures"] == len(items)
    assert report.stats["llm.failures"] == sum(
        report.stats[f"llm.failures.{reason}"] for reason in FAILURE_REASONS
    )
    assert report.stats["llm.failures.no_price"] >= 3 - 1  # a retried 429 may land on one


def test_concurrency_overlaps_calls(make_pricer, make_items, stub) -> None:
    items = make_items(16, seed=3)
    stub.state.latency = 0.05
    walls = {}
    for limit in (1, 8):
        pricer = fitted(make_pricer(max_concurrency=limit), items)
        stub.state.max_in_flight = 0
        started = time.perf_counter()
        report = pricer.predict_report(items)
        walls[limit] = time.perf_counter() - started
        assert stub.state.max_in_flight == limit  # the limit is reached and never exceeded
        assert report.stats["llm.failures"] == 0
    # Both walls carry the same fixed overhead (client set-up); sequential waits 16 latencies,
    # eight in flight about 2: overlapping must save well over 10 of them.
    assert walls[1] >= 16 * 0.05
    assert walls[1] - walls[8] > 10 * 0.05


def test_cache_answers_a_rerun_without_any_request(make_pricer, items, stub, tmp_path) -> None:
    first = fitted(make_pricer(cache_dir=str(tmp_path)), items).predict_report(items)
    assert stub.state.counters[CHAT] == len(items)
    second = fitted(make_pricer(cache_dir=str(tmp_path)), items).predict_report(items)
    assert stub.state.counters[CHAT] == len(items)  # not one more request
    np.testing.assert_array_equal(first.prices, second.prices)
    assert second.stats["llm.cache_hits"] == len(items)
    assert second.stats["llm.calls"] == 0
    assert second.stats["llm.spent_usd"] == 0
    assert second.stats["llm.cost_usd"] == pytest.approx(first.stats["llm.cost_usd"])
    # The calls' latency, as their cost: NaN here made a leaderboard's trade-off take a fully
    # cached LLM's latency for its batch's (0.27 ms an item against 347 ms a call).
    for figure in ("llm.latency_p50_s", "llm.latency_p95_s"):
        assert second.stats[figure] == first.stats[figure] > 0
    # No call made, no throughput: the cache's pace was shown as the model's.
    assert math.isnan(second.stats["llm.items_per_second"])


def test_failures_are_not_cached(make_pricer, items, stub, tmp_path) -> None:
    stub.state.no_number_next(1)
    fitted(make_pricer(cache_dir=str(tmp_path), max_concurrency=1), items).predict_report(items)
    second = fitted(make_pricer(cache_dir=str(tmp_path)), items).predict_report(items)
    assert stub.state.counters[CHAT] == len(items) + 1  # only the failed item is asked again
    assert second.stats["llm.cache_hits"] == len(items) - 1
    assert second.stats["llm.failures"] == 0
    # The one call's pace, not the cache's: the items its calls answered.
    pace = second.stats["llm.items_per_second"]
    assert pace == pytest.approx(1 / second.stats["llm.wall_seconds"])


def test_a_refusal_quoting_a_model_number_is_no_price_and_not_cached(
    make_pricer, items, stub, tmp_path
) -> None:
    # Issue 10 repro: this answer was read as $3000, counted a success and cached.
    stub.state.answer_fn = lambda messages: "I can't price the model 3000X kit"
    report = fitted(make_pricer(cache_dir=str(tmp_path)), items).predict_report(items)
    assert np.isnan(report.prices).all()
    assert report.stats["llm.failures.no_price"] == len(items)
    assert not list(tmp_path.rglob("*.json"))  # nothing cached: a rerun asks again


def test_an_amount_the_answer_reasons_from_is_not_recorded_as_its_price(
    make_pricer, items, stub, tmp_path
) -> None:
    # Read as the first amount named: $30, an example's price, was recorded and cached as
    # the item's, and an answer naming two prices without choosing was the first of them.
    answers = iter(
        [
            "Similar products cost $30. My estimate: $45",
            "Example 1 is $30 and example 2 is $60, so this one is about $45.",
            "The average price is $30. This one: $45",  # another price, named as a price
        ]
    )
    stub.state.answer_fn = lambda messages: next(answers, "Price is $25")
    pricer = fitted(make_pricer(cache_dir=str(tmp_path), max_concurrency=1), items)
    report = pricer.predict_report(items)
    assert report.prices[0] == 45.0
    assert np.isnan(report.prices[1:3]).all()
    assert report.stats["llm.failures.no_price"] == 2
    assert len(list(tmp_path.rglob("*.json"))) == len(items) - 2  # asked again next time


def test_a_refusal_in_other_words_is_no_price_whatever_amount_it_mentions(
    make_pricer, items, stub, tmp_path
) -> None:
    # "Price: unknown", "N/A" were no refusal: the amount beside them, a comparable item's,
    # was recorded and cached as the item's price.
    answers = iter(["Price: unknown (similar items ~$30)", "N/A - comparable items cost $30"])
    stub.state.answer_fn = lambda messages: next(answers, "Price is $25")
    pricer = fitted(make_pricer(cache_dir=str(tmp_path), max_concurrency=1), items)
    report = pricer.predict_report(items)
    assert np.isnan(report.prices[:2]).all() and (report.prices[2:] == 25.0).all()
    assert report.stats["llm.failures.no_price"] == 2
    assert len(list(tmp_path.rglob("*.json"))) == len(items) - 2  # asked again next time


def test_a_price_far_beyond_any_training_price_is_no_answer(
    make_pricer, items, stub, tmp_path
) -> None:
    # "$49,999,999" was counted a price: one such answer moved the run's mae by $200,000,
    # with no failure recorded.
    ceiling = 10 * items["price"].max()
    answers = iter([f"Price is ${ceiling * 2:,.2f}", f"Price is ${ceiling * 0.9:.2f}"])
    stub.state.answer_fn = lambda messages: next(answers, "Price is $25")
    pricer = fitted(make_pricer(cache_dir=str(tmp_path), max_concurrency=1), items)
    report = pricer.predict_report(items)
    assert np.isnan(report.prices[0]) and report.prices[1] == pytest.approx(ceiling * 0.9, abs=0.01)
    assert report.stats["llm.failures.implausible"] == 1
    assert report.stats["llm.failures"] == 1
    assert len(list(tmp_path.rglob("*.json"))) == len(items) - 1  # asked again next time


def test_cache_key_includes_sampling_settings_and_server(make_pricer, items, stub, tmp_path):
    fitted(make_pricer(cache_dir=str(tmp_path)), items).predict_report(items)
    fitted(make_pricer(cache_dir=str(tmp_path), temperature=0.7), items).predict_report(items)
    assert stub.state.counters[CHAT] == 2 * len(items)
    with StubServer() as other:  # same model name, another server: not the same answers
        fitted(make_pricer(cache_dir=str(tmp_path), base_url=other.base_url), items).predict_report(
            items
        )
        assert other.state.counters[CHAT] == len(items)


def test_token_cost_and_latency_stats(make_pricer, items, stub) -> None:
    stub.state.latency = 0.02
    catalogue = ModelCatalogue()
    entry = catalogue.entries.models["gpt-4o-mini"]
    catalogue.entries.models["gpt-4o-mini"] = dataclasses.replace(entry, price=Price(2.0, 8.0))
    pricer = fitted(make_pricer(catalogue=catalogue), items)
    started = time.perf_counter()
    stats = pricer.predict_report(items).stats
    wall = time.perf_counter() - started
    sent = [r["messages"] for r in stub.state.chat_requests]
    input_tokens = sum(count_tokens(m["content"]) for messages in sent for m in messages)
    answers = [f"{p:.2f}" for p in expected_prices(pricer, items)]  # prefill: number only
    output_tokens = sum(count_tokens(answer) for answer in answers)
    cost = (input_tokens * 2.0 + output_tokens * 8.0) / 1e6
    assert stats["llm.input_tokens"] == input_tokens
    assert stats["llm.output_tokens"] == output_tokens
    assert stats["llm.input_tokens_per_item"] == pytest.approx(input_tokens / len(items))
    assert stats["llm.cost_usd"] == pytest.approx(cost)
    assert stats["llm.spent_usd"] == pytest.approx(cost)
    assert stats["llm.cost_per_1k_items_usd"] == pytest.approx(cost / len(items) * 1000)
    assert 0.02 <= stats["llm.latency_p50_s"] <= stats["llm.latency_p95_s"] < 1.0
    assert stats["llm.wall_seconds"] <= wall
    assert stats["llm.items_per_second"] == pytest.approx(len(items) / stats["llm.wall_seconds"])
    assert all(isinstance(value, float) for value in stats.values())


def test_unknown_model_gives_nan_cost_and_a_warning(make_pricer, items, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        pricer = fitted(make_pricer(model="my-local-llama"), items)
        stats = pricer.predict_report(items).stats
    assert math.isnan(stats["llm.cost_usd"]) and math.isnan(stats["llm.cost_per_1k_items_usd"])
    assert stats["llm.input_tokens"] > 0
    assert stats["llm.answers_not_in_catalogue"] == len(items)  # why the cost is NaN
    assert "my-local-llama" in caplog.text and "model catalogue" in caplog.text
    entry = pricer.catalogue_entry()  # still logged: every fact unknown, the tier as set
    tier = {key: entry.pop(key) for key in list(entry) if key.startswith("llm.model.tier")}
    assert set(entry.values()) == {"unknown"} and "llm.model.licence" in entry
    assert set(tier.values()) == ({"none"} if pricer.tier is None else {pricer.tier, "unknown"})


def test_fine_tuned_model_names_find_their_base_price(make_pricer, items) -> None:
    pricer = fitted(make_pricer(model="ft:gpt-4o-mini-2024-07-18:org:pricer:abc123"), items)
    stats = pricer.predict_report(items).stats
    expected = (stats["llm.input_tokens"] * 0.30 + stats["llm.output_tokens"] * 1.20) / 1e6
    assert stats["llm.cost_usd"] == pytest.approx(expected)


def test_missing_key_fails_fit_naming_the_variable(make_pricer, items, monkeypatch) -> None:
    monkeypatch.delenv("PRICER_TEST_LLM_KEY")
    with pytest.raises(MissingApiKeyError, match="PRICER_TEST_LLM_KEY"):
        make_pricer().fit(items, items["price"])


def test_invalid_settings_fail_at_fit(make_pricer, items) -> None:
    for bad in ({"max_concurrency": 0}, {"timeout": 0}, {"max_retries": -1}, {"model": None}):
        with pytest.raises(ValueError):
            make_pricer(**bad).fit(items, items["price"])


def test_predict_works_inside_a_running_event_loop(make_pricer, items) -> None:
    pricer = fitted(make_pricer(), items)

    async def from_async_code() -> np.ndarray:
        return pricer.predict(items)

    np.testing.assert_allclose(asyncio.run(from_async_code()), expected_prices(pricer, items))


def test_null_sampling_settings_are_left_out_of_the_request(make_pricer, items, stub) -> None:
    fitted(make_pricer(temperature=None, max_tokens=None, seed=None), items).predict(items.head(1))
    body = stub.state.chat_requests[0]
    assert not {"temperature", "max_completion_tokens", "seed"} & set(body)
    fitted(make_pricer(), items).predict(items.head(1))
    body = stub.state.chat_requests[1]
    assert (body["temperature"], body["max_completion_tokens"], body["seed"]) == (0.0, 16, 42)


def test_the_stub_command_on_a_taken_port_says_so_in_one_line() -> None:
    # The README's demo server printed an OSError traceback when a stub was still running.
    import subprocess
    import sys

    with StubServer() as taken:
        result = subprocess.run(
            [sys.executable, "-m", "pricer.devtools.stub_server", "--port", str(taken.port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: cannot listen on 127.0.0.1:{taken.port}: Address already in use; choose --port"
    )


@pytest.mark.parametrize("max_tokens", [0, -5, 2.5, True])
def test_a_max_tokens_that_no_server_accepts_fails_at_fit_in_one_line(
    make_pricer, items, stub, max_tokens
) -> None:
    # Sent as is, it cost a batch of calls: a 400 for every item on OpenAI (api_error), or
    # an answer cut to nothing (truncated) on a server that takes it.
    with pytest.raises(ValueError, match=r"^max_tokens must be a whole number >= 1 or null, got "):
        make_pricer(max_tokens=max_tokens).fit(items, items["price"])
    assert stub.state.counters[CHAT] == 0


@pytest.mark.parametrize("inside", ["", "sub/deeper"])
def test_a_cache_dir_that_is_a_file_fails_at_fit_in_one_line(make_pricer, items, tmp_path, inside):
    # Every read and every write failed, each with its own warning, two per item; a folder
    # inside the file passed the check (41 warnings for 40 items).
    taken = tmp_path / "llm_cache"
    taken.write_text("not a folder")
    with pytest.raises(ValueError, match=r"^cache_dir .*llm_cache is a file, not a folder"):
        make_pricer(cache_dir=str(taken / inside)).fit(items, items["price"])


@pytest.mark.parametrize(
    "base_url", ["127.0.0.1:8765/v1", "localhost:11434/v1", "htp://127.0.0.1:8765/v1", "http:///v1"]
)
def test_a_base_url_that_is_no_http_url_fails_at_fit_in_one_line(
    make_pricer, items, base_url: str
) -> None:
    # It was "cannot connect to localhost:11434/v1" at predict, as if the server were down.
    with pytest.raises(ValueError, match=r"^base_url must be an http:// or https:// URL"):
        make_pricer(base_url=base_url).fit(items, items["price"])


def test_an_openai_base_url_from_the_environment_is_checked_too(
    make_pricer, items, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "localhost:11434/v1")
    with pytest.raises(ValueError, match=r"OPENAI_BASE_URL"):
        make_pricer(base_url=None).fit(items, items["price"])
