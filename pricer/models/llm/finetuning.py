"""Fine-tuning a chat model to price items: data files, cost estimate, job lifecycle, losses.

The workflow, each step a function so ``pricer.preparation.run_finetune`` can log between them
(MLflow stays in ``pricer.tracking.finetune``) and a resumed run can skip the first ones:

1. ``split_examples`` + ``write_jsonl``: chat-format training and validation files from
   training items (never test items); each example is the pricing prompt and the answer
   "Price is $X.XX", so the fine-tuned model learns to answer the way ``finetuned.yaml``
   prompts and parses;
2. ``estimate_training_cost`` and ``confirm``: the bill before it is run up;
3. ``upload`` and ``create_job``;
4. ``follow_job``: poll until the job ends, streaming step losses to a callback (from the
   job's metrics events), then ``result_losses`` fills in from the job's result file. A
   failed or cancelled job raises ``JobFailed`` with the server's reason.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import openai
import pandas as pd
from openai.types.fine_tuning import FineTuningJob
from tqdm.auto import tqdm

from pricer.errors import ConfigError, UserError
from pricer.models.base import as_items
from pricer.models.llm.catalogue import ModelCatalogue
from pricer.models.llm.client import ServerUnreachable
from pricer.models.llm.prompts import PromptTemplate, format_price
from pricer.wording import counted

log = logging.getLogger(__name__)

TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
CHARS_PER_TOKEN = 4  # the estimate's tokenizer: no tokenizer can be downloaded here
AUTO_EPOCHS_ESTIMATE = 3  # what the estimate assumes when n_epochs is "auto"
MAX_STEP = 2**53  # whole in a float, within SQLite's integers, far beyond any job's steps
# Far beyond any job's trained tokens (a 512 MB training file for 50 epochs is about 10**10).
MAX_TRAINED_TOKENS = 10**13
TRAIN_LOSS = "ft.train_loss"
VALID_LOSS = "ft.valid_loss"

Metric = tuple[str, float, int]  # name, value, step


# -- 1. data ----------------------------------------------------------------------------------
def answer_text(price: float) -> str:
    return f"Price is {format_price(price)}"


def training_example(item: Mapping[str, Any], price: float, prompt: PromptTemplate) -> dict:
    """One chat example: the inference prompt without its prefill, then the answer."""
    messages = [m for m in prompt.messages(item) if m["role"] != "assistant"]
    return {"messages": [*messages, {"role": "assistant", "content": answer_text(price)}]}


def split_examples(
    train: pd.DataFrame, train_size: int, validation_size: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Disjoint training and validation rows, drawn (seeded) from the training split."""
    needed = train_size + validation_size
    if needed > len(train):
        raise ConfigError(
            f"train_size + validation_size = {needed} but the training split has {len(train)}"
        )
    order = np.random.default_rng(seed).permutation(len(train))
    shuffled = train.iloc[order].reset_index(drop=True)
    return shuffled.iloc[:train_size], shuffled.iloc[train_size:needed]


def write_jsonl(items: pd.DataFrame, prompt: PromptTemplate, path: Path) -> int:
    """Write ``items`` (with a price column) as chat examples; returns the line count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = as_items(items)
    with path.open("w", encoding="utf-8") as file:
        for item, price in zip(frame.to_dict("records"), items["price"], strict=True):
            file.write(json.dumps(training_example(item, float(price), prompt)) + "\n")
    return len(frame)


# -- 2. cost ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CostEstimate:
    tokens: int  # training-file tokens, estimated as characters / 4
    epochs: int
    epochs_assumed: bool  # n_epochs was "auto"
    usd_per_million: float | None  # training price of the base model; None when unknown
    model: str

    @property
    def usd(self) -> float:
        if self.usd_per_million is None:
            return math.nan
        return self.tokens * self.epochs * self.usd_per_million / 1_000_000

    def describe(self) -> str:
        epochs = counted(self.epochs, "epoch") + (
            " (n_epochs=auto: assumed)" if self.epochs_assumed else ""
        )
        price = (
            "an unknown price (add it to conf/llm/catalogue.yaml)"
            if self.usd_per_million is None
            else f"${self.usd_per_million:g} per 1M tokens"
        )
        cost = "unknown" if math.isnan(self.usd) else f"${self.usd:,.2f}"
        return (
            f"Estimated training cost for {self.model}: {cost} = ~{self.tokens:,} tokens "
            f"(characters / {CHARS_PER_TOKEN}, an estimate) x {epochs} x {price}"
        )


def estimate_training_cost(
    training_file: Path,
    n_epochs: int | str,
    model: str,
    catalogue: ModelCatalogue,
) -> CostEstimate:
    chars = 0
    with training_file.open(encoding="utf-8") as file:
        for line in file:
            chars += sum(len(m["content"]) for m in json.loads(line)["messages"])
    found = catalogue.lookup(model)
    price = found[1].price if found is not None else None
    auto = n_epochs == "auto"
    return CostEstimate(
        tokens=math.ceil(chars / CHARS_PER_TOKEN),
        epochs=AUTO_EPOCHS_ESTIMATE if auto else int(n_epochs),
        epochs_assumed=auto,
        usd_per_million=None if price is None else price.training,
        model=model,
    )


def trained_tokens(job: FineTuningJob) -> int | None:
    """The tokens a finished job reports trained, or None when what it reports is no count
    (the SDK does not check it): a negative count is no refund, and 10**400 raised
    OverflowError after the job had succeeded, so its fine-tuned model was never recorded.
    ``MAX_TRAINED_TOKENS`` is far beyond any job."""
    tokens = job.trained_tokens
    if isinstance(tokens, bool) or not isinstance(tokens, int):
        return None
    return tokens if 0 <= tokens <= MAX_TRAINED_TOKENS else None


def training_cost(job: FineTuningJob, catalogue: ModelCatalogue) -> float:
    """What a finished job cost: the tokens it reports trained (epochs included, as billed)
    times its base model's training price; NaN when either is unknown."""
    found = catalogue.lookup(job.model)
    price = found[1].price if found is not None else None
    tokens = trained_tokens(job)
    if price is None or price.training is None or tokens is None:
        return math.nan
    return tokens * price.training / 1_000_000


class ConfirmationRefused(UserError, RuntimeError):
    """No go-ahead for a paid job: declined, or no terminal to ask on."""


def confirm(
    estimate: CostEstimate,
    assume_yes: bool,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
) -> None:
    """Print the estimate; unless ``assume_yes``, ask on a terminal and raise if not 'y'."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    print(estimate.describe(), file=out, flush=True)
    if assume_yes:
        return
    if not stdin.isatty():
        raise ConfirmationRefused(
            "no terminal to confirm the fine-tuning cost on; rerun with confirm=false to accept it"
        )
    print("Start the fine-tuning job? [y/N] ", end="", file=out, flush=True)
    if stdin.readline().strip().lower() not in ("y", "yes"):
        raise ConfirmationRefused("fine-tuning cancelled at the cost confirmation")


# -- 3. job -----------------------------------------------------------------------------------
def upload(client: openai.OpenAI, path: Path) -> str:
    with path.open("rb") as file:
        return client.files.create(file=(path.name, file), purpose="fine-tune").id


def create_job(
    client: openai.OpenAI,
    *,
    model: str,
    training_file: str,
    validation_file: str | None,
    n_epochs: int | str,
    batch_size: int | str,
    learning_rate_multiplier: float | str,
    suffix: str | None,
    seed: int | None,
) -> FineTuningJob:
    hyperparameters = {
        "n_epochs": n_epochs,
        "batch_size": batch_size,
        "learning_rate_multiplier": learning_rate_multiplier,
    }
    return client.fine_tuning.jobs.create(
        model=model,
        training_file=training_file,
        validation_file=validation_file,
        # `method` replaces the deprecated top-level `hyperparameters`.
        method={"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        suffix=suffix,
        seed=seed,
    )


class JobFailed(UserError, RuntimeError):
    """The job ended failed or cancelled; the message carries the server's reason."""

    def __init__(self, job_id: str, status: str, reason: str) -> None:
        super().__init__(f"fine-tuning job {job_id} {status}: {reason}")
        self.job_id = job_id
        self.status = status
        self.reason = reason


class ServerRefused(UserError, RuntimeError):
    """The server answered a fine-tuning request with an HTTP error: a key it does not take,
    a base model it does not tune, a quota spent, a file it rejects, an outage its retries
    did not outlast."""


# The longest part of a server's error message kept in the one line: enough for OpenAI's
# ("Model gpt-5 is not available for fine-tuning or does not exist."), not a page of HTML.
MAX_REASON = 300


@contextmanager
def server_errors(server: str, api_key_env: str, doing: str, outcome: str) -> Iterator[None]:
    """One line, instead of the SDK's traceback, when the server cannot be reached or refuses
    a request while ``doing`` (what was being asked); ``outcome`` says what that leaves (no
    job made, or a job that goes on and how to follow it again)."""
    try:
        yield
    except openai.APIConnectionError as error:  # a timeout too
        raise ServerUnreachable(f"cannot connect to {server} while {doing}: {outcome}") from error
    except openai.APIStatusError as error:
        why = _refusal_reason(error, api_key_env)
        raise ServerRefused(
            f"the server answered HTTP {error.status_code} while {doing} ({why}): {outcome}"
        ) from None  # the SDK's message, chained, would be said again, a refused key's too


def _refusal_reason(error: openai.APIStatusError, api_key_env: str) -> str:
    """What the server said, on one line; for a key it refused, only which variable held it:
    OpenAI's message then quotes part of the key."""
    if error.status_code == 401:
        return f"the API key in {api_key_env} was not accepted"
    body = error.body
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, str) and message.strip():
        text = " ".join(message.split())
        return text if len(text) <= MAX_REASON else f"{text[:MAX_REASON]}..."
    return type(error).__name__


# -- 4. following and losses ------------------------------------------------------------------
@dataclass
class LossLog:
    """Losses seen so far, by metric and step, so each is reported once."""

    seen: set[tuple[str, int]] = field(default_factory=set)
    total_steps: int | None = None

    def new(self, metrics: Iterable[Metric]) -> list[Metric]:
        fresh = []
        for name, value, step in metrics:
            if (name, step) not in self.seen and math.isfinite(value):
                self.seen.add((name, step))
                fresh.append((name, value, step))
        return fresh


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond a float
        return math.nan


def _step(value: Any) -> int | None:
    """A whole, non-negative step number, or None. A loss with no step cannot be placed, and
    must not end the run: a result file's row with an empty step (a summary row, a download
    cut short) raised after the job succeeded, so the fine-tuned model was never recorded;
    "2.5" was read as step 2; 10**400 raised OverflowError and 10**30 failed MLflow's write,
    either ending the run while the job went on."""
    if isinstance(value, bool):
        return None
    number = _number(value)
    # Beyond MAX_STEP is no job's step, and MLflow cannot store it (SQLite's integers).
    if not math.isfinite(number) or not 0 <= number <= MAX_STEP or number != int(number):
        return None
    return int(number)


def event_metrics(events: Iterable[Any]) -> list[Metric]:
    """Step losses in metrics events (``data``: step, train_loss, valid_loss...)."""
    metrics: list[Metric] = []
    for event in events:
        data = event.data if isinstance(event.data, dict) else None
        step = _step(data.get("step")) if data else None
        if step is None:
            continue
        for key, name in (("train_loss", TRAIN_LOSS), ("valid_loss", VALID_LOSS)):
            if key in data:
                metrics.append((name, _number(data[key]), step))
    return metrics


def parse_result_file(content: bytes) -> list[Metric]:
    """Step losses from a job's result CSV (served base64-encoded by OpenAI, or plain)."""
    text = content.decode("utf-8", errors="replace")
    if not text.lstrip().startswith("step"):
        try:
            text = base64.b64decode(content, validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as error:
            raise ValueError("result file is neither CSV nor base64-encoded CSV") from error
    metrics: list[Metric] = []
    for row in csv.DictReader(io.StringIO(text)):
        step = _step(row.get("step"))
        if step is None:
            continue
        for key, name in (("train_loss", TRAIN_LOSS), ("valid_loss", VALID_LOSS)):
            metrics.append((name, _number(row.get(key)), step))
    return metrics


def _new_events(client: openai.OpenAI, job_id: str, seen: set[str]) -> list[Any]:
    """Events not seen yet, oldest first. The API lists newest first and pages back in
    time, so reading stops at the first event already seen."""
    fresh = []
    for event in client.fine_tuning.jobs.list_events(job_id, limit=100):
        if event.id in seen:
            break
        fresh.append(event)
    seen.update(event.id for event in fresh)
    return fresh[::-1]


def follow_job(
    client: openai.OpenAI,
    job_id: str,
    *,
    poll_seconds: float,
    on_metrics: Callable[[list[Metric]], None],
    progress: bool,
    losses: LossLog | None = None,
) -> FineTuningJob:
    """Poll the job until it ends; returns it when it succeeded, else raises ``JobFailed``."""
    losses = losses or LossLog()
    seen: set[str] = set()
    errors: list[str] = []
    quiet = {} if progress else {"disable": True}  # TQDM_DISABLE=1 applies otherwise
    bar = tqdm(desc=f"fine-tuning {job_id}", unit="step", **quiet)
    try:
        while True:
            job = client.fine_tuning.jobs.retrieve(job_id)
            events = _new_events(client, job_id, seen)
            for event in events:
                data = event.data if isinstance(event.data, dict) else {}
                if not data:  # messages, not per-step metrics
                    log.info("job %s: %s", job_id, event.message)
                if event.level == "error":
                    errors.append(event.message)
                total = _step(data.get("total_steps"))  # a malformed count is no count
                if total:
                    bar.total = losses.total_steps = total
            fresh = losses.new(event_metrics(events))
            if fresh:
                on_metrics(fresh)
                bar.update(max(0, max(step for _, _, step in fresh) - bar.n))
            bar.set_postfix_str(job.status)
            if job.status in TERMINAL_STATUSES:
                break
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        log.warning("stopped following; the job goes on. Re-attach with job_id=%s", job_id)
        raise
    finally:
        bar.close()
    if job.status != "succeeded":
        raise JobFailed(job.id, job.status, _failure_reason(job, errors))
    tuned = job.fine_tuned_model
    if not isinstance(tuned, str) or not tuned.strip():
        # Recorded as it came, the run FINISHED with "None" for the model's name and told the
        # user to evaluate model.model=None.
        raise JobFailed(
            job.id,
            job.status,
            f"the server names no fine-tuned model for it (fine_tuned_model is {tuned!r}); "
            f"re-attach with job_id={job.id} once it does",
        )
    return job


def _failure_reason(job: FineTuningJob, error_events: list[str]) -> str:
    if job.error is not None and job.error.message:
        return job.error.message
    if error_events:
        return error_events[-1]
    return f"the server gave no reason (status {job.status})"


def result_losses(client: openai.OpenAI, job: FineTuningJob) -> list[Metric]:
    """Every step's losses from the job's result files (complete, unlike polled events).

    A file that cannot be fetched (gone, refused, the server lost) or read (neither CSV nor
    base64) is passed over with a warning: the job has succeeded and been paid for, and a run
    that failed here never recorded its fine-tuned model; the losses its events gave stand."""
    metrics: list[Metric] = []
    for file_id in job.result_files or []:
        try:
            metrics += parse_result_file(client.files.content(file_id).content)
        except (openai.APIError, ValueError) as error:
            status = getattr(error, "status_code", None)
            why = f"HTTP {status}" if status is not None else str(error) or type(error).__name__
            log.warning(
                "cannot read result file %s of job %s (%s): the run keeps the losses the "
                "job's events gave",
                file_id,
                job.id,
                why,
            )
    return metrics
