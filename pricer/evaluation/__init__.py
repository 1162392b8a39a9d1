"""Shared evaluation for every model family: arrays in; numbers, tables and figures out.

Knows nothing about model families or MLflow; tracking code logs what this returns.
"""

from pricer.evaluation.bootstrap import PairedTest, bootstrap_interval, paired_bootstrap_test
from pricer.evaluation.metrics import error_colors, is_hit, price_metrics
from pricer.evaluation.plots import (
    category_bars,
    category_pie,
    error_histogram,
    leaderboard_chart,
    objective_trace,
    price_histogram,
    truth_vs_estimate,
)
from pricer.evaluation.report import Evaluation, evaluate
from pricer.schemas import EvalSettings, HitThresholds

__all__ = [
    "EvalSettings",
    "Evaluation",
    "HitThresholds",
    "PairedTest",
    "bootstrap_interval",
    "category_bars",
    "category_pie",
    "error_colors",
    "error_histogram",
    "evaluate",
    "is_hit",
    "leaderboard_chart",
    "objective_trace",
    "paired_bootstrap_test",
    "price_histogram",
    "price_metrics",
    "truth_vs_estimate",
]
