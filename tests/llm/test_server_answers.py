"""What a misbehaving OpenAI-compatible server sends back, over real HTTP: an answer cut by
``max_tokens``, a filtered one, content that is not text, a broken ``usage``, no choices.
Each is a counted failure (or an answer with honest accounting), never a price it did not
state, and never a crash that loses the batch."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pricer.devtools.stub_server import StubServer
from pricer.models.llm.cache import ResponseCache, request_key


@pytest.fixture
def items(make_items: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    return make_items(6, seed=3)


def rewrite_first(stub: StubServer, change: Callable[[dict[str, Any]], None], n: int = 1) -> None:
    """The first ``n`` chat replies are rewritten by ``change``; the rest are the stub's own."""
    seen = {"count": 0}

    def reply_fn(body: dict[str, Any]) -> dict[str, Any]:
        seen["count"] += 1
        if seen["count"] <= n:
            change(body)
        return body

    stub.state.reply_fn = reply_fn


def choice(body: dict[str, Any]) -> dict[str, Any]:
    return body["choices"][0]


@pytest.mark.parametrize(
    ("finish_reason", "reason"),
    [
        ("length", "truncated"),
        # Native names a proxy or a compatible endpoint passes through: each was read as
        # finished, "12" recorded and cached as the price.
        ("max_tokens", "truncated"),  # Anthropic's
        ("MAX_TOKENS", "truncated"),  # Gemini's
        ("SAFETY", "content_filter"),
        ("error", "server_error"),  # OpenRouter's, a generation that failed part-way
        ("abort", "server_error"),  # vLLM's
        ("tool_calls", "unexpected"),  # a tool call, not an answer
    ],
)
def test_an_answer_cut_by_max_tokens_is_a_failure_not_its_first_digits(
    make_pricer, items, stub, tmp_path, finish_reason: str, reason: str
) -> None:
    # "1299.99" cut after two tokens reads "12": a price, and a wrong one.
    def cut(body: dict[str, Any]) -> None:
        choice(body)["finish_reason"] = finish_reason
        choice(body)["message"]["content"] = "12"

    rewrite_first(stub, cut, n=len(items))
    pricer = make_pricer(max_concurrency=1, cache_dir=str(tmp_path))
    pricer.fit(items, items["price"])
    report = pricer.predict_report(items)
    assert np.isnan(report.prices).all()
    assert report.stats[f"llm.failures.{reason}"] == len(items)
    assert report.stats["llm.output_tokens"] > 0  # paid for, so counted
    assert not any(tmp_path.rglob("*.json"))  # not remembered as an answer


def test_a_filtered_answer_is_a_failure(make_pricer, items, stub) -> None:
    def filtered(body: dict[str, Any]) -> None:
        choice(body)["finish_reason"] = "content_filter"

    rewrite_first(stub, filtered, n=len(items))
    pricer = make_pricer().fit(items, items["price"])
    report = pricer.predict_report(items)
    assert np.isnan(report.prices).all()
    assert report.stats["llm.failures.content_filter"] == len(items)


@pytest.mark.parametrize("content", [45, 45.5, [{"type": "text", "text": "45"}], {"price": 45}])
def test_content_that_is_not_text_is_a_failure_and_the_batch_goes_on(
    make_pricer, items, stub, content: Any
) -> None:
    def odd(body: dict[str, Any]) -> None:
        choice(body)["message"]["content"] = content

    rewrite_first(stub, odd)
    pricer = make_pricer(max_concurrency=1).fit(items, items["price"])
    report = pricer.predict_report(items)  # was a TypeError that lost the whole batch
    assert np.isnan(report.prices[0])
    assert not np.isnan(report.prices[1:]).any()
    assert report.stats["llm.failures.unexpected"] == 1


def test_no_choices_is_an_unexpected_reply_not_an_answer_without_a_price(
    make_pricer, items, stub
) -> None:
    def empty(body: dict[str, Any]) -> None:
        body["choices"] = []

    rewrite_first(stub, empty)
    pricer = make_pricer(max_concurrency=1).fit(items, items["price"])
    report = pricer.predict_report(items)
    assert np.isnan(report.prices[0])
    assert report.stats["llm.failures.unexpected"] == 1
    assert report.stats["llm.failures.no_price"] == 0


def test_no_content_is_an_unexpected_reply_and_a_refusal_is_no_price(
    make_pricer, items, stub
) -> None:
    # A message with null content counted as an answer without a price (no_price).
    def nothing(body: dict[str, Any]) -> None:
        choice(body)["message"]["content"] = None

    def refused(body: dict[str, Any]) -> None:
        choice(body)["message"]["content"] = None
        choice(body)["message"]["refusal"] = "I can't help with pricing this item."

    for change, reason in ((nothing, "unexpected"), (refused, "no_price")):
        rewrite_first(stub, change)
        pricer = make_pricer(max_concurrency=1).fit(items, items["price"])
        report = pricer.predict_report(items)
        assert np.isnan(report.prices[0]) and not np.isnan(report.prices[1:]).any()
        failures = {key: n for key, n in report.stats.items() if key.startswith("llm.failures.")}
        assert {key for key, n in failures.items() if n} == {f"llm.failures.{reason}"}


def test_an_answer_with_a_broken_character_is_read_and_the_batch_goes_on(
    make_pricer, items, stub, tmp_path
) -> None:
    # A lone surrogate (half an emoji, as a gateway that cuts text may send) could not be
    # written to the answer cache: UnicodeEncodeError, and every answer in flight was lost.
    def broken(body: dict[str, Any]) -> None:
        choice(body)["message"]["content"] = "Price is $45.99 \ud83d"

    rewrite_first(stub, broken)
    pricer = make_pricer(max_concurrency=1, cache_dir=str(tmp_path)).fit(items, items["price"])
    report = pricer.predict_report(items)
    assert report.prices[0] == pytest.approx(45.99)
    assert not np.isnan(report.prices).any()
    assert len(list(tmp_path.rglob("*.json"))) == len(items)  # each answer cached


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": "lots", "completion_tokens": None, "total_tokens": None},
        {"prompt_tokens": -50, "completion_tokens": -3, "total_tokens": -53},
        {"prompt_tokens": 1.5e300, "completion_tokens": math.nan, "total_tokens": 0},
        # beyond a float: the batch's cost raised OverflowError after every call was paid
        {"prompt_tokens": 10**400, "completion_tokens": 10**400, "total_tokens": 2 * 10**400},
    ],
)
def test_a_broken_usage_counts_no_tokens_instead_of_crashing_or_going_negative(
    make_pricer, items, stub, tmp_path, usage: dict[str, Any]
) -> None:
    def broken(body: dict[str, Any]) -> None:
        body["usage"] = usage

    rewrite_first(stub, broken)
    pricer = make_pricer(max_concurrency=1, cache_dir=str(tmp_path))
    pricer.fit(items, items["price"])
    report = pricer.predict_report(items)  # "lots" was a TypeError in the token sums
    assert not np.isnan(report.prices).any()
    for kind in ("input", "output"):
        total = report.stats[f"llm.{kind}_tokens"]
        assert 0 <= total < 1e9 and total == int(total)
    # and the cached entry of the broken reply holds sane counts, so a rerun reads it
    cache = ResponseCache(tmp_path)
    server = pricer.server()
    first = cache.get(request_key({"base_url": server, **pricer.requests(items)[0]}))
    assert first is not None and first.input_tokens == 0 and first.output_tokens == 0


def test_an_answer_counted_as_no_tokens_makes_the_cost_unknown_not_lower(
    make_pricer, items, stub, tmp_path
) -> None:
    # A server that counted 0 completion tokens for its answers was recorded as costing
    # their prompts alone: 0 output tokens, no answer without usage.
    def no_output(body: dict[str, Any]) -> None:
        body["usage"]["completion_tokens"] = 0

    rewrite_first(stub, no_output, n=2)
    pricer = make_pricer(max_concurrency=1, cache_dir=str(tmp_path))
    stats = pricer.fit(items, items["price"]).predict_report(items).stats
    assert stats["llm.answers_without_usage"] == 2
    assert math.isnan(stats["llm.cost_usd"]) and math.isnan(stats["llm.spent_usd"])
    again = pricer.predict_report(items).stats  # from the cache: still unknown
    assert again["llm.cache_hits"] == len(items) and again["llm.answers_without_usage"] == 2


def test_a_reply_without_usage_makes_the_cost_unknown_not_lower(
    make_pricer, items, stub, tmp_path
) -> None:
    # A server (or gateway) that sent no usage for a priced model was recorded as costing
    # $0: its tokens were billed, but counted as none.
    rewrite_first(stub, lambda body: body.pop("usage"), n=2)
    pricer = make_pricer(max_concurrency=1, cache_dir=str(tmp_path))
    pricer.fit(items, items["price"])
    stats = pricer.predict_report(items).stats
    for figure in ("cost_usd", "cost_per_1k_items_usd", "spent_usd"):
        assert math.isnan(stats[f"llm.{figure}"]), figure
    assert stats["llm.answers_without_usage"] == 2
    # Served from the cache, the batch's cost is still unknown; nothing is spent.
    again = pricer.predict_report(items).stats
    assert again["llm.cache_hits"] == len(items) and again["llm.answers_without_usage"] == 2
    assert math.isnan(again["llm.cost_usd"]) and again["llm.spent_usd"] == 0
    # Replies with usage are costed as before.
    counted = make_pricer(cache_dir=None).fit(items, items["price"]).predict_report(items)
    assert counted.stats["llm.answers_without_usage"] == 0
    assert counted.stats["llm.cost_usd"] > 0
