"""What a sweep's trials are measured on: recorded in a shared study, so that only a process
whose trials compare with those already there joins it.

A study ranks its trials against each other, which holds only if every process that adds
trials runs the same app on the same data, holdout and evaluation settings, towards the same
direction over the same search space. So the settings are the job's config as composed (the
``hydra`` node aside) and its group choices (``data=synthetic``), less what the sweeper varies
(the search space, recorded apart as distributions) and less ``hydra.sweeper.not_compared``
(how a process runs: tracking, cache folders). Per-process knobs (n_trials, n_jobs, the
launcher, folders) live under ``hydra`` and never count.

Values are kept as composed, interpolations unresolved: ``${pricer.root:}/../shared/data`` is
the same text in every checkout of the project, on any machine, and ``${seed}`` is compared
through ``seed`` itself. Only Hydra and OmegaConf are imported here (Hydra imports every plugin
module when any app starts).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.pricer_optuna_sweeper import search_space

# The study user attr that holds the settings of the process that created the study.
SETTINGS_ATTR = "sweeper.settings"
_SHOWN = 3  # differing settings named in a refusal
_LONGEST = 60  # characters of a value shown in a refusal


def study_settings(config: DictConfig) -> dict[str, Any]:
    """The settings a process's trials are measured on, as JSON values by dotted key.

    ``config`` is the multirun's config, ``hydra`` node included (what the sweeper and the
    callbacks are given). Group choices come first, so a refusal names ``data=real`` before
    the keys that follow from it.
    """
    sweeper = config.hydra.sweeper
    params = OmegaConf.to_container(sweeper.params, resolve=False) if sweeper.get("params") else {}
    task = [str(item) for item in config.hydra.overrides.task]
    space, _ = search_space.parse(params, task)  # type: ignore[arg-type]
    skipped = [*space, *(str(key) for key in sweeper.get("not_compared") or [])]

    def counts(key: str) -> bool:
        return not any(key == skip or key.startswith(f"{skip}.") for skip in skipped)

    tree = OmegaConf.to_container(config, resolve=False, enum_to_str=True)
    job = {str(key): value for key, value in tree.items() if key != "hydra"}  # type: ignore[union-attr]
    if sweeper.get("redact"):
        # The settings are stored in the study's database, readable by whoever shares it.
        job = get_method(str(sweeper.redact))(job)
    choices = config.hydra.runtime.choices
    settings: dict[str, Any] = {
        group: choices[group] for group in job if group in choices and counts(group)
    }
    settings.update((key, value) for key, value in _leaves(job) if counts(key))
    # What the trials return (the app's objective) and which way it is ranked.
    settings["hydra.job.name"] = str(config.hydra.job.name)
    settings["hydra.sweeper.direction"] = direction_name(sweeper.direction)
    for key, dist in space.items():
        settings[f"hydra.sweeper.params.{key}"] = repr(dist)
    if sweeper.get("custom_search_space"):
        settings["hydra.sweeper.custom_search_space"] = str(sweeper.custom_search_space)
    # As the database gives them back (tuples as lists, keys as strings), to compare like
    # with like.
    return json.loads(json.dumps(settings, default=str))  # type: ignore[no-any-return]


def direction_name(direction: Any) -> str:
    """'minimize' or 'maximize' from a name, a one-item list or an Optuna StudyDirection."""
    if isinstance(direction, Sequence) and not isinstance(direction, str):
        direction = direction[0] if len(direction) == 1 else list(direction)
    return str(getattr(direction, "name", direction)).lower()


def differences(recorded: Mapping[str, Any], ours: Mapping[str, Any]) -> list[str]:
    """Keys whose value differs (or that only one side has), in the recorded order."""
    keys = [*recorded, *(key for key in ours if key not in recorded)]
    missing = object()
    return [key for key in keys if recorded.get(key, missing) != ours.get(key, missing)]


def refusal(
    study_name: str, where: str, recorded: Mapping[str, Any], ours: Mapping[str, Any]
) -> str:
    """One line: which settings the study was started with, and this process's."""
    keys = differences(recorded, ours)
    more = f" (and {len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return (
        f"study {study_name!r} in {where} was started with {_show(recorded, keys)}{more}; "
        f"this sweep has {_show(ours, keys)}: their trials would not compare, so it cannot "
        "join: use another hydra.sweeper.study_name"
    )


def _show(settings: Mapping[str, Any], keys: list[str]) -> str:
    return ", ".join(
        f"{key}={_text(settings[key])}" if key in settings else f"no {key}" for key in keys[:_SHOWN]
    )


def _text(value: Any) -> str:
    """A value as it would be written in an override: plain strings bare, the rest JSON."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= _LONGEST else text[: _LONGEST - 3] + "..."


def _leaves(node: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf; a list or an empty mapping is one leaf."""
    for key, value in node.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, dotted)
        else:
            yield dotted, value
