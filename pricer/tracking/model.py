"""Every family is logged the same way: the fitted pricer as a skops file inside an MLflow pyfunc.

The pyfunc takes a DataFrame of items (``text`` required; ``title``, ``category``, ``details``
optional) and returns prices in dollars, so ``mlflow.pyfunc.load_model`` and
``mlflow models serve`` work for any family without knowing which one it is.

A logged model ships only the pricer modules it needs to load and predict (the model
package, the pyfunc wrapper's imports and what those import; see ``model_files``), not the
whole package: no apps, devtools, run tracking or benchmarks. MLflow's ``infer_code_paths``
would find modules too, but only code under the current folder, and by loading the model once
more in a subprocess.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import logging
import os
import reprlib
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from urllib.request import url2pathname

import mlflow
import numpy as np
from mlflow.entities import LifecycleStage, LoggedModelStatus, Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.environment_variables import MLFLOW_ALLOW_PICKLE_DESERIALIZATION
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.models.model import MLMODEL_FILE_NAME, ModelInfo
from mlflow.store.artifact.utils.models import (  # the parser its download applies
    _parse_model_uri,
    get_model_name_and_version,
)
from mlflow.types.schema import ColSpec, Schema
from omegaconf.errors import OmegaConfBaseException

from pricer.errors import UserError
from pricer.models.base import OPTIONAL_COLUMNS, REQUIRED_COLUMN, Pricer
from pricer.models.ensemble import LoggedPricer
from pricer.settings import resolved_children
from pricer.tracking.model_files import (
    UnsafeModelFile,
    copy_modules,
    import_closure,
    load_pricer,
    required_modules,
    save_pricer,
)
from pricer.tracking.store import (
    check_reachable,
    open_store,
    safe_uri,
    unreachable_as_one_line,
)

if TYPE_CHECKING:  # the client (and the openai SDK) is not imported to load a model
    from pricer.models.llm.client import LoggedKeys

WRAPPER = Path(__file__).with_name("pyfunc_model.py")
MODEL_FILE = "pricer.skops"
LEGACY_PICKLE = "pricer.pkl"  # what models logged before the skops format hold
TRAINED_ON_FILE = "trained_on.npy"  # fingerprints of its training items (pricer.identity)
# Which version each logged ensemble member named by alias was, as the run loaded it (JSON).
MEMBERS_TAG = "pricer.members"
# The sha256 of a logged model's files, a tag of its LoggedModel: kept in the tracking store,
# apart from the artifact store that holds the files, and checked before any of them is loaded.
# The skops check (model_files) refuses a file that would run foreign code; it cannot tell a
# pricer file swapped for another valid pricer, which predicted without a word.
FILES_DIGEST_TAG = "pricer.files_sha256"
# The tag's value from the model's creation until its digest is recorded: a run interrupted
# between the two left a READY model with no digest, loaded unchecked as one logged before.
DIGEST_PENDING = "pending"
# What is added to a model's folder after it was logged, so not covered: the registry's note
# (written into the folder itself on a local store when a version is downloaded) and the
# bytecode Python caches beside the model's code when it is imported from there.
ADDED_AFTER_LOGGING = "registered_model_meta"
BYTECODE_FOLDER = "__pycache__"
# MLflow's warning for a model logged without an input example (colour codes before it).
NO_EXAMPLE_WARNING = r".*An input example was not provided when logging the model"

SIGNATURE = ModelSignature(
    inputs=Schema(
        [ColSpec("string", REQUIRED_COLUMN)]
        + [ColSpec("string", column, required=False) for column in OPTIONAL_COLUMNS]
    ),
    outputs=Schema([ColSpec("double", "price")]),
)


@contextmanager
def quiet_model_logging() -> Iterator[None]:
    """Without MLflow's INFO lines and "Downloading artifacts" bar while a model is logged and
    read back: they would land between pricer's progress display and its summary lines, once
    per family."""
    loggers = [logging.getLogger(name) for name in ("mlflow.pyfunc", "mlflow.models")]
    levels, bar = (
        [lg.level for lg in loggers],
        os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"),
    )
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        if bar is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = bar


def log_pricer(
    pricer: Pricer,
    *,
    name: str = "pricer",
    prompts: Sequence[str] = (),
    trained_on: np.ndarray | None = None,
) -> ModelInfo:
    """Log a fitted pricer as a model of the active run, e.g. named ``xgboost-real``.

    ``prompts``: URIs of registered prompts the pricer uses (``prompts:/name/version``), linked
    to the model so the prompt registry shows which models used each version.
    ``trained_on``: the fingerprints of the items it learned from (``pricer.identity``), kept
    as ``TRAINED_ON_FILE``, so a run that uses it as an ensemble member knows what it has seen.

    Logged with its signature and no input example: with an example, MLflow loads the saved
    model back and predicts on it to validate serving (``mlflow.pyfunc.log_model`` has no
    switch to skip only that), so an LLM family made 2 API calls that no run figure counted
    (a run's ``llm.*`` metrics are taken before its model is logged). The signature already
    tells serving and the UI what the model takes; ``check_logged_model`` checks the logged
    pricer file loads before it is registered.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / MODEL_FILE
        save_pricer(pricer, path)
        artifacts = {"pricer": str(path)}
        if trained_on is not None:
            artifacts["trained_on"] = str(Path(folder) / TRAINED_ON_FILE)
            np.save(artifacts["trained_on"], trained_on.astype(np.uint64), allow_pickle=False)
        modules = required_modules(WRAPPER)
        code = copy_modules(modules, Path(folder) / "code")
        with quiet_model_logging(), warnings.catch_warnings():
            # Left out on purpose (see above): MLflow's warning would ask every run for one.
            warnings.filterwarnings("ignore", message=NO_EXAMPLE_WARNING, category=UserWarning)
            info = mlflow.pyfunc.log_model(
                name=name,
                prompts=list(prompts) or None,
                python_model=str(WRAPPER),
                artifacts=artifacts,
                signature=SIGNATURE,
                code_paths=[str(code)],
                pip_requirements=list(runtime_requirements(modules)),
                tags={FILES_DIGEST_TAG: DIGEST_PENDING},
            )
    # Digested as stored (read back: in place on a local store, a download from a server).
    with quiet_model_logging(), tempfile.TemporaryDirectory() as folder:
        stored = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=folder))
        mlflow.set_logged_model_tags(info.model_id, {FILES_DIGEST_TAG: files_digest(stored)})
    return info


def files_digest(folder: Path) -> str:
    """sha256 over a model folder's files: each one's relative path and content, in path order
    (what is added after logging left out, see ``ADDED_AFTER_LOGGING``)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or BYTECODE_FOLDER in relative.parts:
            continue
        if relative.as_posix() == ADDED_AFTER_LOGGING:
            continue
        with path.open("rb") as file:
            content = hashlib.file_digest(file, "sha256").hexdigest()
        digest.update(f"{relative.as_posix()}\0{content}\n".encode())
    return digest.hexdigest()


def download_checked(
    pinned: str, model_id: str | None, model_uri: str, dst_path: str | None = None
) -> Path:
    """Download the model ``pinned`` names (``model_uri`` as asked, for messages) and check its
    files against the digest recorded at logging (``verify_files``); returns its folder.

    Whether its logging finished, and which digest it recorded, is read before anything is
    downloaded: a model left PENDING before MLflow stored any file failed in the download with
    MLflow's "No such artifact: ''", never reaching the refusal that says why.
    """
    recorded = finished_digest(model_id, model_uri)
    local = Path(mlflow.artifacts.download_artifacts(pinned, dst_path=dst_path))
    verify_files(local, recorded, model_uri, model_id)
    check_mlmodel(local, model_uri)
    return local


# What MLflow's pyfunc loader reads of the python_function flavor, and the types it needs.
FLAVOR_TEXTS = {"loader_module": True, "code": False, "data": False, "model_code_path": False}


def check_mlmodel(local: Path, model_uri: str) -> None:
    """Raise ``UnsafeModelFile`` if a downloaded model's MLmodel file cannot be read as
    MLflow's pyfunc loader reads it.

    The digest covers the file, but not a model logged before pricer recorded one, nor one
    named by a ``runs:/`` URI or a path: an MLmodel emptied, cut short or edited there ended
    in MLflow's YAML, KeyError or TypeError traceback. A missing file is left to MLflow,
    whose error says so in one line.
    """
    path = local / MLMODEL_FILE_NAME
    if not path.is_file():
        return
    try:
        flavors = Model.load(str(path)).flavors
        flavor = flavors.get(mlflow.pyfunc.FLAVOR_NAME) if isinstance(flavors, dict) else None
    except Exception as error:  # yaml's, a decoding error, MLflow's on a field's shape
        problem = f"{type(error).__name__}: " + (str(error).strip().splitlines() or [""])[0]
    else:
        problem = _flavor_problem(flavors, flavor)
    if problem is not None:
        raise UnsafeModelFile(
            f"refusing {model_uri}: its {MLMODEL_FILE_NAME} file is damaged ({problem}); "
            "log the model again"
        )


def _flavor_problem(flavors: object, flavor: object) -> str | None:
    """What is wrong with an MLmodel's flavors for MLflow's pyfunc loader, or None."""
    if not isinstance(flavors, dict):
        return f"flavors is {reprlib.repr(flavors)}, not a mapping"
    if flavor is None:
        return f"no {mlflow.pyfunc.FLAVOR_NAME} flavor"
    if not isinstance(flavor, dict):
        return f"flavors.{mlflow.pyfunc.FLAVOR_NAME} is {reprlib.repr(flavor)}, not a mapping"
    for key, required in FLAVOR_TEXTS.items():
        value = flavor.get(key)
        if (value is None and required) or (value is not None and not isinstance(value, str)):
            return f"flavors.{mlflow.pyfunc.FLAVOR_NAME}.{key} is {reprlib.repr(value)}, not a name"
    return None


def finished_digest(model_id: str | None, model_uri: str) -> str | None:
    """The digest recorded for the logged model ``model_id``'s files; None if it has none (logged
    before pricer recorded one, or not a logged model: a ``runs:/`` URI, a path).

    Raises ``UnsafeModelFile`` if its logging never finished (a run interrupted while it logged
    the model: MLflow leaves it PENDING, or READY before pricer recorded the digest; FAILED: an
    error): it has no digest, and it read as a model logged before digests, loaded unchecked, a
    file swapped in it included.
    """
    if model_id is None:
        return None
    logged = mlflow.get_logged_model(model_id)
    recorded = logged.tags.get(FILES_DIGEST_TAG)
    unfinished = None
    if logged.status != LoggedModelStatus.READY:
        unfinished = f"status {logged.status}"
    elif recorded == DIGEST_PENDING:
        unfinished = "no digest recorded"
    if unfinished is not None:
        raise UnsafeModelFile(
            f"refusing {model_uri}: its logging as {model_id} did not finish ({unfinished}), "
            "so its files may be partial and cannot be checked; log the model again"
        )
    return recorded


def verify_files(
    local: Path, recorded: str | None, model_uri: str, model_id: str | None = None
) -> None:
    """Raise ``UnsafeModelFile`` if a downloaded model's files do not match ``recorded``, the
    digest ``finished_digest`` read before the download (None: not checked).

    Bytecode beside the model's code goes first, checked or not: the digest leaves it out (it
    is written as the code is imported), and Python runs a ``__pycache__`` file instead of
    its checked source (an unchecked-hash .pyc added to a model folder ran under pricer
    serve and predict).
    """
    for cache in [path for path in local.rglob(BYTECODE_FOLDER) if path.is_dir()]:
        try:
            shutil.rmtree(cache)
        except FileNotFoundError:  # another process loading the same folder removed it
            pass
        except OSError as error:
            raise UnsafeModelFile(
                f"refusing {model_uri}: cannot remove the bytecode in {cache} ({error}), which "
                "Python would run unchecked"
            ) from None
    if recorded is None:
        return
    found = files_digest(local)
    if found != recorded:
        raise UnsafeModelFile(
            f"refusing {model_uri}: its files are not the ones logged as {model_id} (sha256 "
            f"{found[:12]}... now, {recorded[:12]}... then): a file in the artifact store was "
            "changed, added or removed since; log the model again"
        )


@functools.cache
def runtime_requirements(modules: frozenset[str]) -> tuple[str, ...]:
    """Pinned distributions of MLflow and of every third-party package the shipped ``modules``
    import, as installed here.

    Derived from the code, not listed: a hand-kept list had fallen behind it (no lightgbm for
    the stack, no hydra-core or omegaconf for the settings every family checks), so a model
    served in an environment of its own (``--env-manager virtualenv``) could not import.
    Cached: neither the code nor the installed packages change while a process runs, and the
    lookup takes 0.33 s, once per family of a leaderboard otherwise.
    """
    _, imported = import_closure(modules)
    distributions = metadata.packages_distributions()
    names = {"mlflow"} | {name for package in imported for name in distributions.get(package, [])}
    return tuple(sorted(f"{name}=={metadata.version(name)}" for name in names))


def logged_pricer(model_uri: str) -> LoggedPricer:
    """A pricer logged to MLflow (``models:/name@alias``, ``models:/m-...``), as an ensemble
    member that is used as it is, never refitted.

    The Hydra target for a logged member:
    ``+model.members.best._target_=pricer.tracking.model.logged_pricer``.

    A model logged before the skops format holds a pickle that its own code unpickles: such
    a model loads only while ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` allows it.
    """
    # Pinned first, then loaded: an alias that moves meanwhile cannot split the two.
    pinned, model_id = pinned_model(model_uri)
    if pinned.startswith("runs:/"):  # a URI only a sweep's trial resolves is checked here
        live_run(pinned.removeprefix("runs:/").partition("/")[0], model_uri)
    local = download_checked(pinned, model_id, model_uri)
    if not refuse_pickled(local, model_uri) and not (local / "artifacts" / MODEL_FILE).is_file():
        # Checked before loading it: MLflow loaded any other model (its code, its pickles),
        # then failed in words of its own ("'_SklearnModelWrapper' object has no attribute
        # 'python_model'").
        raise NotAPricer(
            f"{model_uri} is no model pricer logged (it holds no {MODEL_FILE}): a logged member "
            "must be a pricer's model (pricer train ... logs one)"
        )
    wrapper = load_pyfunc(local).unwrap_python_model()
    _record_member(model_uri, pinned, model_id)
    return LoggedPricer(pricer=wrapper.pricer, source=pinned, trained_on=trained_on(local))


# The Hydra target of an ensemble's logged member (``logged_pricer``), as a config names it.
LOGGED_PRICER = f"{__name__}.logged_pricer"
KEY_SETTING = "api_key_env"  # an LLM client's setting: the name of the variable holding its key
MODEL_PARAM = "model"  # a run's family settings, logged as params under model.* (log_config)


def logged_member_uri(node: object) -> str | None:
    """The model URI a config node loads as a logged member (``LOGGED_PRICER``); None for any
    other node, or one whose values only a sweep's trial resolves."""
    if not isinstance(node, Mapping):
        return None
    try:
        target, model_uri = node.get("_target_"), node.get("model_uri")
    except OmegaConfBaseException:  # resolvable in the run only
        return None
    return str(model_uri) if target == LOGGED_PRICER and model_uri is not None else None


def logged_keys(tracking_uri: str) -> LoggedKeys:
    """How ``check_api_keys`` finds the keys a config's logged members need (``LoggedKeys``):
    the ``api_key_env`` settings each one's model was fitted with (``api_key_settings``), read
    from the store at ``tracking_uri``, which only a config with a logged member opens.

    A member whose model cannot be found is passed over: ``check_logged_members`` refuses it
    first; one the store fails to read otherwise is left to the run, which says why as it loads
    the member, before any other member fits.
    """

    def keys(node: object) -> tuple[str, list[tuple[tuple[str, ...], str]]] | None:
        model_uri = logged_member_uri(node)
        if model_uri is None:
            return None
        with members_store(tracking_uri):
            try:
                return model_uri, api_key_settings(model_uri)
            except MlflowException:
                return None

    return keys


@contextmanager
def members_store(tracking_uri: str) -> Iterator[None]:
    """The store at ``tracking_uri`` opened for reading logged members' records before a run:
    the run's store, the one its members load from. One that does not answer is one line
    (``StoreUnreachable``), within seconds rather than after MLflow's minutes of retries."""
    mlflow.set_tracking_uri(tracking_uri)
    check_reachable(tracking_uri)
    with unreachable_as_one_line(tracking_uri), open_store(tracking_uri):
        yield


# What a model URI may be, for the line that refuses one MLflow cannot load a model from.
MODEL_URI_FORMS = (
    "models:/<name>/<version>, models:/<name>@<alias>, models:/m-<id>, runs:/<run id>/<path>, "
    "a local folder, or an artifact store's URI (s3://, gs://, mlflow-artifacts:/, ...)"
)
# MLflow reads http(s) only as its artifact server's API, where a model folder's URI has this
# path; any other web address failed inside MLflow's HTTP repository (a ValueError traceback).
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
HADOOP_SCHEMES = ("hdfs", "viewfs")
# Where Arrow looks for libhdfs, Hadoop's client library: with neither set, it looked for a JVM
# anyway, printed a dozen dlopen failures and ended in MLflow's OSError traceback.
HADOOP_SETTINGS = ("HADOOP_HOME", "ARROW_LIBHDFS_DIR")


def unloadable_model_uri(model_uri: str) -> str | None:
    """Why MLflow cannot load a model from ``model_uri`` here (with what it takes instead), or
    None: said before the store or the network is asked anything."""
    parts = urlsplit(model_uri)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https") and ARTIFACTS_API not in parts.path:
        return (
            "a web address, which MLflow loads no model from (a model on an "
            f"MLflow server is models:/... with MLFLOW_TRACKING_URI set to the server); give "
            f"{MODEL_URI_FORMS}"
        )
    if scheme in HADOOP_SCHEMES and not any(os.environ.get(name) for name in HADOOP_SETTINGS):
        return (
            "Hadoop's client library is needed (libhdfs, found through "
            f"{' or '.join(HADOOP_SETTINGS)}), and neither is set here; give {MODEL_URI_FORMS}"
        )
    return None


class UnloadableMember(UserError):
    """A logged member whose model this command could not load."""


class LoggedModelNotFound(UnloadableMember):
    """A logged member names a model that is not there: a typo, a name never registered, an
    alias never set, a model or run deleted, a path that does not exist."""


class NotAPricer(UnloadableMember):
    """A logged member names a model that pricer did not log (an sklearn model, say)."""


class StoreLibraryMissing(UnloadableMember):
    """A logged member's files are in an artifact store whose library is not installed here."""


# The model URIs a logged member finds in the tracking store (a registered name or a logged
# model's id; a run's files); a path is looked for on disk; any other scheme (s3://, ...) is
# the run's to read, once the library its store needs is known to be here.
STORE_SCHEMES = ("models", "runs")
LOCAL_SCHEMES = ("", "file")
NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"  # MLflow's error code for a name, id or run not there
# What MLflow's artifact repositories (3.17) import to read from each store: the S3 family's
# only as it first downloads, after a run has opened and loaded its data.
STORE_LIBRARIES = {
    "s3": ("boto3", "botocore.client"),
    "r2": ("boto3", "botocore.client"),
    "b2": ("boto3", "botocore.client"),
    "gs": ("google.cloud.storage",),
    "wasbs": ("azure.storage.blob",),
    "abfss": ("azure.storage.filedatalake",),
    "sftp": ("paramiko", "pysftp"),
}


def check_logged_members(models: Mapping[str, object], tracking_uri: str) -> None:
    """Refuse, before any run opens, every logged member (``LOGGED_PRICER``) of the configs in
    ``models`` (the key each is set under -> its config node) whose model cannot be found: in
    the store at ``tracking_uri`` for a ``models:/`` or ``runs:/`` URI, on disk for a path.

    Found by the lookups ``logged_pricer`` makes before it downloads, nothing downloaded: the
    run refused such a member only as it loaded it, after it had opened and loaded the data, its
    run left FAILED for a typo. The store is opened only for a config with a member there; any
    failure of its other than a model not found (a malformed URI, a server's error) is left to
    the run, which words it as it loads the member.
    """
    members = [
        (".".join((where, *path)), model_uri)
        for where, node in models.items()
        for path, model_uri in logged_member_uris(node)
    ]
    in_store = any(urlsplit(uri).scheme in STORE_SCHEMES for _, uri in members)
    refused: list[str] = []
    unreadable: list[str] = []  # in a store whose library is not installed
    with members_store(tracking_uri) if in_store else nullcontext():
        for where, model_uri in members:
            scheme = urlsplit(model_uri).scheme
            files = model_uri  # where its files are read from
            if (why := unloadable_model_uri(model_uri)) is not None:
                refused.append(f"{where}: cannot load {model_uri}: {why}")
            elif scheme in LOCAL_SCHEMES and not _local_path(model_uri).exists():
                refused.append(f"{where}: cannot find {model_uri}: no such file or folder")
            elif _malformed(model_uri):
                refused.append(
                    f"{where}: {model_uri} is not a proper models:/ URI (models:/<name>/<version>"
                    ", models:/<name>@<alias> or models:/m-<id>)"
                )
            elif scheme in STORE_SCHEMES:
                try:
                    files = _find_in_store(model_uri)
                except MlflowException as error:
                    if not _not_found(error):
                        continue
                    why = str(error).strip().splitlines()[0].rstrip(".")
                    refused.append(
                        f"{where}: cannot find {model_uri} in the tracking store at "
                        f"{safe_uri(tracking_uri)}: {why}"
                    )
                except DeletedRun as error:
                    refused.append(f"{where}: {error}")
            if (missing := missing_store_library(files)) is not None:
                unreadable.append(
                    f"{where}: cannot load {model_uri}: {missing} (its artifact store, "
                    f"{urlsplit(files).scheme}://, needs a library not installed here: install "
                    "it, or leave the member out)"
                )
    if refused:
        raise LoggedModelNotFound(
            "; ".join(refused) + " (a logged member loads a model logged earlier: fix its "
            "model_uri, or log the model first)" + "".join(f"; {line}" for line in unreadable)
        )
    if unreadable:
        raise StoreLibraryMissing("; ".join(unreadable))


def missing_store_library(files: str | None) -> str | None:
    """Why the artifact store at ``files`` (a URI) cannot be read here (ImportError's words:
    "No module named 'boto3'"); None when it can, or when the scheme is none pricer knows
    of (MLflow says so as the member loads)."""
    modules = STORE_LIBRARIES.get(urlsplit(files or "").scheme, ())
    try:
        for module in modules:
            importlib.import_module(module)
    except ImportError as error:
        return str(error)
    return None


def logged_member_uris(
    node: object, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str]]:
    """Each logged member a config (plain or OmegaConf) loads: the path of its node and its
    model URI. Value by value, as ``check_api_keys`` reads keys: a value only a sweep's trial
    resolves (``${hydra:job.num}``) is skipped here; the trial's own run checks it, resolved."""
    if (model_uri := logged_member_uri(node)) is not None:
        yield path, model_uri
        return
    for key, value in resolved_children(node):
        yield from logged_member_uris(value, (*path, key))


def _malformed(model_uri: str) -> bool:
    """Whether ``model_uri`` is a ``models:/`` URI that MLflow cannot parse.

    Parsed as ``pinned_model`` reads it, by MLflow's own parser, without the store: the
    store's lookup of such a URI fails with INTERNAL_ERROR, which the check cannot tell from
    a server's failure, so the run opened, loaded its data, and failed on the member.
    """
    if urlsplit(model_uri).scheme != "models":
        return False
    try:
        _parse_model_uri(model_uri.rstrip("/"))
    except MlflowException:
        return True
    return False


def _not_found(error: MlflowException) -> bool:
    """Whether ``error`` says the store has no such model: a name, id or run not there, or an
    alias not set on a registered model (retire=true deletes one), which MLflow answers with
    INVALID_PARAMETER_VALUE ("Registered model alias champion not found.")."""
    if error.error_code == NOT_FOUND:
        return True
    said = str(error)
    return error.error_code == "INVALID_PARAMETER_VALUE" and "alias" in said and "not found" in said


def _find_in_store(model_uri: str) -> str | None:
    """Where the files of the model ``model_uri`` names are (an artifact URI; None when the
    record does not say); MLflow's error if the store holds no such model: the name, version,
    alias or id resolved (``pinned_model``), then the logged model or the run holding it.
    ``DeletedRun`` for a ``runs:/`` URI of a deleted run (``live_run``).
    """
    pinned, model_id = pinned_model(model_uri)
    client = mlflow.MlflowClient()
    if model_id is not None:
        return client.get_logged_model(model_id).artifact_location
    if pinned.startswith("runs:/"):
        run_id, _, path = pinned.removeprefix("runs:/").partition("/")
        return f"{live_run(run_id, model_uri).info.artifact_uri.rstrip('/')}/{path}"
    return None


class DeletedRun(LoggedModelNotFound):
    """A ``runs:/`` member of a run that was deleted (not yet purged)."""


def live_run(run_id: str, model_uri: str) -> Run:
    """The run ``run_id`` (MLflow's error if the store has none); ``DeletedRun`` if it was
    deleted.

    MLflow keeps a deleted run's files until ``mlflow gc`` purges it, and loads a ``runs:/`` URI
    of it as of any other: the member loaded, and a run its owner had thrown away (restorable,
    but not to be relied on) went on pricing, until the purge broke the next run that named it.
    """
    run = mlflow.MlflowClient().get_run(run_id)
    if run.info.lifecycle_stage == LifecycleStage.DELETED:
        raise DeletedRun(
            f"{model_uri} is in run {run_id}, which was deleted: a deleted run is no member "
            f"to rely on (`mlflow runs restore --run-id {run_id}` brings it back)"
        )
    return run


def _local_path(model_uri: str) -> Path:
    """The file or folder a path or ``file:`` URI names, as MLflow's download reads it
    (relative to the working folder)."""
    parts = urlsplit(model_uri)
    return Path(url2pathname(parts.path)) if parts.scheme == "file" else Path(model_uri)


def api_key_settings(
    model_uri: str, followed: frozenset[str] = frozenset()
) -> list[tuple[tuple[str, ...], str]]:
    """Each ``api_key_env`` of the config the logged model ``model_uri`` was fitted from, by
    the path of its node below ``model`` (``()``: the family's own, a frontier's;
    ``("members", "llm")``: an ensemble's LLM member), without loading the model: read from the
    params MLflow keeps with it, its run's whole config flattened (``log_config``).

    A logged member of a logged ensemble is followed to the very model its run loaded
    (``MEMBERS_TAG``); one no longer in the store is passed over (the ensemble's own file holds
    it: nothing loads it again). Empty for a model whose record says nothing (a path).
    """
    params, run_id = _logged_params(model_uri)
    found: list[tuple[tuple[str, ...], str]] = []
    members: dict[str, str] | None = None
    for key, value in sorted(params.items()):
        *node, name = key.split(".")
        if not node or node[0] != MODEL_PARAM:
            continue
        inside = tuple(node[1:])
        if name == KEY_SETTING and value != str(None):  # null: no client in that node
            found.append((inside, value))
        elif name == "_target_" and value == LOGGED_PRICER:
            asked = params.get(".".join([*node, "model_uri"]))
            if asked is None:
                continue
            if members is None:
                members = _loaded_members(run_id)
            used = members.get(asked, asked)  # the version its run loaded, if it says
            if used in followed:  # a record edited into a loop: nothing more to find
                continue
            try:
                inner = api_key_settings(used, followed | {model_uri})
            except MlflowException:
                continue
            found += [((*inside, *path), variable) for path, variable in inner]
    return found


def _logged_params(model_uri: str) -> tuple[dict[str, str], str | None]:
    """The params of the logged model ``model_uri`` names (its run's, which MLflow copies to a
    model logged in a run; the run's own for one without) and the id of that run."""
    pinned, model_id = pinned_model(model_uri)
    client = mlflow.MlflowClient()
    run_id = None
    params: dict[str, str] = {}
    if model_id is not None:
        logged = client.get_logged_model(model_id)
        params, run_id = dict(logged.params or {}), logged.source_run_id
    elif pinned.startswith("models:/"):  # a version registered from a run's files
        name, _, version = pinned.removeprefix("models:/").rpartition("/")
        run_id = client.get_model_version(name, version).run_id
    elif pinned.startswith("runs:/"):
        run_id = pinned.removeprefix("runs:/").partition("/")[0]
    if not params and run_id:
        params = dict(client.get_run(run_id).data.params)
    return params, run_id


def _loaded_members(run_id: str | None) -> dict[str, str]:
    """Which model each logged member's asked URI was in the run ``run_id`` (``MEMBERS_TAG``,
    written by ``_record_member``): ``models:/<id>`` of its logged model, else its pinned URI."""
    if run_id is None:
        return {}
    try:
        tag = mlflow.MlflowClient().get_run(run_id).data.tags.get(MEMBERS_TAG, "{}")
        recorded = json.loads(tag)
    except (MlflowException, ValueError):  # a run gone, a tag that is not JSON: as asked
        return {}
    members = {}
    for asked, loaded in recorded.items() if isinstance(recorded, dict) else ():
        pinned, _, model_id = str(loaded).partition(" (")
        members[str(asked)] = f"models:/{model_id.removesuffix(')')}" if model_id else pinned
    return members


def load_pyfunc(local: Path) -> mlflow.pyfunc.PyFuncModel:
    """``mlflow.pyfunc.load_model`` of a downloaded model folder, leaving ``sys.path`` as it was.

    MLflow puts the model's code folder first on ``sys.path`` for good. It holds only the
    modules the model needs (see the module docstring), and this process imported pricer
    from its installed copy already; but a process started after the load (a spawned or loky
    worker takes its parent's path) imported ``pricer`` from that partial copy and failed on
    the first module it lacks (``No module named 'pricer.tracking.model'``).
    """
    path = list(sys.path)
    try:
        return mlflow.pyfunc.load_model(str(local))
    finally:
        sys.path[:] = path


def refuse_pickled(local: Path, model_uri: str) -> bool:
    """Raise unless a downloaded model may be loaded: a model logged before the skops format
    holds a pickle that its own (old) code unpickles, whatever MLflow's setting says, so it
    loads only while ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` allows it. True for such a model.
    """
    if not (local / "artifacts" / LEGACY_PICKLE).is_file():
        return False
    if not MLFLOW_ALLOW_PICKLE_DESERIALIZATION.get():
        raise UnsafeModelFile(
            f"{model_uri} is a pickled pricer (logged before the skops format) and "
            f"{MLFLOW_ALLOW_PICKLE_DESERIALIZATION.name}=false: refit and log it again, or allow it"
        )
    return True


def check_logged_model(model_uri: str) -> None:
    """Raise ``UnsafeModelFile`` unless the model's pricer file loads as predict and serving
    would load it (missing, damaged, tampered or refused pickle): checked before it is
    registered, so that no alias names a model that cannot answer."""
    pinned, model_id = pinned_model(model_uri)
    local = download_checked(pinned, model_id, model_uri)
    if not refuse_pickled(local, model_uri):  # an allowed old pickle is left to its own code
        load_pricer(local / "artifacts" / MODEL_FILE)


def trained_on(model_folder: Path) -> np.ndarray | None:
    """The fingerprints of the items a downloaded model was trained on; None if it does not
    keep them (logged before pricer did). A file that is no such array is refused."""
    path = model_folder / "artifacts" / TRAINED_ON_FILE
    if not path.is_file():
        return None
    try:
        seen = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise UnsafeModelFile(f"{path} is damaged ({error}): log the model again") from error
    if seen.dtype != np.uint64 or seen.ndim != 1:
        raise UnsafeModelFile(f"{path} holds {seen.dtype} {seen.shape}, not item fingerprints")
    return seen


def pinned_model(model_uri: str) -> tuple[str, str | None]:
    """The URI of the very model ``model_uri`` names now, and its logged model's id.

    Every ``models:/`` form becomes one version, ``models:/name/<version>``, or stays a model
    id, ``models:/m-...``: an alias, ``latest`` and a stage move, a version does not. Any other
    URI (``runs:/...``, a path) is kept as it is, without an id.
    """
    if not model_uri.startswith("models:/"):
        return model_uri, None
    uri = model_uri.rstrip("/")  # "models:/m-.../" names the model, as MLflow's download reads it
    client = mlflow.MlflowClient()
    # MLflow's own resolution, the one its download applies: a form resolved here by hand
    # (only alias, version and id were) left ``latest``, a stage and a trailing slash unchecked.
    found = get_model_name_and_version(client, uri)
    if len(found) == 1:
        return uri, found[0]
    version = client.get_model_version(*found)
    return f"models:/{version.name}/{version.version}", logged_model_id(version)


def logged_model_id(version: ModelVersion) -> str | None:
    """The id of the logged model a registered version holds (None: registered from a path)."""
    # MLflow 3.17 leaves a version's model_id empty on a SQL store; its source names the model.
    source = str(version.source or "")
    logged = source.removeprefix("models:/") if source.startswith("models:/m-") else None
    return version.model_id or logged


def _record_member(asked: str, pinned: str, model_id: str | None) -> None:
    """On the run that loads a logged member, ``pricer.members``: which version (and logged
    model) each asked URI was. A tag, not MLflow's model inputs: ``mlflow.log_inputs(models=...)``
    is refused outside Databricks ("only supported by Databricks managed MLflow", 3.17)."""
    run = mlflow.active_run()
    if run is None:
        return
    members = json.loads(mlflow.get_run(run.info.run_id).data.tags.get(MEMBERS_TAG, "{}"))
    members[asked] = f"{pinned} ({model_id})" if model_id else pinned
    mlflow.set_tag(MEMBERS_TAG, json.dumps(members))
