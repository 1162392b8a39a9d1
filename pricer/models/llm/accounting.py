"""Token, cost, latency and failure figures of one batch of LLM pricing, as run metrics.

Costs come from the catalogue (``conf/llm/catalogue.yaml``, USD per million tokens; see
``pricer.models.llm.catalogue``), at the rate of the model that answered: each reply names
the model that produced it, which need not be the one asked for (a proxy or an
OpenAI-compatible server may answer "gpt-4o-mini" with "gpt-4o", 16 times dearer; see
``pricer.models.llm.answering``). An answer from the model asked for, or a dated snapshot of
it, or whose model is unknown (a reply naming none, an answer cached before pricer kept the
name) is priced at the requested model's rate. Token and cost totals and call latencies cover
every item that got an answer, cached or fresh, so they describe what the batch costs and how
long its calls take, and stay the same when a re-run is served from the cache (an entry keeps
the model that answered it and its call's seconds); ``spent_usd`` is what this run actually
paid (fresh calls only).

A cost is never a made-up or lower figure: it is NaN (unknown) when an answer's model has no
price in the catalogue (counted as ``llm.answers_not_in_catalogue``: the model asked for, when
it is missing, or a substitute that is) or when an answer's reply carried no usage
(``llm.answers_without_usage``: its tokens were billed, but not counted).

The answers from another model than the one asked for (a dated snapshot of it is the same)
are counted as ``llm.answers_from_other_model`` (any reply, priced or not), and the priced
answers whose model is unknown as ``llm.answers_without_model``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from pricer.models.llm.answering import same_model
from pricer.models.llm.catalogue import Price
from pricer.models.llm.client import FAILURE_REASONS
from pricer.models.llm.failures import API_ERROR, REFUSED_STATUS

TOKENS_PER_PRICE_UNIT = 1_000_000  # catalogue unit: USD per million tokens
# A model's price in the catalogue, by the name a request or a reply gives (None: not in it).
PriceOf = Callable[[str], Price | None]


def token_cost(price: Price | None, input_tokens: int, output_tokens: int) -> float:
    if price is None:
        return math.nan
    dollars = input_tokens * price.input + output_tokens * price.output
    return dollars / TOKENS_PER_PRICE_UNIT


@dataclass(frozen=True)
class ItemOutcome:
    """How one item ended: a price, or a failure reason."""

    price: float  # NaN when failed
    failure: str | None
    input_tokens: int
    output_tokens: int
    # Seconds of the call that answered (a cached answer's too); None when unknown (an answer
    # cached before its call's seconds were kept)
    latency: float | None
    cached: bool
    unmetered: bool = False  # its reply came without usage: tokens billed, count unknown
    model: str | None = None  # the model its reply named (or its cache entry kept); None: unknown
    status: int | None = None  # the HTTP status of a call the server refused


def other_models(outcomes: Iterable[ItemOutcome], requested: str) -> list[str]:
    """The names of the models that answered in place of ``requested``, sorted, once each."""
    return sorted(
        {o.model for o in outcomes if o.model is not None and not same_model(requested, o.model)}
    )


def priced_as(outcome: ItemOutcome, requested: str) -> str:
    """The model whose catalogue rate an answer's tokens are billed at: the one that answered,
    or ``requested`` when the reply named it (a dated snapshot included: the catalogue does not
    know every server's spelling of it, "llama3.1:latest") or named none (an old cache entry, a
    call refused before any reply)."""
    answered = outcome.model
    return requested if answered is None or same_model(requested, answered) else answered


def batch_cost(
    outcomes: Sequence[ItemOutcome], requested: str, prices: dict[str, Price | None]
) -> float:
    """What ``outcomes`` cost: each answer's tokens at the rate of the model it is priced as
    (``prices``, by name); NaN when one of those rates is unknown or a reply's tokens went
    uncounted, never the lower figure of the others."""
    if any(outcome.unmetered for outcome in outcomes):
        return math.nan
    if not outcomes:  # nothing answered: $0 at a known rate, unknown at an unknown one
        return token_cost(prices[requested], 0, 0)
    tokens: dict[str, list[int]] = {}
    for outcome in outcomes:
        counts = tokens.setdefault(priced_as(outcome, requested), [0, 0])
        counts[0] += outcome.input_tokens
        counts[1] += outcome.output_tokens
    return sum(token_cost(prices[model], *counts) for model, counts in tokens.items())


def batch_stats(
    outcomes: Sequence[ItemOutcome],
    *,
    requested: str,
    price_of: PriceOf,
    retries: int,
    wall_seconds: float,
    rate_limited: int = 0,
    prefix: str = "llm.",
) -> dict[str, float]:
    """The batch's figures as metrics under ``prefix``; ``requested`` is the model asked for,
    which each reply's model is compared with, and ``price_of`` gives a model's catalogue
    price by name (None: not in the catalogue): each answer is billed at its model's."""
    n_items = len(outcomes)
    others = other_models(outcomes, requested)
    names = {requested} | {priced_as(outcome, requested) for outcome in outcomes}
    prices = {name: price_of(name) for name in names}  # one lookup per model, not per item
    fresh = [outcome for outcome in outcomes if not outcome.cached]
    failures = {reason: 0 for reason in FAILURE_REASONS}
    for outcome in outcomes:
        if outcome.failure is not None:
            failures[outcome.failure] = failures.get(outcome.failure, 0) + 1
    input_tokens = sum(outcome.input_tokens for outcome in outcomes)
    output_tokens = sum(outcome.output_tokens for outcome in outcomes)
    unmetered = sum(outcome.unmetered for outcome in outcomes)
    # A reply without usage was billed for tokens nobody counted, and an answer from a model
    # the catalogue has no price for at a rate nobody knows: either makes the cost unknown
    # (NaN), never the lower figure of the answers that were priced.
    cost = batch_cost(outcomes, requested, prices)
    spent = batch_cost(fresh, requested, prices)
    unpriced = sum(prices[priced_as(outcome, requested)] is None for outcome in outcomes)
    # Every answer's call, cached or fresh, as its tokens and cost: the model's latency, which
    # a rerun served from the cache does not change.
    latencies = [outcome.latency for outcome in outcomes if outcome.latency is not None]
    per_item = (lambda total: total / n_items) if n_items else (lambda total: math.nan)
    stats: dict[str, float] = {
        "items": n_items,
        "calls": len(fresh),
        "cache_hits": n_items - len(fresh),
        "retries": retries,
        "rate_limited_responses": rate_limited,  # HTTP 429s met (retried or not)
        "failures": sum(failures.values()),
        "failure_rate": per_item(sum(failures.values())),
        "answers_without_usage": unmetered,  # tokens and costs leave their tokens out
        # Why a cost is NaN beside tokens that were counted: the answering model has no rate.
        "answers_not_in_catalogue": unpriced,
        # Priced answers only: a call refused with a 500 had no reply to name a model.
        "answers_without_model": sum(o.model is None and o.failure is None for o in outcomes),
        # Any reply, priced or not: a substitute whose answers do not parse is still one.
        "answers_from_other_model": sum(o.model in others for o in outcomes),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_tokens_per_item": per_item(input_tokens),
        "output_tokens_per_item": per_item(output_tokens),
        "cost_usd": cost,
        "cost_per_1k_items_usd": per_item(cost) * 1000,
        "spent_usd": spent,
        "latency_p50_s": float(np.percentile(latencies, 50)) if latencies else math.nan,
        "latency_p95_s": float(np.percentile(latencies, 95)) if latencies else math.nan,
        "wall_seconds": wall_seconds,
        # Items answered by calls, per second of the batch: a rerun served from the cache
        # reported its disk's pace (25,000 items/s beside the paid run's 200), which a
        # leaderboard showed as the model's; with no call made, it is unknown.
        "items_per_second": len(fresh) / wall_seconds if fresh and wall_seconds > 0 else math.nan,
    }
    stats |= {f"failures.{reason}": count for reason, count in failures.items()}
    # Which refusals: "api_error 250" alone did not say a wrong model name (404) from a key
    # refused (401) or a request the server does not take (400).
    statuses = Counter(o.status for o in outcomes if o.failure == API_ERROR and o.status)
    stats |= {f"{REFUSED_STATUS}{status}": count for status, count in statuses.items()}
    return {f"{prefix}{key}": float(value) for key, value in stats.items()}
