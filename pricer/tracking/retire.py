"""Retire a data's champion: ``pricer promote data=real retire=true``.

When the champion's model is gone (its LoggedModel deleted, its files removed or changed),
promote refuses to compare with it and predict and serve cannot load it; the only way out was
deleting the alias in the MLflow UI or with ``MlflowClient``, which recorded nothing. Retiring
deletes the champion alias and records the decision where promotions record theirs: a
``promotion`` run (``pricer.decision=retired``), a line in the registered model's history, and
the version's own tags (``pricer.retired_at``, ``pricer.retired_by_run_id``) and description
("Champion from ... until ... (retired ...)"). The record is written first and the alias
deleted last; a failure before the alias is gone takes the record back, so the registry never
says a champion was retired while it still holds the alias, nor loses the alias unrecorded.
The next ``pricer promote`` crowns a first champion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf

from pricer import interrupt
from pricer.errors import ConfigError, one_line
from pricer.tracking import names
from pricer.tracking.candidates import PromotionError, require_data
from pricer.tracking.registry import (
    PROMOTE_ONLY,
    RETIRED_TAGS,
    ChampionMoved,
    Lease,
    LeaseLost,
    Pending,
    RecordIncomplete,
    RegistrySettings,
    announce,
    append_history,
    champion_version,
    drop_history_line,
    every_step,
    given_overrides,
    held_until,
    history_key,
    require_datas_name,
    settle,
    store_says_gone,
    store_step,
    take_up_unfinished,
)
from pricer.tracking.run import FAMILY_TAG, KIND_TAG, configure_tracking, log_config, tracked_run
from pricer.tracking.store import STORE_ERRORS, StoreUnreachable, require_existing


class NothingToRetire(PromotionError):
    """The data's registered model does not exist, or holds no champion."""


def refuse_promote_settings(overrides: list[str]) -> None:
    """Refuse ``candidates.*`` and ``eval.*`` overrides: retiring chooses and compares no
    candidate, and ``retire=true candidates.family=xgboost`` retired the champion whatever
    the family, saying nothing of the setting it ignored."""
    ignored = [item for item in overrides if item.lstrip("+~").startswith(PROMOTE_ONLY)]
    if ignored:
        them = "it" if len(ignored) == 1 else "them"
        raise ConfigError(
            f"{', '.join(ignored)}: retire=true retires the champion and chooses or compares "
            f"no candidate, so candidates.* and eval.* settings do nothing there: drop {them}"
        )


@dataclass(frozen=True)
class Retirement:
    version: str  # the version the champion alias left
    reason: str


def retire(cfg: DictConfig) -> Retirement:
    """Delete the data's champion alias and record why, inside a tracked ``promotion`` run."""
    refuse_promote_settings(given_overrides())  # first: nothing is read or written before
    require_existing(cfg.tracking.uri)  # a mistyped store: nothing there to retire
    configure_tracking(cfg.tracking)
    data = require_data(OmegaConf.select(cfg, "data.name"), cfg.candidates.experiment)
    registry = RegistrySettings.from_config(cfg.registry)
    require_datas_name(registry.model_name, str(cfg.registry.prefix), data)
    client = MlflowClient()
    name, alias = registry.model_name, registry.champion_alias
    # Before any run: nothing to retire is a refusal, and leaves nothing in the store.
    with store_step("reading the champion"):
        try:
            model = client.get_registered_model(name)
        except MlflowException as error:
            if not store_says_gone(error):
                raise
            raise NothingToRetire(
                f"{name} is not registered (nothing was promoted on {data} data): there is no "
                f"{alias} to retire"
            ) from None
        if alias not in model.aliases:
            raise NothingToRetire(
                f"{name} has no {alias} to retire (retired, or never crowned): pricer promote "
                f"data={data} crowns one"
            )
        current = client.get_model_version(name, model.aliases[alias])
    tags = {KIND_TAG: "promotion", "pricer.registered_model": name, "pricer.data": data}
    with tracked_run(cfg.tracking, run_name=names.run_name("retire", data), tags=tags) as run:
        with store_step("logging the promotion run's config"):
            log_config(cfg)
        retirement = _retire(client, registry, current, run.info.run_id)
        with interrupt.deferred(release=False):  # the run records what the registry holds
            try:
                mlflow.set_tags(
                    {
                        "pricer.decision": "retired",
                        "pricer.registered_version": retirement.version,
                        **({"pricer.champion_run_id": current.run_id} if current.run_id else {}),
                    }
                )
                mlflow.log_text(retirement.reason, "promotion/decision.txt")
            except STORE_ERRORS as error:  # FAILED, with an error that says it was applied
                what = "this promotion run's record"
                raise _applied_but(registry, retirement, what, error) from error
        print(f"{name}: retired: {retirement.reason}", flush=True)
        return retirement


def _retire(
    client: MlflowClient, registry: RegistrySettings, current: ModelVersion, run_id: str
) -> Retirement:
    """The record first (the version's tags and description, the history line), the alias
    last; a failure before the alias is gone takes the record back."""
    version, alias = str(current.version), registry.champion_alias
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    why = f"retired by promotion run {run_id}"
    reason = (
        f"version {version} ({_described(current)}) is no longer {alias}, {why}; pricer "
        "promote crowns a new one"
    )
    history_tag = history_key()
    # Under the registered model's lease, as a promotion's check, record and move are: a
    # promotion crowning a new champion between this check and the alias's deletion had it
    # deleted unasked.
    with store_step("taking the registered model's lease"):  # nothing written yet
        held = registry.take_lease(client, "retire again")
    try:
        take_up_unfinished(client, registry, held)  # another's record a SIGKILL cut short
        _retire_held(client, registry, current, held, run_id, (history_tag, now, why, reason))
    finally:
        held.release()
    return Retirement(version, reason)


def _retire_held(
    client: MlflowClient,
    registry: RegistrySettings,
    current: ModelVersion,
    held: Lease,
    run_id: str,
    record: tuple[str, str, str, str],
) -> None:
    """The retirement's check, record and alias deletion, under ``held``; ``record``: its
    history line's tag, the time, why and the line's reason."""
    history_tag, now, why, reason = record
    name, version, alias = registry.model_name, str(current.version), registry.champion_alias
    with store_step("reading the champion"):  # nothing written yet
        _still_there(client, registry, version)
        # Read again under the lease: ``current`` was read before it, while a retirement killed
        # half-way still had its record on the version (this one's take-up put it back since),
        # and a failure below put that half-written record back from it.
        before = client.get_model_version(name, version)
    pending = {
        "kind": "retirement",
        "run_id": run_id,
        "version": version,
        "alias": alias,
        "history_key": history_tag,
        "at": now,
        "aliases": [alias, registry.challenger_alias],
        # As read with the alias: what taking the record back puts back (``_undo``).
        "description": before.description,
        "retired": {key: before.tags[key] for key in RETIRED_TAGS if key in before.tags},
    }
    # SIGTERM between these writes would leave a record of a retirement the alias did not
    # follow: a signal waits until they are done.
    with interrupt.deferred(release=False):
        try:
            # Before the first write: a SIGKILL before the alias was gone left the version
            # "retired" and a history line saying so while it still held the alias, for good;
            # the next lease holder reads this and puts the version back as it was.
            announce(client, held, pending)
            for key, value in {RETIRED_TAGS[0]: now, RETIRED_TAGS[1]: run_id}.items():
                client.set_model_version_tag(name, version, key, value)
            held_until(client, name, version, alias, now, why)
            append_history(client, name, f"{now} retired: {reason}", history_tag)
            # Checked again just before the alias goes (MLflow has no compare-and-delete): a
            # champion another promotion crowned meanwhile is not retired unasked.
            _still_there(client, registry, version)
            held.check()  # a holder slowed past its lease's end would race another
            client.delete_registered_model_alias(name, alias)
        except Exception as error:
            moved = isinstance(error, ChampionMoved | LeaseLost)
            if not moved and _alias_gone(client, name, alias):  # deleted: the record is true
                settle(client, held)  # nothing follows the deletion: the record is whole
                retired = Retirement(version, reason)
                raise _applied_but(registry, retired, "its record", error) from error
            undone = every_step(_undo(client, name, pending))
            if undone:
                settle(client, held)  # else left for the next lease holder to take back
            if moved or not isinstance(error, STORE_ERRORS):
                raise  # a champion that moved says so; a bug keeps its traceback
            # "The record was taken back" was said of one the store kept part of too.
            taken_back = (
                "the record was taken back"
                if undone
                else "the store failed again while the record was taken back: the next "
                "promote or retire takes up what is left of it"
            )
            raise StoreUnreachable(
                f"the tracking store failed while the retirement of {name}@{alias} was "
                f"recorded ({type(error).__name__}: {one_line(error)}): {alias} is still "
                f"version {version} and {taken_back}; retire again once it answers"
            ) from error
    settle(client, held)  # the alias is gone and the record whole


def _alias_gone(client: MlflowClient, name: str, alias: str) -> bool:
    """Whether the store says ``alias`` names no version; False when it does not answer."""
    try:
        return alias not in client.get_registered_model(name).aliases
    except Exception:  # the store that just failed: the record is taken back, to be safe
        return False


def _still_there(client: MlflowClient, registry: RegistrySettings, version: str) -> None:
    """Raise ``ChampionMoved`` unless the champion alias still names ``version``."""
    alias = registry.champion_alias
    now = champion_version(client, registry.model_name, alias)
    if now is None or str(now.version) != version:
        raise ChampionMoved(
            f"{alias} moved to {f'version {now.version}' if now else 'none'} while version "
            f"{version} was being retired (another promotion at once): nothing was retired; "
            f"{registry.model_name}@{alias} is as that promotion left it"
        )


def _undo(client: MlflowClient, name: str, pending: Pending) -> list[Callable[[], object]]:
    """The steps that take back a retirement's record whose alias was not deleted: the
    version's tags and description as they were (``pending``'s, read with the alias), the
    history without its line. Each may be made twice: the retirement's own writer and the
    next lease holder (``take_up_retirement``) may both make them."""
    version, before = str(pending["version"]), pending.get("retired") or {}
    steps: list[Callable[[], object]] = [
        lambda: drop_history_line(client, name, str(pending["history_key"])),
        lambda: client.update_model_version(name, version, description=pending["description"]),
    ]
    for key in RETIRED_TAGS:
        if key in before:
            value = str(before[key])
            steps.append(lambda k=key, v=value: client.set_model_version_tag(name, version, k, v))
        else:
            steps.append(lambda k=key: client.delete_model_version_tag(name, version, k))
    return steps


def take_up_retirement(client: MlflowClient, registry: RegistrySettings, found: Pending) -> str:
    """Take back (or leave standing) a retirement's record its writer left half-way, found by
    the next lease holder (``registry.take_up_unfinished``); what was done, in a line."""
    name, version, alias = registry.model_name, str(found["version"]), str(found["alias"])
    stopped = f"the retirement by promotion run {found['run_id']} stopped"
    now = client.get_registered_model(name).aliases.get(alias)  # the store's error is raised
    if now is None:
        # The alias is gone: the retirement held. Nothing follows its deletion, so the record
        # is whole; only the pending record is left to delete.
        return f"{stopped} after it deleted {alias} from version {version}: its record stands"
    # Still there (or, moved by hand meanwhile, on another version): not retired.
    for step in _undo(client, name, found):
        step()  # the store's error is raised: the pending record stays for the next holder
    return (
        f"{stopped} before it deleted {alias} from version {version}: its half-written record "
        f"was taken back ({alias} is version {now})"
    )


def _applied_but(
    registry: RegistrySettings, retirement: Retirement, what: str, error: Exception
) -> RecordIncomplete:
    return RecordIncomplete(
        f"{registry.model_name}@{registry.champion_alias} is retired as decided (version "
        f"{retirement.version} no longer holds it), but the tracking store failed while {what} "
        f"was written ({type(error).__name__}: {one_line(error)}); nothing to retire again"
    )


def _described(version: ModelVersion) -> str:
    """What the version is, from its own tags: its run may be gone, its model too."""
    family = version.tags.get(FAMILY_TAG, "a model")
    mae = version.tags.get("pricer.mae")
    figure = f", mae ${float(mae):,.2f}" if mae else ""
    return f"{family} run {version.run_id}{figure}"
