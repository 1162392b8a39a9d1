"""The sweep callback against a real store, trials simulated in-process (fast).

A trial here is what pricer.train does to tracking: a ``tracked_run`` that logs the objective.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from hydra._internal.callbacks import Callbacks  # how Hydra calls callbacks
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from pricer.tracking.run import SWEEP_PARENT_ENV, SWEEP_TAGS_ENV, tracked_run
from pricer.tracking.sweep import (
    BEST_RUN_TAG,
    OVERRIDES_TAG,
    TRIAL_TAG,
    SweepCallback,
    SweepError,
    trial_overrides,
)
from pricer.validation import OBJECTIVE
from tests.conftest import multirun_config

# What joblib's workers set (besides others no library of pricer's reads), and a shell may.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@pytest.fixture(autouse=True)
def no_sweep_in_the_environment() -> Iterator[None]:
    for name in (SWEEP_PARENT_ENV, SWEEP_TAGS_ENV):
        os.environ.pop(name, None)
    yield
    for name in (SWEEP_PARENT_ENV, SWEEP_TAGS_ENV):
        os.environ.pop(name, None)


@pytest.fixture(autouse=True)
def threads_as_a_plain_process_has_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """No thread count from the shell: a replay carries the ones its trial ran with."""
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sweep_config(tracking_uri: str, tmp_path: Path) -> DictConfig:
    """What Hydra hands the callback for `-m model=constant model.statistic=mean,median`."""
    return multirun_config(
        ["model=constant", "validation.size=50"],
        ["model=constant", "model.statistic=mean,median"],
    )


def trial_config(master: DictConfig, num: int, statistic: str) -> DictConfig:
    cfg = master.copy()
    with open_dict(cfg):
        cfg.hydra.job.num = num
        cfg.hydra.overrides.task = ["model=constant", f"model.statistic={statistic}"]
    return cfg


def run_trial(
    callback: SweepCallback, cfg: DictConfig, objective: float | None, *, fail: bool = False
) -> str:
    """What the launcher and pricer.train do for one trial; returns the trial's run id."""
    callback.on_job_start(cfg, task_function=None)
    try:
        with tracked_run(cfg.tracking, run_name="constant", tags={}) as run:
            if objective is not None:
                mlflow.log_metrics({OBJECTIVE: objective, "mae": objective + 1})
            if fail:
                raise RuntimeError("trial broke")
    except RuntimeError:
        pass
    finally:
        callback.on_job_end(cfg, job_return=None)
    return run.info.run_id


def children(parent_run_id: str) -> list[mlflow.entities.Run]:
    return mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        output_format="list",
    )


def test_a_best_trial_ranked_on_another_models_answers_says_so(sweep_config: DictConfig) -> None:
    # Trials are ranked by their validation mae: a trial whose validation items a substitute
    # answered (a proxy's) was reported best with no word of whose answers it was ranked on.
    from pricer.tracking.sweep import summarise_trials

    callback: SweepCallback = instantiate(sweep_config.hydra.callbacks.mlflow_sweep)
    callback.on_multirun_start(sweep_config)
    parent_id = callback.parent_run_id
    run_trial(callback, trial_config(sweep_config, 0, "mean"), 50.0)
    best = run_trial(callback, trial_config(sweep_config, 1, "median"), 40.0)
    client = mlflow.MlflowClient()
    client.log_metric(best, "llm.answers_from_other_model", 0)
    client.log_metric(best, "validation.llm.answers_from_other_model", 10)
    client.set_tag(best, "llm.answered_by", "gpt-4o-mini")
    client.set_tag(best, "validation.llm.answered_by", "llama3.1:8b")
    callback.on_multirun_end(sweep_config)
    line = summarise_trials(client, parent_id, OBJECTIVE, "minimize", [])
    assert line is not None and line.startswith("sweep: best trial 1")
    said = "10 of its answers from gpt-4o-mini, llama3.1:8b, not the model asked for"
    assert said in line.splitlines()[0]
    parent = mlflow.get_run(parent_id)
    table = json.loads(mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/sweep/trials.json"))
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert [(row["other_model_answers"], row["answered_by"]) for row in rows] == [
        (0, ""),
        (10, "gpt-4o-mini, llama3.1:8b"),
    ]


def test_trials_nest_under_one_parent_that_logs_the_best(sweep_config: DictConfig) -> None:
    callback: SweepCallback = instantiate(sweep_config.hydra.callbacks.mlflow_sweep)
    callback.on_multirun_start(sweep_config)
    parent_id = callback.parent_run_id
    assert parent_id and os.environ[SWEEP_PARENT_ENV] == parent_id
    mean = run_trial(callback, trial_config(sweep_config, 0, "mean"), 50.0)
    median = run_trial(callback, trial_config(sweep_config, 1, "median"), 40.0)
    broken = run_trial(callback, trial_config(sweep_config, 2, "mean"), None, fail=True)
    callback.on_multirun_end(sweep_config)

    runs = {run.info.run_id: run for run in children(parent_id)}
    assert set(runs) == {mean, median, broken}
    assert runs[median].data.tags[TRIAL_TAG] == "1"
    assert trial_overrides(runs[median].data.tags[OVERRIDES_TAG]) == {
        "model": "constant",
        "model.statistic": "median",
    }
    assert runs[broken].info.status == "FAILED"
    parent = mlflow.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["pricer.kind"] == "sweep"
    # This process's alone: tagged with it, so that `pricer runs` tells a dead one (STALE).
    assert parent.data.tags["pricer.pid"] == str(os.getpid())
    # Each trial, and the sweep's best, says how to run it alone.
    assert runs[median].data.tags["pricer.sweep.replay"] == (
        "pricer train model=constant model.statistic=median validation.size=50"
    )
    assert (
        parent.data.tags["pricer.sweep.best_replay"]
        == runs[median].data.tags["pricer.sweep.replay"]
    )
    assert parent.data.tags["pricer.family"] == "constant"
    # pricer compare's data row: it was blank for a sweep's parent.
    assert parent.data.tags["pricer.data"] == "synthetic"
    assert parent.info.run_name == "sweep · constant · synthetic"
    assert parent.data.tags[BEST_RUN_TAG] == median
    assert parent.data.params["best.model.statistic"] == "median"
    assert parent.data.params["sweep.overrides"] == "model=constant model.statistic=mean,median"
    assert parent.data.metrics[f"best.{OBJECTIVE}"] == 40.0
    assert parent.data.metrics["best.test_mae"] == 41.0  # reported, never ranked on
    assert parent.data.metrics["trials.failed"] == 1
    history = mlflow.MlflowClient().get_metric_history(parent_id, f"trial.{OBJECTIVE}")
    assert sorted((m.step, m.value) for m in history) == [(0, 50.0), (1, 40.0)]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent_id, "sweep")}
    assert artifacts == {"sweep/objective.png", "sweep/trials.json"}
    table = json.loads(mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/sweep/trials.json"))
    assert [row[0] for row in table["data"]] == [0, 1, 2]  # trial order
    # Summed up again (as each process of a shared study does as it ends): the same table,
    # not a second copy of its rows appended.
    from pricer.tracking.sweep import summarise_trials

    summarise_trials(mlflow.MlflowClient(), parent_id, OBJECTIVE, "minimize", [])
    again = json.loads(mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/sweep/trials.json"))
    assert again == table
    # ... and each trial's figure once in the parent's history: a point per summing-up made
    # trial.validation.mae of a shared study as long as its count of ended processes.
    history = mlflow.MlflowClient().get_metric_history(parent_id, f"trial.{OBJECTIVE}")
    assert sorted((m.step, m.value) for m in history) == [(0, 50.0), (1, 40.0)]
    assert SWEEP_PARENT_ENV not in os.environ  # nothing leaks into later runs


def test_a_trial_in_a_launchers_worker_replays_with_the_worker_s_threads(
    sweep_config: DictConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # joblib's workers (hydra/launcher=joblib) start with OMP_NUM_THREADS, OPENBLAS_NUM_THREADS
    # and MKL_NUM_THREADS at cores // n_jobs: on 2 cores and n_jobs=2 tfidf_ridge alpha=0.549
    # gave mae $22.158 and 86.8% hits there, $22.160 and 87.2% from its replay, which ran
    # OpenBLAS on both cores. The replay now sets what the worker had, and gives $22.158.
    from threadpoolctl import threadpool_limits

    callback: SweepCallback = instantiate(sweep_config.hydra.callbacks.mlflow_sweep)
    callback.on_multirun_start(sweep_config)
    parent_id = callback.parent_run_id or ""
    alone = run_trial(callback, trial_config(sweep_config, 0, "mean"), 50.0)
    for name in THREAD_VARIABLES:
        monkeypatch.setenv(name, "1")
    with threadpool_limits(1):  # what those variables gave a worker as its libraries loaded
        worker = run_trial(callback, trial_config(sweep_config, 1, "median"), 40.0)
    callback.on_multirun_end(sweep_config)

    runs = {run.info.run_id: run.data.tags for run in children(parent_id)}
    assert runs[alone]["pricer.sweep.replay"] == (
        "pricer train model=constant model.statistic=mean validation.size=50"
    )
    assert runs[worker]["pricer.sweep.replay"] == (
        "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 "
        "pricer train model=constant model.statistic=median validation.size=50"
    )
    assert runs[worker]["pricer.threads"] == "blas 1, openmp 1"  # the counts it ran with


def test_a_sweep_saves_a_view_of_its_trials_best_first(
    sweep_config: DictConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    # The trials were the parent's collapsed children in the UI, in start order, no figure.
    callback: SweepCallback = instantiate(sweep_config.hydra.callbacks.mlflow_sweep)
    callback.on_multirun_start(sweep_config)
    parent_id = callback.parent_run_id
    mean = run_trial(callback, trial_config(sweep_config, 0, "mean"), 50.0)
    median = run_trial(callback, trial_config(sweep_config, 1, "median"), 40.0)
    callback.on_multirun_end(sweep_config)

    parent = mlflow.get_run(parent_id)
    experiment = mlflow.get_experiment(parent.info.experiment_id)
    key = "pricer-sweep_constant_synthetic"  # after the parent's name, sweep · constant · ...
    state = json.loads(json.loads(experiment.tags[f"mlflow.sharedViewState.{key}"])["state"])
    order = state["orderByKey"].replace("`", "")
    assert order == f"metrics.{OBJECTIVE}" and state["orderByAsc"] is True
    found = mlflow.search_runs(
        filter_string=state["searchFilter"], order_by=[f"{order} ASC"], output_format="list"
    )
    assert [run.info.run_id for run in found] == [median, mean]
    assert state["selectedColumns"] == [
        f"metrics.`{OBJECTIVE}`",
        "metrics.`mae`",
        "params.`model.statistic`",  # the swept key, as the trials log their config
    ]
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1].startswith("trials, best first: http://127.0.0.1:5000/#/experiments/")
    assert printed[-1].endswith(f"runs?viewStateShareKey={key}&workflowType=machine_learning")
    # pricer runs <sweep> gives the address again, while the view is still this sweep's.
    from pricer.tracking.browse import run_summary

    url = printed[-1].removeprefix("trials, best first: ")
    assert any(
        row.startswith("trials, best first ") and row.endswith(url) for row in run_summary(parent)
    )
    again: SweepCallback = instantiate(sweep_config.hydra.callbacks.mlflow_sweep)
    again.on_multirun_start(sweep_config)
    run_trial(again, trial_config(sweep_config, 0, "mean"), 45.0)
    again.on_multirun_end(sweep_config)
    assert not any(row.startswith("trials, best") for row in run_summary(mlflow.get_run(parent_id)))


@pytest.mark.parametrize("ending", ["end of the multirun", "exit after an error"])
def test_a_store_gone_as_the_sweep_ends_is_one_line(
    sweep_config: DictConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    ending: str,
) -> None:
    # A tracking server stopped while the trials ran: the parent's summary and end failed
    # with the store's traceback, at exit under "Exception ignored in atexit callback".
    from mlflow.exceptions import MlflowException

    from pricer.tracking.store import StoreUnreachable

    callback: SweepCallback = instantiate(sweep_config.hydra.callbacks.mlflow_sweep)
    callback.on_multirun_start(sweep_config)
    parent_id = callback.parent_run_id
    run_trial(callback, trial_config(sweep_config, 0, "mean"), 50.0)

    def gone(*args: object, **kwargs: object) -> None:
        raise MlflowException("API request failed with exception [Errno 111] Connection refused")

    said = (
        f"the tracking store or the study's database failed while the sweep's parent run "
        f"{parent_id} was summed up and ended (MlflowException: [Errno 111] Connection refused):"
        " it may stay RUNNING, and pricer runs shows it STALE once this process has ended"
    )
    with monkeypatch.context() as server_down:
        for method in ("search_runs", "log_text", "set_tag", "set_terminated", "log_batch"):
            server_down.setattr(mlflow.MlflowClient, method, gone)
        if ending == "end of the multirun":
            with pytest.raises(StoreUnreachable) as raised:
                callback.on_multirun_end(sweep_config)
            assert str(raised.value) == said
        else:
            callback._close_at_exit()  # what atexit calls: it must not raise
            assert capsys.readouterr().err.splitlines()[-1] == f"pricer: {said}"
    assert mlflow.get_run(parent_id).info.status == "RUNNING"


def test_a_launcher_worker_learns_the_parent_from_the_pickled_callback(
    sweep_config: DictConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    callback: SweepCallback = instantiate(sweep_config.hydra.callbacks.mlflow_sweep)
    callback.on_multirun_start(sweep_config)
    parent_id = callback.parent_run_id
    worker_copy = pickle.loads(pickle.dumps(callback))  # what joblib ships to a worker
    # A worker's environment may predate the parent, and may hold mlflow run's run id.
    del os.environ[SWEEP_PARENT_ENV]
    monkeypatch.setenv("MLFLOW_RUN_ID", parent_id)
    trial = run_trial(worker_copy, trial_config(sweep_config, 0, "mean"), 10.0)
    callback.on_multirun_end(sweep_config)
    assert trial != parent_id  # a trial never resumes the parent
    assert [run.info.run_id for run in children(parent_id)] == [trial]


def test_the_run_mlflow_run_created_becomes_the_parent(
    sweep_config: DictConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = mlflow.set_experiment("pricer")
    created = mlflow.MlflowClient().create_run(experiment.experiment_id)
    monkeypatch.setenv("MLFLOW_RUN_ID", created.info.run_id)
    callback: SweepCallback = instantiate(sweep_config.hydra.callbacks.mlflow_sweep)
    callback.on_multirun_start(sweep_config)
    assert callback.parent_run_id == created.info.run_id
    assert "MLFLOW_RUN_ID" not in os.environ  # no trial resumes it
    first = run_trial(callback, trial_config(sweep_config, 0, "mean"), 2.0)
    second = run_trial(callback, trial_config(sweep_config, 1, "median"), 1.0)
    callback.on_multirun_end(sweep_config)
    assert {run.info.run_id for run in children(created.info.run_id)} == {first, second}
    parent = mlflow.get_run(created.info.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["pricer.kind"] == "sweep"


def test_a_sweep_that_stops_early_leaves_its_parent_failed(sweep_config: DictConfig) -> None:
    callback: SweepCallback = instantiate(sweep_config.hydra.callbacks.mlflow_sweep)
    callback.on_multirun_start(sweep_config)
    parent_id = callback.parent_run_id
    run_trial(callback, trial_config(sweep_config, 0, "mean"), 3.0)
    callback._close("FAILED")  # what the exit hook does when the multirun raised
    parent = mlflow.get_run(parent_id)
    assert parent.info.status == "FAILED"
    assert "stopped before its end" in parent.data.tags["error"]
    assert parent.data.metrics["trials.finished"] == 1  # what did finish is still summarised


def test_a_sweep_over_families_is_named_after_them_not_the_default(tracking_uri: str) -> None:
    # `-m model=constant,linear` named its parent "sweep · tfidf_ridge · synthetic" and tagged
    # it tfidf_ridge (the default model, which no trial trained): `pricer runs` then showed
    # the best trial's test mae as a tfidf_ridge sweep's.
    cfg = multirun_config(["validation.size=50"], ["model=constant,linear", "validation.size=50"])
    callback: SweepCallback = instantiate(cfg.hydra.callbacks.mlflow_sweep)
    callback.on_multirun_start(cfg)
    parent = mlflow.get_run(callback.parent_run_id)
    callback._close("FINISHED")
    assert parent.info.run_name == "sweep · constant, linear · synthetic"
    assert parent.data.tags["pricer.family"] == "constant, linear"


def test_a_sweep_over_data_names_no_data_on_its_parent(tracking_uri: str) -> None:
    # Its trials ran on other data than the base config's: that name would be none of theirs.
    cfg = multirun_config(
        ["validation.size=50"], ["model=constant", "data.n_records=3000,4000", "validation.size=50"]
    )
    callback: SweepCallback = instantiate(cfg.hydra.callbacks.mlflow_sweep)
    callback.on_multirun_start(cfg)
    parent = mlflow.get_run(callback.parent_run_id)
    callback._close("FINISHED")
    assert "pricer.data" not in parent.data.tags
    assert parent.data.tags["pricer.data_source"] == "synthetic"


def test_a_sweep_without_validation_items_is_refused(sweep_config: DictConfig) -> None:
    with open_dict(sweep_config):
        sweep_config.validation.size = 0
    # Through Hydra's own dispatcher, which turns a callback's Exception into a warning.
    callbacks = Callbacks(sweep_config)
    with pytest.raises(SweepError, match=r"set validation\.size"):
        callbacks.on_multirun_start(config=sweep_config, config_name="train")
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_a_sweep_of_a_family_without_its_key_is_refused_before_its_parent_run(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `-m model=frontier model.temperature=0,0.5` without OPENAI_API_KEY opened the parent,
    # whose trials were each refused: a FAILED parent with no trial, the key said at the end.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cfg = multirun_config(
        ["model=frontier", "validation.size=50"], ["model=frontier", "model.temperature=0,0.5"]
    )
    with pytest.raises(SweepError, match=r"^frontier: environment variable OPENAI_API_KEY "):
        Callbacks(cfg).on_multirun_start(config=cfg, config_name="train")
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_a_search_run_without_multirun_is_refused(sweep_config: DictConfig) -> None:
    callbacks = Callbacks(sweep_config)
    callbacks.on_run_start(config=sweep_config)  # the basic sweeper: a plain single run is fine
    with open_dict(sweep_config):
        sweep_config.hydra.sweeper._target_ = "hydra_plugins.optuna.OptunaSweeper"
    with pytest.raises(SweepError, match="add -m"):
        Callbacks(sweep_config).on_run_start(config=sweep_config)


def test_a_parent_that_cannot_be_opened_stops_the_sweep(sweep_config: DictConfig) -> None:
    mlflow.delete_experiment(mlflow.create_experiment("gone"))
    with open_dict(sweep_config):
        sweep_config.tracking.experiment = "gone"  # MLflow refuses to use a deleted experiment
    with pytest.raises(SweepError, match=r"cannot open the sweep's parent run: .*deleted"):
        Callbacks(sweep_config).on_multirun_start(config=sweep_config, config_name="train")
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_runs_inside_another_run_keep_their_parent(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leaderboard inside a sweep trial: its family runs nest under the leaderboard."""
    tracking = {
        "uri": tracking_uri,
        "experiment": "t",
        "artifact_location": None,
        "tags": {},
        "trace_llm": False,
    }
    with tracked_run(tracking, run_name="sweep", tags={}) as sweep:
        pass
    monkeypatch.setenv(SWEEP_PARENT_ENV, sweep.info.run_id)
    with (
        tracked_run(tracking, run_name="leaderboard", tags={}) as board,
        tracked_run(tracking, run_name="family", tags={}, nested=True) as family,
    ):
        pass
    assert mlflow.get_run(board.info.run_id).data.tags["mlflow.parentRunId"] == sweep.info.run_id
    assert mlflow.get_run(family.info.run_id).data.tags["mlflow.parentRunId"] == board.info.run_id
    monkeypatch.delenv(SWEEP_PARENT_ENV)
    with tracked_run(tracking, run_name="alone", tags={}) as alone:
        pass
    assert "mlflow.parentRunId" not in mlflow.get_run(alone.info.run_id).data.tags


def test_the_best_trials_line_rounds_drawn_floats_and_keeps_other_values() -> None:
    # "sweep: best trial 3 (model.alpha=0.5489074229320225)": params keep every digit.
    from pricer.tracking.sweep import _readable

    assert _readable("0.5489074229320225") == "0.5489"
    assert _readable("1.2345678e-05") == "1.235e-05"
    assert _readable("300") == "300" and _readable("median") == "median"


def test_a_sigterm_while_the_parent_is_being_set_up_ends_it_killed(
    sweep_config: DictConfig, installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signal lands after the parent run exists, while its settings are logged.

    It used to propagate past the parent (an interrupt is no ``Exception``) before the exit
    hook that ends it was registered: the run stayed RUNNING for good.
    """
    from pricer import interrupt
    from pricer.tracking import sweep

    logging = sweep.log_params

    def signalled(client: mlflow.MlflowClient, run_id: str, params: dict[str, str]) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        logging(client, run_id, params)

    monkeypatch.setattr(sweep, "log_params", signalled)
    callback: SweepCallback = instantiate(sweep_config.hydra.callbacks.mlflow_sweep)
    with pytest.raises(interrupt.Interrupted):
        callback.on_multirun_start(sweep_config)
    [parent] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert parent.info.status == "KILLED"
    assert parent.data.tags["error"] == "interrupted by SIGTERM"
    assert callback.parent_run_id is None  # closed once; its exit hook has nothing left to do


def test_the_parents_overrides_param_holds_no_secret_from_the_environment(
    sweep_config: DictConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sweep.overrides`` was the task overrides read through OmegaConf, so resolved: a key
    given as ``${oc.env:...}`` (to keep it off the command line) was logged in clear, and a
    variable that was not set stopped the sweep before its parent run."""
    leaked = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0kLmN"
    monkeypatch.setenv("PRICER_TEST_KEY", leaked)
    given = [
        "+data.key=${oc.env:PRICER_TEST_KEY}",
        "+data.also=${oc.env:PRICER_TEST_UNSET}",
        f"+data.typed={leaked}",
    ]
    with open_dict(sweep_config):
        sweep_config.hydra.overrides.task = [*sweep_config.hydra.overrides.task, *given]
    callback: SweepCallback = instantiate(sweep_config.hydra.callbacks.mlflow_sweep)
    callback.on_multirun_start(sweep_config)
    parent_id = callback.parent_run_id
    callback.on_multirun_end(sweep_config)
    logged = mlflow.get_run(parent_id).data.params["sweep.overrides"]
    assert leaked not in logged
    assert "+data.key=${oc.env:PRICER_TEST_KEY} +data.also=${oc.env:PRICER_TEST_UNSET}" in logged
    assert logged.endswith("+data.typed=***")


def test_a_secret_in_the_tags_does_not_reach_the_sweeps_parent_run(
    sweep_config: DictConfig,
) -> None:
    """Trial runs redacted their tags; the parent, created by the callback, kept them whole."""
    key = "sk-proj-Zq3vX9kLm2Np4Rt6Wy8Ab1Cd3Ef5Gh7Jk9Lm0"  # made up, real format
    with open_dict(sweep_config):
        sweep_config.tracking.tags = {"note": key}
    callback: SweepCallback = instantiate(sweep_config.hydra.callbacks.mlflow_sweep)
    callback.on_multirun_start(sweep_config)
    parent_id = callback.parent_run_id
    callback.on_multirun_end(sweep_config)
    assert mlflow.get_run(parent_id).data.tags["note"] == "***"


def test_a_random_key_under_a_credential_name_is_redacted_in_the_overrides_too(
    sweep_config: DictConfig,
) -> None:
    """``model.api_key_env=<a key>`` by mistake: the trial's params redact it by its key's
    name, but the overrides (the parent's ``sweep.overrides``, each trial's
    ``pricer.sweep.overrides`` tag) were redacted by shape only, and a key of no known
    format was stored whole there."""
    key = "9fK2xQ7bLm4Np8Rt3Wy6Zc1V"  # made up, no provider's format
    typed = f"+model.api_key_env={key}"
    with open_dict(sweep_config):
        sweep_config.hydra.overrides.task = [*sweep_config.hydra.overrides.task, typed]
    callback: SweepCallback = instantiate(sweep_config.hydra.callbacks.mlflow_sweep)
    callback.on_multirun_start(sweep_config)
    parent_id = callback.parent_run_id
    trial = trial_config(sweep_config, 0, "mean")
    with open_dict(trial):
        trial.hydra.overrides.task = [*trial.hydra.overrides.task, typed]
    trial_id = run_trial(callback, trial, 50.0)
    callback.on_multirun_end(sweep_config)
    stored = [
        mlflow.get_run(parent_id).data.params["sweep.overrides"],
        mlflow.get_run(trial_id).data.tags["pricer.sweep.overrides"],
    ]
    assert not [text for text in stored if key in text]
    assert "+model.api_key_env=***" in stored[0]
    assert "+model.api_key_env=***" in json.loads(stored[1])


def test_a_sweeper_asked_to_maximise_the_error_is_refused_before_any_run(
    sweep_config: DictConfig,
) -> None:
    # Optuna maximised while the parent run ranked by the minimum: two different best trials.
    from pricer.tracking.sweep import BASIC_SWEEPER

    def sweeper(direction: object) -> None:
        with open_dict(sweep_config):
            sweep_config.hydra.sweeper = {"_target_": BASIC_SWEEPER, "direction": direction}

    sweeper("maximize")
    callback: SweepCallback = instantiate(sweep_config.hydra.callbacks.mlflow_sweep)
    with pytest.raises(SweepError, match=r"direction=maximize, but trials are ranked by valid"):
        callback.on_multirun_start(sweep_config)
    assert callback.parent_run_id is None
    sweeper(["minimize"])  # a list, as Optuna's sweeper also takes it
    callback.on_multirun_start(sweep_config)
    assert callback.parent_run_id is not None
    callback.on_multirun_end(sweep_config)


def test_the_search_space_recorded_is_the_one_the_trials_draw_from() -> None:
    # The parent recorded the config's space alone: model.alpha=interval(-1.0,1.0) on the
    # command line drew from [-1, 1] while it said tag(log, interval(0.05, 30)).
    from pricer.tracking.sweep import searched

    config = OmegaConf.create(
        {
            "hydra": {
                "sweeper": {
                    "params": {
                        "model.alpha": "tag(log, interval(0.05, 30))",
                        "model.min_df": "choice(1, 2, 3)",
                        "model.ngram_max": "choice(1, 2)",
                    }
                },
                "overrides": {"task": ["model.alpha=interval(-1.0,1.0)", "model.min_df=3"]},
            }
        }
    )
    assert searched(config) == {
        "model.alpha": "interval(-1.0,1.0)",
        "model.ngram_max": "choice(1, 2)",
    }


def test_a_trials_replay_command_composes_the_trials_config() -> None:
    # Nothing in the record ran the best trial again: its overrides hold hparams_search (a
    # multirun's), and without it validation.size fell back to 0, another training set.
    import shlex

    from pricer.tracking.sweep import replay_command
    from tests.conftest import compose_config

    trial = [
        "hparams_search=tfidf_ridge",
        "model.alpha=0.557",
        "model.min_df=3",
        "data.n_records=4000",
        "++hydra.job.env_set.PRICER_OPTUNA_TRIAL=0",
    ]
    command = replay_command(trial, "tfidf_ridge", 2000)
    assert command.startswith("pricer train model=tfidf_ridge ")
    replayed = compose_config("train", shlex.split(command)[2:])
    swept = compose_config("train", trial[:-1])
    assert OmegaConf.to_container(replayed) == OmegaConf.to_container(swept)
    assert replayed.validation.size == 2000


def test_a_sweep_that_failed_leaves_its_name_s_view_to_the_last_finished_one(
    sweep_config: DictConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    # A sweep of the same name that ended FAILED took the view over: the finished sweep
    # before it lost its trials line, and the view showed the failed one's trials.
    from pricer.tracking.browse import run_summary
    from pricer.tracking.views import VIEW_TAG_PREFIX, saved_filter, sweep_key

    def sweep(status: str) -> str:
        callback: SweepCallback = instantiate(sweep_config.hydra.callbacks.mlflow_sweep)
        callback.on_multirun_start(sweep_config)
        parent_id = callback.parent_run_id
        run_trial(callback, trial_config(sweep_config, 0, "mean"), 50.0)
        if status == "FINISHED":
            callback.on_multirun_end(sweep_config)
        else:  # what a multirun that raised leaves to the exit handler
            callback._close(status)
        assert mlflow.get_run(parent_id).info.status == status
        return parent_id

    finished = sweep("FINISHED")
    key = sweep_key(mlflow.get_run(finished).info.run_name)
    experiment = mlflow.get_run(finished).info.experiment_id
    client = mlflow.MlflowClient()
    before = client.get_experiment(experiment).tags[VIEW_TAG_PREFIX + key]
    capsys.readouterr()

    failed = sweep("FAILED")

    assert client.get_experiment(experiment).tags[VIEW_TAG_PREFIX + key] == before
    assert finished in str(saved_filter(client, experiment, key))
    assert any(
        line.startswith("trials, best first") for line in run_summary(client.get_run(finished))
    )
    assert not any(line.startswith("trials, best") for line in run_summary(client.get_run(failed)))
    said = capsys.readouterr().out.splitlines()
    assert not any(line.startswith("trials, best first") for line in said)
    assert any(
        "unchanged (the sweep ended FAILED: it shows finished sweeps only): it shows sweep "
        f"{finished[:8]}'s trials, best first: http" in line
        for line in said
    )
