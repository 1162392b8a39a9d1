"""Logging what data a run used: MLflow dataset inputs with digests, curation figures, charts."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

import mlflow
import pandas as pd
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.types import Schema

from pricer.data.dataset import CuratedData, describe_source, frame_digest, rows_digest
from pricer.errors import ConfigError
from pricer.evaluation import category_bars, category_pie, price_histogram
from pricer.tracking import tags

# Tags that make runs comparable: the registry only compares runs scored on the same items.
EVAL_DIGEST_TAG = tags.EVAL_DIGEST
EVAL_SIZE_TAG = tags.EVAL_SIZE
SCHEMA_ROWS = 1000  # rows a dataset's schema is inferred from


class ItemsDataset(PandasDataset):
    """An item table as an MLflow dataset, its schema inferred from the first rows.

    MLflow infers a pandas dataset's schema value by value: 1.1 s for 25k items, 5 s for 100k,
    most of a run's logging time. Item columns each have one dtype, so the first rows give
    the same schema.
    """

    @cached_property
    def schema(self) -> Schema | None:
        head = self.df.head(SCHEMA_ROWS)
        return PandasDataset(head, source=self.source, digest=self.digest).schema


def log_data_inputs(
    curated: CuratedData,
    eval_items: pd.DataFrame | None,
    data_cfg: Mapping[str, Any],
    *,
    curation_counts: bool = True,
    validation_items: pd.DataFrame | None = None,
) -> dict[str, ItemsDataset]:
    """Log the train, test (evaluation, validation) sets as dataset inputs; returns them by
    context (``training``, ``test``, ``evaluation``, ``validation``).

    ``curation_counts``: also log the curation counts (``data.*`` metrics). A leaderboard logs
    them once on its parent, not on each family run, where they are the same for every family.
    The sets figures are measured on are named with their size (``real-evaluation-250``): the
    Models tab charts a metric per dataset name, and maes over 60 and over 250 items stood in
    one chart as if comparable.
    """
    # Curated data is produced by pricer's code from an origin: say which, explicitly (a bare
    # string source is guessed at by MLflow and warned about). The test items' own: the
    # training files were recorded as where data=real's and data=curated's test items came from.
    origins = {
        "training": describe_source(data_cfg),
        "test": describe_source(data_cfg, test=True),
    }
    origins |= {"evaluation": origins["test"], "validation": origins["training"]}
    frames = {"training": curated.train, "test": curated.test}
    if eval_items is not None:
        frames["evaluation"] = eval_items
    if validation_items is not None and len(validation_items):
        frames["validation"] = validation_items
    name = data_name(data_cfg)
    logged: dict[str, ItemsDataset] = {}
    for context, frame in frames.items():
        sized = context in ("evaluation", "validation")
        logged[context] = ItemsDataset(
            frame,
            source=CodeDatasetSource(tags={tags.DATASET_ORIGIN: origins[context]}),
            targets="price",
            name=f"{name}-{context}-{len(frame)}" if sized else f"{name}-{context}",
            digest=frame_digest(frame),
        )
        mlflow.log_input(logged[context], context=context)
    if eval_items is not None:
        tag_evaluation_items(eval_items)
    if curation_counts:
        log_curation_counts(curated)
    return logged


def tag_evaluation_items(eval_items: pd.DataFrame) -> None:
    """Tag the active run with what its figures were measured on: the evaluation items' digest
    and count (``pricer compare`` says when runs differ in them; promote compares only runs
    of one digest).

    A leaderboard's parent is tagged too, with its families' items: without them ``pricer
    compare`` showed two leaderboards' ``best_mae`` side by side, the one over 30 items and
    the other over 250 (or over other items of the same number), as if comparable.
    """
    mlflow.set_tags({EVAL_DIGEST_TAG: rows_digest(eval_items), EVAL_SIZE_TAG: str(len(eval_items))})


def log_curation_counts(curated: CuratedData) -> None:
    """Raw, rejected and kept counts of the curation (``data.*`` metrics) on the active run."""
    mlflow.log_metrics(curated.report.as_metrics())


# What MLflow refuses in a logged model's name, ``<family>-<data>``: "data.name=real.v2"
# failed with MLflow's traceback once the family had been fitted, and its run ended FAILED.
NOT_IN_MODEL_NAMES = ("/", ":", ".", "%", '"', "'")


def data_name(data_cfg: Mapping[str, Any]) -> str:
    """What the data is called in run names, tags and the registry (``data.name``)."""
    name = str(data_cfg.get("name") or data_cfg["source"])
    refused = [char for char in NOT_IN_MODEL_NAMES if char in name]
    if refused:
        raise ConfigError(
            f"data.name={name} holds {' '.join(refused)}, which MLflow refuses in the names "
            "of models (<family>-<data>): use letters, digits, - and _"
        )
    return name


def log_curation_charts(curated: CuratedData, bins: int) -> None:
    """Price histograms and category charts of the data before and after curation."""
    stages = {
        "before": curated.population,
        "after": pd.concat([curated.train, curated.test], ignore_index=True),
    }
    for stage, frame in stages.items():
        mlflow.log_figure(
            price_histogram(frame["price"], f"Prices {stage} curation", bins),
            f"curation/prices_{stage}.png",
        )
        counts = frame["category"].fillna("unknown").value_counts()
        mlflow.log_figure(
            category_bars(counts, f"Categories {stage} curation"),
            f"curation/categories_{stage}.png",
        )
        mlflow.log_figure(
            category_pie(counts, f"Category shares {stage} curation"),
            f"curation/category_shares_{stage}.png",
        )
