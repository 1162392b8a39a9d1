"""An on-disk cache of LLM answers, so re-running an evaluation does not pay twice.

One JSON file per answer, named by a digest of everything that decides the answer: the
server, the model, the full rendered messages and the sampling settings. The server is part
of the key because the same model name on a local stub, Ollama or OpenAI gives different
answers. Files are written to a temporary name and renamed into place (atomic on POSIX), so
parallel sweep trials, threads or processes can share a cache folder without locks: a
reader sees a whole entry or none, and two writers of one key write the same content.

Only answers that held a price are stored (the caller decides): failures are retried on the
next run rather than remembered.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1  # bump to invalidate every entry when the entry layout changes


@dataclass(frozen=True)
class CachedAnswer:
    answer: str
    input_tokens: int
    output_tokens: int


def request_key(request: dict[str, Any]) -> str:
    """Digest of a request description (server, model, messages, sampling settings)."""
    canonical = json.dumps([FORMAT_VERSION, request], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache:
    """Answers under ``directory/<2 hex>/<digest>.json``; ``directory=None`` disables it."""

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory else None

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> CachedAnswer | None:
        if self.directory is None:
            return None
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
            return CachedAnswer(**entry["answer"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a damaged entry is a miss; the fresh answer overwrites it

    def put(self, key: str, answer: CachedAnswer, request: dict[str, Any]) -> None:
        """Store an answer; the request is kept beside it so entries can be inspected."""
        if self.directory is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"request": request, "answer": asdict(answer)}, ensure_ascii=False)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(payload)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
