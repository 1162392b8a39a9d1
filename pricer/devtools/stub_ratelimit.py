"""A provider-style rate limit for the stub server: requests and tokens per minute.

Providers enforce RPM and TPM as token buckets that refill continuously (OpenAI: "quantized",
a 60,000 RPM limit may be enforced as 1,000 requests a second). ``RateLimit`` keeps one bucket
per kind, each holding ``burst_seconds`` worth of its per-minute rate; a request is charged one
request and its tokens as OpenAI counts them before answering: the prompt plus
``max_completion_tokens`` (``request_tokens``). When a bucket is short, the request is refused
and ``take`` says how long until it would pass: the stub answers 429 with that Retry-After.

Not thread-safe by itself: the stub calls it under its state lock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

CHARS_PER_TOKEN = 4  # the stub's tokenizer (and OpenAI's rule of thumb for English)


def request_tokens(body: dict[str, Any]) -> int:
    """Tokens a chat request counts against a TPM limit: prompt characters / 4 plus the
    completion allowance (``max_completion_tokens``, else ``max_tokens``, else 0)."""
    chars = sum(len(str(message.get("content") or "")) for message in body.get("messages") or [])
    allowance = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    return max(1, math.ceil(chars / CHARS_PER_TOKEN)) + int(allowance)


@dataclass
class RateLimit:
    """``rpm`` requests and ``tpm`` tokens per minute (None: that kind is unlimited)."""

    rpm: float | None = None
    tpm: float | None = None
    burst_seconds: float = 60.0
    refused: int = 0  # 429s answered
    _levels: dict[str, float] = field(default_factory=dict)
    _last: float | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 or None, got {value}")
        if self.burst_seconds <= 0:
            raise ValueError(f"burst_seconds must be > 0, got {self.burst_seconds}")

    def _rates(self) -> dict[str, float]:
        """Per-second refill rate of each limited kind."""
        rates = {"requests": self.rpm, "tokens": self.tpm}
        return {kind: per_minute / 60.0 for kind, per_minute in rates.items() if per_minute}

    def capacity(self, kind: str) -> float:
        return self._rates()[kind] * self.burst_seconds

    def take(self, tokens: int, now: float) -> float:
        """Charge one request of ``tokens`` at time ``now`` (seconds, monotonic): 0.0 if it
        passes, else the seconds until it would (nothing charged)."""
        rates = self._rates()
        elapsed = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        need = {"requests": 1.0, "tokens": float(tokens)}
        wait = 0.0
        for kind, rate in rates.items():
            capacity = rate * self.burst_seconds
            level = min(capacity, self._levels.get(kind, capacity) + elapsed * rate)
            self._levels[kind] = level
            # A request larger than the whole bucket passes once the bucket is full.
            want = min(need[kind], capacity)
            if level < want:
                wait = max(wait, (want - level) / rate)
        if wait > 0:
            self.refused += 1
            return wait
        for kind in rates:
            self._levels[kind] -= min(need[kind], self.capacity(kind))
        return 0.0
