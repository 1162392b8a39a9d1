"""Folders of files that are complete and verified, or absent: the curated-data cache's entries.

An entry is written into a hidden staging folder beside it, closed by a manifest (the size
and sha256 of every file) written last, then renamed into place in one step. A reader trusts
an entry only if its manifest is there and every file matches it; anything else (a truncated
or emptied file, a missing one, a folder an older version wrote without a manifest) is reported
as a problem so the caller can rebuild the entry. A save killed part-way leaves only its
staging folder, which readers never look at and the next save removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from pricer import interrupt
from pricer.errors import UserError
from pricer.files import ended_here, host_id

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
# Staging folders are named ".<entry>.partial-<pid>-h<host digest>-<random>": hidden, never a
# valid entry name (older versions left the host out: those count as this host's). An entry
# renamed out of the way to be deleted is ".<entry>.partial-<pid>-h<host digest>-retired-<ns>",
# so it is junk by the same rule once its process is gone.
_PARTIAL = ".partial-"
# What older versions named a retired entry: ".<entry>.partial-retired-<pid>-<ns>", no host.
_OLD_RETIRED = "retired-"
# A staging folder whose writer is not a live process on this host is junk. On another host
# (a shared cache folder) the process cannot be asked, so only age tells: a save writes its
# files within seconds to minutes, and a day leaves any live writer far behind.
_FOREIGN_STALE_SECONDS = 24 * 3600
_CHUNK = 1 << 20


def write_entry(
    folder: Path, write_files: Callable[[Path], None], *, replace: bool = False
) -> None:
    """Write an entry atomically: ``write_files(staging)`` fills a staging folder, the manifest
    is added last, and the folder is renamed to ``folder``.

    Without ``replace``, an entry that another process completed meanwhile is kept (it holds
    the same data). With ``replace``, an existing folder is swapped out only once the new one
    is complete.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(folder.parent)
    # Not tempfile.mkdtemp: its folder is 0700 whatever the umask, and the rename keeps the
    # mode, so a split curated for a team was readable by its writer alone.
    staging = folder.parent / f".{folder.name}{staging_infix(os.getpid())}{secrets.token_hex(6)}"
    staging.mkdir()  # 0777 less the umask, as any new folder
    retired = None
    try:
        write_files(staging)
        _write_manifest(staging)
        # One replace at a time: two writers replacing one folder each retired the other's
        # new folder or renamed onto it ("Directory not empty", a third of the swaps measured).
        # Cache entries need none: the first complete one is kept, as it holds the same data.
        # A signal is held back between the two renames, which it would leave with no folder.
        with _swap_lock(folder) if replace else contextlib.nullcontext(), interrupt.deferred():
            if folder.exists() and (replace or problem(folder) is not None):
                retired = _retire(folder)
            staging.rename(folder)
    except BaseException as error:
        # Interrupted too (SIGTERM while writing): the staging folder, a whole split at the
        # course's scale, stayed hidden beside the entry until the next save on this host.
        shutil.rmtree(staging, ignore_errors=True)
        if retired is not None and not folder.exists():  # the new folder did not go in
            retired.rename(folder)
        elif retired is not None:  # in, and then a signal held back at the renames came
            shutil.rmtree(retired, ignore_errors=True)
        # A failed rename beside a complete entry: a parallel writer completed it first.
        if not isinstance(error, OSError) or replace or problem(folder) is not None:
            raise
    # Deleted once the new folder is in place: interrupted while deleting the old one first,
    # a replace left no folder at all.
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


class FolderBusy(UserError):
    """Another process is writing the folder (``sole_writer``)."""


@contextlib.contextmanager
def sole_writer(folder: Path, what: str) -> Iterator[None]:
    """Hold ``.<folder>.writer`` beside ``folder`` for the block, or raise ``FolderBusy`` at
    once when another live process holds it (``what`` names the writer in the message).

    Two writers of one folder each swapped in a complete folder, and the last one won: both
    said they had written it, and the first one's record described files no longer there.
    An ``flock``, so a writer that dies lets go at once (no stale holder to judge); the file is
    removed by its holder, and a process that locked a file removed meanwhile tries again."""
    if fcntl is None:  # Windows: writers stay unserialised there
        yield
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    path = folder.with_name(f".{folder.name}.writer")
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 200).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            raise FolderBusy(
                f"{folder} is being written by another {what} (pid {holder}): wait for it to "
                "finish, or write to another folder"
            ) from None
        try:
            current = os.stat(path).st_ino == os.fstat(descriptor).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(descriptor)  # its holder removed it as this process opened it
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()} on {socket.gethostname()}".encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # before letting go: no one can lock a file that is then removed
        os.close(descriptor)


def staging_infix(pid: int, host: str | None = None) -> str:
    """What follows ``.<entry>`` in a staging folder's name: its writer's pid and its host's
    id, so a shared cache folder's other hosts are told apart."""
    return f"{_PARTIAL}{pid}-h{host_id(host)}-"


@contextlib.contextmanager
def _swap_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``.<entry>.lock`` beside the entry (released if the process dies)."""
    if fcntl is None:  # Windows: swaps stay unserialised there
        yield
        return
    with open(folder.with_name(f".{folder.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def problem(folder: Path, required: Collection[str] = ()) -> str | None:
    """Why ``folder`` is not a complete entry (None when it is, "absent" when it does not exist).

    ``required``: names of files the entry must hold, listed in its manifest; a manifest that
    leaves one out vouches for nothing a reader takes from it.
    """
    if not folder.is_dir():
        return "absent"
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        expected = {
            name: (int(entry["size"]), str(entry["sha256"])) for name, entry in manifest.items()
        }
    except FileNotFoundError:
        return f"no {MANIFEST} (not completely written)"
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        return f"unreadable {MANIFEST} ({type(error).__name__}: {error})"
    unlisted = [name for name in required if name not in expected]
    if unlisted:
        return f"{unlisted[0]} is not in its {MANIFEST}"
    for name, (size, digest) in expected.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, the manifest says {size}"
        if _sha256(path) != digest:
            return f"{name} does not match its sha256 checksum"
    return None


def discard(folder: Path, reason: str) -> None:
    """Warn that an unusable entry is dropped, and drop it."""
    log.warning("cache entry %s is unusable (%s): rebuilding it", folder, reason)
    _discard(folder)


def remove_stale_staging(parent: Path) -> None:
    """Remove staging folders that saves killed part-way left behind."""
    if not parent.is_dir():
        return
    for path in parent.glob(f".*{_PARTIAL}*"):
        if path.is_dir() and _is_stale(path):
            log.warning("removing %s, left by a save that did not finish", path)
            shutil.rmtree(path, ignore_errors=True)


def _is_stale(staging: Path) -> bool:
    owner = staging.name.rsplit(_PARTIAL, 1)[-1]
    # An old entry retired by an older version, whose pid came after "retired-": read as
    # "retired" (no pid), a SIGKILL between its rename and deletion left a whole split hidden
    # beside the new one for a day.
    pid_text, _, rest = owner.removeprefix(_OLD_RETIRED).partition("-")
    try:
        age = time.time() - staging.stat().st_mtime
    except FileNotFoundError:  # its writer just finished or removed it
        return False
    if not pid_text.isdigit():
        return age > _FOREIGN_STALE_SECONDS
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    # Older names carry no host: this host's, as they always counted.
    host = rest.split("-", 1)[0][1:] if rest.startswith("h") and "-" in rest else host_id()
    return ended_here(host, pid) or age > _FOREIGN_STALE_SECONDS


def _write_manifest(staging: Path) -> None:
    files = sorted(path for path in staging.iterdir() if path.is_file())
    manifest = {path.name: {"size": path.stat().st_size, "sha256": _sha256(path)} for path in files}
    partial = staging / f"{MANIFEST}.tmp"
    partial.write_text(json.dumps(manifest, indent=2))
    partial.rename(staging / MANIFEST)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _discard(folder: Path) -> None:
    retired = _retire(folder)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def _retire(folder: Path) -> Path | None:
    """Rename ``folder`` out of the way (one step, so no reader sees it half deleted); its new
    name, or None when another process got there first.

    Named as a staging folder is (this process and host), so that if this process is killed
    before it deletes the folder, the next save on this host removes it at once."""
    infix = staging_infix(os.getpid())
    retired = folder.with_name(f".{folder.name}{infix}retired-{time.time_ns()}")
    try:
        folder.rename(retired)
    except FileNotFoundError:
        return None
    return retired
