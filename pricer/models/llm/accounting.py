"""Token, cost, latency and failure figures of one batch of LLM pricing, as run metrics.

Costs come from the price table in ``conf/llm/pricing.yaml`` (USD per million tokens). Token
and cost totals cover every item that got an answer, cached or fresh, so they describe what
the batch costs and stay the same when a re-run is served from the cache; ``spent_usd`` is
what this run actually paid (fresh calls only). A model missing from the table gets NaN
costs and a warning, never a made-up price.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pricer.models.llm.client import FAILURE_REASONS

log = logging.getLogger(__name__)

TOKENS_PER_PRICE_UNIT = 1_000_000  # price table unit: USD per million tokens
_DATE_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")  # "gpt-4o-mini-2024-07-18"


@dataclass(frozen=True)
class ModelPrice:
    input: float  # USD per million input tokens
    output: float  # USD per million output tokens
    training: float | None  # USD per million training tokens (fine-tunable models)


def lookup_price(model: str, table: Mapping[str, Mapping[str, Any]]) -> ModelPrice | None:
    """The table entry for a model: exact name, else without its date suffix; fine-tuned
    models ("ft:gpt-4o-mini-2024-07-18:org:suffix:id") use the "ft:<base>" entry."""
    if model.startswith("ft:"):
        base = model.split(":")[1]
        candidates = [model, f"ft:{base}", f"ft:{_DATE_SUFFIX.sub('', base)}"]
    else:
        candidates = [model, _DATE_SUFFIX.sub("", model)]
    for name in candidates:
        if name in table:
            entry = table[name]
            training = entry.get("training")
            return ModelPrice(
                input=float(entry["input"]),
                output=float(entry["output"]),
                training=None if training is None else float(training),
            )
    return None


def token_cost(price: ModelPrice | None, input_tokens: int, output_tokens: int) -> float:
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


def batch_stats(
    outcomes: Sequence[ItemOutcome],
    *,
    model: str,
    price_table: Mapping[str, Mapping[str, Any]],
    retries: int,
    wall_seconds: float,
    prefix: str = "llm.",
) -> dict[str, float]:
    n_items = len(outcomes)
    fresh = [outcome for outcome in outcomes if not outcome.cached]
    failures = {reason: 0 for reason in FAILURE_REASONS}
    for outcome in outcomes:
        if outcome.failure is not None:
            failures[outcome.failure] = failures.get(outcome.failure, 0) + 1
    input_tokens = sum(outcome.input_tokens for outcome in outcomes)
    output_tokens = sum(outcome.output_tokens for outcome in outcomes)
    price = lookup_price(model, price_table)
    if price is None:
        log.warning(
            "model %r is not in the price table (conf/llm/pricing.yaml): costs are NaN; "
            "add its USD per million input/output tokens to log them",
            model,
        )
    cost = token_cost(price, input_tokens, output_tokens)
    spent = token_cost(
        price,
        sum(outcome.input_tokens for outcome in fresh),
        sum(outcome.output_tokens for outcome in fresh),
    )
    latencies = [outcome.latency for outcome in fresh if outcome.latency is not None]
    per_item = (lambda total: total / n_items) if n_items else (lambda total: math.nan)
    stats: dict[str, float] = {
        "items": n_items,
        "calls": len(fresh),
        "cache_hits": n_items - len(fresh),
        "retries": retries,
        "failures": sum(failures.values()),
        "failure_rate": per_item(sum(failures.values())),
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
