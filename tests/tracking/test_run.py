from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from pricer.errors import ConfigError
from pricer.models.constant import ConstantPricer
from pricer.tracking.model import log_pricer
from pricer.tracking.run import (
    REDACTED,
    configure_tracking,
    flatten_config,
    log_config,
    tracked_run,
)
from tests.conftest import compose_config, project_experiment

TRACKING = {
    "uri": None,
    "experiment": "unit",
    "artifact_location": None,
    "tags": {"team": "t"},
    "trace_llm": False,
}


def tracking(uri: str) -> dict:
    return {**TRACKING, "uri": uri}


def test_flatten_redacts_secrets_but_keeps_where_they_live() -> None:
    cfg = OmegaConf.create(
        {
            "model": {"api_key": "sk-live-123", "api_key_env": "OPENAI_API_KEY", "k": 3},
            "auth": {"password": "hunter2", "token": None},
            "x": {"long": "y" * 7000},
            "seed": 1,
            "paths": [1, 2],
            "ref": "${seed}",
        }
    )
    flat = flatten_config(cfg)
    assert flat["model.api_key"] == REDACTED and flat["auth.password"] == REDACTED
    assert flat["model.api_key_env"] == "OPENAI_API_KEY"
    assert flat["auth.token"] == "None"  # nothing to hide
    assert flat["model.k"] == "3" and flat["ref"] == "1" and flat["paths"] == "[1, 2]"
    assert len(flat["x.long"]) == 6000
    assert "sk-live-123" not in repr(flat)


def test_failed_run_is_marked_failed_with_the_reason(tracking_uri: str) -> None:
    with (
        pytest.raises(RuntimeError, match="boom"),
        tracked_run(tracking(tracking_uri), run_name="broken", tags={"pricer.family": "x"}) as run,
    ):
        raise RuntimeError("boom")
    finished = mlflow.get_run(run.info.run_id)
    assert finished.info.status == "FAILED"
    assert finished.data.tags["error"] == "RuntimeError: boom"
    assert finished.data.tags["team"] == "t" and finished.data.tags["pricer.family"] == "x"


def test_a_store_that_fails_as_the_run_ends_is_one_line_naming_the_run(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store failing as a finished run ended gave its traceback, with no word on the run.
    from mlflow.exceptions import MlflowException

    from pricer.tracking.store import StoreUnreachable

    def refuse(self: object, run_id: str, status: str = "FINISHED", end_time: object = None):
        raise MlflowException("(sqlite3.OperationalError) database is locked\n[SQL: UPDATE]")

    with (
        monkeypatch.context() as failing,
        pytest.raises(StoreUnreachable) as raised,
        tracked_run(tracking(tracking_uri), run_name="done", tags={}) as run,
    ):
        failing.setattr(mlflow.MlflowClient, "set_terminated", refuse)
    message = str(raised.value)
    assert message.count("\n") == 0 and run.info.run_id in message
    assert "database is locked" in message and "stays RUNNING" in message
    assert mlflow.active_run() is None  # nothing left for atexit to end again
    assert mlflow.get_run(run.info.run_id).info.status == "RUNNING"


def test_a_store_that_stops_answering_mid_run_is_one_line_naming_the_run(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tracking server that went away mid-run: the logging call's error, then the end's,
    # printed "could not end run" and 150 lines of traceback, as a bug would.
    from mlflow.exceptions import MlflowException

    from pricer.tracking.store import StoreUnreachable

    refused = (
        "API request to http://127.0.0.1:5077/api/2.0/mlflow/runs/log-metric failed with "
        "exception HTTPConnectionPool(host='127.0.0.1', port=5077): Max retries exceeded "
        '(Caused by NewConnectionError("...: [Errno 111] Connection refused"))'
    )

    def gone(*args: object, **kwargs: object) -> None:
        raise MlflowException(refused)

    with (
        monkeypatch.context() as server_down,
        pytest.raises(StoreUnreachable) as raised,
        tracked_run(tracking(tracking_uri), run_name="cut", tags={}) as run,
    ):
        for method in ("log_metric", "set_tag", "set_terminated"):
            server_down.setattr(mlflow.MlflowClient, method, gone)
        mlflow.log_metric("mae", 20.0)
    message = str(raised.value)
    assert message == (
        "the tracking store stopped answering while run "
        f"{run.info.run_id} was logged (MlflowException: [Errno 111] Connection refused): its "
        "end was not recorded, so it stays RUNNING, and pricer runs shows it STALE once this "
        "process has ended"
    )
    assert mlflow.active_run() is None
    assert mlflow.get_run(run.info.run_id).info.status == "RUNNING"


def test_a_parent_run_the_store_cannot_end_says_nothing_more_than_its_child(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A leaderboard's parent, its family's run having said the store stopped answering: it
    # printed "could not end run" and the store's repr under that line.
    from mlflow.exceptions import MlflowException

    from pricer.tracking.store import StoreUnreachable

    def gone(*args: object, **kwargs: object) -> None:
        raise MlflowException("API request failed with exception [Errno 111] Connection refused")

    said = "the tracking store stopped answering while run f00 was logged (...)"
    with (
        monkeypatch.context() as server_down,
        pytest.raises(StoreUnreachable) as raised,
        tracked_run(tracking(tracking_uri), run_name="parent", tags={}),
    ):
        for method in ("set_tag", "set_terminated"):
            server_down.setattr(mlflow.MlflowClient, method, gone)
        raise StoreUnreachable(said)
    assert str(raised.value) == said and "could not end" not in capsys.readouterr().err


def test_a_server_that_failed_mid_run_and_answers_at_its_end_is_one_line(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server whose database restarted: MLflow gave up on a call after minutes of 503s, and
    # the server answered again as the run ended FAILED. MLflow's traceback, exit 1, followed.
    import requests
    from mlflow.exceptions import MlflowException

    from pricer.tracking.store import StoreUnreachable

    def gave_up(*args: object, **kwargs: object) -> None:
        try:  # as mlflow.utils.rest_utils raises it: the requests error as its context
            raise requests.exceptions.RetryError(
                "HTTPConnectionPool(host='127.0.0.1', port=5077): Max retries exceeded with "
                "url: /api/2.0/mlflow/runs/log-inputs (Caused by ResponseError('too many 503 "
                "error responses'))"
            )
        except requests.exceptions.RetryError as error:
            raise MlflowException(  # noqa: B904  (MLflow chains it implicitly, as here)
                f"API request to .../runs/log-inputs failed with exception {error}"
            )

    with (
        monkeypatch.context() as server_failing,
        pytest.raises(StoreUnreachable) as raised,
        tracked_run(tracking(tracking_uri), run_name="cut", tags={}) as run,
    ):
        server_failing.setattr(mlflow.MlflowClient, "log_metric", gave_up)
        mlflow.log_metric("mae", 20.0)
    assert str(raised.value) == (
        f"the tracking server failed while run {run.info.run_id} was logged (too many 503 error "
        "responses): the run ended FAILED; run it again once the server answers"
    )
    ended = mlflow.get_run(run.info.run_id)
    assert ended.info.status == "FAILED" and "503" in ended.data.tags["error"]


def test_a_bug_mid_run_keeps_its_traceback_when_the_store_answers(tracking_uri: str) -> None:
    # Only when ending the run fails too is the error read as the store's.
    from mlflow.exceptions import MlflowException

    with (
        pytest.raises(MlflowException, match="not a store failure"),
        tracked_run(tracking(tracking_uri), run_name="bug", tags={}) as run,
    ):
        raise MlflowException("not a store failure")
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"


def test_config_logged_as_params_and_yaml(tracking_uri: str) -> None:
    cfg = OmegaConf.create({"model": {"alpha": 0.5, "api_key": "sk-secret"}})
    with tracked_run(tracking(tracking_uri), run_name="cfg", tags={}) as run:
        log_config(cfg)
    logged = mlflow.get_run(run.info.run_id)
    assert logged.data.params["model.alpha"] == "0.5"
    text = mlflow.artifacts.load_text(f"{logged.info.artifact_uri}/config/config.yaml")
    assert "alpha: 0.5" in text and "sk-secret" not in text


def test_logged_pricer_loads_as_pyfunc_and_predicts_from_text_only(tracking_uri: str) -> None:
    items = pd.DataFrame(
        {
            "text": ["a", "b", "c"],
            "title": ["A", "B", "C"],
            "category": ["Toys"] * 3,
            "details": ["{}"] * 3,
        }
    )
    pricer = ConstantPricer(statistic="median").fit(items, np.array([1.0, 5.0, 30.0]))
    with tracked_run(tracking(tracking_uri), run_name="model", tags={}):
        info = log_pricer(pricer)
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    prices = loaded.predict(pd.DataFrame({"text": ["anything at all", "more"]}))
    assert np.allclose(prices, [5.0, 5.0])
    inputs = {spec.name: spec.required for spec in loaded.metadata.get_input_schema().inputs}
    assert inputs == {"text": True, "title": False, "category": False, "details": False}
    # Its requirements name every third-party package its shipped code imports, pinned: a
    # hand-kept list lacked lightgbm (the stack), hydra-core and omegaconf (the settings), so
    # it could not import in an environment of its own (mlflow models serve --env-manager
    # virtualenv).
    requirements = mlflow.pyfunc.get_model_dependencies(info.model_uri)
    pinned = {
        line.split("==")[0] for line in Path(requirements).read_text().splitlines() if "==" in line
    }
    needed = {"mlflow", "lightgbm", "hydra-core", "omegaconf", "scikit-learn", "xgboost-cpu"}
    assert needed <= pinned, needed - pinned


def test_trace_llm_turns_on_openai_autolog(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.openai

    calls: list[bool] = []
    monkeypatch.setattr(mlflow.openai, "autolog", lambda: calls.append(True))
    with tracked_run(tracking(tracking_uri), run_name="quiet", tags={}):
        pass
    assert calls == []
    with tracked_run({**tracking(tracking_uri), "trace_llm": True}, run_name="traced", tags={}):
        pass
    assert calls == [True]


def test_a_run_records_the_cpu_and_blas_kernel_its_figures_came_from(tracking_uri: str) -> None:
    # The same commit and data gave xgboost $95.73 on the real benchmark with OpenBLAS's
    # Haswell kernel and $94.90 with its Sandybridge one; nothing in the record said which.
    with tracked_run(tracking(tracking_uri), run_name="machine", tags={}) as run:
        pass
    recorded = mlflow.get_run(run.info.run_id).data.tags
    assert recorded["pricer.cpu"]
    from threadpoolctl import threadpool_info

    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    if not blas or blas[0]["internal_api"] != "openblas":
        pytest.skip("the kernel check below needs OpenBLAS")
    assert str(blas[0]["architecture"]) in recorded["pricer.blas"]
    # Another kernel (OpenBLAS picks one per CPU; OPENBLAS_CORETYPE forces one) is seen as such.
    script = "from pricer.tracking.run import machine_tags; print(machine_tags()['pricer.blas'])"
    forced = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "OPENBLAS_CORETYPE": "Sandybridge"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Sandybridge" in forced.stdout


def test_a_run_records_the_simd_extensions_numpy_dispatches_to() -> None:
    # Same commit, data, CPU name and OpenBLAS kernel, other figures: xgboost gave $92.65 on the
    # real benchmark where numpy's own kernels ran on AVX-512 and $95.73 with it turned off
    # (NPY_DISABLE_CPU_FEATURES), and no tag said so.
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    found = [target for target in __cpu_dispatch__ if __cpu_features__.get(target)]
    script = "from pricer.tracking.run import machine_tags; print(machine_tags()['pricer.simd'])"

    def simd(**env: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()

    said = simd()
    assert said[0] == "numpy" and said[1:] == (found or ["baseline"])
    if not found:
        pytest.skip("numpy dispatches to no extension beyond its baseline on this CPU")
    # numpy turns dispatched extensions off on request: the tag follows what it uses.
    assert simd(NPY_DISABLE_CPU_FEATURES=" ".join(found))[1:] == ["baseline"]


def test_the_blas_tag_names_the_same_libraries_whatever_was_imported_first() -> None:
    # A sweep asked before scipy was loaded and named numpy's OpenBLAS alone; other runs on the
    # same machine named both, and `pricer compare` showed them as another kernel.
    script = "from pricer.tracking.run import machine_tags as m; print(m().get('pricer.blas'))"
    first = "import sklearn.linear_model, xgboost; "
    said = [
        subprocess.run(
            [sys.executable, "-c", prefix + script], capture_output=True, text=True, check=True
        ).stdout
        for prefix in ("", first)
    ]
    assert said[0] == said[1]


def test_an_experiment_name_the_store_refuses_is_one_line_before_any_run(
    tracking_uri: str,
) -> None:
    # MLflow's "'name' exceeds the maximum length of 500 characters", with its traceback.
    cfg = compose_config("train", ["tracking.experiment=" + "x" * 501])
    with pytest.raises(ConfigError, match=r"^tracking\.experiment has 501 characters: "):
        configure_tracking(cfg.tracking)
    assert {e.name for e in mlflow.search_experiments()} == {project_experiment(), "Default"}


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_artifact_location_that_cannot_hold_files_is_one_line_before_the_experiment(
    tracking_uri: str, tmp_path: Path, where: str
) -> None:
    # The experiment was created with it, and every run in it failed at its first artifact
    # with a NotADirectoryError traceback.
    (tmp_path / "notes.txt").write_text("mine")
    location = tmp_path / "notes.txt" if where == "a file" else tmp_path / "notes.txt" / "runs"
    cfg = compose_config(
        "train", ["tracking.experiment=new", f"tracking.artifact_location={location}"]
    )
    with pytest.raises(ConfigError, match=r"^tracking\.artifact_location=.*notes\.txt is a file"):
        configure_tracking(cfg.tracking)
    assert mlflow.get_experiment_by_name("new") is None


@pytest.mark.parametrize("where", ["under a file", "where no folder can be made"])
def test_an_existing_experiments_location_that_cannot_hold_files_is_one_line_before_any_run(
    tracking_uri: str, tmp_path: Path, where: str
) -> None:
    # Only a new experiment's location was checked: every run in this one failed at its first
    # artifact, each with the error MLflow raised there (NotADirectoryError's traceback).
    (tmp_path / "notes.txt").write_text("mine")
    location = tmp_path / "notes.txt" / "runs" if where == "under a file" else "/proc/pricer/runs"
    mlflow.create_experiment("old", artifact_location=str(location))
    cfg = compose_config("train", ["tracking.experiment=old"])
    with pytest.raises(ConfigError) as refused:
        configure_tracking(cfg.tracking)
    said = str(refused.value)
    assert said.startswith(f"experiment 'old' keeps its run files at {location}: ")
    assert "\n" not in said
    if where == "under a file":
        assert f"{tmp_path / 'notes.txt'} is a file, not a folder" in said
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_an_artifact_location_an_existing_experiment_does_not_have_is_refused_before_any_run(
    tracking_uri: str, tmp_path: Path
) -> None:
    # Silently ignored: runs went on to the experiment's own location, not where it was said.
    mlflow.create_experiment("old", artifact_location=str(tmp_path / "old-runs"))
    wanted = tmp_path / "new-runs"
    cfg = compose_config(
        "train", ["tracking.experiment=old", f"tracking.artifact_location={wanted}"]
    )
    with pytest.raises(ConfigError) as refused:
        configure_tracking(cfg.tracking)
    assert str(refused.value) == (
        f"tracking.artifact_location={wanted}: experiment 'old' already keeps its run files at "
        f"{tmp_path / 'old-runs'} (an experiment's location is set when it is created): name "
        "another experiment (tracking.experiment=NAME) for runs to go there, or drop "
        "tracking.artifact_location"
    )
    assert not wanted.exists()
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.parametrize("given", ["path", "file URI", "trailing slash", "relative path"])
def test_an_existing_experiments_own_location_given_again_is_accepted(
    tracking_uri: str, tmp_path: Path, given: str
) -> None:
    recorded = tmp_path / "my runs"  # a space: %20 in its file: URI
    mlflow.create_experiment("old", artifact_location=str(recorded))
    location = {
        "path": str(recorded),
        "file URI": recorded.as_uri(),
        "trailing slash": f"{recorded}/",
        "relative path": "./my runs",  # the tests run from tmp_path
    }[given]
    cfg = compose_config(
        "train", ["tracking.experiment=old", f"tracking.artifact_location='{location}'"]
    )
    configure_tracking(cfg.tracking)
    assert mlflow.get_experiment_by_name("old").artifact_location == str(recorded)


def test_under_mlflow_run_the_experiments_location_is_checked_before_any_run(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # mlflow run chooses the experiment (MLFLOW_EXPERIMENT_ID): its location was not checked,
    # and the run failed at its first artifact with NotADirectoryError's traceback.
    (tmp_path / "notes.txt").write_text("mine")
    location = tmp_path / "notes.txt" / "runs"
    experiment_id = mlflow.create_experiment("old", artifact_location=str(location))
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    with pytest.raises(ConfigError) as refused:
        configure_tracking(compose_config("train").tracking)
    assert str(refused.value) == (
        f"experiment 'old' (MLFLOW_EXPERIMENT_ID={experiment_id}) keeps its run files at "
        f"{location}: {tmp_path / 'notes.txt'} is a file, not a folder; fix that place, or send "
        "runs to another experiment (mlflow run --experiment-name NAME)"
    )
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_under_mlflow_run_an_artifact_location_the_experiment_does_not_have_is_refused(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The direct CLI refused it; under mlflow run (MLFLOW_EXPERIMENT_ID set, as mlflow run
    # sets it) it was silently ignored, the run's files going to the experiment's own place.
    experiment_id = mlflow.create_experiment("old", artifact_location=str(tmp_path / "old-runs"))
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    wanted = tmp_path / "new-runs"
    with pytest.raises(ConfigError) as refused:
        configure_tracking(
            compose_config("train", [f"tracking.artifact_location={wanted}"]).tracking
        )
    assert str(refused.value) == (
        f"tracking.artifact_location={wanted}: experiment 'old' (MLFLOW_EXPERIMENT_ID="
        f"{experiment_id}) already keeps its run files at {tmp_path / 'old-runs'} (an "
        "experiment's location is set when it is created): send runs to an experiment created "
        "there (mlflow experiments create --experiment-name NAME --artifact-location LOCATION, "
        "then mlflow run --experiment-name NAME), or drop tracking.artifact_location"
    )
    assert not wanted.exists()
    # Its own location, given again as a file: URI, is that location.
    own = (tmp_path / "old-runs").as_uri()
    configure_tracking(compose_config("train", [f"tracking.artifact_location={own}"]).tracking)


@pytest.mark.e2e
def test_mlflow_run_refuses_an_artifact_location_the_experiment_does_not_have(
    tracking_uri: str, tmp_path: Path
) -> None:
    # Through the real `mlflow run`, which chooses the experiment and starts the run itself.
    from tests.e2e.conftest import run_cli

    mlflow.create_experiment("old", artifact_location=str(tmp_path / "old-runs"))
    wanted = tmp_path / "new-runs"
    overrides = f"tracking.artifact_location={wanted} hydra.run.dir={tmp_path}/hydra"
    command = ["mlflow", "run", ".", "-e", "constant", "--env-manager", "local"]
    command += ["--experiment-name", "old", "-P", f"overrides={overrides}"]
    result = run_cli(command, tracking_uri, tmp_path)
    assert result.returncode != 0
    said = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert said == [
        f"error: tracking.artifact_location={wanted}: experiment 'old' (MLFLOW_EXPERIMENT_ID="
        f"{mlflow.get_experiment_by_name('old').experiment_id}) already keeps its run files at "
        f"{tmp_path / 'old-runs'} (an experiment's location is set when it is created): send "
        "runs to an experiment created there (mlflow experiments create --experiment-name NAME "
        "--artifact-location LOCATION, then mlflow run --experiment-name NAME), or drop "
        "tracking.artifact_location"
    ], result.stderr[-3000:]
    assert "Traceback" not in result.stderr and not wanted.exists()
    # mlflow run's own run ends FAILED, holding no metric: the app stopped before training.
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FAILED" and not run.data.metrics


@pytest.mark.parametrize("location", ["s3://pricer-bucket/runs", "mlflow-artifacts:/runs"])
def test_an_existing_experiment_in_a_remote_artifact_store_is_not_probed_as_a_folder(
    tracking_uri: str, tmp_path: Path, location: str
) -> None:
    mlflow.create_experiment("remote", artifact_location=location)
    configure_tracking(compose_config("train", ["tracking.experiment=remote"]).tracking)
    assert mlflow.get_experiment_by_name("remote").artifact_location == location
    # Read as a local path it was a folder "s3:" (or "mlflow-artifacts:") made in the cwd.
    assert not [path for path in tmp_path.iterdir() if ":" in path.name]


def test_a_new_experiments_default_location_is_created_where_the_store_keeps_it(
    tracking_uri: str, tmp_path: Path
) -> None:
    # Checked once chosen, as an existing one's: a writable default passes, its folder made.
    configure_tracking(compose_config("train", ["tracking.experiment=fresh"]).tracking)
    location = Path(mlflow.get_experiment_by_name("fresh").artifact_location)
    assert location.is_dir()


@pytest.mark.parametrize(
    ("raised", "status", "why"),
    [
        (KeyboardInterrupt(), "KILLED", "interrupted by SIGINT (KeyboardInterrupt)"),
        (RuntimeError("boom"), "FAILED", "RuntimeError: boom"),
    ],
)
def test_a_run_that_does_not_finish_fails_the_models_it_left_pending(
    tracking_uri: str, raised: BaseException, status: str, why: str
) -> None:
    # MLflow fails a model only on an Exception inside its own logging: stopped there (a
    # KeyboardInterrupt), or by an error outside it, the model stayed PENDING for good.
    from mlflow.entities import LoggedModelStatus

    with pytest.raises(type(raised)), tracked_run(tracking(tracking_uri), run_name="cut", tags={}):
        pending = mlflow.initialize_logged_model(name="pricer")
        ready = mlflow.initialize_logged_model(name="other")
        mlflow.MlflowClient().finalize_logged_model(ready.model_id, LoggedModelStatus.READY)
        raise raised
    run = mlflow.get_run(pending.source_run_id)
    assert run.info.status == status and run.data.tags["error"] == why
    failed = mlflow.get_logged_model(pending.model_id)
    assert failed.status == LoggedModelStatus.FAILED and failed.tags["error"] == why
    assert mlflow.get_logged_model(ready.model_id).status == LoggedModelStatus.READY


def test_a_run_that_does_not_finish_fails_every_page_of_its_pending_models(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store answers a search a page at a time (100 models; 2 here): read as one page, the
    # models past the first page stayed PENDING.
    from mlflow.entities import LoggedModelStatus
    from mlflow.store.tracking import sqlalchemy_store

    monkeypatch.setattr(sqlalchemy_store, "SEARCH_LOGGED_MODEL_MAX_RESULTS_DEFAULT", 2)
    with (
        pytest.raises(KeyboardInterrupt),
        tracked_run(tracking(tracking_uri), run_name="cut", tags={}),
    ):
        pending = [mlflow.initialize_logged_model(name=f"pricer-{i}") for i in range(5)]
        raise KeyboardInterrupt
    statuses = [mlflow.get_logged_model(model.model_id).status for model in pending]
    assert statuses == [LoggedModelStatus.FAILED] * 5


def test_a_store_error_failing_its_models_does_not_keep_a_stopped_run_from_ending(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow.entities import LoggedModelStatus
    from mlflow.exceptions import MlflowException

    def refuse(*args: object, **kwargs: object) -> None:
        raise MlflowException("database is locked")

    with (
        monkeypatch.context() as failing,
        pytest.raises(KeyboardInterrupt),
        tracked_run(tracking(tracking_uri), run_name="cut", tags={}) as run,
    ):
        pending = mlflow.initialize_logged_model(name="pricer")
        failing.setattr(mlflow.MlflowClient, "finalize_logged_model", refuse)
        raise KeyboardInterrupt
    assert mlflow.get_run(run.info.run_id).info.status == "KILLED"  # what matters most
    assert mlflow.get_logged_model(pending.model_id).status == LoggedModelStatus.PENDING
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pricer:")]
    assert said == [
        f"pricer: could not mark the models run {run.info.run_id} left unfinished FAILED "
        "(MlflowException: database is locked); they stay PENDING"
    ]
