"""The fine-tuning workflow against the stub: files, job, following, losses, failures."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import pytest
from openai.types.fine_tuning import FineTuningJob

from pricer.devtools.stub_fine_tuning import train_loss, valid_loss
from pricer.models.llm import finetuning as ft
from pricer.models.llm.catalogue import ModelCatalogue
from pricer.models.llm.client import make_client
from pricer.models.llm.prompts import PromptTemplate, parse_price

BASE = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def client(client_settings):
    return make_client(client_settings)


@pytest.fixture
def prompt(load_prompt) -> PromptTemplate:
    return PromptTemplate.from_config(load_prompt("finetuned"))


def start_job(client, stub, prompt, make_items, tmp_path: Path, **hyper):
    train_rows, valid_rows = ft.split_examples(make_items(40, seed=0), 24, 6, seed=0)
    ft.write_jsonl(train_rows, prompt, tmp_path / "train.jsonl")
    ft.write_jsonl(valid_rows, prompt, tmp_path / "valid.jsonl")
    settings = {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5, **hyper}
    return ft.create_job(
        client,
        model=BASE,
        training_file=ft.upload(client, tmp_path / "train.jsonl"),
        validation_file=ft.upload(client, tmp_path / "valid.jsonl"),
        suffix="pricer",
        seed=7,
        **settings,
    )


def test_examples_are_the_inference_prompt_and_the_price_answer(prompt, make_items, tmp_path):
    train_rows, valid_rows = ft.split_examples(make_items(40, seed=0), 24, 6, seed=0)
    assert not set(train_rows["text"]) & set(valid_rows["text"])
    assert ft.write_jsonl(train_rows, prompt, tmp_path / "t.jsonl") == 24
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    for line, (_, row) in zip(lines, train_rows.iterrows(), strict=True):
        messages = json.loads(line)["messages"]
        assert messages[:-1] == prompt.messages(row.to_dict())  # exactly what inference sends
        assert messages[-1]["role"] == "assistant"
        assert messages[-1]["content"] == f"Price is ${row['price']:.2f}"
        assert parse_price(messages[-1]["content"]) == pytest.approx(row["price"], abs=0.005)
    with pytest.raises(ValueError, match="training split has 40"):
        ft.split_examples(make_items(40, seed=0), 35, 6, seed=0)


def test_happy_path_uploads_creates_follows_and_reads_losses(
    client, stub, prompt, make_items, tmp_path
) -> None:
    job = start_job(client, stub, prompt, make_items, tmp_path)
    uploaded = {f.filename: f.content for f in stub.state.files.values()}
    assert len(uploaded["train.jsonl"].splitlines()) == 24
    assert len(uploaded["valid.jsonl"].splitlines()) == 6
    created = stub.state.jobs[job.id]
    assert created.hyperparameters == {
        "n_epochs": 2,
        "batch_size": 4,
        "learning_rate_multiplier": 0.5,
    }
    assert (created.model, created.suffix, created.seed) == (BASE, "pricer", 7)

    streamed: list[ft.Metric] = []
    losses = ft.LossLog()
    done = ft.follow_job(
        client, job.id, poll_seconds=0.0, on_metrics=streamed.extend, progress=False, losses=losses
    )
    total = math.ceil(24 / 4) * 2
    assert done.status == "succeeded" and done.fine_tuned_model.startswith(f"ft:{BASE}:")
    train = {step: value for name, value, step in streamed if name == ft.TRAIN_LOSS}
    valid = {step: value for name, value, step in streamed if name == ft.VALID_LOSS}
    assert train == {step: train_loss(step) for step in range(1, total + 1)}
    assert valid == {step: valid_loss(step) for step in (5, 10, 12)}
    assert losses.total_steps == total
    # The result file holds the same losses: nothing new to report after the events.
    from_file = ft.result_losses(client, done)
    assert {(n, s) for n, v, s in from_file if math.isfinite(v)} == losses.seen
    assert losses.new(from_file) == []


def test_resume_follows_an_existing_job_to_the_end(client, stub, prompt, make_items, tmp_path):
    job = start_job(client, stub, prompt, make_items, tmp_path)
    client.fine_tuning.jobs.retrieve(job.id)  # a first client saw it start, then stopped
    streamed: list[ft.Metric] = []
    done = ft.follow_job(
        client, job.id, poll_seconds=0.0, on_metrics=streamed.extend, progress=False
    )
    assert done.status == "succeeded"
    assert {s for n, _, s in streamed if n == ft.TRAIN_LOSS} == set(range(1, 13))
    assert len(stub.state.jobs) == 1  # no second job


def test_failed_job_raises_with_the_servers_reason(client, stub, prompt, make_items, tmp_path):
    stub.state.fail_next_job = "Training file has 3 examples; at least 10 are required"
    job = start_job(client, stub, prompt, make_items, tmp_path)
    with pytest.raises(ft.JobFailed, match="at least 10 are required") as failure:
        ft.follow_job(client, job.id, poll_seconds=0.0, on_metrics=lambda m: None, progress=False)
    assert failure.value.status == "failed" and failure.value.job_id == job.id


def test_cancelled_job_raises(client, stub, prompt, make_items, tmp_path) -> None:
    job = start_job(client, stub, prompt, make_items, tmp_path)
    client.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(ft.JobFailed, match="cancelled"):
        ft.follow_job(client, job.id, poll_seconds=0.0, on_metrics=lambda m: None, progress=False)


def test_cost_estimate_is_chars_over_four_times_epochs_times_price(tmp_path: Path) -> None:
    lines = [
        {
            "messages": [
                {"role": "user", "content": "x" * 37},
                {"role": "assistant", "content": "Price is $1.00"},
            ]
        }
    ] * 3
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    table = ModelCatalogue()  # the real catalogue: gpt-4o-mini trains at $3 per 1M tokens
    estimate = ft.estimate_training_cost(path, 2, BASE, table)
    tokens = math.ceil(3 * (37 + 14) / 4)
    assert estimate.tokens == tokens
    assert estimate.usd == pytest.approx(tokens * 2 * 3.0 / 1e6)
    auto = ft.estimate_training_cost(path, "auto", BASE, table)
    assert auto.epochs == ft.AUTO_EPOCHS_ESTIMATE and "assumed" in auto.describe()
    unknown = ft.estimate_training_cost(path, 1, "mystery-model", table)
    assert math.isnan(unknown.usd) and "unknown" in unknown.describe()


def test_a_trained_token_count_beyond_any_job_is_an_unknown_cost_not_a_crash() -> None:
    # 10**400 raised OverflowError after the job succeeded: its model was never recorded.
    job = FineTuningJob.model_construct(model=BASE, trained_tokens=10**400)
    assert math.isnan(ft.training_cost(job, ModelCatalogue()))
    counted = FineTuningJob.model_construct(model=BASE, trained_tokens=2_000_000)
    assert ft.training_cost(counted, ModelCatalogue()) == pytest.approx(6.0)  # $3 per 1M


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_confirmation(tmp_path: Path) -> None:
    estimate = ft.CostEstimate(1000, 1, False, 3.0, BASE)
    out = io.StringIO()
    with pytest.raises(ft.ConfirmationRefused, match="confirm=false"):
        ft.confirm(estimate, assume_yes=False, stdin=io.StringIO("y\n"), out=out)  # no TTY
    with pytest.raises(ft.ConfirmationRefused, match="cancelled"):
        ft.confirm(estimate, assume_yes=False, stdin=FakeTerminal("n\n"), out=out)
    ft.confirm(estimate, assume_yes=False, stdin=FakeTerminal("y\n"), out=out)
    ft.confirm(estimate, assume_yes=True, stdin=io.StringIO(""), out=out)
    assert "$0.00" in out.getvalue() and "characters / 4" in out.getvalue()


def test_result_file_parses_plain_and_base64() -> None:
    csv = (
        b"step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
        b"1,2.0,0.5,,\n2,1.5,0.6,1.7,0.5\n"
    )
    for content in (csv, base64.b64encode(csv)):
        metrics = ft.parse_result_file(content)
        finite = [(n, v, s) for n, v, s in metrics if math.isfinite(v)]
        assert finite == [(ft.TRAIN_LOSS, 2.0, 1), (ft.TRAIN_LOSS, 1.5, 2), (ft.VALID_LOSS, 1.7, 2)]


def test_rows_and_events_without_an_integer_step_are_skipped_not_fatal() -> None:
    # A succeeded job whose result file had a row with no step (a summary row, a download
    # cut short) raised ValueError after the job was paid for: the fine-tuned model's name
    # was never recorded. An event with such a step stopped following the job.
    csv = (
        b"step,train_loss,valid_loss\n"
        b"1,2.0,\n"
        b",1.0,1.1\n"  # no step
        b"x,0.9,\n"  # not a number
        b"2.5,0.8,\n"  # not a whole step: was read as step 2
        b"3,1.5,1.7\n"
        b"4,"  # cut short: its step is still whole, its losses missing
    )
    finite = [(n, v, s) for n, v, s in ft.parse_result_file(csv) if math.isfinite(v)]
    assert finite == [(ft.TRAIN_LOSS, 2.0, 1), (ft.TRAIN_LOSS, 1.5, 3), (ft.VALID_LOSS, 1.7, 3)]

    class Event:
        def __init__(self, data: object) -> None:
            self.data = data

    events = [
        Event({"step": None, "train_loss": 1.0}),
        Event({"step": "x", "train_loss": 1.0}),
        Event({"step": 2.5, "train_loss": 1.0}),
        Event({"step": True, "train_loss": 1.0}),
        Event({"step": 10**400, "train_loss": 1.0}),  # OverflowError, following the job
        Event({"step": 10**30, "train_loss": 1.0}),  # a step MLflow cannot store
        Event({"step": "7", "train_loss": 0.5}),
        Event({"step": 8, "valid_loss": "0.4"}),
    ]
    assert ft.event_metrics(events) == [(ft.TRAIN_LOSS, 0.5, 7), (ft.VALID_LOSS, 0.4, 8)]
