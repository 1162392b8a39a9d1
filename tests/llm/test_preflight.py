"""Every key a command's families need is read before anything runs (``check_api_keys``), by
the rule their clients are built by, on the configs the apps compose, and the keys of the
models an ensemble's logged members were fitted with, from their record in the store; those
members' models must be there, found in the store (or on disk, a path) before any run opens."""

from __future__ import annotations

import re
import socket
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest
from hydra._internal.callbacks import Callbacks  # how Hydra calls callbacks
from omegaconf import DictConfig

from pricer.devtools.stub_server import StubServer
from pricer.errors import UserError
from pricer.experiment import run_family, run_leaderboard
from pricer.models.llm.client import MissingApiKeyError, check_api_keys
from pricer.tracking.model import StoreLibraryMissing
from pricer.tracking.sweep import SweepError
from tests.apps.test_user_errors import the_error_line
from tests.conftest import multirun_config
from tests.e2e.conftest import pricer_app, run_cli
from tests.llm.conftest import KEY_ENV, frontier_config

MEMBER_KEY = "PRICER_TEST_MEMBER_KEY"  # the ensemble's LLM member's, apart from OpenAI's


@pytest.fixture
def leaderboard(compose_conf: Callable[..., DictConfig]) -> DictConfig:
    """A leaderboard's families: classical, both LLM families and an ensemble whose LLM member
    reads a key of its own."""
    return compose_conf(
        "leaderboard",
        [
            "+model@models.frontier=frontier",
            "+model@models.frontier_rag=frontier_rag",
            "+model@models.ensemble=ensemble",
            "+model@models.ensemble.members.llm=frontier",
            f"models.ensemble.members.llm.api_key_env={MEMBER_KEY}",
        ],
    ).models


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", MEMBER_KEY):
        monkeypatch.delenv(name, raising=False)


def test_every_family_without_its_key_is_named_on_one_line(leaderboard: DictConfig) -> None:
    with pytest.raises(MissingApiKeyError) as refused:
        check_api_keys(leaderboard)
    line = str(refused.value)
    assert "\n" not in line
    # Those refused for the same reason together; the member by its place in the ensemble.
    assert line.startswith(
        "frontier, frontier_rag: environment variable OPENAI_API_KEY (named by api_key_env) "
        "is not set;"
    ), line
    assert f"; ensemble (members.llm): environment variable {MEMBER_KEY} " in line
    for classical in ("constant", "xgboost", "tfidf_ridge"):
        assert classical not in line


def test_classical_families_need_no_key(leaderboard: DictConfig) -> None:
    check_api_keys({name: leaderboard[name] for name in ("constant", "linear", "xgboost")})


def test_the_keys_set_pass_and_a_broken_one_is_refused(
    leaderboard: DictConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-anything")
    monkeypatch.setenv(MEMBER_KEY, "  local\n")  # a paste's spaces and line end: still a key
    check_api_keys(leaderboard)
    # A line break inside the value is no key: the same rule as the client's, the same words.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-any\nthing")
    with pytest.raises(MissingApiKeyError, match=r"^frontier, frontier_rag: environment "):
        check_api_keys({name: leaderboard[name] for name in ("frontier", "frontier_rag")})


CHAT = "POST /chat/completions"
LOGGED_PRICER = "pricer.tracking.model.logged_pricer"  # the target of a logged member
NOT_SET = "(named by api_key_env) is not set; export your API key there"


def logged_model(family: str, cfg: DictConfig) -> str:
    """Run ``family`` on ``cfg``, logging its model; the logged model's URI."""
    result = run_family(family, cfg)
    [model] = [
        model
        for model in mlflow.search_logged_models(output_format="list")
        if model.source_run_id == result.run_id
    ]
    return f"models:/{model.model_id}"


def ensemble_run(item_files: tuple[str, str], workdir: Path, members: dict[str, str]) -> list[str]:
    """``pricer.train`` of an ensemble of linear and the logged ``members`` (name -> URI) on
    the item files."""
    train, test = item_files
    logged = [
        override
        for name, uri in members.items()
        for override in (
            f"+model.members.{name}._target_={LOGGED_PRICER}",
            f"+model.members.{name}.model_uri={uri}",
        )
    ]
    return pricer_app(
        "train",
        "model=ensemble",
        "~model.members.xgboost",
        "~model.members.tfidf_ridge",
        *logged,
        "data=items",
        f"data.train_paths=[{train}]",
        f"data.test_paths=[{test}]",
        f"curation.cache_dir={workdir}/cache",
        workdir=workdir,
    )


@pytest.mark.e2e
def test_a_logged_llm_member_without_its_key_is_refused_before_any_run(
    compose_conf, item_files, stub: StubServer, api_key, tracking_uri, tmp_path, monkeypatch
) -> None:
    # A frontier on the stub, logged with its key set, as an earlier run logs it.
    frontier = logged_model(
        "frontier",
        frontier_config(compose_conf, item_files, stub, "tracking.log_model=true"),
    )
    before = mlflow.search_runs(search_all_experiments=True, output_format="list")
    calls = stub.state.counters[CHAT]
    monkeypatch.delenv(KEY_ENV)  # run_cli passes this environment on

    # Refused before any run: the ensemble used to fit linear, then fail at predict for want
    # of the key, its run FAILED.
    refused = run_cli(
        ensemble_run(item_files, tmp_path, {"best": frontier}), tracking_uri, tmp_path
    )
    assert the_error_line(refused).startswith(
        f"error: ensemble (members.best, logged {frontier}): environment variable {KEY_ENV} "
        f"{NOT_SET}"
    ), refused.stderr[-2000:]
    said = refused.stdout + refused.stderr
    assert "training items" not in said, said[-2000:]  # no fit began (its in-sample warning)
    assert stub.state.counters[CHAT] == calls  # the member was never asked for a price
    after = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [run.info.run_id for run in after] == [run.info.run_id for run in before]

    # With the key set, the same ensemble runs, asking the logged member for its prices.
    monkeypatch.setenv(KEY_ENV, api_key)
    fine = run_cli(ensemble_run(item_files, tmp_path, {"best": frontier}), tracking_uri, tmp_path)
    assert fine.returncode == 0, fine.stderr[-2000:]
    assert stub.state.counters[CHAT] > calls
    [ensemble] = [
        run
        for run in mlflow.search_runs(search_all_experiments=True, output_format="list")
        if run.data.tags.get("pricer.family") == "ensemble"
    ]
    assert ensemble.info.status == "FINISHED"

    # That ensemble, logged, as a member in turn: its own logged member's key is checked too.
    [logged] = [
        model
        for model in mlflow.search_logged_models(output_format="list")
        if model.source_run_id == ensemble.info.run_id
    ]
    monkeypatch.delenv(KEY_ENV)
    outer = f"models:/{logged.model_id}"
    nested = run_cli(ensemble_run(item_files, tmp_path, {"stack": outer}), tracking_uri, tmp_path)
    assert the_error_line(nested).startswith(
        f"error: ensemble (members.stack.members.best, logged {outer}): environment variable "
        f"{KEY_ENV} {NOT_SET}"
    ), nested.stderr[-2000:]
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == 2


def test_a_logged_classical_member_needs_no_key(
    compose_conf, item_files, tracking_uri, monkeypatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    train, test = item_files
    items = ["data=items", f"data.train_paths=[{train}]", f"data.test_paths=[{test}]"]
    linear = logged_model(
        "linear", compose_conf("train", ["model=linear", "family=linear", *items])
    )
    cfg = compose_conf(
        "train",
        [
            "model=ensemble",
            "~model.members.xgboost",
            f"+model.members.best._target_={LOGGED_PRICER}",
            f"+model.members.best.model_uri={linear}",
            "family=ensemble",
            "tracking.log_model=false",
            *items,
        ],
    )
    assert run_family("ensemble", cfg).status == "FINISHED"


def test_a_leaderboard_and_a_sweep_check_their_logged_members_keys(
    compose_conf, item_files, stub: StubServer, api_key, tracking_uri, monkeypatch
) -> None:
    frontier = logged_model(
        "frontier",
        frontier_config(compose_conf, item_files, stub, "tracking.log_model=true"),
    )
    monkeypatch.delenv(KEY_ENV)
    before = mlflow.search_runs(search_all_experiments=True, output_format="list")
    train, test = item_files
    member = [f"_target_={LOGGED_PRICER}", f"model_uri={frontier}"]
    leaderboard = compose_conf(
        "leaderboard",
        [
            "families=[constant,ensemble]",
            "+model@models.ensemble=ensemble",
            *(f"+models.ensemble.members.best.{setting}" for setting in member),
            "data=items",
            f"data.train_paths=[{train}]",
            f"data.test_paths=[{test}]",
        ],
    )
    refusal = rf"^ensemble \(members\.best, logged {frontier}\): environment variable {KEY_ENV} "
    # The leaderboard fitted constant and the ensemble's other members first.
    with pytest.raises(MissingApiKeyError, match=refusal):
        run_leaderboard(leaderboard)
    # A sweep opened its parent run, then each trial was refused.
    sweep = multirun_config(
        [
            "model=ensemble",
            *(f"+model.members.best.{setting}" for setting in member),
            "validation.size=5",
        ],
        ["model=ensemble", "model.log_space=true,false"],
    )
    with pytest.raises(SweepError, match=refusal):
        Callbacks(sweep).on_multirun_start(config=sweep, config_name="train")
    after = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [run.info.run_id for run in after] == [run.info.run_id for run in before]


# A logged member whose model is not there: each form a typo takes, by the store's lookup that
# misses (a registered name, a logged model's id).
MISSING = {"alias": "models:/nosuch@champion", "id": f"models:/m-{uuid.uuid4().hex}"}


@pytest.mark.e2e
@pytest.mark.parametrize("missing", list(MISSING.values()), ids=list(MISSING))
def test_a_logged_member_not_in_the_store_is_refused_before_any_run(
    item_files, tracking_uri, tmp_path, missing
) -> None:
    refused = run_cli(ensemble_run(item_files, tmp_path, {"best": missing}), tracking_uri, tmp_path)
    # It was refused only as the run loaded the member, after the data had loaded: FAILED.
    line = the_error_line(refused)
    assert line.startswith(
        f"error: model.members.best: cannot find {missing} in the tracking store at "
        f"{tracking_uri}: "
    ), line
    assert "not found" in line  # MLflow's reason: no such name, or no such id
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_a_leaderboard_and_a_sweep_refuse_a_logged_member_not_there(
    compose_conf, item_files, tracking_uri, tmp_path
) -> None:
    missing, gone = MISSING["alias"], tmp_path / "no-model"
    train, test = item_files
    members = {"best": missing, "mine": str(gone)}  # one in the store, one on disk
    settings = [
        f"members.{name}.{setting}"
        for name, uri in members.items()
        for setting in (f"_target_={LOGGED_PRICER}", f"model_uri={uri}")
    ]
    leaderboard = compose_conf(
        "leaderboard",
        [
            "families=[constant,ensemble]",
            "+model@models.ensemble=ensemble",
            *(f"+models.ensemble.{setting}" for setting in settings),
            "data=items",
            f"data.train_paths=[{train}]",
            f"data.test_paths=[{test}]",
        ],
    )
    # Both members in one line, each by its place; the refusal used to come once constant
    # had fitted, its run and the leaderboard's left behind.
    refusal = "^" + re.escape(
        f"models.ensemble.members.best: cannot find {missing} in the tracking store at "
        f"{tracking_uri}: Registered Model with name=nosuch not found; "
        f"models.ensemble.members.mine: cannot find {gone}: no such file or folder "
    )
    with pytest.raises(UserError, match=refusal):  # what the app prints as one line
        run_leaderboard(leaderboard)
    # A sweep opened its parent run, then each trial was refused, the parent FAILED.
    sweep = multirun_config(
        [
            "model=ensemble",
            *(f"+model.{setting}" for setting in settings[:2]),
            "validation.size=5",
        ],
        ["model=ensemble", "model.log_space=true,false"],
    )
    with pytest.raises(SweepError, match=r"^model\.members\.best: cannot find models:/nosuch"):
        Callbacks(sweep).on_multirun_start(config=sweep, config_name="train")
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_a_sweep_whose_logged_member_s_store_does_not_answer_stops_in_one_line(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store's one line came as Hydra's warning about a callback, then again from each trial.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        server = f"http://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens there
    uris = mlflow.tracking._tracking_service.utils  # the check points MLflow at it: put back
    monkeypatch.setattr(uris, "_tracking_uri", uris._tracking_uri)
    sweep = multirun_config(
        [
            "model=ensemble",
            "+model.members.best._target_=pricer.tracking.model.logged_pricer",
            "+model.members.best.model_uri=models:/pricer-real@champion",
            "validation.size=5",
            f"tracking.uri={server}",
        ],
        ["model=ensemble", "model.log_space=true,false"],
    )
    with pytest.raises(SweepError, match=rf"^cannot reach the tracking server at {server} "):
        Callbacks(sweep).on_multirun_start(config=sweep, config_name="train")


def test_a_logged_member_given_as_a_folder_that_exists_still_loads(
    compose_conf, item_files, tracking_uri, tmp_path
) -> None:
    train, test = item_files
    items = ["data=items", f"data.train_paths=[{train}]", f"data.test_paths=[{test}]"]
    linear = logged_model(
        "linear", compose_conf("train", ["model=linear", "family=linear", *items])
    )
    folder = mlflow.artifacts.download_artifacts(linear, dst_path=str(tmp_path / "linear"))
    cfg = compose_conf(
        "train",
        [
            "model=ensemble",
            "~model.members.xgboost",
            f"+model.members.best._target_={LOGGED_PRICER}",
            f"+model.members.best.model_uri={folder}",
            "family=ensemble",
            "tracking.log_model=false",
            *items,
        ],
    )
    assert run_family("ensemble", cfg).status == "FINISHED"


def test_a_logged_member_in_a_store_whose_library_is_missing_is_refused_before_any_run(
    compose_conf, item_files, tracking_uri, tmp_path, monkeypatch
) -> None:
    # MLflow imports boto3 only as it downloads: the run opened, loaded its data and ended
    # FAILED on "No module named 'botocore'".
    for module in ("boto3", "botocore"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    s3 = "s3://pricer-bucket/models/best"
    bucket = mlflow.create_experiment("in-s3", artifact_location="s3://pricer-bucket/runs")
    with mlflow.start_run(experiment_id=bucket) as run:  # a run of it, files in the bucket
        pass
    in_run = f"runs:/{run.info.run_id}/model"
    train, test = item_files
    cfg = compose_conf(
        "train",
        [
            "model=ensemble",
            "~model.members.xgboost",
            *(
                f"+model.members.{name}.{setting}"
                for name, uri in (("best", s3), ("run", in_run))
                for setting in (f"_target_={LOGGED_PRICER}", f"model_uri={uri}")
            ),
            "family=ensemble",
            "data=items",
            f"data.train_paths=[{train}]",
            f"data.test_paths=[{test}]",
        ],
    )
    before = mlflow.search_runs(search_all_experiments=True, output_format="list")
    with pytest.raises(StoreLibraryMissing) as refused:
        run_family("ensemble", cfg)
    assert str(refused.value) == (
        f"model.members.best: cannot load {s3}: import of boto3 halted; None in sys.modules "
        "(its artifact store, s3://, needs a library not installed here: install it, or leave "
        f"the member out); model.members.run: cannot load {in_run}: import of boto3 halted; "
        "None in sys.modules (its artifact store, s3://, needs a library not installed here: "
        "install it, or leave the member out)"
    )
    after = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [r.info.run_id for r in after] == [r.info.run_id for r in before]
    # A sweep is refused before its parent run opens, as for a member not found.
    sweep = multirun_config(
        [
            "model=ensemble",
            f"+model.members.best._target_={LOGGED_PRICER}",
            f"+model.members.best.model_uri={s3}",
            "validation.size=5",
        ],
        ["model=ensemble", "model.log_space=true,false"],
    )
    with pytest.raises(SweepError, match=rf"^model\.members\.best: cannot load {s3}: "):
        Callbacks(sweep).on_multirun_start(config=sweep, config_name="train")
    after = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [r.info.run_id for r in after] == [r.info.run_id for r in before]
