"""What MLflow 3 offers beyond runs: system metrics and the prompt registry.

- System metrics (CPU, memory, disk, network; psutil) on every run. MLflow samples every 10 s
  by default and logs nothing for a run shorter than one interval: most pricer runs take
  10-60 s, so ``tracking.system_metrics.sampling_interval`` samples every 2 s instead.
- Every LLM prompt (``model.prompt``, from conf/llm/prompt/*.yaml) is registered in MLflow's
  prompt registry as ``pricer-<family>``, a new version only when the template changed, and
  linked to the run and logged model that used it.

The MLflow 3.17 UI opens experiments on its GenAI overview. Tagging the experiment
``mlflow.experimentKind=custom_model_development`` (what the UI's own type selector writes) was
tried and checked in headless Chromium: the UI still opened on the GenAI overview, since the
GenAI / Model training switch is a per-browser setting. A URL with
``?workflowType=machine_learning`` does open model training, so that is the address pricer
prints (pricer.tracking.leaderboard.run_url).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import PromptVersion

from pricer.schemas import SystemMetricsConfig

PROMPT_PREFIX = "pricer-"
_FIELD = re.compile(r"(?<!\{)\{(\w+)\}(?!\})")  # pricer's {text} -> MLflow's {{text}}


def enable_system_metrics(settings: Mapping[str, Any] | None) -> None:
    """System metrics on every run started from now on, sampled as configured."""
    if not settings or not settings.get("enabled"):
        mlflow.disable_system_metrics_logging()
        return
    checked = SystemMetricsConfig.from_config(settings)  # their ranges, before any run
    mlflow.set_system_metrics_sampling_interval(checked.sampling_interval)
    mlflow.set_system_metrics_samples_before_logging(checked.samples_before_logging)
    # The monitor says "Started/Stopping/Successfully terminated" at INFO for every run: three
    # lines per family between pricer's summary lines.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    mlflow.enable_system_metrics_logging()


def prompt_messages(prompt: Mapping[str, Any]) -> list[dict[str, str]]:
    """A pricer prompt config as MLflow chat messages, fields written ``{{field}}``.

    The prefill (the start of the answer pricer sends) is the assistant's message; a RAG
    prompt's ``example`` (how one neighbour is shown) is kept as a system note so a change in
    it is a new version too.
    """
    messages = []
    for role, key in (("system", "system"), ("user", "user"), ("assistant", "prefill")):
        if prompt.get(key):
            messages.append({"role": role, "content": _FIELD.sub(r"{{\1}}", str(prompt[key]))})
    if prompt.get("example"):
        example = _FIELD.sub(r"{{\1}}", str(prompt["example"]))
        messages.append({"role": "system", "content": f"Each example is written: {example}"})
    return messages


def register_prompt(family: str, prompt: Mapping[str, Any]) -> PromptVersion:
    """The registered version of ``family``'s prompt: the latest if its template is the same,
    else a new version (so a prompt change shows up as one)."""
    name = f"{PROMPT_PREFIX}{family}"
    messages = prompt_messages(prompt)
    # Not mlflow.genai.load_prompt: inside a run it links whatever it loads to the run, and
    # the run would list the previous version too when the template has changed.
    client = MlflowClient()
    versions = _prompt_versions(client, name)
    latest = max(versions, key=lambda v: int(v.version)) if versions else None
    if latest is not None and latest.template == messages:
        return latest
    return mlflow.genai.register_prompt(
        name=name,
        template=messages,
        commit_message=f"prompt of the {family} family, as configured in conf/llm/prompt",
        tags={"pricer.family": family},
    )


def _prompt_versions(client: MlflowClient, name: str) -> list[PromptVersion]:
    try:
        return list(client.search_prompt_versions(name))
    except mlflow.exceptions.MlflowException:  # no such prompt yet
        return []


def link_prompt(version: PromptVersion, run_id: str) -> str:
    """Link a prompt version to a run (the run's Prompts); returns its ``prompts:/`` URI for
    the logged model."""
    MlflowClient().link_prompt_version_to_run(run_id, version)
    return version.uri
