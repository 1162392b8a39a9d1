"""What a fine-tuning run logs: the cost estimate, the training files, the job, its losses.

The run itself is opened by ``tracked_run`` like any other; these functions log on the
active run. Losses arrive a page of events at a time (and, at the end, every step from the
job's result file), so they are sent in batches with the sweep's batch logger, not one
request per step.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric
from openai.types.fine_tuning import FineTuningJob

from pricer.models.llm import finetuning as ft
from pricer.tracking import tags
from pricer.tracking.evaluation import log_metrics
from pricer.tracking.run import configure_tracking
from pricer.tracking.sweep import log_metrics as log_metric_batches

ARTIFACT_DIR = "finetune"


def log_estimate(estimate: ft.CostEstimate) -> None:
    log_metrics(
        {"ft.estimated_training_tokens": estimate.tokens, "ft.estimated_cost_usd": estimate.usd}
    )


def tuned_on(tracking_cfg: Mapping[str, Any], job_id: str) -> str | None:
    """The data (``data.name``) the run that created fine-tuning job ``job_id`` tuned on, or
    None when this store holds no such run (a job made elsewhere, by another tool)."""
    if "'" in job_id:  # no job id has one; it would end the filter's string
        return None
    configure_tracking(tracking_cfg)
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`{tags.FT_JOB_ID}` = '{job_id}'",
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )
    created = [run for run in runs if run.data.tags.get(tags.FT_RESUMED) != "true"]
    return created[0].data.params.get("data.name") if created else None


def log_training_file(path: Path) -> None:
    """A training or validation file, exactly as uploaded."""
    mlflow.log_artifact(str(path), ARTIFACT_DIR)


def log_job_id(job_id: str) -> None:
    mlflow.set_tag(tags.FT_JOB_ID, job_id)


def log_losses(metrics: list[ft.Metric]) -> None:
    """Step losses (name, value, step) on the active run."""
    if not metrics:
        return
    now = int(time.time() * 1000)
    rows = [Metric(name, value, now, step) for name, value, step in metrics]
    log_metric_batches(mlflow.MlflowClient(), mlflow.active_run().info.run_id, rows)


def log_fine_tuned(job: FineTuningJob, cost_usd: float) -> None:
    """What a succeeded job produced and cost: the model's name (a tag), the tokens trained
    and their price (``ft.cost_usd``, beside the estimate made before; NaN, so not logged,
    when unknown)."""
    mlflow.set_tag(tags.FT_FINE_TUNED_MODEL, job.fine_tuned_model)
    tokens = ft.trained_tokens(job)  # None: the job reports no count, or one that is none
    if tokens is not None:
        log_metrics({"ft.trained_tokens": tokens, "ft.cost_usd": cost_usd})
