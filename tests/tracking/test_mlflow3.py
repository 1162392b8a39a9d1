"""System metrics and the prompt registry, on a real store."""

from __future__ import annotations

import time

import mlflow
import pytest
from mlflow import MlflowClient

from pricer.tracking.mlflow3 import enable_system_metrics, link_prompt, register_prompt
from pricer.tracking.run import tracked_run
from tests.conftest import compose_config


@pytest.fixture
def no_system_metrics_after() -> object:
    yield
    enable_system_metrics(None)  # later tests in this process start runs without a monitor


def test_a_run_of_a_few_seconds_has_cpu_and_memory_figures(
    tracking_uri: str, no_system_metrics_after: object
) -> None:
    tracking = compose_config("train").tracking
    with tracked_run(tracking, run_name="short", tags={}) as run:
        time.sleep(5)  # MLflow's own 10 s default interval logs nothing for this run
    history = MlflowClient().get_metric_history(
        run.info.run_id, "system/cpu_utilization_percentage"
    )
    assert len(history) >= 2, "sampled every tracking.system_metrics.sampling_interval s"
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert "system/system_memory_usage_megabytes" in metrics


def test_a_prompt_gets_a_new_version_only_when_it_changes(tracking_uri: str) -> None:
    prompt = dict(compose_config("train", ["model=frontier"]).model.prompt)
    with mlflow.start_run() as run:
        first = register_prompt("frontier", prompt)
        assert register_prompt("frontier", prompt).version == first.version
        changed = register_prompt("frontier", {**prompt, "system": "Answer with a price."})
        assert int(changed.version) == int(first.version) + 1
        assert (
            link_prompt(changed, run.info.run_id) == f"prompts:/pricer-frontier/{changed.version}"
        )
    user = next(m for m in changed.template if m["role"] == "user")
    assert "{{text}}" in user["content"]  # MLflow's variable syntax
    linked = mlflow.get_run(run.info.run_id).data.tags["mlflow.linkedPrompts"]
    assert (
        f'"version": "{changed.version}"' in linked
        and f'"version": "{first.version}"' not in linked
    )
