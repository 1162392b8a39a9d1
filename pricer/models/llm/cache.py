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
that item's answer. Entries from before the checksum (older versions wrote none) are checked
by their request only, so an old cache keeps working without paying again; but a hand edit
that also deleted the checksum then passed for such an entry. So the first time this version
writes to a folder (``prepare_to_write``), it adds their checksums to the old entries there
(those that read and match their name; the rest stay misses), then writes a ``CHECKSUMMED``
file at the folder's top: in a folder that has it, an entry without a checksum is a miss,
with a warning, and the fresh answer replaces it. A folder this version only reads (a
read-only shared cache) keeps reading its old entries as before. An older version writing to
a marked folder later writes entries without checksums, which this version asks again: paid
twice, never wrong. The checksumming reads every entry once, at the first batch that writes.
Each entry keeps the model its reply said answered (``model``), so a run served from the cache
records who answered as the run that paid did; an entry from before it was kept still reads,
its model unknown (None), and is left out of the checksum then, so its checksum still holds.
A write that fails (disk full, read-only folder) costs the cache that entry, never the run.
No fsync: a rename survives the process being killed, which is the interruption that
matters here; only a power cut could lose recent entries, and those are re-asked, not wrong.

A request in flight is claimed (``ResponseCache.claim``, by ``claims``), so two identical
runs started at once on one cache (two team members, a sweep's parallel trials) pay for each
call once: the second asker of a request waits for the first's answer and reads it from the
cache. A holder that gets no answer worth keeping (a refusal, an HTTP error) stores nothing:
its waiter then finds no entry and asks itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pricer.files import replaced_atomically, unwritable
from pricer.models.llm import claims

log = logging.getLogger(__name__)

# At a cache folder's top, once every entry there carries a checksum: not hidden, so a person
# clearing the folder sees it, and not .json, so it is not taken for an entry.
CHECKSUMMED = "CHECKSUMMED"
_CHECKSUMMED_TEXT = (
    "Every LLM answer in this folder carries a checksum (pricer wrote them): an entry without "
    "one is ignored as edited, and asked again.\n"
)

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
    # Seconds the call that answered took: a rerun served from the cache reports the model's
    # call latency as the paid run did (a leaderboard's trade-off read a fully cached LLM's
    # as its batch's, a few microseconds an item). None: cached before it was kept.
    latency: float | None = None

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
        seconds = self.latency
        if seconds is not None and (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds < math.inf
        ):
            raise TypeError("latency is not a number of seconds")

    def stored(self) -> dict[str, Any]:
        """The entry's answer as written to disk and checksummed: without ``model`` or
        ``latency`` when unknown, so an entry written before they were kept keeps its
        checksum."""
        return {key: value for key, value in asdict(self).items() if value is not None}


def request_key(request: dict[str, Any]) -> str:
    """Digest of a request description (server, model, messages, sampling settings)."""
    return _digest([FORMAT_VERSION, request])


# Folders whose one-time checksum pass failed in this process, and why (see prepare_to_write).
_unmarkable: dict[str, str] = {}


class ResponseCache:
    """Answers under ``directory/<2 hex>/<digest>.json``; ``directory=None`` disables it."""

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory else None
        self._write_failed = False  # warned once: a full disk fails every write after it
        # Entries warned about already: a batch reads a missed entry again when its turn to
        # be asked comes (another run may have answered it meanwhile), and one damaged entry
        # is one warning.
        self._rejected: set[str] = set()
        self._waited_out = False  # warned once: a hung run holds all its calls in flight
        self._prepared = False  # prepare_to_write ran (once per cache object)
        self._checksummed = False  # CHECKSUMMED seen (it is never removed by pricer)

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.json"

    def claim_path(self, key: str) -> Path:
        """The file whose lock is ``key``'s claim, hidden beside its entry."""
        return self._path(key).with_name(f".{key}{claims.SUFFIX}")

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
            message = "ignoring unreadable LLM cache entry %s (%s)"
            self._reject(key, message, path, type(error).__name__)
            return None  # a damaged entry is a miss; the fresh answer overwrites it
        if not matches:
            self._reject(key, "ignoring LLM cache entry %s: it does not match its request", path)
            return None
        if checksum is None and self._all_checksummed():
            self._reject(
                key,
                "ignoring LLM cache entry %s: it has no checksum, which every entry of this "
                "folder has carried since pricer checksummed it (%s): edited by hand?",
                path,
                self.directory / CHECKSUMMED,
            )
            return None
        return answer

    def _reject(self, key: str, message: str, *arguments: Any) -> None:
        level = logging.DEBUG if key in self._rejected else logging.WARNING
        self._rejected.add(key)
        log.log(level, message, *arguments)

    def _all_checksummed(self) -> bool:
        """Whether this version has written to the folder (and checksummed it then)."""
        assert self.directory is not None
        self._checksummed = self._checksummed or (self.directory / CHECKSUMMED).exists()
        return self._checksummed

    def prepare_to_write(self) -> None:
        """Before this version's first write to the folder: add their checksums to the entries
        written before entries carried one, then mark the folder ``CHECKSUMMED`` (see the
        module's docstring). Run before a batch's calls, so the one-time scan of a big old
        cache does not stall answers in flight; ``put`` runs it too. A folder that cannot be
        written is left unmarked (its old entries still read), and ``put`` says why."""
        if self.directory is None or self._prepared:
            return
        self._prepared = True
        if self._all_checksummed():
            return
        # A folder that cannot be written (a read-only shared cache) would have every entry
        # read, for the pass to fail at its first write: every batch's cache object did that
        # again. Skipped when the folder says it is not writable, or once it failed in this
        # process (what os.access cannot tell: a root-squashed NFS export, a full disk);
        # a later process tries again.
        folder = os.path.abspath(self.directory)
        problem = _unmarkable.get(folder) or unwritable(self.directory / CHECKSUMMED)
        if problem:
            log.debug("cannot mark LLM cache %s as checksummed: %s", self.directory, problem)
            return
        try:
            count = _checksum_old_entries(self.directory)
            with replaced_atomically(self.directory / CHECKSUMMED) as temporary:
                temporary.write_text(_CHECKSUMMED_TEXT, encoding="utf-8")
        except OSError as error:
            _unmarkable[folder] = str(error)
            log.debug("cannot mark LLM cache %s as checksummed: %s", self.directory, error)
            return
        self._checksummed = True
        if count:
            log.info(
                "added checksums to %d LLM cache entries from before entries carried one (%s)",
                count,
                self.directory,
            )

    @contextlib.asynccontextmanager
    async def claim(self, key: str, patience: float) -> AsyncIterator[bool]:
        """Hold ``key``'s claim while the block runs, waiting (asleep, so the event loop's
        other calls go on) while another run, thread or task holds it: yields True when
        held. False when there is no claim to hold: the cache or ``fcntl`` is off, the claim
        file cannot be made (a read-only cache), or ``patience`` seconds went by with the
        claim held elsewhere (its holder hangs). Either way the caller reads the cache
        again, and asks for the answer itself if it is not there; a holder stores its answer
        before it lets go."""
        if self.directory is None or not claims.AVAILABLE:
            yield False
            return
        path = self.claim_path(key)
        descriptor = await claims.acquire(path, patience)
        if descriptor is True:
            # A hung run holds every call it had in flight: one warning for them all.
            level = logging.DEBUG if self._waited_out else logging.WARNING
            self._waited_out = True
            log.log(
                level,
                "another run has held the LLM request %s for over %.0f s, longer than its "
                "call can take: asking for the answer too (further ones of this batch are "
                "not reported)",
                path,
                patience,
            )
        if isinstance(descriptor, bool):
            yield False
            return
        try:
            yield True
        finally:
            claims.let_go(path, descriptor)

    def put(self, key: str, answer: CachedAnswer, request: dict[str, Any]) -> None:
        """Store an answer; the request is kept beside it so entries can be inspected."""
        if self.directory is None:
            return
        self.prepare_to_write()
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


def _checksum_old_entries(directory: Path) -> int:
    """Add their checksums to the entries of ``directory`` that have none and still read and
    match their request (the rest are misses either way); how many. Each is rewritten whole,
    so a run killed part-way leaves every entry readable, and the next one goes on. A write
    that fails raises: the folder must not be marked with old entries left unchecksummed."""
    count = 0
    for path in sorted(directory.glob("??/*.json")):
        if path.name.startswith("."):  # a writer's temporary file
            continue
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            if "checksum" in entry:
                continue
            key = path.stem
            answer = CachedAnswer(**entry["answer"])
            if request_key(entry["request"]) != key:
                continue
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # unreadable or gone: a miss, marked or not
        entry["checksum"] = _checksum(key, answer)
        with replaced_atomically(path) as temporary:
            temporary.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
        count += 1
    return count


def _checksum(key: str, answer: CachedAnswer) -> str:
    """Digest of an answer under its key: an entry whose answer or name changed fails it."""
    return _digest([key, answer.stored()])


def _digest(value: Any) -> str:
    """SHA-256 of ``value`` as canonical JSON (keys sorted), the same on every machine."""
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
