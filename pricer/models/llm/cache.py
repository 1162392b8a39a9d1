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

A request in flight is claimed (``ResponseCache.claim``), so two identical runs started at
once on one cache (two team members, a sweep's parallel trials) pay for each call once: the
second asker of a request waits for the first's answer and reads it from the cache. A claim
is an exclusive ``fcntl.flock`` on ``<2 hex>/.<digest>.claim``, which the kernel releases
when its holder ends, SIGKILL included, so a dead holder never blocks anyone; one that hangs
is waited for at most ``patience`` seconds (the longest its call could take), after which the
waiter asks itself. Threads and tasks of one process are told apart by a set of the claims
the process holds, so that does not rest on ``flock``'s per-open-file semantics (which NFS
does not keep). A holder that gets no answer worth keeping (a refusal, an HTTP error) stores
nothing: its waiter then finds no entry and asks itself. The holder removes the claim file as
it lets go, while still holding it (a waiter that locks the removed file sees it gone and
opens the new one), so claim files do not pile up: only a holder killed outright leaves one
(empty, an inode), which the next claim of that request takes over and removes. Without
``fcntl`` (Windows) there are no claims, and identical runs at once pay twice, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pricer.files import replaced_atomically

try:
    import fcntl
except ImportError:  # Windows: no claims (see the module's docstring)
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

CLAIM_SUFFIX = ".claim"
# At a cache folder's top, once every entry there carries a checksum: not hidden, so a person
# clearing the folder sees it, and not .json, so it is not taken for an entry.
CHECKSUMMED = "CHECKSUMMED"
_CHECKSUMMED_TEXT = (
    "Every LLM answer in this folder carries a checksum (pricer wrote them): an entry without "
    "one is ignored as edited, and asked again.\n"
)
# A waiter looks again after 10 ms, then less and less often, up to every quarter second: an
# answer taking a second or more is read well within a tenth of its time.
_FIRST_LOOK, _LATEST_LOOK = 0.01, 0.25

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
        return self._path(key).with_name(f".{key}{CLAIM_SUFFIX}")

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
        try:
            count = _checksum_old_entries(self.directory)
            with replaced_atomically(self.directory / CHECKSUMMED) as temporary:
                temporary.write_text(_CHECKSUMMED_TEXT, encoding="utf-8")
        except OSError as error:
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
        if self.directory is None or fcntl is None:
            yield False
            return
        path = self.claim_path(key)
        descriptor = await _wait_for_claim(path, patience)
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
            _let_go(path, descriptor)

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


# The claim files this process holds, by path: a second thread or task of the process asking
# the same request waits as another process would, whatever the file system makes of two
# descriptors of one process (NFS emulates flock with per-process POSIX locks).
_held: set[str] = set()
_held_guard = threading.Lock()


def _forget_held() -> None:
    """A forked child holds none of its parent's claims (the parent's threads are not in it)."""
    global _held, _held_guard
    _held, _held_guard = set(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_held)


async def _wait_for_claim(path: Path, patience: float) -> int | bool:
    """The claim file's descriptor, locked, once no one else holds it; False when it cannot be
    made or locked, True when ``patience`` seconds went by with it held elsewhere."""
    deadline = time.monotonic() + patience
    pause = _FIRST_LOOK
    while True:
        try:
            descriptor = _try_claim(path)
        except OSError as error:  # a read-only cache, a file system without locks
            log.debug("cannot claim %s (%s): asking without a claim", path, error)
            return False
        if descriptor is not None:
            return descriptor
        if time.monotonic() >= deadline:
            return True
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(2 * pause, _LATEST_LOOK)


def _try_claim(path: Path) -> int | None:
    """Lock ``path`` (created if need be) without waiting: its descriptor, or None while
    another process, thread or task of this one holds it."""
    name = str(path)
    with _held_guard:
        if name in _held:
            return None
        _held.add(name)
    try:
        while True:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Read-only is enough to lock, so a claim file another user made can be locked.
            descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if _is_still(path, descriptor):
                    return descriptor
            except BaseException:  # held elsewhere, or an interrupt: never keep it locked
                os.close(descriptor)
                raise
            # Its holder removed it as it let go, after this process opened it: locking the
            # removed file claims nothing, the one at the path now (if any) is the claim.
            os.close(descriptor)
    except BlockingIOError:  # held elsewhere
        _release_name(name)
        return None
    except BaseException:
        _release_name(name)
        raise


def _is_still(path: Path, descriptor: int) -> bool:
    """Whether ``descriptor`` is the file at ``path`` (not one removed from there)."""
    try:
        there = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(descriptor)
    return (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino)


def _let_go(path: Path, descriptor: int) -> None:
    """Remove the claim file while still holding it, then unlock: a waiter that then locks
    the removed file sees it gone (``_is_still``), so no two ever hold one request."""
    try:
        path.unlink(missing_ok=True)
    except OSError as error:  # it stays, empty, and the next claim of the request reuses it
        log.debug("cannot remove claim file %s: %s", path, error)
    finally:
        os.close(descriptor)
        _release_name(str(path))


def _release_name(name: str) -> None:
    with _held_guard:
        _held.discard(name)


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
