"""Claims on LLM requests in flight, so identical runs at once on one cache pay once.

A claim is an exclusive ``fcntl.flock`` on a claim file (the cache keeps it beside the
entry: ``<2 hex>/.<digest>.claim``), which the kernel releases when its holder ends, SIGKILL
included, so a dead holder never blocks anyone; one that hangs is waited for at most
``patience`` seconds (the longest its call could take), after which the waiter asks itself.
Threads and tasks of one process are told apart by a set of the claims the process holds, so
that does not rest on ``flock``'s per-open-file semantics (which NFS does not keep). The holder
removes the claim file as it lets go, while still holding it (a waiter that locks the removed
file sees it gone and opens the new one), so claim files do not pile up: only a holder killed
outright leaves one (empty, an inode), which the next claim of that request takes over and
removes. Without ``fcntl`` (Windows) there are no claims (``AVAILABLE``), and identical runs at
once pay twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path

from pricer.files import still_names

try:
    import fcntl
except ImportError:  # Windows: no claims (see the module's docstring)
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

AVAILABLE = fcntl is not None
SUFFIX = ".claim"
# A waiter looks again after 10 ms, then less and less often, up to every quarter second: an
# answer taking a second or more is read well within a tenth of its time.
_FIRST_LOOK, _LATEST_LOOK = 0.01, 0.25

# The claim files this process holds, by path: a second thread or task of the process asking
# the same request waits as another process would, whatever the file system makes of two
# descriptors of one process (NFS emulates flock with per-process POSIX locks). Each path
# maps to a token of the call that took it, so that call's unwinding frees it only if it did
# take it (see _try_claim).
_held: dict[str, object] = {}
_held_guard = threading.Lock()


def _forget_held() -> None:
    """A forked child holds none of its parent's claims (the parent's threads are not in it)."""
    global _held, _held_guard
    _held, _held_guard = {}, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_held)


async def acquire(path: Path, patience: float) -> int | bool:
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
    # The try opens before the name is taken: a KeyboardInterrupt landing just after it was
    # taken (as the guard is let go) left it taken for the life of the process, and this
    # process's next ask of the request waited out its whole patience. The token says whether
    # this call took it, however early the interrupt landed: one another call holds is left.
    token = object()
    try:
        with _held_guard:
            if name in _held:
                return None
            _held[name] = token
        while True:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Read-only is enough to lock, so a claim file another user made can be locked.
            descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if still_names(path, descriptor):
                    return descriptor
            except BaseException:  # held elsewhere, or an interrupt: never keep it locked
                os.close(descriptor)
                raise
            # Its holder removed it as it let go, after this process opened it: locking the
            # removed file claims nothing, the one at the path now (if any) is the claim.
            os.close(descriptor)
    except BlockingIOError:  # held elsewhere
        _release_name(name, token)
        return None
    except BaseException:
        _release_name(name, token)
        raise


def let_go(path: Path, descriptor: int) -> None:
    """Remove the claim file while still holding it, then unlock: a waiter that then locks
    the removed file sees it gone (``still_names``), so no two ever hold one request."""
    try:
        path.unlink(missing_ok=True)
    except OSError as error:  # it stays, empty, and the next claim of the request reuses it
        log.debug("cannot remove claim file %s: %s", path, error)
    finally:
        os.close(descriptor)
        _release_name(str(path))


def _release_name(name: str, token: object | None = None) -> None:
    """Free ``name`` for this process's other threads and tasks: whoever holds it, or only if
    ``token`` took it."""
    with _held_guard:
        if token is None or _held.get(name) is token:
            _held.pop(name, None)
