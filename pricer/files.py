"""Files a person relies on are whole or untouched: written beside their place, then renamed in."""

from __future__ import annotations

import glob
import hashlib
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMPORARY_SUFFIX = ".tmp"


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; when the block ends without an error it
    replaces ``path`` (one rename: atomic on POSIX). On any error or interruption the temporary
    file is removed and ``path`` keeps what it held.

    A writer killed outright (SIGKILL, the OOM killer) runs no ``finally``: its temporary file
    stayed beside ``path`` for good (60 MB for a predict of 300,000 items). The name says
    whose it is (``.<name>.<host>.<pid>.<random>.tmp``), and the next write of ``path`` removes
    those of this host whose process is gone.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_left_behind(path)
    owner = f"{socket.gethostname()}.{os.getpid()}"
    temporary = path.with_name(f".{path.name}.{owner}.{secrets.token_hex(6)}{TEMPORARY_SUFFIX}")
    # Created as any new file is (0666 less the umask), not 0600 as tempfile.mkstemp makes it:
    # the rename keeps the mode, and a shared price list must stay readable to the team.
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def unwritable(path: Path) -> str | None:
    """Why ``replaced_atomically`` cannot write ``path``, found before any work is done on its
    behalf; None when it can (as far as can be known: a full disk shows only as it fills)."""
    if path.is_dir():
        return "it is a folder"
    return folder_problem(path.parent)


def folder_problem(folder: Path) -> str | None:
    """Why files cannot be written in ``folder`` (created if need be); None when they can."""
    while not folder.exists():  # the folders a writer would create
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable"
    return None


def remove_left_behind(path: Path) -> list[Path]:
    """Remove the temporary files of ``path`` that writers on this host left when they died;
    the paths removed. Another host's are left alone: its process ids are not ours to ask."""
    prefix = f".{path.name}."
    removed = []
    for candidate in path.parent.glob(f"{glob.escape(prefix)}*{TEMPORARY_SUFFIX}"):
        owner = candidate.name[len(prefix) : -len(TEMPORARY_SUFFIX)].rsplit(".", 2)
        if len(owner) != 3 or not owner[1].isdigit():  # not named by a writer of ours
            continue
        host, pid, _ = owner
        if ended_here(host, int(pid)):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def host_id(host: str | None = None) -> str:
    """A short id of a host (this one by default) fit for a file name, which a host name with
    its dots and dashes is not always."""
    return hashlib.sha256((host or socket.gethostname()).encode()).hexdigest()[:8]


def ended_here(host: str, pid: int) -> bool:
    """Whether writer ``pid`` of ``host`` (a name, or its ``host_id``) is known to have ended:
    a process of this host that is gone. Another host's ids are not ours to ask: never."""
    return host in (socket.gethostname(), host_id()) and not process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (this process counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def still_names(path: Path, descriptor: int) -> bool:
    """Whether ``path`` still names the file open as ``descriptor``: a lock file its holder
    removed as it let go, after this process opened it, claims nothing once locked (the file
    at the path now, if any, is the one to lock)."""
    try:
        named = os.stat(path)
    except OSError:
        return False
    held = os.fstat(descriptor)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
