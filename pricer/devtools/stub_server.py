"""An OpenAI-compatible HTTP server for tests and key-less demos (standard library only).

It speaks the few endpoints pricer uses, over real HTTP, so the real ``openai`` client (its
retries, timeouts, multipart uploads and pagination) is what gets tested:

- ``POST /v1/chat/completions``: a deterministic answer derived from the prompt. The price
  is looked up in ``state.prices`` (a substring of the last user message -> price), else
  derived from a hash of that message (``default_price``). When the request ends with an
  assistant prefill ("Price is $"), the answer continues it, as a completion model would.
  ``usage`` counts one token per four characters (``count_tokens``).
- ``POST /v1/files`` (multipart), ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``.
- ``POST /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs/{id}`` (validating_files ->
  running -> succeeded over successive polls, or failed when scripted),
  ``GET /v1/fine_tuning/jobs/{id}/events`` (newest first, cursor ``after``),
  ``POST /v1/fine_tuning/jobs/{id}/cancel``; a succeeded job lists a result file (CSV with
  step, train_loss, valid_loss, base64-encoded as OpenAI serves it).

Faults are scripted per test on ``state`` (``fail_next``, ``delay_next``, ``no_number_next``)
and consumed one per chat request in arrival order; ``fail_next_job`` makes the next job fail
with that message; ``answer_fn`` replaces the answer logic; ``polls_to_finish`` sets how many
polls a job takes; ``latency`` adds a fixed delay to every chat call. ``counters`` (by route),
``chat_requests``, ``files``, ``jobs`` and ``max_in_flight`` record what arrived. It binds
127.0.0.1 only.

Run it for a local demo without a key:
``python -m pricer.devtools.stub_server --port 8765`` then point a frontier config at
``base_url=http://127.0.0.1:8765/v1`` with any non-empty key in the configured variable.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import email.parser
import email.policy
import hashlib
import itertools
import json
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

HOST = "127.0.0.1"
NO_NUMBER_ANSWER = "I am not able to estimate that."
RESULT_COLUMNS = "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
AUTO_BATCH_SIZE = 8
AUTO_EPOCHS = 3


def count_tokens(text: str) -> int:
    """The stub's tokenizer: one token per four characters, at least one."""
    return max(1, math.ceil(len(text) / 4))


def default_price(text: str) -> float:
    """A stable price in [$1, $999] derived from a hash of the text."""
    digest = int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)
    return round(1.0 + (digest % 99_800) / 100.0, 2)


def train_loss(step: int) -> float:
    return round(2.5 / (1.0 + 0.25 * step), 4)


def valid_loss(step: int) -> float:
    return round(2.7 / (1.0 + 0.2 * step), 4)


@dataclass
class Fault:
    """One scripted misbehaviour, applied to the next chat request."""

    kind: str  # "status" | "delay" | "no_number"
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0


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
class StubState:
    """What the server does and what it saw; shared by handler threads under ``lock``."""

    latency: float = 0.0
    polls_to_finish: int = 3
    prices: dict[str, float] = field(default_factory=dict)
    answer_fn: Callable[[list[dict[str, Any]]], str] | None = None
    fail_next_job: str | None = None
    faults: deque[Fault] = field(default_factory=deque)
    counters: Counter[str] = field(default_factory=Counter)
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: set[str] = field(default_factory=set)
    files: dict[str, StoredFile] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, n: int, status: int, retry_after: float | None = None) -> None:
        """The next ``n`` chat requests get HTTP ``status`` (with Retry-After when given)."""
        with self.lock:
            self.faults.extend(
                Fault("status", status=status, retry_after=retry_after) for _ in range(n)
            )

    def delay_next(self, n: int, seconds: float) -> None:
        """The next ``n`` chat requests stall ``seconds`` before answering."""
        with self.lock:
            self.faults.extend(Fault("delay", seconds=seconds) for _ in range(n))

    def no_number_next(self, n: int) -> None:
        """The next ``n`` chat requests are answered with text that holds no number."""
        with self.lock:
            self.faults.extend(Fault("no_number") for _ in range(n))

    def next_id(self, prefix: str) -> str:
        with self.lock:
            return f"{prefix}-stub{next(self._ids):06d}"

    def answer(self, messages: list[dict[str, Any]]) -> str:
        if self.answer_fn is not None:
            return self.answer_fn(messages)
        user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        price = next(
            (value for key, value in self.prices.items() if key in user), default_price(user)
        )
        prefilled = messages[-1]["role"] == "assistant"
        return f"{price:.2f}" if prefilled else f"Price is ${price:.2f}"


class StubServer:
    """The server in a background thread: ``with StubServer() as stub: stub.base_url``."""

    def __init__(self, port: int = 0, latency: float = 0.0) -> None:
        self.state = StubState(latency=latency)
        self._httpd = _Server((HOST, port), _handler_for(self.state))
        self._httpd.daemon_threads = True  # a stalled fault thread must not block shutdown
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def start(self) -> StubServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the command-line demo)."""
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) drops connection bursts; Linux then retries after 1 s.
    request_queue_size = 128


def _handler_for(state: StubState) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.state = state
    return Handler


class _Handler(BaseHTTPRequestHandler):
    state: StubState
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API
    disable_nagle_algorithm = True  # else headers and body wait out a 40 ms delayed ACK

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read counters, not logs

    # -- plumbing ---------------------------------------------------------------------------
    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            content_type = (
                "application/octet-stream" if isinstance(payload, bytes) else ("application/json")
            )
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout fault): nothing to answer

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(
            status, {"error": {"message": message, "type": "stub_error", "code": None}}, headers
        )

    def _authorised(self) -> bool:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
            self._error(401, "missing bearer token")
            return False
        with self.state.lock:
            self.state.authorizations.add(auth[len("Bearer ") :])
        return True

    def _route(self, method: str) -> None:
        url = urlparse(self.path)
        parts = [part for part in url.path.split("/") if part]
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        if parts[:1] != ["v1"]:
            self._error(404, f"no route {url.path}")
            return
        parts = parts[1:]
        routes: dict[tuple[str, ...], Callable[..., None]] = {
            ("POST", "chat", "completions"): self._chat,
            ("POST", "files"): self._upload,
            ("GET", "files", "*"): self._file,
            ("GET", "files", "*", "content"): self._file_content,
            ("POST", "fine_tuning", "jobs"): self._create_job,
            ("GET", "fine_tuning", "jobs", "*"): self._get_job,
            ("GET", "fine_tuning", "jobs", "*", "events"): self._job_events,
            ("POST", "fine_tuning", "jobs", "*", "cancel"): self._cancel_job,
        }
        for pattern, handler in routes.items():
            if (
                pattern[0] == method
                and len(pattern) - 1 == len(parts)
                and all(want in ("*", got) for want, got in zip(pattern[1:], parts, strict=True))
            ):
                with self.state.lock:  # counted by route, e.g. "POST /chat/completions"
                    self.state.counters[f"{method} /{'/'.join(pattern[1:])}"] += 1
                if self._authorised():
                    handler(parts, query)
                return
        self._error(404, f"no route {method} {url.path}")

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    # -- chat -------------------------------------------------------------------------------
    def _chat(self, parts: list[str], query: dict[str, str]) -> None:
        state = self.state
        body = json.loads(self._body() or b"{}")
        with state.lock:
            state.chat_requests.append(body)
            fault = state.faults.popleft() if state.faults else None
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            time.sleep(state.latency + (fault.seconds if fault and fault.kind == "delay" else 0))
            if fault is not None and fault.kind == "status":
                headers = (
                    {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
                )
                self._error(fault.status, f"scripted HTTP {fault.status}", headers)
                return
            messages = body.get("messages") or []
            answer = (
                NO_NUMBER_ANSWER
                if fault and fault.kind == "no_number"
                else (state.answer(messages))
            )
            prompt_tokens = sum(count_tokens(str(m.get("content") or "")) for m in messages)
            completion_tokens = count_tokens(answer)
            self._send(
                200,
                {
                    "id": state.next_id("chatcmpl"),
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "stub"),
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": answer},
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                },
            )
        finally:
            with state.lock:
                state.in_flight -= 1

    # -- files ------------------------------------------------------------------------------
    def _upload(self, parts: list[str], query: dict[str, str]) -> None:
        content_type = self.headers.get("Content-Type", "")
        raw = f"Content-Type: {content_type}\r\n\r\n".encode() + self._body()
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
            self._error(400, "multipart upload needs a file and a purpose")
            return
        stored = StoredFile(
            id=self.state.next_id("file"),
            filename=upload[0],
            purpose=fields["purpose"],
            content=upload[1],
            created_at=int(time.time()),
        )
        with self.state.lock:
            self.state.files[stored.id] = stored
        self._send(200, _file_json(stored))

    def _stored_file(self, file_id: str) -> StoredFile | None:
        with self.state.lock:
            stored = self.state.files.get(file_id)
        if stored is None:
            self._error(404, f"no such file: {file_id}")
        return stored

    def _file(self, parts: list[str], query: dict[str, str]) -> None:
        stored = self._stored_file(parts[1])
        if stored is not None:
            self._send(200, _file_json(stored))

    def _file_content(self, parts: list[str], query: dict[str, str]) -> None:
        stored = self._stored_file(parts[1])
        if stored is not None:
            self._send(200, stored.content)

    # -- fine-tuning ------------------------------------------------------------------------
    def _create_job(self, parts: list[str], query: dict[str, str]) -> None:
        state = self.state
        body = json.loads(self._body() or b"{}")
        with state.lock:
            training = state.files.get(body.get("training_file", ""))
            validation_id = body.get("validation_file")
            missing_validation = validation_id is not None and validation_id not in state.files
        if training is None or missing_validation:
            self._error(400, "training_file / validation_file not found")
            return
        method = body.get("method") or {}
        hyper = dict(
            (method.get("supervised") or {}).get("hyperparameters")
            or body.get("hyperparameters")
            or {}
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
        self._send(200, _job_json(job))

    def _job(self, job_id: str) -> Job | None:
        with self.state.lock:
            job = self.state.jobs.get(job_id)
        if job is None:
            self._error(404, f"no such job: {job_id}")
        return job

    def _get_job(self, parts: list[str], query: dict[str, str]) -> None:
        job = self._job(parts[2])
        if job is None:
            return
        with self.state.lock:
            _advance(self.state, job)
            payload = _job_json(job)
        self._send(200, payload)

    def _job_events(self, parts: list[str], query: dict[str, str]) -> None:
        job = self._job(parts[2])
        if job is None:
            return
        limit = int(query.get("limit", 20))
        with self.state.lock:
            newest_first = list(reversed(job.events))
        after = query.get("after")
        if after is not None:
            ids = [event["id"] for event in newest_first]
            newest_first = newest_first[ids.index(after) + 1 :] if after in ids else []
        page = newest_first[:limit]
        self._send(200, {"object": "list", "data": page, "has_more": len(newest_first) > limit})

    def _cancel_job(self, parts: list[str], query: dict[str, str]) -> None:
        job = self._job(parts[2])
        if job is None:
            return
        with self.state.lock:
            if job.status not in ("succeeded", "failed", "cancelled"):
                job.status = "cancelled"
                job.finished_at = int(time.time())
            payload = _job_json(job)
        self._send(200, payload)


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


def _advance(state: StubState, job: Job) -> None:
    """One poll: the job moves one stage on; metrics appear as training 'progresses'."""
    if job.status in ("succeeded", "failed", "cancelled"):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each call")
    parser.add_argument(
        "--polls-to-finish", type=int, default=3, help="job polls until a fine-tuning job succeeds"
    )
    args = parser.parse_args()
    server = StubServer(port=args.port, latency=args.latency)
    server.state.polls_to_finish = args.polls_to_finish
    print(f"stub OpenAI server on {server.base_url} (Ctrl-C stops it)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
