"""Which registered model answers a prediction, and how to say so.

Each evaluation data has its registered model ``<prefix>-<data.name>`` (``pricer-real``,
``pricer-synthetic``), written by promote. predict loads ``<that model>@champion``: the data
is chosen explicitly, or, when the store holds exactly one champion, that one. Whatever is
loaded is described in one line (model, version, family, what it was evaluated on) so the
answer never comes without its context.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)
from mlflow.pyfunc import PyFuncModel
from omegaconf import OmegaConf
from sqlalchemy.exc import SQLAlchemyError

from pricer.errors import UserError
from pricer.models.llm.answering import ANSWERED_BY, OTHER_MODEL_ANSWERS
from pricer.paths import require_config_dir
from pricer.tracking.candidates import other_model_note
from pricer.tracking.data import EVAL_SIZE_TAG
from pricer.tracking.model import (
    api_key_settings,
    download_checked,
    load_pyfunc,
    logged_model_id,
    pinned_model,
    refuse_pickled,
    unloadable_model_uri,
)
from pricer.tracking.names import retire_command
from pricer.tracking.run import FAMILY_TAG
from pricer.tracking.store import check_reachable, refusal, require_existing, safe_uri

DATA_TAG = "pricer.data"  # set on each version by promote (its runs' data.name)


class ModelNotFound(UserError):
    """No registered model or version to price with."""


class StoreUnreadable(UserError):
    """The tracking store did not answer (a server down, a mistyped MLFLOW_TRACKING_URI)."""


# What MLflow answers for a registered model or an alias that does not exist.
MISSING = {ErrorCode.Name(RESOURCE_DOES_NOT_EXIST), ErrorCode.Name(INVALID_PARAMETER_VALUE)}


@dataclass(frozen=True)
class ServedModel:
    uri: str
    description: str  # one line: which model answered, evaluated on what
    model: PyFuncModel


def champions(client: MlflowClient, prefix: str, alias: str) -> dict[str, ModelVersion]:
    """Registered ``<prefix>-*`` models that have a version under ``alias``, by name."""
    found: dict[str, ModelVersion] = {}
    token: str | None = None
    while True:  # a page holds 100 models: a team's registry holds more
        page = client.search_registered_models(f"name LIKE '{prefix}-%'", page_token=token)
        for model in page:
            if alias in model.aliases:
                found[model.name] = client.get_model_version(model.name, model.aliases[alias])
        token = page.token
        if not token:
            return found


def predict_options(model_name: str, alias: str, data: str) -> str:
    """The options with which predict and serve load ``model_name@alias``, for a line that
    tells the user: ``--data <data>`` where that names it, else ``--model-name`` and
    ``--alias`` as needed.

    predict takes neither ``registry.prefix`` nor the alias from promote's overrides: it
    reads conf/registry, so ``--data <data>`` loads ``<that prefix>-<data>@<that alias>``.
    """
    defaults = OmegaConf.load(require_config_dir() / "registry" / "default.yaml")
    chosen = f"{defaults.prefix}-{data}"
    options = [("--data", data) if model_name == chosen else ("--model-name", model_name)]
    if alias != defaults.champion_alias:
        options.append(("--alias", alias))
    # A value that starts with a dash is read by argparse as an option unless joined by "=".
    return " ".join(
        shlex.quote(f"{option}={value}") if value.startswith("-") else shlex.join([option, value])
        for option, value in options
    )


def choose_uri(
    client: MlflowClient, settings: Mapping[str, Any]
) -> tuple[str, ModelVersion | None]:
    """The model URI to load and its registered version (None for a bare ``model_uri``).

    ``settings``: ``model_uri``, ``model_name`` (None: by data), ``prefix``, ``alias`` (and
    ``champion_alias``, ``challenger_alias``: conf/registry's, for advice on a model gone).
    """
    if settings["model_uri"]:
        return str(settings["model_uri"]), None
    alias, name = settings["alias"], settings["model_name"]
    if name is None:
        found = champions(client, settings["prefix"], alias)
        if len(found) != 1:
            listed = ", ".join(f"--data {n.removeprefix(settings['prefix'] + '-')}" for n in found)
            raise ModelNotFound(
                f"several {alias}s, one per data: choose one ({listed})"
                if found
                else f"no registered {settings['prefix']}-<data> model has a {alias}: "
                "run pricer promote data=<data> first"
            )
        [(name, version)] = found.items()
        return f"models:/{name}@{alias}", version
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if error.error_code not in MISSING:  # the store did not answer: no "promote first"
            raise
        data = str(name).removeprefix(f"{settings['prefix']}-")
        where = safe_uri(mlflow.get_tracking_uri())
        raise ModelNotFound(
            f"no models:/{name}@{alias} in {where}: run pricer promote "
            f"data={data} first, or choose another --data/--alias"
        ) from error
    return f"models:/{name}@{alias}", version


def describe(uri: str, version: ModelVersion | None, alias: str | None) -> str:
    if version is None:
        return f"model {uri}"
    tags = version.tags
    family = tags.get(FAMILY_TAG) or "unknown family"
    data = tags.get(DATA_TAG) or "unknown"
    scored = f"{tags[EVAL_SIZE_TAG]} test items" if EVAL_SIZE_TAG in tags else "test items"
    mae = f", mae ${float(tags['pricer.mae']):,.2f}" if "pricer.mae" in tags else ""
    held = f" ({alias})" if alias else ""
    others = int(tags.get(OTHER_MODEL_ANSWERS, "0") or 0)
    return (
        f"{version.name} version {version.version}{held}: {family}, evaluated on {data} data "
        f"({scored}{mae}{other_model_note(others, tags.get(ANSWERED_BY, ''))})"
    )


@dataclass(frozen=True)
class Chosen:
    """A version chosen by alias: which one it was, to tell when the alias moves on."""

    name: str
    alias: str
    version: str


@dataclass(frozen=True)
class VerifiedModel:
    uri: str
    description: str  # one line: which model this is, evaluated on what
    local: Path  # its files, downloaded and checked against the digest logged with them
    chosen: Chosen | None = None  # None: named by a URI (--model-uri), not by an alias


def alias_version(chosen: Chosen) -> str | None:
    """The version ``chosen.alias`` names now: "" if it names none any more, None if the store
    does not answer (a server running for days outlives a store's restart: asked again later).
    """
    try:
        version = MlflowClient().get_model_version_by_alias(chosen.name, chosen.alias)
    except MlflowException as error:
        return "" if error.error_code in MISSING else None
    except (SQLAlchemyError, OSError):
        return None
    return str(version.version)


def fetch_verified(
    tracking_uri: str, settings: Mapping[str, Any], destination: Path | None = None
) -> VerifiedModel:
    """Download what ``settings`` point at (see `choose_uri`) and check its files.

    Its logging must have finished, its files be the ones logged (``download_checked``) and
    not an old pickle; only then may anything import its code or read its file.
    ``destination``: the folder to download into (default: one of MLflow's temporary folders).
    """
    if settings["model_uri"] and (why := unloadable_model_uri(str(settings["model_uri"]))):
        raise ModelNotFound(f"cannot load {settings['model_uri']}: {why}")
    require_existing(tracking_uri)  # a mistyped path: said, not created
    check_reachable(tracking_uri)  # seconds, not MLflow's minutes of retries
    mlflow.set_tracking_uri(tracking_uri)
    try:  # a file that is no database fails as the client opens it
        client = MlflowClient()
        uri, version = choose_uri(client, settings)
    except (MlflowException, SQLAlchemyError) as error:  # "no models:/... promote first"
        if (line := refusal(error, tracking_uri)) is not None:
            raise StoreUnreadable(line) from None
        raise StoreUnreadable(
            f"cannot read the registry at {safe_uri(tracking_uri)}: {str(error).splitlines()[0]}"
        ) from error
    # Loading downloads the model's files with a progress bar on stderr; predict's stderr says
    # which model answered, in one line, and nothing else.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # The version described, not the alias: another promotion may move it meanwhile, and the
    # line above the prices would name one version while another answered.
    alias = None if settings["model_uri"] else settings["alias"]
    try:
        if version is None:
            pinned, model_id = pinned_model(uri)
            if pinned.startswith("models:/") and pinned.count("/") == 2:  # name/version
                version = client.get_model_version(*pinned.removeprefix("models:/").split("/"))
                alias = uri if pinned != uri else None  # an alias or "latest": as asked
        else:
            pinned = f"models:/{version.name}/{version.version}"
            model_id = logged_model_id(version)
        require_api_keys(pinned, uri)
        where = None if destination is None else str(destination)
        # Checked before its code is imported and its file read; whether its logging finished,
        # before anything is downloaded.
        local = download_checked(pinned, model_id, uri, dst_path=where)
        # An old pickled pricer is unpickled by its own code, whatever MLflow's setting says.
        refuse_pickled(local, uri)
    except MlflowException as error:
        # The first line: MLflow's advice on an mlflow-artifacts:/ URI ran on for three more.
        said = f"cannot load {uri} from {safe_uri(tracking_uri)}: {_first_line(error)}"
        if version is not None and error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            # MLflow's "No such artifact: ''" alone did not say whose files, nor what to do.
            said += f" (version {version.version}'s logged model was deleted or its files removed"
            if settings["model_uri"]:
                said += ")"
            elif settings["alias"] == settings.get("challenger_alias"):
                # Retiring is for a champion: "registry.champion_alias=challenger retire=true"
                # stopped at once, the two aliases being one.
                said += (
                    f": the {settings['alias']} alias names a model nothing can load; choose "
                    "another --alias)"
                )
            else:
                said += (
                    f": retire it with {_retire_command(version, settings)}, then promote to "
                    "crown a new one)"
                )
        raise ModelNotFound(said) from error
    except ImportError as error:  # an artifact store's library (boto3 for s3://) not here
        raise ModelNotFound(
            f"cannot load {uri}: {error} (its artifact store needs a library not installed "
            "here: install it, or predict elsewhere)"
        ) from error
    except OSError as error:  # an ftp:// host not found, a connection refused, libhdfs failing
        raise ModelNotFound(f"cannot load {uri}: {_first_line(error)}") from error
    chosen = (
        Chosen(version.name, str(settings["alias"]), str(version.version))
        if version is not None and not settings["model_uri"]
        else None
    )
    return VerifiedModel(uri, describe(uri, version, alias), local, chosen)


def require_api_keys(pinned: str, uri: str) -> None:
    """Refuse a model whose LLM (its own, or an ensemble member's) would call its server with
    a key this environment does not hold, before anything is downloaded: served, it answered
    every request with HTTP 400 "Verify that the serialized input Dataframe is compatible"
    and a traceback, under a line saying it served. The keys are those its run's config named
    (``api_key_settings``); a model with no record (a path) is left to fail as it prices."""
    try:
        keys = api_key_settings(pinned)
    except MlflowException:  # its run gone: nothing says which keys it needs
        return
    if not keys:
        return
    from pricer.models.llm.client import read_api_key  # the openai SDK, for LLMs only

    for path, api_key_env in keys:
        try:
            read_api_key(api_key_env)
        except UserError as error:
            member = f" (its member {'.'.join(path)})" if path else ""
            raise ModelNotFound(f"cannot price with {uri}{member}: {error}") from error


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _retire_command(version: ModelVersion, settings: Mapping[str, Any]) -> str:
    """The command that retires the version ``settings`` chose by its alias: its data from
    the version's own tags, its registered model and alias where they are not the data's."""
    data = version.tags.get("pricer.data") or "<data>"
    overrides = [f"data={data}"]
    if version.name != f"{settings['prefix']}-{data}":
        overrides.append(f"registry.model_name={version.name}")
    if settings["alias"] != settings.get("champion_alias", "champion"):  # conf/registry's
        overrides.append(f"registry.champion_alias={settings['alias']}")
    return retire_command(*overrides)


def load_served_model(tracking_uri: str, settings: Mapping[str, Any]) -> ServedModel:
    """Load what ``settings`` point at, its files checked first; one line says what it is."""
    verified = fetch_verified(tracking_uri, settings)
    try:
        model = load_pyfunc(verified.local)
    except MlflowException as error:
        raise ModelNotFound(
            f"cannot load {verified.uri} from {safe_uri(tracking_uri)}: {error}"
        ) from error
    except ImportError as error:  # the model's code needs a library not installed here
        raise ModelNotFound(
            f"cannot load {verified.uri}: {error} (install it, or predict elsewhere)"
        ) from error
    return ServedModel(verified.uri, verified.description, model)
