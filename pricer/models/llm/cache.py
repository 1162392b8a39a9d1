"""An on-disk cache of LLM answers, so re-running an evaluation does not pay twice.

One JSON file per answer, named by a digest of everything that decides the answer: the
server, the model, the full rendered messages and the sampling settings. The server is part
of the key because the same model name on a local stub, Ollama or OpenAI gives different
answers. Files are written to a temporary name and renamed into place (atomic on POSIX), so
parallel sweep trials, threads or processes can share a cache folder without locks: a
reader sees a whole entry or none, and two writers of one key write the same content.

Only answers that held a price are stored (the caller decides): failures are retried on the
next run rather than remembered. The caller stores each answer as it arrives, so a run
interrupted part-way keeps what it paid for. An entry that cannot be read (truncated by a
full disk, edited by hand) is a miss, with a warning, and the fresh answer replaces it; a
write that fails (disk full, read-only folder) costs the cache that entry, never the run.
No fsync: a rename survives the process being killed, which is the interruption that
matters here; only a power cut could lose recent entries, and those are re-asked, not wrong.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pricer.files import replaced_atomically

log = logging.getLogger(__name__)

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
        path = self._path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            return CachedAnswer(**entry["answer"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("ignoring unreadable LLM cache entry %s (%s)", path, type(error).__name__)
            return None  # a damaged entry is a miss; the fresh answer overwrites it

    def put(self, key: str, answer: CachedAnswer, request: dict[str, Any]) -> None:
        """Store an answer; the request is kept beside it so entries can be inspected."""
        if self.directory is None:
            return
        path = self._path(key)
        payload = json.dumps({"request": request, "answer": asdict(answer)}, ensure_ascii=False)
        try:  # an interruption leaves no temporary file, and the entry absent
            with replaced_atomically(path) as temporary:
                temporary.write_text(payload, encoding="utf-8")
        except OSError as error:
            log.warning("cannot write LLM cache entry %s: %s", path, error)
