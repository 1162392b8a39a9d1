"""Token, cost, latency and failure figures of one batch of LLM pricing, as run metrics.

Costs come from the model's entry in the catalogue (``conf/llm/catalogue.yaml``, USD per
million tokens; see ``pricer.models.llm.catalogue``). Token
and cost totals cover every item that got an answer, cached or fresh, so they describe what
the batch costs and stay the same when a re-run is served from the cache; ``spent_usd`` is
what this run actually paid (fresh calls only). A model missing from the catalogue gets NaN
costs (the caller warns), never a made-up price; so does a batch with an answer whose reply
carried no usage (``llm.answers_without_usage``): its tokens were billed, but not counted.

Each reply names the model that answered it, which need not be the one asked for: a proxy or
an OpenAI-compatible server may answer "gpt-4o-mini" with another model (see
``pricer.models.llm.answering``). The answers from another model than the one asked for (a
dated snapshot of it is the same) are counted as ``llm.answers_from_other_model`` (any reply,
priced or not), and the priced answers whose model is unknown (a reply naming none, an answer
cached before pricer kept the name) as ``llm.answers_without_model``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from pricer.models.llm.answering import same_model
from pricer.models.llm.catalogue import Price
from pricer.models.llm.client import FAILURE_REASONS

TOKENS_PER_PRICE_UNIT = 1_000_000  # catalogue unit: USD per million tokens


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
    latency: float | None  # seconds of the call; None when served from the cache
    cached: bool
    unmetered: bool = False  # its reply came without usage: tokens billed, count unknown
    model: str | None = None  # the model its reply named (or its cache entry kept); None: unknown


def other_models(outcomes: Iterable[ItemOutcome], requested: str) -> list[str]:
    """The names of the models that answered in place of ``requested``, sorted, once each."""
    return sorted(
        {o.model for o in outcomes if o.model is not None and not same_model(requested, o.model)}
    )


def batch_stats(
    outcomes: Sequence[ItemOutcome],
    *,
    price: Price | None,
    retries: int,
    wall_seconds: float,
    rate_limited: int = 0,
    prefix: str = "llm.",
    requested: str | None = None,
) -> dict[str, float]:
    """The batch's figures as metrics under ``prefix``; ``requested`` is the model asked for,
    which each reply's model is compared with (None: every named model counts as asked)."""
    n_items = len(outcomes)
    others = other_models(outcomes, requested) if requested is not None else []
    fresh = [outcome for outcome in outcomes if not outcome.cached]
    failures = {reason: 0 for reason in FAILURE_REASONS}
    for outcome in outcomes:
        if outcome.failure is not None:
            failures[outcome.failure] = failures.get(outcome.failure, 0) + 1
    input_tokens = sum(outcome.input_tokens for outcome in outcomes)
    output_tokens = sum(outcome.output_tokens for outcome in outcomes)
    unmetered = sum(outcome.unmetered for outcome in outcomes)
    # A reply without usage was billed for tokens nobody counted: the cost is unknown (NaN),
    # never the lower figure of the replies that were counted ($0 for a server that sends none).
    cost = token_cost(price, input_tokens, output_tokens) if not unmetered else math.nan
    spent = token_cost(
        price,
        sum(outcome.input_tokens for outcome in fresh),
        sum(outcome.output_tokens for outcome in fresh),
    )
    spent = math.nan if any(outcome.unmetered for outcome in fresh) else spent
    latencies = [outcome.latency for outcome in fresh if outcome.latency is not None]
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
        "items_per_second": n_items / wall_seconds if wall_seconds > 0 else math.nan,
    }
    stats |= {f"failures.{reason}": count for reason, count in failures.items()}
    return {f"{prefix}{key}": float(value) for key, value in stats.items()}
