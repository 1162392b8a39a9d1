"""Price items with a fitted pricer and score the answers: what every evaluation does.

Test items (``pricer.experiment``) and validation items (``pricer.validation``) are scored the
same way, with the same thresholds and bootstrap settings, by this one function.
"""

from __future__ import annotations

import time

import pandas as pd

from pricer.evaluation import EvalSettings, Evaluation, evaluate
from pricer.models.base import INPUT_COLUMNS, Pricer


def price_and_evaluate(
    pricer: Pricer, items: pd.DataFrame, settings: EvalSettings
) -> tuple[Evaluation, dict[str, float], dict[str, str]]:
    """The evaluation of a fitted pricer on ``items``, plus its report's figures and timing
    (metrics) and its report's facts (tags: an LLM's answering models)."""
    started = time.perf_counter()
    report = pricer.predict_report(items[list(INPUT_COLUMNS)])
    seconds = time.perf_counter() - started
    evaluation = evaluate(
        items["price"].to_numpy(),
        report.prices,
        categories=items["category"].to_numpy(),
        settings=settings,
    )
    return evaluation, {**report.stats, "time.predict_seconds": seconds}, dict(report.facts)
