"""Logged model files: every family round-trips, a tampered file is refused and never run, and a
model ships only the code it needs."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import re
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from hydra.utils import instantiate

from pricer import interrupt
from pricer.devtools.stub_server import StubServer
from pricer.models.base import INPUT_COLUMNS
from pricer.models.constant import ConstantPricer
from pricer.paths import PROJECT_ROOT
from pricer.tracking import model as model_module
from pricer.tracking.model import (
    FILES_DIGEST_TAG,
    MODEL_FILE,
    check_logged_model,
    files_digest,
    log_pricer,
    logged_pricer,
)
from pricer.tracking.model_files import UnsafeModelFile, load_pricer, refused_types, save_pricer
from tests.conftest import compose_config, project_experiment
from tests.families import FAMILIES, SMALL, family_overrides
from tests.models.test_classical import catalogue


@pytest.fixture(scope="module")
def shop() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    train, prices = catalogue(120, seed=1)
    test, _ = catalogue(12, seed=2)
    return train, prices, test


def log_in_run(pricer: object) -> mlflow.models.model.ModelInfo:
    mlflow.set_experiment(project_experiment())
    with mlflow.start_run():
        return log_pricer(pricer)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_round_trips_through_a_logged_model(
    family: str, tracking_uri: str, shop, family_stub: StubServer, tmp_path: Path
) -> None:
    train, prices, test = shop
    cfg = compose_config("train", family_overrides(family, family_stub, tmp_path, test))
    pricer = instantiate(cfg.model).fit(train, prices)
    info = log_in_run(pricer)
    local = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    artifact = local / "artifacts" / MODEL_FILE
    assert zipfile.is_zipfile(artifact)  # skops, not a pickle
    loaded = mlflow.pyfunc.load_model(str(local))
    assert type(loaded.unwrap_python_model().pricer) is type(pricer)
    expected = pricer.predict(test)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(loaded.predict(test[list(INPUT_COLUMNS)]), expected)
    # No items, no prices: most families' scikit-learn steps raised "Found array with 0
    # sample(s)", which the scoring server answered as an error with its stack trace.
    nothing = test[list(INPUT_COLUMNS)].head(0)
    assert loaded.predict(nothing).shape == (0,)


# -- tampered files --------------------------------------------------------------------------
class PicklePayload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


class StatePayload:
    """Building this from saved state creates the file named in the state."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state: dict[str, str]) -> None:
        Path(state["marker"]).touch()
        self.__dict__.update(state)


def pricer_carrying(payload: object) -> ConstantPricer:
    pricer = ConstantPricer("mean").fit(pd.DataFrame({"text": ["a", "b"]}), np.array([1.0, 3.0]))
    pricer.price_ = payload
    return pricer


@pytest.fixture
def logged_model(tracking_uri: str, shop) -> Path:
    """A logged constant pricer, downloaded: the folder whose artifact an attacker replaces."""
    train, prices, _ = shop
    info = log_in_run(ConstantPricer("mean").fit(train, prices))
    return Path(mlflow.artifacts.download_artifacts(info.model_uri))


@pytest.mark.parametrize("allow_pickle", ["true", "false"])
def test_a_pickle_in_place_of_the_model_file_is_refused_not_run(
    logged_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, allow_pickle: str
) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", allow_pickle)
    control, marker = tmp_path / "control", tmp_path / "owned"
    pickle.loads(pickle.dumps(PicklePayload(control)))
    assert control.exists()  # the payload is live: unpickling it runs the command
    (logged_model / "artifacts" / MODEL_FILE).write_bytes(pickle.dumps(PicklePayload(marker)))
    with pytest.raises(UnsafeModelFile) as refused:
        mlflow.pyfunc.load_model(str(logged_model))
    assert str(refused.value) == f"refusing to load model file {MODEL_FILE}: it is a pickle"
    assert not marker.exists()


def test_a_skops_file_with_an_untrusted_type_is_refused_not_built(
    logged_model: Path, tmp_path: Path
) -> None:
    control, marker = tmp_path / "control.skops", tmp_path / "owned"
    sio.dump(pricer_carrying(StatePayload(tmp_path / "built")), control)
    sio.load(control, trusted=sio.get_untrusted_types(file=control))
    assert (tmp_path / "built").exists()  # the payload is live once its type is trusted
    sio.dump(pricer_carrying(StatePayload(marker)), logged_model / "artifacts" / MODEL_FILE)
    with pytest.raises(UnsafeModelFile) as refused:
        mlflow.pyfunc.load_model(str(logged_model))
    assert f"{__name__}.StatePayload" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not marker.exists()


def test_a_pricer_that_cannot_be_loaded_safely_fails_when_it_is_logged(tmp_path: Path) -> None:
    marker = tmp_path / "owned"
    with pytest.raises(
        UnsafeModelFile, match=r"cannot log ConstantPricer: it holds .*StatePayload"
    ):
        save_pricer(pricer_carrying(StatePayload(marker)), tmp_path / MODEL_FILE)
    assert not marker.exists()


def test_a_file_that_is_not_a_pricer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / MODEL_FILE
    sio.dump({"prices": np.arange(3.0)}, path)
    with pytest.raises(UnsafeModelFile, match="holds a dict, not a pricer"):
        load_pricer(path)
    path.write_text("hello")
    with pytest.raises(UnsafeModelFile, match="not a skops file"):
        load_pricer(path)
    path.unlink()  # a model whose artifacts arrived in part: it was a FileNotFoundError
    with pytest.raises(UnsafeModelFile, match=f"cannot load model file {MODEL_FILE}: the model"):
        load_pricer(path)


def test_a_library_missing_here_is_named_not_called_untrusted(
    shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loaded where XGBoost is not installed, an xgboost champion was "refusing to load model
    # file pricer.skops: untrusted types xgboost.core.Booster": read as a tampered file.
    train, prices, _ = shop
    path = tmp_path / MODEL_FILE
    cfg = compose_config("train", ["model=xgboost", *SMALL["xgboost"]])
    save_pricer(instantiate(cfg.model).fit(train, prices), path)
    for module in [name for name in sys.modules if name.split(".")[0] == "xgboost"]:
        monkeypatch.setitem(sys.modules, module, None)  # importing it now fails
    with pytest.raises(UnsafeModelFile) as refused:
        load_pricer(path)
    assert str(refused.value) == (
        f"cannot load model file {MODEL_FILE}: its code needs xgboost, which is not installed here"
    )


def test_trust_comes_from_the_libraries_the_model_code_imports() -> None:
    constant = "pricer.models.constant.ConstantPricer"
    xgboost_family = "pricer.models.boosted_trees.XGBoostPricer"
    booster = "xgboost.core.Booster"
    tree = "sklearn.tree._tree.Tree"
    # A constant pricer's code imports no XGBoost: a booster in its file is not trusted.
    assert refused_types([constant, tree, booster]) == [booster]
    assert refused_types([xgboost_family, tree, booster]) == []
    dangerous = [
        "posix.system",  # not a library the model code imports
        "builtins.eval",
        "subprocess.Popen",
        "numpy.load",  # a trusted library, but a function, not a class
        "pricer.devtools.stub_server.StubServer",  # pricer, but not the model package
        "pricer.models.constant.np",  # a module, not a class
        "pricer.models.nowhere.Pricer",
    ]
    assert refused_types([constant, *dangerous]) == sorted(dangerous)


# -- the code a model ships --------------------------------------------------------------------
def test_a_logged_model_ships_only_the_model_code_and_runs_from_it(
    tracking_uri: str, shop, tmp_path: Path
) -> None:
    train, prices, test = shop
    cfg = compose_config("train", ["model=tfidf_ridge"])
    pricer = instantiate(cfg.model).fit(train, prices)
    local = Path(mlflow.artifacts.download_artifacts(log_in_run(pricer).model_uri))
    code = local / "code"
    shipped = {path.relative_to(code).as_posix() for path in code.rglob("*.py")}
    assert {"pricer/models/tfidf_ridge.py", "pricer/tracking/model_files.py"} <= shipped
    assert "pricer/models/boosted_trees.py" in shipped  # the whole model package, see why there
    apps = {
        f"pricer/{app}.py"
        for app in (
            "train",
            "leaderboard",
            "predict",
            "promote",
            "curate",
            "finetune",
            "human_export",
            "cli",
            "experiment",
        )
    }
    tracking_of_runs = {f"pricer/tracking/{name}.py" for name in ("run", "sweep", "registry")}
    not_needed = [
        name
        for name in shipped
        if name.startswith(("pricer/devtools/", "pricer/data/", "pricer/evaluation/"))
        or name in apps | tracking_of_runs | {"pricer/tracking/model.py"}
    ]
    assert not_needed == []

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    test.to_json(elsewhere / "items.json", orient="records")
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "prices = model.predict(pd.read_json(sys.argv[2], orient='records'))\n"
        "import pricer\n"
        "print(json.dumps({'pricer': pricer.__file__, 'prices': [float(p) for p in prices]}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "MLFLOW_TRACKING_URI"}}
    result = subprocess.run(
        [sys.executable, "-c", script, str(local), "items.json"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(answer["pricer"]).is_relative_to(code)  # the shipped copy, not the checkout
    assert not Path(answer["pricer"]).is_relative_to(PROJECT_ROOT)
    np.testing.assert_allclose(answer["prices"], pricer.predict(test))


def test_a_pickled_member_loads_only_while_mlflow_allows_pickles(
    logged_model: Path, tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pricer.tracking.model import logged_pricer

    model = mlflow.last_logged_model()
    assert logged_pricer(f"models:/{model.model_id}").source == f"models:/{model.model_id}"
    # A model logged before the skops format (and before digests): its own (old) code
    # unpickles pricer.pkl.
    mlflow.delete_logged_model_tag(model.model_id, FILES_DIGEST_TAG)
    legacy = Path(model.artifact_location.removeprefix("file://")) / "artifacts" / "pricer.pkl"
    assert legacy.parent.is_dir()
    legacy.write_bytes(pickle.dumps(PicklePayload(tmp_path / "owned")))
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    with pytest.raises(UnsafeModelFile, match=r"is a pickled pricer .* refit and log it again"):
        logged_pricer(f"models:/{model.model_id}")
    assert not (tmp_path / "owned").exists()


def test_a_member_named_by_alias_is_recorded_by_the_version_it_was(champion_store: str) -> None:
    # The run logged only "models:/pricer-synthetic@champion": once the alias moved, the record
    # could not say which model the ensemble held.
    from pricer.tracking.model import logged_pricer

    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias("pricer-synthetic", "champion")
    mlflow.set_experiment("members")
    with mlflow.start_run() as run:
        member = logged_pricer("models:/pricer-synthetic@champion")
    pinned = f"models:/pricer-synthetic/{champion.version}"
    assert member.source == pinned
    model_id = champion.source.removeprefix("models:/")  # the logged model it was made from
    assert model_id.startswith("m-")
    recorded = mlflow.get_run(run.info.run_id)
    assert json.loads(recorded.data.tags["pricer.members"]) == {
        "models:/pricer-synthetic@champion": f"{pinned} ({model_id})"
    }


def _nothing() -> None:
    """A worker's task: its module imported is the test."""


def test_a_process_started_after_a_model_is_loaded_imports_the_installed_pricer(
    tracking_uri: str, shop
) -> None:
    # MLflow left the model's code folder first on sys.path: a spawned (or loky) worker took
    # that path, imported pricer from the model's partial copy, and failed at the first
    # module the copy lacks.
    _, _, test = shop
    uri, _ = constant_model(20.0, test)
    path = list(sys.path)
    logged_pricer(uri)
    assert sys.path == path
    worker = multiprocessing.get_context("spawn").Process(target=_nothing)
    worker.start()  # its target's module imports pricer.tracking.model, which no model ships
    worker.join(120)
    assert worker.exitcode == 0


# -- files changed after logging -----------------------------------------------------------------
def constant_model(price: float, items: pd.DataFrame) -> tuple[str, Path]:
    """A logged constant pricer of ``price``: its model URI and its folder in the store."""
    pricer = ConstantPricer("mean").fit(items.head(2), np.array([price, price]))
    info = log_in_run(pricer)
    return info.model_uri, Path(mlflow.artifacts.download_artifacts(info.model_uri))


def test_a_pricer_file_swapped_for_another_valid_pricer_is_refused(
    tracking_uri: str, shop, tmp_path: Path
) -> None:
    # The skops check refuses a file that would run foreign code; a valid pricer of another
    # model in its place loaded, and priced every item at its $999.
    _, _, test = shop
    uri, folder = constant_model(20.0, test)
    assert logged_pricer(uri).predict(test.head(1))[0] == pytest.approx(20.0)
    save_pricer(ConstantPricer("mean").fit(test.head(2), np.array([999.0, 999.0])), tmp_path / "x")
    (folder / "artifacts" / MODEL_FILE).write_bytes((tmp_path / "x").read_bytes())
    for load in (logged_pricer, check_logged_model):
        with pytest.raises(UnsafeModelFile) as refused:
            load(uri)
        assert str(refused.value).startswith(f"refusing {uri}: its files are not the ones logged")


def swap_in_dearer_model(uri: str, items: pd.DataFrame, tmp_path: Path) -> None:
    """Replace the pricer file of the model at ``uri`` in the store (a local artifact store
    hands out its own folder) with a valid one that prices everything at $999."""
    folder = Path(mlflow.artifacts.download_artifacts(uri))
    save_pricer(ConstantPricer("mean").fit(items.head(2), np.array([999.0, 999.0])), tmp_path / "x")
    (folder / "artifacts" / MODEL_FILE).write_bytes((tmp_path / "x").read_bytes())


def test_a_model_whose_logging_was_interrupted_is_refused_not_loaded_unchecked(
    tracking_uri: str, shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SIGTERM while a run logged its model, once MLflow had stored the files: the LoggedModel
    # stayed PENDING with no digest, which read as a model logged before digests, so a file
    # swapped in it was loaded unchecked and priced every item at its $999.
    _, _, test = shop

    logged: list[str] = []

    def interrupted(model_id: str, *args: object, **kwargs: object) -> None:
        logged.append(model_id)
        raise interrupt.Interrupted(signal.SIGTERM)

    mlflow.set_experiment(project_experiment())
    with monkeypatch.context() as patched, pytest.raises(interrupt.Interrupted):
        patched.setattr(mlflow.tracking.fluent, "finalize_logged_model", interrupted)
        with mlflow.start_run():
            log_pricer(ConstantPricer("mean").fit(test.head(2), np.array([20.0, 20.0])))
    (model_id,) = logged
    assert mlflow.get_logged_model(model_id).status == "PENDING"
    uri = f"models:/{model_id}"
    swap_in_dearer_model(uri, test, tmp_path)
    for load in (logged_pricer, check_logged_model):
        with pytest.raises(UnsafeModelFile, match=re.escape("did not finish (status PENDING)")):
            load(uri)


def test_a_model_interrupted_before_any_file_was_stored_is_refused_before_downloading(
    tracking_uri: str, shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SIGTERM while a run logged its model, before MLflow stored any of its files: the
    # LoggedModel stayed PENDING with nothing in its folder, and every loader downloaded it
    # first, so it failed with MLflow's "No such artifact: ''" instead of saying why.
    from pricer.tracking.champions import fetch_verified

    _, _, test = shop
    created: list[str] = []

    def interrupted(client: object, model_id: str, *args: object, **kwargs: object) -> None:
        created.append(model_id)
        raise interrupt.Interrupted(signal.SIGTERM)

    mlflow.set_experiment(project_experiment())
    with monkeypatch.context() as patched, pytest.raises(interrupt.Interrupted):
        patched.setattr(mlflow.MlflowClient, "log_model_artifacts", interrupted)
        with mlflow.start_run():
            log_pricer(ConstantPricer("mean").fit(test.head(2), np.array([20.0, 20.0])))
    (model_id,) = created
    model = mlflow.get_logged_model(model_id)
    assert model.status == "PENDING"
    assert not any(Path(model.artifact_location.removeprefix("file://")).rglob("*"))
    uri = f"models:/{model_id}"
    mlflow.register_model(uri, "unfinished")
    settings = {"model_uri": None, "model_name": "unfinished", "prefix": "pricer", "alias": "x"}
    mlflow.MlflowClient().set_registered_model_alias("unfinished", "x", "1")
    loads = {
        "logged_pricer": logged_pricer,  # an ensemble member
        "check_logged_model": check_logged_model,  # promote
        "fetch_verified": lambda asked: fetch_verified(  # predict and serve
            tracking_uri, {**settings, "model_uri": asked}
        ),
    }
    for name, load in loads.items():
        for asked in (uri, "models:/unfinished/1", "models:/unfinished@x"):
            with pytest.raises(UnsafeModelFile) as refused:
                load(asked)
            assert "did not finish (status PENDING)" in str(refused.value), (name, asked)
    # predict by alias (no model_uri): the registered version is chosen, then refused.
    with pytest.raises(UnsafeModelFile, match=re.escape("did not finish (status PENDING)")):
        fetch_verified(tracking_uri, settings)


def test_a_model_interrupted_before_its_digest_was_recorded_is_refused(
    tracking_uri: str, shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SIGTERM after MLflow had finished logging the model (READY) and before pricer tagged its
    # digest: no tag read as a model logged before digests, so a file swapped in it loaded.
    _, _, test = shop

    def interrupted(folder: Path) -> str:
        raise interrupt.Interrupted(signal.SIGTERM)

    mlflow.set_experiment(project_experiment())
    with monkeypatch.context() as patched, pytest.raises(interrupt.Interrupted):
        patched.setattr(model_module, "files_digest", interrupted)
        with mlflow.start_run() as run:
            log_pricer(ConstantPricer("mean").fit(test.head(2), np.array([20.0, 20.0])))
    (model,) = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    assert model.status == "READY"
    uri = f"models:/{model.model_id}"
    swap_in_dearer_model(uri, test, tmp_path)
    for load in (logged_pricer, check_logged_model):
        with pytest.raises(UnsafeModelFile, match=re.escape("did not finish (no digest recorded)")):
            load(uri)


@pytest.mark.parametrize(
    "form", ["{id}", "{id}/", "swapped/1", "swapped/1/", "swapped/latest", "swapped/None",
             "swapped@champion"],
)  # fmt: skip
def test_every_form_of_a_models_uri_is_checked(
    tracking_uri: str, shop, tmp_path: Path, form: str
) -> None:
    # models:/name/latest, a stage and a trailing slash loaded the swapped file unchecked: only
    # an alias, a version number and a bare model id were resolved to the logged model.
    _, _, test = shop
    uri, folder = constant_model(20.0, test)
    model_id = uri.removeprefix("models:/")
    mlflow.register_model(uri, "swapped")
    mlflow.MlflowClient().set_registered_model_alias("swapped", "champion", "1")
    save_pricer(ConstantPricer("mean").fit(test.head(2), np.array([999.0, 999.0])), tmp_path / "x")
    (folder / "artifacts" / MODEL_FILE).write_bytes((tmp_path / "x").read_bytes())
    asked = "models:/" + form.format(id=model_id)
    for load in (logged_pricer, check_logged_model):
        with pytest.raises(
            UnsafeModelFile, match=f"its files are not the ones logged as {model_id}"
        ):
            load(asked)


def test_code_added_to_a_logged_model_is_refused_before_it_runs(
    tracking_uri: str, shop, tmp_path: Path
) -> None:
    _, _, test = shop
    uri, folder = constant_model(20.0, test)
    marker = tmp_path / "owned"
    (folder / "code" / "pricer" / "models" / "__init__.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
    )
    with pytest.raises(UnsafeModelFile, match="its files are not the ones logged"):
        logged_pricer(uri)
    assert not marker.exists()


def test_what_mlflow_and_python_add_to_a_model_folder_is_not_a_change(
    tracking_uri: str, shop
) -> None:
    # Registering and loading write into a local store's model folder: the registry's note
    # (registered_model_meta, up to MLflow 3.17; 3.18 writes none) and the bytecode of the
    # model's code (__pycache__).
    _, _, test = shop
    uri, folder = constant_model(20.0, test)
    mlflow.register_model(uri, "pricer-digest")
    for _ in range(2):
        assert logged_pricer("models:/pricer-digest/1").predict(test.head(1))[0] == 20.0
    check_logged_model("models:/pricer-digest/1")
    # As MLflow 3.17 writes it on a download (an older store's folders hold it).
    (folder / "registered_model_meta").write_text("model_name: pricer-digest\nmodel_version: '1'\n")
    recorded = mlflow.get_logged_model(uri.removeprefix("models:/")).tags[FILES_DIGEST_TAG]
    assert recorded == files_digest(folder)
    (folder / "code" / "pricer" / "__pycache__").mkdir(exist_ok=True)
    (folder / "code" / "pricer" / "__pycache__" / "wording.cpython-311.pyc").write_bytes(b"x")
    assert files_digest(folder) == recorded
    (folder / "MLmodel").write_text((folder / "MLmodel").read_text() + "\n")  # one byte more
    assert files_digest(folder) != recorded


@pytest.mark.parametrize(
    "malformed", ["models:/", "models:/a/b/c", "models:/pricer-synthetic@", "models:/ /1"]
)
def test_a_logged_member_s_malformed_models_uri_is_refused_before_any_run(
    tracking_uri: str, malformed: str
) -> None:
    # MLflow answers a URI it cannot parse with INTERNAL_ERROR, which the check passed over as
    # a store's failure: the run opened, loaded the data, then failed on the member.
    from pricer.tracking.model import LoggedModelNotFound, check_logged_members

    member = {"_target_": model_module.LOGGED_PRICER, "model_uri": malformed}
    with pytest.raises(LoggedModelNotFound) as refused:
        check_logged_members({"model": {"members": {"best": member}}}, tracking_uri)
    said = str(refused.value)
    assert said.startswith(f"model.members.best: {malformed} is not a proper models:/ URI (")
    assert "\n" not in said


@pytest.mark.parametrize("uri", ["http://models.example/pricer", "hdfs://namenode/models/pricer"])
def test_a_logged_member_s_uri_mlflow_loads_no_model_from_is_refused_before_any_run(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch, uri: str
) -> None:
    # Passed over as "the run's to read": the run opened, then failed on MLflow's traceback.
    from pricer.tracking.model import LoggedModelNotFound, check_logged_members

    for name in ("HADOOP_HOME", "ARROW_LIBHDFS_DIR"):
        monkeypatch.delenv(name, raising=False)
    member = {"_target_": model_module.LOGGED_PRICER, "model_uri": uri}
    with pytest.raises(LoggedModelNotFound) as refused:
        check_logged_members({"model": {"members": {"best": member}}}, tracking_uri)
    said = str(refused.value)
    assert said.startswith(f"model.members.best: cannot load {uri}: ")
    assert "give models:/<name>/<version>, models:/<name>@<alias>" in said and "\n" not in said


def test_a_runs_member_of_a_deleted_run_is_refused(tracking_uri: str, shop) -> None:
    # MLflow keeps a deleted run's files until it is purged and loads them: the member loaded
    # from a run its owner had thrown away, until the purge broke the next run naming it.
    from pricer.tracking.model import DeletedRun, LoggedModelNotFound, check_logged_members

    _, _, test = shop
    run_id = log_in_run(ConstantPricer("mean").fit(test.head(2), np.array([20.0, 20.0]))).run_id
    uri = f"runs:/{run_id}/pricer"
    member = {"_target_": model_module.LOGGED_PRICER, "model_uri": uri}
    mlflow.delete_run(run_id)
    with pytest.raises(LoggedModelNotFound) as refused:
        check_logged_members({"model": {"members": {"best": member}}}, tracking_uri)
    assert str(refused.value).startswith(
        f"model.members.best: {uri} is in run {run_id}, which was deleted: a deleted run is no "
        f"member to rely on (`mlflow runs restore --run-id {run_id}` brings it back)"
    )
    with pytest.raises(DeletedRun):  # a URI only a sweep's trial resolves is checked here
        logged_pricer(uri)
    mlflow.MlflowClient().restore_run(run_id)
    check_logged_members({"model": {"members": {"best": member}}}, tracking_uri)
    assert logged_pricer(uri).predict(test.head(1))[0] == pytest.approx(20.0)


def test_a_member_that_is_no_pricer_model_is_refused_before_it_loads(tracking_uri: str) -> None:
    # MLflow loaded the sklearn model, then failed in words of its own: "Unable to retrieve
    # base model object from pyfunc: '_SklearnModelWrapper' object has no attribute ...".
    from sklearn.linear_model import LinearRegression

    from pricer.tracking.model import NotAPricer

    mlflow.set_experiment(project_experiment())
    with mlflow.start_run():
        fitted = LinearRegression().fit(np.ones((3, 1)), [1.0, 2.0, 3.0])
        uri = mlflow.sklearn.log_model(fitted, name="plain").model_uri
    with pytest.raises(NotAPricer) as refused:
        logged_pricer(uri)
    assert str(refused.value) == (
        f"{uri} is no model pricer logged (it holds no pricer.skops): a logged member must be "
        "a pricer's model (pricer train ... logs one)"
    )


def test_a_logged_member_s_alias_that_is_not_set_is_refused_before_any_run(
    tracking_uri: str, shop
) -> None:
    # A registered model whose champion was retired (retire=true deletes the alias): MLflow
    # answers the alias with INVALID_PARAMETER_VALUE, not RESOURCE_DOES_NOT_EXIST, so the
    # check passed it over and the ensemble's run opened, then ended FAILED on the member.
    from pricer.tracking.model import LoggedModelNotFound, check_logged_members

    _, _, test = shop
    uri, _ = constant_model(20.0, test)
    mlflow.register_model(uri, "pricer-retired")
    member = {
        "_target_": model_module.LOGGED_PRICER,
        "model_uri": "models:/pricer-retired@champion",
    }
    with pytest.raises(LoggedModelNotFound) as refused:
        check_logged_members({"model": {"members": {"best": member}}}, tracking_uri)
    said = str(refused.value)
    assert said.startswith(
        "model.members.best: cannot find models:/pricer-retired@champion in the tracking store"
        f" at {tracking_uri}: Registered model alias champion not found"
    ), said
    assert "\n" not in said
    check_logged_members(  # the version itself is there
        {"model": {"members": {"best": {**member, "model_uri": "models:/pricer-retired/1"}}}},
        tracking_uri,
    )
