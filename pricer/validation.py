"""A validation split carved out of the training items: what a sweep ranks its trials by.

Choosing hyperparameters on the test items would make the test figures optimistic, so a sweep
minimises the error on items held out of training (seeded), and the test items are scored once
per run for reporting only. Held-out items are not trained on; ``validation.size: 0`` holds out
nothing (a single run trains on every training item and has no objective).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd

from pricer.data.dataset import CuratedData
from pricer.errors import ConfigError
from pricer.evaluation import EvalSettings
from pricer.identity import comparable
from pricer.models.base import LIKE_TEST_COLUMN, Pricer
from pricer.schemas import ValidationSettings
from pricer.scoring import price_and_evaluate

PREFIX = "validation."
OBJECTIVE = f"{PREFIX}mae"  # what pricer.train returns to a Hydra sweeper (lower is better)


def hold_out(
    curated: CuratedData, settings: ValidationSettings
) -> tuple[CuratedData, pd.DataFrame]:
    """Split ``settings.size`` seeded items off the training items; training items with a
    held-out item's text leave training too.

    Returns the data to fit on (its report counts the training items actually fitted) and the
    validation items (an empty frame when ``size`` is 0). The test items are untouched.
    """
    train = curated.train
    if settings.size == 0:
        return curated, train.iloc[:0]
    if settings.size >= len(train):
        raise ConfigError(
            f"validation.size={settings.size} leaves nothing to train on: there are only "
            f"{len(train)} training items; lower validation.size"
        )
    pool = np.arange(len(train))
    if settings.like_test:
        flagged = train.get(LIKE_TEST_COLUMN, pd.Series(False, index=train.index))
        pool = np.flatnonzero(flagged.fillna(False).astype(bool).to_numpy())
        if settings.size > len(pool):
            raise ConfigError(
                f"validation.size={settings.size} with validation.like_test=true, but only "
                f"{len(pool)} training items are drawn like the test set (data=real flags "
                "them); lower validation.size or set validation.like_test=false"
            )
    held = np.zeros(len(train), dtype=bool)
    held[pool[np.random.default_rng(settings.seed).permutation(len(pool))[: settings.size]]] = True
    # A held-out item's twin (the same text, however spaced or cased) left in training is the
    # item itself: frontier_rag showed it, price included, as an example for its own
    # validation item, and every family was scored on an item it had seen. Twins leave
    # training, as a test item's do (data.drop_test_duplicates).
    texts = comparable(train["text"])
    twin = ~held & texts.isin(set(texts[held])).to_numpy()
    fit = train.loc[~held & ~twin].reset_index(drop=True)
    report = dataclasses.replace(curated.report, train=len(fit))
    return dataclasses.replace(curated, train=fit, report=report), train.loc[held].reset_index(
        drop=True
    )


def validation_scores(
    pricer: Pricer, items: pd.DataFrame, settings: EvalSettings
) -> tuple[dict[str, float], dict[str, str]]:
    """Price the validation items with a fitted pricer; its metrics and its report's figures
    (an LLM's calls, tokens and spend: paid for as the test pass is), prefixed ``validation.``,
    and its report's facts (tags: an LLM's answering models, which may differ from the test
    pass's) under the same prefix.

    Scored like the test items (same thresholds and bootstrap settings). Empty ``items``: no
    metrics, no facts.
    """
    if items.empty:
        return {}, {}
    evaluation, stats, facts = price_and_evaluate(pricer, items, settings)
    figures = {**stats, **evaluation.metrics}
    metrics = {f"{PREFIX}{key}": float(value) for key, value in figures.items()}
    return metrics, {f"{PREFIX}{key}": value for key, value in facts.items()}


def sweep_objective(metrics: Mapping[str, float]) -> float | None:
    """The value a Hydra sweeper minimises; None for a run without validation items."""
    value = metrics.get(OBJECTIVE)
    return None if value is None else float(value)
