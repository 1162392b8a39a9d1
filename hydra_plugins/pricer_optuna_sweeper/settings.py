"""What a sweep's trials are measured on: recorded in a shared study, so that only a process
whose trials compare with those already there joins it.

A study ranks its trials against each other, which holds only if every process that adds
trials runs the same app on the same data, holdout and evaluation settings, towards the same
direction over the same search space. So the settings are the job's config as composed (the
``hydra`` node aside) and its group choices (``data=synthetic``), less what the sweeper varies
(the search space, recorded apart as distributions) and less ``hydra.sweeper.not_compared``
(how a process runs: tracking, cache folders). Per-process knobs (n_trials, n_jobs, the
launcher, folders) live under ``hydra`` and never count.

Values are compared as composed, interpolations unresolved, unless they call a resolver whose
value comes from the process (its environment, its machine): ``${pricer.root:}/../shared/data``
is the same text in every checkout of the project, on any machine, and ``${seed}`` is compared
through ``seed`` itself, but ``${oc.env:PRICER_FINETUNED_MODEL}`` is compared as the model id
the environment gives, or two processes given different ones would rank their trials together.
The rule names what stays text rather than what is resolved (``hydra.sweeper.compared_as_text``:
``pricer.root``, whose value is where the checkout is; ``now``, when the process started, like
its folders; ``hydra``, the process's own Hydra settings): any other resolver, ``oc.env`` or one
added later, is taken to depend on the process, so a value calling it is compared resolved, with
the text resolvers inside it kept as text (``${oc.env:X,${pricer.root:}/x}`` unset is
``${pricer.root:}/x`` in every checkout). A value that cannot be resolved (a variable that is not
set, no default) is compared as its text. Resolved values are what reaches the study's database:
so secrets, which come in through the environment, are redacted after resolving
(``hydra.sweeper.redact``), by the key that holds them and by the name of each variable read.

Only Hydra and OmegaConf are imported here (Hydra imports every plugin module when any app
starts).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from hydra.utils import get_method
from omegaconf import Container, DictConfig, ListConfig, OmegaConf
from omegaconf.basecontainer import BaseContainer

from hydra_plugins.pricer_optuna_sweeper import search_space

# The study user attr that holds the settings of the process that created the study.
SETTINGS_ATTR = "sweeper.settings"
_SHOWN = 3  # differing settings named in a refusal
_LONGEST = 60  # characters of a value shown in a refusal
# A resolver's call in a value's text, ``${name:...}`` (a node's interpolation, ``${a.b}``, has no
# colon), and an ``oc.env`` call's variable. An escaped ``\${`` is no call.
_CALL = re.compile(r"(?<!\\)\$\{\s*([A-Za-z_][\w.\-]*)\s*:")
_ENV_CALL = re.compile(r"(?<!\\)\$\{\s*oc\.env\s*:\s*([^,}\s]+)")


def study_settings(config: DictConfig) -> dict[str, Any]:
    """The settings a process's trials are measured on, as JSON values by dotted key.

    ``config`` is the multirun's config, ``hydra`` node included (what the sweeper and the
    callbacks are given). Group choices come first, so a refusal names ``data=real`` before
    the keys that follow from it.
    """
    sweeper = config.hydra.sweeper
    params = OmegaConf.to_container(sweeper.params, resolve=False) if sweeper.get("params") else {}
    # As given: an override's own interpolation (``+x=${oc.env:X}``) is read, not resolved.
    task = [str(item) for item in OmegaConf.to_container(config.hydra.overrides.task)]  # type: ignore[union-attr]
    space, _ = search_space.parse(params, task)  # type: ignore[arg-type]
    skipped = [*space, *(str(key) for key in sweeper.get("not_compared") or [])]

    def counts(key: str) -> bool:
        return not any(key == skip or key.startswith(f"{skip}.") for skip in skipped)

    tree = OmegaConf.to_container(config, resolve=False, enum_to_str=True)
    as_text = [str(name) for name in sweeper.get("compared_as_text") or []]
    # The settings are stored in the study's database, readable by whoever shares it.
    redact = get_method(str(sweeper.redact)) if sweeper.get("redact") else None
    with _resolvers_as_text(as_text):
        # A copy: the text must not land in the config's resolver cache (``now`` caches).
        resolvable = OmegaConf.create(tree)
        job = {
            str(key): _compared(value, resolvable, key, as_text, redact)
            for key, value in tree.items()  # type: ignore[union-attr]
            if key != "hydra"
        }
    if redact is not None:
        job = redact(job)
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


def _compared(
    value: Any,
    parent: Container,
    key: Any,
    as_text: Iterable[str],
    redact: Callable[[Any], Any] | None,
) -> Any:
    """``parent[key]``'s value as compared: its text, or resolved if it calls a resolver that
    is not ``as_text`` (then redacted as the name of each variable it reads calls for)."""
    if isinstance(value, Mapping | list):
        node = parent._get_node(key)  # type: ignore[union-attr]
        assert isinstance(node, DictConfig | ListConfig)
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        compared = {k: _compared(v, node, k, as_text, redact) for k, v in items}
        return compared if isinstance(value, Mapping) else list(compared.values())
    if not isinstance(value, str) or not set(_CALL.findall(value)) - set(as_text):
        return value
    try:
        resolved = parent[key]  # type: ignore[index]
        if isinstance(resolved, Container):
            resolved = OmegaConf.to_container(resolved, resolve=True, enum_to_str=True)
    except Exception:  # say, an unset variable without a default: the trials fail anyway
        return value
    if redact is not None:
        # ``${oc.env:DB_PASSWORD}`` under any key, in any shape (inside a URL): the variable's
        # name says what the value is, as a config key would.
        for name in _ENV_CALL.findall(value):
            resolved = redact({name: resolved})[name]
    return resolved


@contextlib.contextmanager
def _resolvers_as_text(names: Iterable[str]) -> Iterator[None]:
    """Within the block, ``${name:args}`` of each of ``names`` resolves to its own text.

    OmegaConf has no public way to resolve some resolvers and not others: its registry
    (``BaseContainer._resolvers``) is swapped for the block and restored after. Its entries are
    called with the arguments' text (``args_str``), which rebuilds the call. The registry is
    global: this runs where a sweep starts, before any trial or worker resolves a config.
    """
    registry = BaseContainer._resolvers
    saved = {name: registry.get(name) for name in names}

    def text(name: str) -> Callable[..., str]:
        def call(config: Any, parent: Any, node: Any, args: Any, args_str: Any) -> str:
            return "${%s:%s}" % (name, ",".join(args_str))  # noqa: UP031  (braces are text)

        return call

    try:
        for name in saved:
            registry[name] = text(name)
        yield
    finally:
        for name, resolver in saved.items():
            if resolver is None:
                registry.pop(name, None)
            else:
                registry[name] = resolver


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
