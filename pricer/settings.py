"""Settings dataclasses that are also the schemas of their config groups.

A settings class (a frozen dataclass deriving from ``Settings``) names every key of its config
node with its type. Registered with Hydra's ConfigStore (``pricer.configs``), it makes Hydra
check keys and types while composing, so a typo or ``eval.size=abc`` fails before any data
loads, naming the key. ``from_config`` applies the same schema to any mapping (a node of a
config built by hand, a test's dict): unknown, missing or mistyped keys fail alike, and
``__post_init__`` checks what types cannot say (ranges, orderings).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, Optional, TypeVar, get_type_hints

from hydra.utils import get_object
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from pricer.errors import ConfigError, unknown_name

S = TypeVar("S", bound="Settings")


class Settings:
    """Base of the settings dataclasses: ``from_config`` checks a node against the class.

    ``config_node``: where the settings sit in the config (``eval``), which a range check's
    message names; it said the class (``EvalSettings: size must be >= 1``), which no user types.
    """

    config_node: ClassVar[str] = ""

    @classmethod
    def from_config(cls: type[S], node: Mapping[str, Any] | DictConfig) -> S:
        """The settings in ``node``: exactly the class's keys, of its types."""
        try:
            if isinstance(node, DictConfig):  # ``${seed}`` resolves against the node's config
                node = OmegaConf.to_container(node, resolve=True)
            merged = OmegaConf.merge(writable_node(cls), node)
            settings = OmegaConf.to_object(merged)
        except ConfigKeyError as error:
            # A key the schema lacks (``+candidates.famly=xgboost``: Hydra adds any key given
            # with +): named as typed, with the nearest right names, not "Key 'famly' not in
            # 'CandidatesConfig'", a class no user types.
            known = [field.name for field in dataclasses.fields(cls)]
            if cls.config_node and error.key == error.full_key and error.key not in known:
                raise ConfigError(
                    unknown_name("key", str(error.key), known, cls.config_node)
                ) from None
            raise ConfigError(describe(error, cls.__name__)) from None
        except OmegaConfBaseException as error:
            raise ConfigError(describe(error, cls.__name__)) from None
        except ConfigError:
            raise
        except ValueError as error:  # ``__post_init__``'s range checks (eval.size=-5)
            raise ConfigError(f"{cls.config_node or cls.__name__}: {error}") from None
        assert isinstance(settings, cls)
        return settings

    @classmethod
    def from_root(cls: type[S], cfg: DictConfig) -> S:
        """The settings among an app's root keys (its groups beside them are not the class's)."""
        values = {field.name: cfg[field.name] for field in dataclasses.fields(cls)}
        return cls.from_config(
            {
                key: OmegaConf.to_container(value, resolve=True)
                if isinstance(value, DictConfig | ListConfig)
                else value
                for key, value in values.items()
            }
        )


def writable_node(schema: type[Settings]) -> DictConfig:
    """The schema as a config node values can be merged onto.

    Settings are frozen dataclasses, which OmegaConf makes read-only nodes, nested ones too,
    each with its own flag: merging a node with nested settings onto one failed ("Cannot
    change read-only config container"), and so did composing the YAML of their groups.
    """
    node = OmegaConf.structured(schema)
    OmegaConf.set_readonly(node, False)
    _inherit_flags(node)
    return node


def _inherit_flags(parent: DictConfig) -> None:
    """Nested settings nodes carry their own read-only flag: make them inherit the parent's."""
    for key in parent:
        child = parent._get_node(key)
        if isinstance(child, DictConfig):
            OmegaConf.set_readonly(child, None)
            _inherit_flags(child)


def resolved_children(node: object) -> Iterator[tuple[str, object]]:
    """Each child of a config node (plain or OmegaConf; a mapping's keys, a list's indices as
    text) with its value resolved as it is read (``${seed}``, a member given as an
    interpolation). Value by value, not the whole node at once: one only a sweep's trial
    resolves (``seed=${hydra:job.num}``: Hydra knows no job yet as the sweep starts) is
    skipped, for the trial's own run to check, where resolving the whole node failed the sweep
    with OmegaConf's traceback. A node that is neither has none."""
    if isinstance(node, Mapping):
        keys: list[Any] = list(node.keys())
    elif isinstance(node, list) or OmegaConf.is_list(node):
        keys = list(range(len(node)))  # type: ignore[arg-type]
    else:
        return
    for key in keys:
        try:
            value = node[key]  # type: ignore[index]
        except OmegaConfBaseException:  # resolvable in the run only
            continue
        yield str(key), value


def describe(error: OmegaConfBaseException, schema: str) -> str:
    """OmegaConf's error in one line: what is wrong, with the key it concerns."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    key = getattr(error, "full_key", None)
    return f"{schema}: {message}" + (f" (key: {key})" if key and str(key) not in message else "")


# Keys of an instantiable node that are Hydra's, not the target's arguments.
_HYDRA_KEYS = frozenset({"_target_", "_convert_", "_recursive_", "_partial_", "_args_"})


# Every seed ends in numpy (its default_rng takes no negative seed, its legacy seeding none
# over 2**32 - 1) or in scikit-learn's random_state, which takes the same range.
SEED_RANGE = (0, 2**32 - 1)


def seed_problem(seed: int) -> str | None:
    """What is wrong with a seed, None when it is in ``SEED_RANGE``.

    Out of it, a seed was taken as it came and failed once it was used, after the data had
    loaded and the run had started: numpy's "expected non-negative integer" traceback for
    eval.seed=-1 or validation.seed=-1, "Seed must be between 0 and 2**32 - 1" for
    seed=-1 with tfidf_ridge.
    """
    low, high = SEED_RANGE
    if low <= seed <= high:
        return None
    return f"must be from {low} to {high} (what numpy and scikit-learn take), got {seed}"


def check_seed(seed: object) -> None:
    """``seed`` (the root key every ``random_state`` interpolates) must be an integer in
    ``SEED_RANGE``.

    Checked by name: otherwise ``seed=abc`` fails later, at the first family's
    ``random_state``, a key the user never typed.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if problem := seed_problem(seed):
        raise ConfigError(f"seed {problem}")


def check_arguments(node: DictConfig, where: str) -> None:
    """Check an instantiable node (``_target_``) against its target's constructor.

    A family's constructor is its config's schema: every key must be a parameter, and a value
    must fit the parameter's annotation (``model.n_estimators=abc`` fails here, naming the key,
    instead of deep inside a library after the data has loaded). Members that are instantiable
    nodes themselves (an ensemble's) are checked the same way.
    """
    # Interpolations (``${seed}``) resolve against the whole config: resolve them first.
    _check(OmegaConf.create(OmegaConf.to_container(node, resolve=True)), where)


def _check(node: DictConfig, where: str) -> None:
    if "_target_" not in node:
        # "+model@models.ensemble.members.x=frontier" on a leaderboard without the ensemble
        # makes a node of members alone: OmegaConf said "Missing key _target_", nothing more.
        hint = "model=<family>" if where == "model" else f"+model@{where}=<family>"
        raise ConfigError(
            f"{where} names no family (no _target_; it holds {', '.join(map(str, node))}): "
            f"choose one first, e.g. {hint}"
        )
    # A class (a family) or a function that builds one (``logged_pricer`` for an ensemble's
    # logged member): either way its parameters are the node's schema.
    target = get_object(str(node["_target_"]))
    arguments = {key: node[key] for key in node if key not in _HYDRA_KEYS}
    schema = constructor_schema(target)
    checked = arguments
    if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(_signed(target)).parameters.values()):
        # A constructor with **kwargs (LightGBM's, for ``verbose``) takes keys of its own.
        known = {field.name for field in dataclasses.fields(schema)}
        checked = {key: value for key, value in arguments.items() if key in known}
    unknown = sorted(set(checked) - {field.name for field in dataclasses.fields(schema)})
    if unknown:  # a typo, or a key added with +: name the nearest parameters
        known = [field.name for field in dataclasses.fields(schema)]
        raise ConfigError(unknown_name("key", unknown[0], known, where))
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), checked)
        OmegaConf.to_container(merged, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as error:
        raise ConfigError(describe(error, where)) from None
    for path in _not_a_number(arguments, where):
        raise ConfigError(f"{path} is nan, which is no value for a setting: give it a number")
    _check_ranges(target, arguments, where)
    for name, keys in getattr(target, "_mapping_keys", {}).items():
        value = arguments.get(name)
        unknown = sorted(set(value) - set(keys)) if isinstance(value, Mapping) else []
        if unknown:
            raise ConfigError(unknown_name("key", str(unknown[0]), keys, f"{where}.{name}"))
    for key, value in arguments.items():
        if not isinstance(value, DictConfig):
            continue
        if "_target_" in value:
            _check(value, f"{where}.{key}")
            continue
        for name, child in value.items():
            if isinstance(child, DictConfig) and "_target_" in child:
                _check(child, f"{where}.{key}.{name}")


def _check_ranges(target: Callable[..., Any], arguments: Mapping[str, Any], where: str) -> None:
    """Refuse (``ConfigError``) a value out of the range its family declares for it, in
    scikit-learn's terms (``_parameter_constraints``, which the family checks again as it
    fits): ``model.reg_lambda=inf`` fitted trees that never split, and the run FINISHED with
    its mae; ``model.alpha=-1`` failed in scikit-learn once the data had loaded, a FAILED run.
    """
    constraints = getattr(target, "_parameter_constraints", None)
    if not constraints:
        return
    from sklearn.utils._param_validation import (
        InvalidParameterError,
        validate_parameter_constraints,
    )

    given = {key: value for key, value in arguments.items() if key in constraints}
    try:
        validate_parameter_constraints(constraints, given, caller_name=where)
    except InvalidParameterError as error:
        # "The 'reg_lambda' parameter of model must be a float in the range [0.0, inf). Got
        # inf instead.": the key as it is typed.
        said = re.fullmatch(
            r"The '(\w+)' parameter of \S+ must be (.*)\. Got (.*) instead\.", str(error)
        )
        if said is None:
            raise ConfigError(f"{where}: {error}") from None
        name, wanted, got = said.groups()
        wanted = wanted.replace(" or None", " or null")
        raise ConfigError(f"{where}.{name} must be {wanted}, got {got}") from None


def _not_a_number(values: Mapping[str, Any], where: str) -> Iterator[str]:
    """The key of each NaN among a node's values, in its plain sub-nodes and lists too (an
    instantiable sub-node is checked as a node of its own). A float setting typed nan passed
    every check its family makes by comparison (each is false with NaN): XGBoost fitted a
    model that split nowhere (min_child_weight=nan), LinearSVR one that learned nothing
    (epsilon=nan), each run FINISHED with its mae; others failed deep in a library."""
    for key, value in values.items():
        path = f"{where}.{key}"
        if isinstance(value, float) and value != value:
            yield path
        elif isinstance(value, DictConfig | Mapping) and "_target_" not in value:
            yield from _not_a_number(value, path)
        elif isinstance(value, ListConfig | list):
            yield from _not_a_number({str(i): item for i, item in enumerate(value)}, path)


def _signed(target: Callable[..., Any]) -> Callable[..., Any]:
    """What holds the parameters: a class's constructor, or the function itself."""
    return target.__init__ if isinstance(target, type) else target


def constructor_schema(target: Callable[..., Any]) -> type:
    """A dataclass with one field per parameter of a class's constructor or of a function,
    typed by its annotation.

    Annotations OmegaConf cannot check (callables, mappings of estimators, ...) become ``Any``;
    parameters with a default may be left out of the config.
    """
    signed = _signed(target)
    hints = get_type_hints(signed)
    fields_: list[tuple[str, Any, Any]] = []
    for name, parameter in inspect.signature(signed).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = hints.get(name, Any)
        # null is the family's to judge (a fine-tuned model named by an unset variable gets
        # its own message there); the schema checks keys and the types of given values.
        annotation = Optional[annotation] if _checkable(annotation) else Any  # noqa: UP045
        if parameter.default is inspect.Parameter.empty:
            field = dataclasses.field(default=MISSING)
        else:
            field = dataclasses.field(default_factory=lambda default=parameter.default: default)
        fields_.append((name, annotation, field))
    return dataclasses.make_dataclass(f"{target.__name__}Arguments", fields_)


def _checkable(annotation: Any) -> bool:
    try:
        OmegaConf.structured(dataclasses.make_dataclass("Probe", [("value", annotation, MISSING)]))
    except Exception:  # OmegaConf raises several types for an annotation it does not support
        return False
    return True
