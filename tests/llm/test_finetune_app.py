"""python -m pricer.finetune, composed from the real config, tracked in a real MLflow store."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable

import mlflow
import openai
import pytest
from hydra.errors import HydraException

from pricer.devtools import stub_common, stub_fine_tuning
from pricer.errors import ConfigError
from pricer.models.llm import finetuning as ft
from pricer.models.llm.catalogue import ModelCatalogue
from pricer.models.llm.client import ServerUnreachable
from pricer.preparation import run_finetune
from tests.e2e.conftest import pricer_app, run_cli


@pytest.fixture
def finetune_cfg(compose_conf, item_files, stub, api_key, tracking_uri):
    train, test = item_files

    def make(*overrides: str):
        return compose_conf(
            "finetune",
            [
                "data=items",
                f"data.train_paths=[{train}]",
                f"data.test_paths=[{test}]",
                f"client.base_url={stub.base_url}",
                "client.api_key_env=PRICER_TEST_LLM_KEY",
                "train_size=20",
                "validation_size=5",
                "hyperparameters.n_epochs=2",
                "hyperparameters.batch_size=4",
                "poll_seconds=0",
                "progress=false",
                "confirm=false",
                *overrides,
            ],
        )

    return make


def only_run():
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert len(runs) == 1
    return runs[0]


def test_finetune_app_logs_job_and_losses_per_step(finetune_cfg, stub, capsys) -> None:
    cfg = finetune_cfg()
    job = run_finetune(cfg)
    # The next command, as the README and every other message write it: `pricer train ...`.
    evaluate = (
        f"evaluate it: pricer train model=finetuned data={cfg.data.name} "
        f"model.model={job.fine_tuned_model}"
    )
    assert evaluate in capsys.readouterr().out.splitlines()
    run = only_run()
    assert run.info.status == "FINISHED"
    assert run.data.tags["ft.job_id"] == job.id
    assert run.data.tags["ft.fine_tuned_model"] == job.fine_tuned_model
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, ft.TRAIN_LOSS)
    assert sorted(m.step for m in history) == list(range(1, 11))  # ceil(20 / 4) x 2 epochs
    assert run.data.metrics["ft.estimated_cost_usd"] > 0
    assert run.data.params["hyperparameters.n_epochs"] == "2"
    created = stub.state.jobs[job.id]
    assert created.hyperparameters["batch_size"] == 4 and created.suffix == "pricer"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "finetune")}
    assert artifacts == {"finetune/train.jsonl", "finetune/validation.jsonl"}


def test_a_finished_job_records_what_its_training_cost(finetune_cfg, stub) -> None:
    # Only the estimate before the job (characters / 4, n_epochs=auto taken as 3) was in the
    # record: what the job trained, and so cost, was left to be worked out by hand.
    job = run_finetune(finetune_cfg("hyperparameters.n_epochs=auto"))
    metrics = only_run().data.metrics
    (_, entry) = ModelCatalogue().lookup(job.model)
    trained = stub.state.jobs[job.id].trained_tokens
    assert metrics["ft.trained_tokens"] == trained
    assert metrics["ft.cost_usd"] == pytest.approx(trained * entry.price.training / 1_000_000)
    assert metrics["ft.cost_usd"] != pytest.approx(metrics["ft.estimated_cost_usd"])


def test_a_job_reporting_tokens_beyond_any_job_still_records_its_model(
    finetune_cfg, stub, monkeypatch
) -> None:
    # 10**400 trained tokens raised OverflowError after the job succeeded: the run FAILED and
    # the fine-tuned model it paid for was in no record.
    succeed = stub_fine_tuning._succeed

    def absurd(state, job) -> None:
        succeed(state, job)
        job.trained_tokens = 10**400

    monkeypatch.setattr(stub_fine_tuning, "_succeed", absurd)
    job = run_finetune(finetune_cfg())
    run = only_run()
    assert run.info.status == "FINISHED"
    assert run.data.tags["ft.fine_tuned_model"] == job.fine_tuned_model
    assert "ft.trained_tokens" not in run.data.metrics and "ft.cost_usd" not in run.data.metrics


def test_failed_job_fails_the_run_with_the_reason(finetune_cfg, stub) -> None:
    stub.state.fail_next_job = "Examples contain disallowed content"
    with pytest.raises(ft.JobFailed):
        run_finetune(finetune_cfg())
    run = only_run()
    assert run.info.status == "FAILED"
    assert "Examples contain disallowed content" in run.data.tags["error"]


def test_resume_by_job_id_follows_without_new_files_or_job(finetune_cfg, stub) -> None:
    job = run_finetune(finetune_cfg())
    uploads = stub.state.counters["POST /files"]
    resumed = run_finetune(finetune_cfg(f"job_id={job.id}"))
    assert resumed.id == job.id
    assert stub.state.counters["POST /files"] == uploads
    assert len(stub.state.jobs) == 1
    runs = mlflow.search_runs(
        search_all_experiments=True,
        output_format="list",
        filter_string="tags.`ft.resumed` = 'true'",
    )
    assert len(runs) == 1 and runs[0].data.tags["ft.job_id"] == job.id


def test_a_resumed_run_tags_the_jobs_base_model_not_the_configs(finetune_cfg, stub) -> None:
    # The resumed run was tagged ft.base_model from the config (gpt-4o-mini-2024-07-18 by
    # default), whatever model the job it follows was fine-tuning.
    job = run_finetune(finetune_cfg("base_model=gpt-4.1-nano-2025-04-14"))
    run_finetune(finetune_cfg(f"job_id={job.id}"))
    runs = mlflow.search_runs(
        search_all_experiments=True,
        output_format="list",
        filter_string="tags.`ft.resumed` = 'true'",
    )
    assert runs[0].data.tags["ft.base_model"] == "gpt-4.1-nano-2025-04-14"


def test_resuming_with_other_data_than_the_job_was_tuned_on_is_a_one_line_error(
    finetune_cfg, stub, capsys
) -> None:
    # `pricer finetune job_id=...` alone (the README's re-attach) composed the default data:
    # the resumed run was named for synthetic data and its last line said to evaluate the
    # model on it, whatever data the job was tuned on.
    job = run_finetune(finetune_cfg("data.name=mine"))
    assert f"re-attach: pricer finetune data=mine job_id={job.id}" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"fine-tuned on mine data, not other") as error:
        run_finetune(finetune_cfg("data.name=other", f"job_id={job.id}"))
    assert "\n" not in str(error.value) and f"data=mine job_id={job.id}" in str(error.value)
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == 1
    # With its own data it re-attaches, and says to evaluate on that data.
    run_finetune(finetune_cfg("data.name=mine", f"job_id={job.id}"))
    assert "pricer train model=finetuned data=mine " in capsys.readouterr().out


def test_resuming_a_job_that_does_not_exist_is_a_one_line_error(finetune_cfg, stub) -> None:
    # It was openai.NotFoundError with a traceback (exit 1) and a FAILED run.
    with pytest.raises(ConfigError, match=r"job_id=ftjob-nope: no such fine-tuning job"):
        run_finetune(finetune_cfg("job_id=ftjob-nope"))
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_without_a_terminal_or_yes_nothing_is_started(finetune_cfg, stub) -> None:
    with pytest.raises(ft.ConfirmationRefused):
        run_finetune(finetune_cfg("confirm=true"))  # pytest's stdin is no terminal
    assert not stub.state.counters  # nothing uploaded, no job
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def app_overrides(cfg, stub, *extra: str) -> list[str]:
    """The finetune app's command line on the test's item files and stub server, and ``extra``."""
    return [
        "data=items",
        f"data.train_paths=[{cfg.data.train_paths[0]}]",
        f"data.test_paths=[{cfg.data.test_paths[0]}]",
        f"client.base_url={stub.base_url}",
        "client.api_key_env=PRICER_TEST_LLM_KEY",
        *extra,
    ]


def refused(overrides: list[str], tracking_uri: str, tmp_path) -> tuple[list[str], str]:
    """The "error: " lines and the stdout of the finetune app run with ``overrides``, which
    must end in exit 2 without a traceback."""
    result = run_cli(pricer_app("finetune", *overrides, workdir=tmp_path), tracking_uri, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    return errors, result.stdout


def test_the_app_without_a_terminal_says_so_in_one_line(finetune_cfg, stub, tracking_uri, tmp_path):
    # The real command line: confirm=true and stdin not a terminal (a job, CI, mlflow run).
    overrides = app_overrides(
        finetune_cfg("confirm=true"),
        stub,
        "train_size=20 validation_size=5",  # two overrides in one argument, as mlflow run sends
        "confirm=true",
    )
    errors, stdout = refused(overrides, tracking_uri, tmp_path)
    assert errors == [
        "error: no terminal to confirm the fine-tuning cost on; rerun with confirm=false to "
        "accept it"
    ]
    assert "Estimated training cost" in stdout
    assert not stub.state.counters  # nothing uploaded, no job
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_without_an_api_key_it_stops_before_the_cost_is_shown(
    finetune_cfg, stub, capsys, monkeypatch
) -> None:
    # The estimate was printed (and, on a terminal, confirmed) before the missing key failed.
    from pricer.models.llm.client import MissingApiKeyError

    monkeypatch.delenv("PRICER_TEST_LLM_KEY", raising=False)
    with pytest.raises(MissingApiKeyError):
        run_finetune(finetune_cfg())
    assert "estimate" not in capsys.readouterr().out.lower()
    assert not stub.state.counters
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # A ValueError traceback; the others went to the server: an empty training file
        # uploaded (train_size=0), an empty validation file (validation_size=-1).
        ("train_size=0", r"^train_size must be >= 1, got 0$"),
        ("validation_size=-1", r"^validation_size must be >= 0, got -1$"),
        (
            "hyperparameters.n_epochs=abc",
            r"^hyperparameters\.n_epochs must be auto or a whole number >= 1, got 'abc'$",
        ),
        (
            "hyperparameters.batch_size=0",
            r"^hyperparameters\.batch_size must be auto or a whole number >= 1, got 0$",
        ),
        (
            "hyperparameters.learning_rate_multiplier=-1",
            r"^hyperparameters\.learning_rate_multiplier must be auto or a number > 0, got -1$",
        ),
        ("poll_seconds=-5", r"^poll_seconds must be a number >= 0, got -5.0$"),
    ],
)
def test_settings_that_do_not_fit_are_one_line_before_the_cost(
    finetune_cfg, stub, capsys, override: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        run_finetune(finetune_cfg(override))
    assert "estimate" not in capsys.readouterr().out.lower()
    assert not stub.state.counters  # nothing uploaded, no job
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def closed_port_url() -> str:
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1"


def test_a_server_that_is_not_there_is_one_line_before_the_cost(finetune_cfg, capsys) -> None:
    # An APIConnectionError traceback after the cost was confirmed, and a FAILED run.
    url = closed_port_url()
    with pytest.raises(ServerUnreachable, match=rf"^cannot connect to {re.escape(url)}$"):
        run_finetune(finetune_cfg(f"client.base_url={url}"))
    assert "estimate" not in capsys.readouterr().out.lower()
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
    with pytest.raises(ServerUnreachable, match=rf"^cannot connect to {re.escape(url)}$"):
        run_finetune(finetune_cfg(f"client.base_url={url}", "job_id=ftjob-1"))


def test_a_server_lost_while_the_job_is_followed_says_how_to_reattach(
    finetune_cfg, stub, monkeypatch
) -> None:
    # The job goes on at the server: the line says so, and how to follow it again.
    follow = ft.follow_job

    def server_gone(client: openai.OpenAI, job_id: str, **kwargs: object) -> object:
        # The network gone once the job was made: the client's next call finds no server.
        gone = client.with_options(base_url=closed_port_url(), max_retries=0)
        return follow(gone, job_id, **kwargs)

    monkeypatch.setattr(ft, "follow_job", server_gone)
    with pytest.raises(ServerUnreachable, match=r"the job goes on.*job_id=ftjob-\S+$") as error:
        run_finetune(finetune_cfg())
    run = only_run()
    assert run.info.status == "FAILED"
    assert f"job_id={run.data.tags['ft.job_id']}" in str(error.value)


@pytest.mark.parametrize("override", ["train_size=abc", "poll_seconds=soon", "confirm=maybe"])
def test_settings_of_the_wrong_type_fail_while_composing(compose_conf, override: str) -> None:
    # "train_size=abc" was a TypeError traceback once the items had loaded; typed by
    # pricer.schemas.FinetuneConfig, Hydra refuses it naming the key.
    with pytest.raises(HydraException, match=override.split("=")[0]):
        compose_conf("finetune", [override])


def refuse(status: int, message: str) -> Callable[..., stub_common.Reply]:
    """A stub route handler answering every request with an OpenAI-shaped HTTP error."""
    return lambda *args: stub_common.error_reply(status, message)


@pytest.mark.parametrize(
    ("route", "status", "message", "said"),
    [
        # A key the server does not take: OpenAI's message quotes part of it, and is left out.
        (
            "upload_file",
            401,
            "Incorrect API key provided: sk-abc***xyz",
            r"HTTP 401 while uploading train\.jsonl \(the API key in PRICER_TEST_LLM_KEY was "
            r"not accepted\)",
        ),
        (
            "create_job",
            400,
            "Model gpt-4o-mini-2024-07-18 is not available for fine-tuning",
            r"HTTP 400 while creating a fine-tuning job of gpt-4o-mini-2024-07-18 \(Model "
            r"gpt-4o-mini-2024-07-18 is not available for fine-tuning\)",
        ),
    ],
)
def test_a_request_the_server_refuses_is_one_line_and_a_failed_run(
    finetune_cfg, stub, monkeypatch, route: str, status: int, message: str, said: str
) -> None:
    # Each was the SDK's traceback (exit 1) after the cost had been confirmed.
    monkeypatch.setattr(stub_fine_tuning, route, refuse(status, message))
    with pytest.raises(ft.ServerRefused, match=said) as error:
        run_finetune(finetune_cfg())
    assert str(error.value).endswith("): no fine-tuning job was created")
    assert "sk-abc" not in str(error.value)
    assert not stub.state.jobs
    run = only_run()
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith("ServerRefused: the server answered HTTP")
    assert "sk-abc" not in run.data.tags["error"]


def test_a_server_error_while_the_job_is_followed_says_how_to_reattach(
    finetune_cfg, stub, monkeypatch
) -> None:
    # An outage the SDK's retries did not outlast: the job goes on, and the line says how to
    # follow it again.
    monkeypatch.setattr(stub_fine_tuning, "get_job", refuse(503, "The server is overloaded"))
    with pytest.raises(ft.ServerRefused, match=r"HTTP 503 .*\(The server is overloaded\)") as error:
        run_finetune(finetune_cfg("client.max_retries=0"))
    (job_id,) = stub.state.jobs
    follow = f"the job goes on at the server; follow it again with data=items job_id={job_id}"
    assert str(error.value).endswith(follow)
    assert only_run().info.status == "FAILED"


def test_resuming_with_a_refused_key_is_one_line_and_no_run(finetune_cfg, stub, monkeypatch):
    monkeypatch.setattr(stub_fine_tuning, "get_job", refuse(401, "Incorrect API key provided"))
    with pytest.raises(ft.ServerRefused, match=r"HTTP 401 while looking up job_id=ftjob-1 "):
        run_finetune(finetune_cfg("job_id=ftjob-1"))
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_the_app_prints_a_refused_key_in_one_line(
    finetune_cfg, stub, tracking_uri, tmp_path, monkeypatch
) -> None:
    # The real command line (the stub answers in this process): exit 2, no traceback.
    monkeypatch.setattr(stub_fine_tuning, "upload_file", refuse(401, "Incorrect API key"))
    settings = ("train_size=20", "validation_size=5", "confirm=false", "progress=false")
    errors, _ = refused(app_overrides(finetune_cfg(), stub, *settings), tracking_uri, tmp_path)
    assert errors == [
        "error: the server answered HTTP 401 while uploading train.jsonl (the API key in "
        "PRICER_TEST_LLM_KEY was not accepted): no fine-tuning job was created"
    ]


@pytest.mark.parametrize(
    "served",
    [
        refuse(404, "No such File object"),  # gone, or a server that keeps none
        lambda state, file_id, content=False: stub_common.Reply(200, b"\xff\xfe not a table"),
    ],
    ids=["not found", "not csv"],
)
def test_a_result_file_that_cannot_be_read_still_records_the_fine_tuned_model(
    finetune_cfg, stub, monkeypatch, caplog, served
) -> None:
    # The job had succeeded and been paid for: the run FAILED (a 404 as "the job goes on", a
    # ValueError traceback for a file that is no table) and the model was in no record.
    monkeypatch.setattr(stub_fine_tuning, "get_file", served)
    with caplog.at_level(logging.WARNING, logger="pricer.models.llm.finetuning"):
        job = run_finetune(finetune_cfg())
    run = only_run()
    assert run.info.status == "FINISHED"
    assert run.data.tags["ft.fine_tuned_model"] == job.fine_tuned_model
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, ft.TRAIN_LOSS)
    assert sorted(m.step for m in history) == list(range(1, 11))  # from the job's events
    assert f"cannot read result file {job.result_files[0]} of job {job.id}" in caplog.text


def test_a_succeeded_job_naming_no_model_fails_the_run_rather_than_record_none(
    finetune_cfg, stub, monkeypatch
) -> None:
    # The run FINISHED with ft.fine_tuned_model "None" and said to evaluate model.model=None.
    succeed = stub_fine_tuning._succeed

    def nameless(state, job) -> None:
        succeed(state, job)
        job.fine_tuned_model = None

    monkeypatch.setattr(stub_fine_tuning, "_succeed", nameless)
    with pytest.raises(ft.JobFailed, match=r"succeeded: the server names no fine-tuned model"):
        run_finetune(finetune_cfg())
    run = only_run()
    assert run.info.status == "FAILED"
    assert "ft.fine_tuned_model" not in run.data.tags
    assert f"re-attach with job_id={run.data.tags['ft.job_id']}" in run.data.tags["error"]
