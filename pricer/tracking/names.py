"""Names that tell runs and logged models apart in a list: family, data, and the trial.

Before, every family run was called after its family alone, four leaderboards were all
"leaderboard" and about 40 logged models in an afternoon were all "pricer": the MLflow UI's
lists could not tell a synthetic-data xgboost from a real-data one, or one sweep trial from
another. MLflow allows any text in a run name; a logged model name should stay a plain
identifier (it appears in ``models:/`` URIs), hence the dash.
"""

from __future__ import annotations

import json
import os
import shlex

from pricer.tracking.run import SWEEP_TAGS_ENV

SEPARATOR = " · "
_TRIAL_TAG = "pricer.sweep.trial"  # written by pricer.tracking.sweep (imports this module's peers)
_OVERRIDES_TAG = "pricer.sweep.overrides"
_MAX_TRIAL_LABEL = 60


def retire_command(*overrides: str) -> str:
    """The command that retires a champion: ``pricer promote data=real retire=true``, with
    ``overrides`` saying which data, registry and store."""
    return " ".join(["pricer promote", *map(shlex.quote, overrides), "retire=true"])


def family_run_name(family: str, data: str) -> str:
    """``xgboost · real``; a sweep trial adds what it varies: ``svr · real · C=0.5``."""
    return SEPARATOR.join(part for part in (family, data, trial_label()) if part)


def run_name(*parts: str) -> str:
    """What a run is, then what it is about: ``curate · synthetic``, ``study · pricer-xgb``."""
    return SEPARATOR.join(parts)


def leaderboard_run_name(data: str) -> str:
    return run_name("leaderboard", data)


def model_name(family: str, data: str) -> str:
    """The logged model's name: ``xgboost-real``."""
    return f"{family}-{data}"


def trial_label() -> str:
    """What distinguishes this sweep trial, its ``model.*`` overrides (``C=0.5``), else its
    number (``trial 3``); '' outside a sweep."""
    tags = json.loads(os.environ.get(SWEEP_TAGS_ENV) or "{}")
    if _TRIAL_TAG not in tags:
        return ""
    overrides = json.loads(tags.get(_OVERRIDES_TAG) or "[]")
    varied = " ".join(
        item.removeprefix("model.") for item in overrides if item.startswith("model.")
    )
    return varied if 0 < len(varied) <= _MAX_TRIAL_LABEL else f"trial {tags[_TRIAL_TAG]}"
