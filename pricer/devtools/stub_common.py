"""What the stub server's route handlers share: the reply they return and the state's lock.

Handlers are plain functions from a request body (and path parts) to a ``Reply``; only
``stub_server`` speaks HTTP, so a handler module knows nothing of sockets or headers parsing.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: a JSON-able payload (or raw bytes), with extra headers."""

    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)


def error_reply(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """An error in the shape the OpenAI API uses, which the SDK turns into its exceptions."""
    body = {"error": {"message": message, "type": "stub_error", "code": None}}
    return Reply(status, body, headers or {})


@dataclass
class SharedState:
    """The one lock every handler thread takes, and the id counter of created objects."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def next_id(self, prefix: str) -> str:
        with self.lock:
            return f"{prefix}-stub{next(self._ids):06d}"
