"""The stub server's files and fine-tuning endpoints, as the OpenAI API serves them.

- ``POST /v1/files`` (multipart), ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``;
- ``POST /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs/{id}`` (validating_files ->
  running -> succeeded over ``polls_to_finish`` polls, or failed when ``fail_next_job`` holds
  a message), ``GET /v1/fine_tuning/jobs/{id}/events`` (newest first, cursor ``after``),
  ``POST /v1/fine_tuning/jobs/{id}/cancel``. A succeeded job lists a result file (CSV with
  step, train_loss, valid_loss, base64-encoded as OpenAI serves it).
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import math
import time
from dataclasses import dataclass, field
from typing import Any

from pricer.devtools.stub_common import Reply, SharedState, error_reply

RESULT_COLUMNS = "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
AUTO_BATCH_SIZE = 8
AUTO_EPOCHS = 3
_FINISHED = ("succeeded", "failed", "cancelled")


def train_loss(step: int) -> float:
    return round(2.5 / (1.0 + 0.25 * step), 4)


def valid_loss(step: int) -> float:
    return round(2.7 / (1.0 + 0.2 * step), 4)


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int


@dataclass
class Job:
    id: str
    model: str
    training_file: str
    validation_file: str | None
    hyperparameters: dict[str, Any]
    suffix: str | None
    seed: int | None
    created_at: int
    total_steps: int
    fail_with: str | None
    polls: int = 0
    status: str = "validating_files"
    revealed_steps: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    result_file: str | None = None
    fine_tuned_model: str | None = None
    error: dict[str, Any] | None = None
    finished_at: int | None = None
    trained_tokens: int | None = None


@dataclass
class FineTuningState(SharedState):
    """Uploaded files and fine-tuning jobs, and how jobs behave."""

    polls_to_finish: int = 3
    fail_next_job: str | None = None
    files: dict[str, StoredFile] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)


# -- files ------------------------------------------------------------------------------------
def upload_file(state: FineTuningState, content_type: str, body: bytes) -> Reply:
    raw = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    fields: dict[str, str] = {}
    upload: tuple[str, bytes] | None = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename():
            upload = (part.get_filename(), payload)
        elif name:
            fields[str(name)] = payload.decode()
    if upload is None or "purpose" not in fields:
        return error_reply(400, "multipart upload needs a file and a purpose")
    stored = StoredFile(
        id=state.next_id("file"),
        filename=upload[0],
        purpose=fields["purpose"],
        content=upload[1],
        created_at=int(time.time()),
    )
    with state.lock:
        state.files[stored.id] = stored
    return Reply(200, _file_json(stored))


def get_file(state: FineTuningState, file_id: str, content: bool = False) -> Reply:
    with state.lock:
        stored = state.files.get(file_id)
    if stored is None:
        return error_reply(404, f"no such file: {file_id}")
    return Reply(200, stored.content if content else _file_json(stored))


# -- fine-tuning jobs -------------------------------------------------------------------------
def create_job(state: FineTuningState, body: dict[str, Any]) -> Reply:
    with state.lock:
        training = state.files.get(body.get("training_file", ""))
        validation_id = body.get("validation_file")
        missing_validation = validation_id is not None and validation_id not in state.files
    if training is None or missing_validation:
        return error_reply(400, "training_file / validation_file not found")
    method = body.get("method") or {}
    hyper = dict(
        (method.get("supervised") or {}).get("hyperparameters") or body.get("hyperparameters") or {}
    )
    epochs = hyper.get("n_epochs", "auto")
    batch = hyper.get("batch_size", "auto")
    n_lines = sum(1 for line in training.content.splitlines() if line.strip())
    epochs_n = AUTO_EPOCHS if epochs == "auto" else int(epochs)
    batch_n = AUTO_BATCH_SIZE if batch == "auto" else int(batch)
    with state.lock:
        fail_with, state.fail_next_job = state.fail_next_job, None
    job = Job(
        id=state.next_id("ftjob"),
        model=body["model"],
        training_file=training.id,
        validation_file=validation_id,
        hyperparameters=hyper,
        suffix=body.get("suffix"),
        seed=body.get("seed"),
        created_at=int(time.time()),
        total_steps=max(1, math.ceil(n_lines / batch_n)) * epochs_n,
        fail_with=fail_with,
    )
    _add_event(job, "info", "Validating training file")
    with state.lock:
        state.jobs[job.id] = job
    return Reply(200, _job_json(job))


def get_job(state: FineTuningState, job_id: str) -> Reply:
    """One poll: the job moves one stage on."""
    with state.lock:
        job = state.jobs.get(job_id)
        if job is None:
            return error_reply(404, f"no such job: {job_id}")
        _advance(state, job)
        return Reply(200, _job_json(job))


def job_events(state: FineTuningState, job_id: str, query: dict[str, str]) -> Reply:
    limit = int(query.get("limit", 20))
    with state.lock:
        job = state.jobs.get(job_id)
        if job is None:
            return error_reply(404, f"no such job: {job_id}")
        newest_first = list(reversed(job.events))
    after = query.get("after")
    if after is not None:
        ids = [event["id"] for event in newest_first]
        newest_first = newest_first[ids.index(after) + 1 :] if after in ids else []
    page = newest_first[:limit]
    return Reply(200, {"object": "list", "data": page, "has_more": len(newest_first) > limit})


def cancel_job(state: FineTuningState, job_id: str) -> Reply:
    with state.lock:
        job = state.jobs.get(job_id)
        if job is None:
            return error_reply(404, f"no such job: {job_id}")
        if job.status not in _FINISHED:
            job.status = "cancelled"
            job.finished_at = int(time.time())
        return Reply(200, _job_json(job))


def _add_event(job: Job, level: str, message: str, data: dict[str, Any] | None = None) -> None:
    job.events.append(
        {
            "id": f"ftevent-{job.id}-{len(job.events):05d}",
            "object": "fine_tuning.job.event",
            "created_at": int(time.time()),
            "level": level,
            "message": message,
            "data": data,
            "type": "metrics" if data else "message",
        }
    )


def _advance(state: FineTuningState, job: Job) -> None:
    """One poll (under the lock): metrics appear as training 'progresses'."""
    if job.status in _FINISHED:
        return
    job.polls += 1
    if job.fail_with is not None and job.polls >= 2:
        job.status, job.finished_at = "failed", int(time.time())
        job.error = {"code": "invalid_training_file", "message": job.fail_with, "param": None}
        _add_event(job, "error", job.fail_with)
        return
    job.status = "running"
    if job.polls == 1:
        _add_event(job, "info", "Fine-tuning job started")
    share = min(1.0, job.polls / state.polls_to_finish)
    reveal = math.floor(job.total_steps * share)
    for step in range(job.revealed_steps + 1, reveal + 1):
        data: dict[str, Any] = {
            "step": step,
            "train_loss": train_loss(step),
            "total_steps": job.total_steps,
        }
        if job.validation_file and (step % 5 == 0 or step == job.total_steps):
            data["valid_loss"] = valid_loss(step)
        _add_event(job, "info", f"Step {step}/{job.total_steps}", data)
    job.revealed_steps = reveal
    if job.polls >= state.polls_to_finish:
        _succeed(state, job)


def _succeed(state: FineTuningState, job: Job) -> None:
    job.status, job.finished_at = "succeeded", int(time.time())
    job.fine_tuned_model = f"ft:{job.model}:pricer-stub:{job.suffix or 'model'}:{job.id[-6:]}"
    job.trained_tokens = job.total_steps * 1000
    rows = [RESULT_COLUMNS]
    for step in range(1, job.total_steps + 1):
        has_valid = job.validation_file and (step % 5 == 0 or step == job.total_steps)
        valid = f"{valid_loss(step)},0.5" if has_valid else ","
        rows.append(f"{step},{train_loss(step)},0.5,{valid}")
    result = StoredFile(
        id=f"file-result-{job.id}",
        filename="step_metrics.csv",
        purpose="fine-tune-results",
        content=base64.b64encode("\n".join(rows).encode() + b"\n"),
        created_at=int(time.time()),
    )
    state.files[result.id] = result
    job.result_file = result.id
    _add_event(job, "info", "The job has successfully completed")


def _file_json(stored: StoredFile) -> dict[str, Any]:
    return {
        "id": stored.id,
        "object": "file",
        "bytes": len(stored.content),
        "created_at": stored.created_at,
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
    }


def _job_json(job: Job) -> dict[str, Any]:
    hyper = {
        key: job.hyperparameters.get(key, "auto")
        for key in ("n_epochs", "batch_size", "learning_rate_multiplier")
    }
    return {
        "id": job.id,
        "object": "fine_tuning.job",
        "created_at": job.created_at,
        "error": job.error,
        "fine_tuned_model": job.fine_tuned_model,
        "finished_at": job.finished_at,
        "hyperparameters": hyper,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
        "model": job.model,
        "organization_id": "org-stub",
        "result_files": [job.result_file] if job.result_file else [],
        "seed": job.seed if job.seed is not None else 0,
        "status": job.status,
        "trained_tokens": job.trained_tokens,
        "training_file": job.training_file,
        "validation_file": job.validation_file,
        "suffix": job.suffix,
    }
