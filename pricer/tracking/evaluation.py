"""Logging an evaluation the same way for every family: metrics, plots, tables."""

from __future__ import annotations

import math
from collections.abc import Mapping

import mlflow
import pandas as pd

from pricer.evaluation import Evaluation, error_histogram, truth_vs_estimate


def log_metrics(metrics: Mapping[str, float]) -> None:
    """Log figures on the active run, NaN ones skipped: MLflow stores them but charts choke."""
    mlflow.log_metrics(
        {key: float(value) for key, value in metrics.items() if not _is_nan(float(value))}
    )


def log_evaluation(evaluation: Evaluation, name: str, eval_items: pd.DataFrame) -> None:
    """Metrics, plots and tables of one evaluation."""
    log_metrics(evaluation.metrics)
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
