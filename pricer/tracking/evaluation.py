"""Logging an evaluation the same way for every family: metrics, plots, tables."""

from __future__ import annotations

import math
from collections.abc import Mapping

import mlflow
import pandas as pd
from mlflow.data.dataset import Dataset

from pricer.evaluation import Evaluation, error_histogram, truth_vs_estimate
from pricer.tracking import tags


def log_metrics(
    metrics: Mapping[str, float], *, dataset: Dataset | None = None, model_id: str | None = None
) -> None:
    """Log figures on the active run, NaN ones skipped: MLflow stores them but charts choke.

    With ``dataset`` and ``model_id`` (MLflow 3) the figures are also linked to the dataset
    they were measured on and the logged model they measure: the model's page then lists the
    dataset, and the Models tab compares models on the same dataset.
    """
    mlflow.log_metrics(
        {key: float(value) for key, value in metrics.items() if not _is_nan(float(value))},
        dataset=dataset,
        model_id=model_id,
    )


def log_evaluation(
    evaluation: Evaluation,
    name: str,
    eval_items: pd.DataFrame,
    *,
    dataset: Dataset | None = None,
    model_id: str | None = None,
) -> None:
    """Metrics (linked to the evaluation dataset and logged model when given), plots, tables."""
    log_metrics(evaluation.metrics, dataset=dataset, model_id=model_id)
    mlflow.log_figure(truth_vs_estimate(evaluation, name), "plots/truth_vs_estimate.png")
    mlflow.log_figure(error_histogram(evaluation, name), "plots/error_histogram.png")
    predictions = evaluation.items.copy()
    predictions.insert(0, "title", eval_items["title"].to_numpy())
    mlflow.log_table(predictions, "evaluation/predictions.json")
    mlflow.log_table(evaluation.by_band.reset_index(), "evaluation/by_price_band.json")
    if not evaluation.by_category.empty:
        mlflow.log_table(evaluation.by_category.reset_index(), "evaluation/by_category.json")


def _is_nan(value: float) -> bool:
    return math.isnan(value)


def log_facts(facts: Mapping[str, str], description: str | None = None) -> None:
    """Tags that say what a run's model is (an LLM's catalogue entry), and a line for the
    run's description (Markdown in the MLflow UI)."""
    mlflow.set_tags(dict(facts))
    if description:
        mlflow.set_tag(tags.NOTE, description)
