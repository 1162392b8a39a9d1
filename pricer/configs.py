"""What every Hydra app registers before composing: resolvers and the structured configs.

The settings dataclasses (``pricer.schemas``) are stored in Hydra's ConfigStore at its root,
as ``schema_<group>`` and each data option's as ``schema_data_<option>``; each group's YAML
lists its schema first in its defaults (``/schema_eval@_here_``), so Hydra checks keys and
types while composing (an unknown key, or ``eval.size=abc``, fails naming the key before any
data loads). At the root, not as an option of their group: ``--help`` lists every option of
every group, and ``eval: default, schema`` would offer a schema as a choice.
Import this module (for its side effect) before ``@hydra.main`` or ``compose``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pricer import paths
from pricer.errors import USER_ERROR_STATUS, ConfigError, unknown_name, unknown_option
from pricer.schemas import (
    APP_SCHEMAS,
    AmazonSource,
    CandidatesConfig,
    ComputePrice,
    CuratedSource,
    CurationConfig,
    EvalSettings,
    ItemsSource,
    RealSource,
    RegistryConfig,
    SyntheticSource,
    TrackingConfig,
    ValidationSettings,
)
from pricer.settings import Settings, writable_node

SCHEMAS: dict[str, type[Settings]] = {
    "candidates": CandidatesConfig,  # conf/promote.yaml's own block, not a group
    "curation": CurationConfig,
    "eval": EvalSettings,
    "registry": RegistryConfig,
    "tracking": TrackingConfig,
    "tradeoff": ComputePrice,
    "validation": ValidationSettings,
}
# Each data option's schema, ``schema_data_<option>``: conf/data/<option>.yaml extends it
# (``/schema_data_<option>@_here_`` in its defaults), so a typo in a data key or
# ``data.n_records=abc`` fails while composing, like the groups above.
DATA_SCHEMAS: dict[str, type[Settings]] = {
    "amazon": AmazonSource,
    "curated": CuratedSource,
    "items": ItemsSource,
    "real": RealSource,
    "synthetic": SyntheticSource,
}


def check_data_settings(data_cfg: Mapping[str, Any] | DictConfig) -> None:
    """Build ``data``'s settings from its option's schema, which checks what composing does
    not: the schema's ``__post_init__`` (an empty ``data.curated_dir``), ``ConfigError``.

    The option is the schema whose keys are exactly the node's (each option's differ: curated
    and real add a folder to items' keys); a node that matches none (one built by hand) is left
    to the code that reads it.
    """
    keys = set(data_cfg)
    for schema in DATA_SCHEMAS.values():
        if {field.name for field in dataclasses.fields(schema)} == keys:
            # Only a schema with checks of its own is built: composing checked the others' keys
            # and types already.
            if hasattr(schema, "__post_init__"):
                schema.from_config(data_cfg)
            return


def chosen_family(cfg: DictConfig) -> str:
    """The family a train app's run is recorded as: its ``family`` key, which follows the model
    chosen (conf/train.yaml), checked against that choice. Set by hand, "family=xgboost"
    trained the default tfidf_ridge and recorded it as an xgboost run, which promote crowned
    as xgboost."""
    chosen = HydraConfig.get().runtime.choices.get("model")
    if cfg.family != chosen:
        raise ConfigError(
            f"family={cfg.family} with model={chosen}: the family is the model chosen, and "
            f"this would record a {chosen} run as {cfg.family}; choose the family with "
            f"model={cfg.family}"
        )
    return str(cfg.family)


def check_added_keys(config: DictConfig) -> None:
    """Refuse (``ConfigError``) a key that a ``+`` or ``++`` override adds at the root of the
    config, where nothing reads it.

    Hydra adds any key given with ``+``: ``+seeed=3`` or ``+modle.alpha=1`` ran the defaults
    and recorded the typo as a setting. A key is new at the root when everything under it
    came from such overrides; one added inside a node that is there (``+model.members...``,
    ``+tracking.tags.note=...``) is that node's to judge, a config group's option
    (``+experiment=course_scale``) is Hydra's, and ``hydra.*`` is Hydra's own.

    ``++`` sets a key whether or not it is there, so in the composed config ``++seeed=3`` looks
    like ``++seed=3``, which overrides a real key: a forced key is new when the config composed
    without the forced overrides lacks its root.
    """
    task = OmegaConf.select(config, "hydra.overrides.task")
    if not task:
        return
    choices = OmegaConf.select(config, "hydra.runtime.choices") or {}
    given = [str(item) for item in OmegaConf.to_container(task)]  # type: ignore[union-attr]
    added: dict[str, list[str]] = {}
    shown: dict[str, str] = {}  # how each root was added, as the line says it
    forced: dict[str, list[str]] = {}
    forced_lines: list[str] = []
    for line, override in zip(given, OverridesParser.create().parse_overrides(given), strict=True):
        key = override.key_or_group
        package = override.package or ""
        group = any(choice == key or str(choice).startswith(f"{key}@") for choice in choices)
        if override.is_add() and group and package and not package.startswith("_"):
            # A group's option added under a package of its own (+model@foo=linear): a second
            # model at foo, which the train app never reads; the run trained the first.
            added.setdefault(package.split(".")[0], []).append(package)
            shown.setdefault(package.split(".")[0], f"+{key}@{package}=...")
            continue
        if override.package is not None or "/" in key:
            continue
        top = key.split(".")[0]
        if key in choices or top == "hydra":
            continue
        if override.is_add():
            added.setdefault(top, []).append(key)
        elif override.is_force_add():
            forced.setdefault(top, []).append(key)
            forced_lines.append(line)
    app = OmegaConf.select(config, "hydra.job.name") or "this app"
    for top, keys in added.items():
        # A sweep's values (+x=a,b) are not in the config its sweep starts with.
        if top in config and not all(
            any(leaf == key or leaf.startswith(f"{key}.") for key in keys)
            for leaf in _leaves(config._get_node(top), top)
        ):
            continue
        known = [name for name in config if name != "hydra" and name not in added]
        how = shown.get(top, f"+{keys[0]}=...")
        raise ConfigError(f"{unknown_name('key', top, known)}: {how} adds a key {app} never reads")
    if not forced:
        return
    before = _roots_composed_without(config, given, forced_lines)
    for top, keys in forced.items():
        if top not in before:
            known = [name for name in before if name != "hydra"]
            raise ConfigError(
                f"{unknown_name('key', top, known)}: ++{keys[0]}=... adds a key {app} never reads"
            )


def check_swept_options(config: DictConfig) -> None:
    """Refuse (``ConfigError``) a sweep over a config group that names an option the group
    lacks (``-m model=xgbost,svr``): Hydra composes each trial's config only as it launches
    it, so the sweep's parent run opened and ended FAILED at the first trial."""
    if OmegaConf.select(config, "hydra.mode") != RunMode.MULTIRUN:
        return
    task = OmegaConf.select(config, "hydra.overrides.task")
    choices = OmegaConf.select(config, "hydra.runtime.choices") or {}
    hydra = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    if not task or hydra is None:
        return
    given = [str(item) for item in OmegaConf.to_container(task)]  # type: ignore[union-attr]
    for override in OverridesParser.create().parse_overrides(given):
        group = override.key_or_group
        if group not in choices or not override.is_sweep_override():
            continue
        options = hydra.config_loader.get_group_options(group)
        for name in override.sweep_string_iterator():
            if name not in options:
                raise ConfigError(unknown_option(group, name, options))


def check_empty_sweeps(config: DictConfig) -> None:
    """Refuse (``ConfigError``) a sweep over a range that holds no value
    (``-m model.alpha=range(0,0)``, ``range(5,1)``): Hydra launched no job, and the sweep's
    parent run ended FINISHED, a sweep done, with no trial."""
    from hydra.core.override_parser.types import RangeSweep

    if OmegaConf.select(config, "hydra.mode") != RunMode.MULTIRUN:
        return
    task = OmegaConf.select(config, "hydra.overrides.task")
    if not task:
        return
    given = [str(item) for item in OmegaConf.to_container(task)]  # type: ignore[union-attr]
    for line, override in zip(given, OverridesParser.create().parse_overrides(given), strict=True):
        if isinstance(override.value(), RangeSweep) and not list(override.sweep_iterator()):
            raise ConfigError(
                f"{line} sweeps no value: a range counts from its start up to its stop, not "
                "including it (range(1,4) is 1, 2, 3): give a stop past the start"
            )


def _roots_composed_without(config: DictConfig, given: list[str], left_out: list[str]) -> set[str]:
    """The root keys of the app's config composed from its command line without the
    overrides ``left_out``, by the Hydra that composed ``config`` (the same search path,
    ``--config-dir`` included, and primary config)."""
    # A sweep's config as it starts leaves its sweeps out, as Hydra composed it.
    multirun = OmegaConf.select(config, "hydra.mode") == RunMode.MULTIRUN
    overrides = [line for line in given if line not in left_out]
    composed = GlobalHydra.instance().hydra.compose_config(  # type: ignore[union-attr]
        config_name=OmegaConf.select(config, "hydra.job.config_name"),
        overrides=overrides,
        run_mode=RunMode.MULTIRUN if multirun else RunMode.RUN,
    )
    return set(composed)


def _leaves(node: object, path: str) -> list[str]:
    """The dotted paths of a config node's leaves (itself for a value or a list), under
    ``path``; read without resolving, as an interpolation may resolve only in a run."""
    if isinstance(node, DictConfig) and len(node):
        return [leaf for key in node for leaf in _leaves(node._get_node(key), f"{path}.{key}")]
    return [path]


class StartCheck(Callback):
    """Hydra callback (conf/hydra/default.yaml): ``refuse_at_start`` before a run or a sweep
    starts. A ``SystemExit`` carries its refusal: Hydra turns a callback's ``Exception`` into a
    warning and goes on."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_at_start(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_at_start(config)


def check_output_folder(config: DictConfig) -> None:
    """Refuse (``ConfigError``) an output folder Hydra cannot make or write in: a file in the
    way, a parent that cannot be made, a folder that is not writable.

    Hydra makes it as the job (or, in a sweep, the launcher) starts: its ``OSError`` was a
    traceback, and in a sweep it came after the parent run had opened, which then ended FAILED
    for a mistyped folder. Made here, before any run, as Hydra would make it.
    """
    multirun = OmegaConf.select(config, "hydra.mode") == RunMode.MULTIRUN
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    folder = OmegaConf.select(config, key)
    if folder is None:
        return
    path = Path(str(folder))
    try:
        path.mkdir(parents=True, exist_ok=True)
        why = None if os.access(path, os.W_OK | os.X_OK) else "not writable"
    except OSError as error:
        why = error.strerror or type(error).__name__
    if why is not None:
        raise ConfigError(
            f"{key}: cannot make the output folder {path} ({why}): "
            f"give {key}=<a folder you can write>"
        )


class StartFolder(Callback):
    """Hydra callback (conf/hydra/default.yaml): each job works in the folder its command was
    started in (``hydra.runtime.cwd``), ``hydra.job.chdir=true`` or not.

    Every relative path pricer is given is the user's, typed where they stand: with
    ``hydra.job.chdir=true`` a job worked in its output folder, so ``data.train_paths=[a.jsonl]``
    was "not found" beside the file, ``output_path=h.csv`` was written there while the line
    said "h.csv", and a relative store (``MLFLOW_TRACKING_URI=sqlite:///mlflow.db``) was a new,
    empty one in each output folder, the run's link pointing at the user's. Hydra's own files
    (.hydra/, the job's log) go to the output folder by its full path all the same.
    """

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        start = OmegaConf.select(config, "hydra.runtime.cwd")
        if start and os.getcwd() != start:
            os.chdir(start)  # Hydra goes back to where it was once the job ends


def refuse_at_start(config: DictConfig) -> None:
    """What is refused before a run or a sweep starts (``check_added_keys``,
    ``check_swept_options``, ``check_empty_sweeps``, ``check_output_folder``), as pricer's one
    line, ``error: ...``, exit 2. The lines name keys, a config group's options, a range of
    numbers and an output folder, never a setting's own value, so they need no redaction, which
    lives above this module (pricer.tracking)."""
    try:
        check_added_keys(config)
        check_swept_options(config)
        check_empty_sweeps(config)
        check_output_folder(config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(USER_ERROR_STATUS) from None


def register() -> None:
    """Register the resolvers and every group's schema (idempotent)."""
    paths.register_resolvers()
    store = ConfigStore.instance()
    for group, schema in SCHEMAS.items():
        store.store(name=f"schema_{group}", node=writable_node(schema))
    for option, schema in DATA_SCHEMAS.items():
        store.store(name=f"schema_data_{option}", node=writable_node(schema))
    for app, schema in APP_SCHEMAS.items():  # conf/<app>.yaml's own keys
        store.store(name=f"schema_app_{app}", node=writable_node(schema))


register()
