"""The stub server's ``POST /v1/chat/completions``: deterministic answers and scripted faults.

The price is looked up in ``state.prices`` (a substring of the last user message -> price),
else derived from a hash of that message (``default_price``). When the request ends with an
assistant prefill ("Price is $"), the answer continues it, as a completion model would.
``usage`` counts one token per four characters (``count_tokens``).

Faults are scripted per test (``fail_next``, ``delay_next``, ``no_number_next``) and consumed
one per chat request in arrival order; ``answer_fn`` replaces the answer logic;
``reply_fn`` rewrites the whole response body (a ``finish_reason: length``, content that is
not text, a broken ``usage``: what a misbehaving server sends); ``latency`` adds a fixed
delay to every call; ``answering_model`` is the ``model`` every reply names (None: the one
asked for), as a proxy that answers with another model, or OpenAI naming the dated snapshot
that answered, would. ``chat_requests`` and ``max_in_flight`` record what arrived.
``rate_limit`` (a ``stub_ratelimit.RateLimit``) refuses calls beyond its requests or tokens per
minute with 429 and Retry-After, before any other work, as a provider's gateway does.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pricer.devtools.stub_common import Reply, SharedState, error_reply
from pricer.devtools.stub_ratelimit import RateLimit, request_tokens

NO_NUMBER_ANSWER = "I am not able to estimate that."


def count_tokens(text: str) -> int:
    """The stub's tokenizer: one token per four characters, at least one."""
    return max(1, math.ceil(len(text) / 4))


def default_price(text: str) -> float:
    """A stable price in [$1, $999] derived from a hash of the text."""
    digest = int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)
    return round(1.0 + (digest % 99_800) / 100.0, 2)


@dataclass
class Fault:
    """One scripted misbehaviour, applied to the next chat request."""

    kind: str  # "status" | "delay" | "no_number"
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0


@dataclass
class ChatState(SharedState):
    """What the chat endpoint does and what it saw."""

    latency: float = 0.0
    prices: dict[str, float] = field(default_factory=dict)
    answer_fn: Callable[[list[dict[str, Any]]], str] | None = None
    reply_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # body -> body sent
    faults: deque[Fault] = field(default_factory=deque)
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    rate_limit: RateLimit | None = None  # RPM/TPM enforced (429 + Retry-After); None: none
    answering_model: str | None = None  # the model replies name; None: the one asked for

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

    def answer(self, messages: list[dict[str, Any]]) -> str:
        if self.answer_fn is not None:
            return self.answer_fn(messages)
        user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        price = next(
            (value for key, value in self.prices.items() if key in user), default_price(user)
        )
        prefilled = messages[-1]["role"] == "assistant"
        return f"{price:.2f}" if prefilled else f"Price is ${price:.2f}"


def chat_completion(state: ChatState, body: dict[str, Any]) -> Reply:
    """Answer one chat request, applying the next scripted fault if any."""
    with state.lock:
        state.chat_requests.append(body)
        limit = state.rate_limit
        wait = limit.take(request_tokens(body), time.monotonic()) if limit else 0.0
    if wait > 0:
        return error_reply(429, "stub rate limit reached", {"Retry-After": f"{wait:.3f}"})
    with state.lock:
        fault = state.faults.popleft() if state.faults else None
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
    try:
        time.sleep(state.latency + (fault.seconds if fault and fault.kind == "delay" else 0))
        if fault is not None and fault.kind == "status":
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            return error_reply(fault.status, f"scripted HTTP {fault.status}", headers)
        messages = body.get("messages") or []
        no_number = fault is not None and fault.kind == "no_number"
        answer = NO_NUMBER_ANSWER if no_number else state.answer(messages)
        prompt_tokens = sum(count_tokens(str(m.get("content") or "")) for m in messages)
        completion_tokens = count_tokens(answer)
        reply = {
            "id": state.next_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": state.answering_model or body.get("model", "stub"),
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
        }
        return Reply(200, reply if state.reply_fn is None else state.reply_fn(reply))
    finally:
        with state.lock:
            state.in_flight -= 1
