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
full disk, edited by hand) is a miss, with a warning, and the fresh answer replaces it. So
is one that reads but does not match: each entry carries a checksum of its answer and key,
and its request must hash to its file's name, so a digit changed by hand or by a bad disk,
or an entry copied under another request's name, is asked again rather than recorded as
that item's answer (entries from before the checksum are checked by their request only).
Each entry keeps the model its reply said answered (``model``), so a run served from the cache
records who answered as the run that paid did; an entry from before it was kept still reads,
its model unknown (None), and is left out of the checksum then, so its checksum still holds.
A write that fails (disk full, read-only folder) costs the cache that entry, never the run.
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
# The most tokens one call can count: a thousand times the longest context window offered
# (1M-10M). A reply claiming more is broken, and its count beyond a float (10**400) crashed
# the batch's cost, after every call was paid for, and every rerun that read it back.
MAX_TOKEN_COUNT = 10**10


@dataclass(frozen=True)
class CachedAnswer:
    answer: str
    input_tokens: int
    output_tokens: int
    model: str | None = None  # the reply's ``model``; None: not said, or cached before it was

    def __post_init__(self) -> None:
        """An entry of the wrong types is unreadable (a miss), whatever its checksum says: a
        number for the answer crashed the parser mid-predict, a string for a count crashed
        the token sums, a negative count made the recorded cost negative, and one beyond a
        float (``MAX_TOKEN_COUNT``) crashed the cost."""
        if not isinstance(self.answer, str):
            raise TypeError(f"answer is {type(self.answer).__name__}, not str")
        for name in ("input_tokens", "output_tokens"):
            count = getattr(self, name)
            if isinstance(count, bool) or not isinstance(count, int):
                raise TypeError(f"{name} is {type(count).__name__}, not a token count")
            if not 0 <= count <= MAX_TOKEN_COUNT:
                raise TypeError(f"{name} is out of range, not a token count")
        if self.model is not None and not isinstance(self.model, str):
            raise TypeError(f"model is {type(self.model).__name__}, not str")

    def stored(self) -> dict[str, Any]:
        """The entry's answer as written to disk and checksummed: without ``model`` when it is
        unknown, so an entry written before models were kept keeps its checksum."""
        fields = asdict(self)
        if fields["model"] is None:
            del fields["model"]
        return fields


def request_key(request: dict[str, Any]) -> str:
    """Digest of a request description (server, model, messages, sampling settings)."""
    return _digest([FORMAT_VERSION, request])


class ResponseCache:
    """Answers under ``directory/<2 hex>/<digest>.json``; ``directory=None`` disables it."""

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory else None
        self._write_failed = False  # warned once: a full disk fails every write after it

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
            answer = CachedAnswer(**entry["answer"])
            checksum = entry.get("checksum")
            matches = request_key(entry["request"]) == key and (
                checksum is None or checksum == _checksum(key, answer)
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning("ignoring unreadable LLM cache entry %s (%s)", path, type(error).__name__)
            return None  # a damaged entry is a miss; the fresh answer overwrites it
        if not matches:
            log.warning("ignoring LLM cache entry %s: it does not match its request", path)
            return None
        return answer

    def put(self, key: str, answer: CachedAnswer, request: dict[str, Any]) -> None:
        """Store an answer; the request is kept beside it so entries can be inspected."""
        if self.directory is None:
            return
        path = self._path(key)
        entry = {"request": request, "answer": answer.stored(), "checksum": _checksum(key, answer)}
        payload = json.dumps(entry, ensure_ascii=False)
        try:  # an interruption leaves no temporary file, and the entry absent
            with replaced_atomically(path) as temporary:
                temporary.write_text(payload, encoding="utf-8")
        except OSError as error:
            if self._write_failed:
                log.debug("cannot write LLM cache entry %s: %s", path, error)
                return
            self._write_failed = True
            log.warning(
                "cannot write LLM cache entry %s: %s (answers are not cached; further "
                "failed writes of this batch are not reported)",
                path,
                error,
            )


def _checksum(key: str, answer: CachedAnswer) -> str:
    """Digest of an answer under its key: an entry whose answer or name changed fails it."""
    return _digest([key, answer.stored()])


def _digest(value: Any) -> str:
    """SHA-256 of ``value`` as canonical JSON (keys sorted), the same on every machine."""
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
