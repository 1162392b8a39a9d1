"""Hydra override syntax -> Optuna distributions, as the official sweeper reads it.

``choice(a, b)`` is categorical; ``range(start, stop, step)`` an int or float grid;
``interval(low, high)`` uniform (int when both ends are ints, e.g. ``int(interval(1, 10))``);
``tag(log, interval(...))`` log-uniform. A plain value is fixed for every trial.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution


def distribution(override: Override) -> BaseDistribution | None:
    """The distribution a sweep override describes; None for a fixed value."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if not override.is_sweep_override():
        return None
    value = override.value()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        bad = [choice for choice in choices if not isinstance(choice, str | int | float | bool)]
        if bad:
            raise ValueError(f"{override.input_line}: a choice takes plain values, got {bad}")
        return CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        # Hydra's range stops before ``stop``, Optuna's high is included: bound by the last value.
        values = list(override.sweep_iterator(transformer=Transformer.encode))
        if not values:
            raise ValueError(f"{override.input_line}: the range is empty")
        if any(isinstance(item, float) for item in values):
            return FloatDistribution(float(values[0]), float(values[-1]), step=float(value.step))
        return IntDistribution(int(values[0]), int(values[-1]), step=int(value.step))
    if isinstance(value, IntervalSweep):
        assert value.start is not None and value.end is not None
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ValueError(f"{override.input_line}: not a search space the Optuna sweeper knows")


def parse(
    params: Mapping[str, Any] | None, arguments: list[str]
) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """Search space and fixed values from ``hydra.sweeper.params`` and command-line overrides.

    A command-line override of a key beats the config's; a fixed value drops the key from
    the search space.
    """
    lines = [f"{key}={value}" for key, value in (params or {}).items()] + list(arguments)
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(lines):
        key = override.get_key_element()
        found = distribution(override)
        if found is None:
            space.pop(key, None)
            fixed[key] = override.get_value_element_as_str()
        else:
            fixed.pop(key, None)
            space[key] = found
    return space, fixed


def grid(space: Mapping[str, BaseDistribution]) -> dict[str, list[Any]]:
    """Every value of a discrete search space, for Optuna's GridSampler."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    values: dict[str, list[Any]] = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            values[key] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            values[key] = list(range(dist.low, dist.high + 1, dist.step))
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            count = round((dist.high - dist.low) / dist.step) + 1
            values[key] = [dist.low + index * dist.step for index in range(count)]
        else:
            raise ValueError(f"{key}: the grid sampler needs choice() or range(), not {dist}")
    return values


def check(config: Any, sweeper: Any) -> None:
    """Raise ``ValueError`` (one line) for a search space no trial could run: an unknown key, a
    word where a number goes, a continuous range under the grid sampler.

    For the launching process before any study or run exists: found at the first trial, a typo
    left a study that recorded it (its name then refused the corrected sweep) and a FAILED run.
    ``config`` is the job's config with its hydra node; ``sweeper`` the instantiated sweeper.
    """
    from omegaconf import OmegaConf
    from optuna.distributions import CategoricalDistribution
    from optuna.samplers import GridSampler

    space, _ = parse(sweeper.params, list(config.hydra.overrides.task))
    groups = set(config.hydra.runtime.choices)
    for key, dist in space.items():
        name = key.lstrip("+~")
        if name in groups or key.startswith("+"):  # a config group's options; a new key
            continue
        now = OmegaConf.select(config, name, default=_ABSENT)
        if now is _ABSENT:
            raise ValueError(f"{key}: no such key in the config, so no trial could set it")
        # A number's key given words (the config's schema refuses them as each trial composes).
        number = isinstance(now, int | float) and not isinstance(now, bool)
        samples = dist.choices if isinstance(dist, CategoricalDistribution) else ()
        for value in samples:
            if number and not isinstance(value, int | float):
                raise ValueError(f"{key}: {value!r} is no number, and {name} is {now!r}")
    if getattr(sweeper.sampler, "func", None) is GridSampler:
        grid(space)


_ABSENT = object()
