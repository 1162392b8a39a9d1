"""The MLflow run lifecycle and what every run logs about its own configuration."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import mlflow
from omegaconf import DictConfig, OmegaConf

from pricer.paths import PROJECT_ROOT
from pricer.tracking import tags as tag_names
from pricer.tracking.mlflow3 import enable_system_metrics

MAX_PARAM_LENGTH = 6000  # MLflow's limit for a param value
# Config keys that could hold a secret. Keys naming an environment variable (``*_env``) only
# say where a secret lives and are kept.
_SECRET_KEY = re.compile(r"(api_?key|secret|password|token)$", re.IGNORECASE)
REDACTED = "***"
# Tags that say what a run is; the registry and sweeps search runs by them (names: tags.py).
FAMILY_TAG = tag_names.FAMILY
KIND_TAG = tag_names.KIND

# Set by the sweep callback (pricer.tracking.sweep) in every process that runs a sweep trial:
# the parent run to nest the trial's run under, and tags (JSON) that say which trial it is.
SWEEP_PARENT_ENV = "PRICER_SWEEP_PARENT_RUN_ID"
SWEEP_TAGS_ENV = "PRICER_SWEEP_TAGS"


def configure_tracking(tracking_cfg: Mapping[str, Any]) -> None:
    """Point MLflow at the configured store and experiment.

    Under ``mlflow run`` the run, and so its experiment, already exist (``MLFLOW_RUN_ID``,
    ``MLFLOW_EXPERIMENT_ID``); choosing another experiment would conflict with them.
    """
    mlflow.set_tracking_uri(tracking_cfg["uri"])
    enable_system_metrics(tracking_cfg.get("system_metrics"))
    if tracking_cfg["trace_llm"]:
        from mlflow import openai as openai_flavor  # imports the openai SDK: only when asked

        openai_flavor.autolog()
    if "MLFLOW_RUN_ID" in os.environ or "MLFLOW_EXPERIMENT_ID" in os.environ:
        return
    name = tracking_cfg["experiment"]
    if mlflow.get_experiment_by_name(name) is None and tracking_cfg["artifact_location"]:
        mlflow.create_experiment(name, artifact_location=tracking_cfg["artifact_location"])
    mlflow.set_experiment(name)


@contextmanager
def tracked_run(
    tracking_cfg: Mapping[str, Any],
    *,
    run_name: str,
    tags: Mapping[str, str],
    nested: bool = False,
) -> Iterator[mlflow.ActiveRun]:
    """Start (or, under ``mlflow run``, resume) a run; on any error tag it and mark it FAILED.

    In a sweep trial, a run started outside any other run is nested under the sweep's parent.
    """
    configure_tracking(tracking_cfg)
    parent_run_id, trial_tags = sweep_trial()
    all_tags = {**git_tags(), **dict(tracking_cfg["tags"] or {}), **trial_tags, **tags}
    with mlflow.start_run(
        run_name=run_name,
        nested=nested or parent_run_id is not None,
        parent_run_id=parent_run_id,
        tags=all_tags,
    ) as run:
        try:
            yield run
        except BaseException as error:
            mlflow.set_tag(tag_names.ERROR, f"{type(error).__name__}: {error}"[:MAX_PARAM_LENGTH])
            raise  # start_run's context manager ends the run as FAILED


def sweep_trial() -> tuple[str | None, dict[str, str]]:
    """The sweep parent run and trial tags for a new top-level run; (None, {}) outside a sweep.

    A run started inside another run (a leaderboard's families) nests under that one as usual.
    """
    parent_run_id = os.environ.get(SWEEP_PARENT_ENV)
    if not parent_run_id or mlflow.active_run() is not None:
        return None, {}
    return parent_run_id, json.loads(os.environ.get(SWEEP_TAGS_ENV) or "{}")


def redacted_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config as plain containers, with secret-looking values redacted."""
    tree = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg

    def redact(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {
                key: REDACTED if _SECRET_KEY.search(str(key)) and value else redact(value)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [redact(value) for value in node]
        return node

    return redact(tree)


def flatten_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, str]:
    """Dotted keys to strings, resolved, secrets redacted, values cut to MLflow's limit."""
    flat: dict[str, str] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key, child in value.items():
                visit(f"{prefix}.{key}" if prefix else str(key), child)
        else:
            flat[prefix] = str(value)[:MAX_PARAM_LENGTH]

    visit("", redacted_config(cfg))
    return flat


def log_config(cfg: DictConfig, artifact_file: str = "config/config.yaml") -> None:
    """Log the composed config: flattened as params (searchable) and whole as YAML."""
    mlflow.log_params(flatten_config(cfg))
    mlflow.log_text(OmegaConf.to_yaml(OmegaConf.create(redacted_config(cfg))), artifact_file)


def git_tags() -> dict[str, str]:
    """The commit the code ran from, and whether the work tree had uncommitted changes."""

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {tag_names.GIT_COMMIT: commit, tag_names.GIT_DIRTY: str(bool(status)).lower()}
