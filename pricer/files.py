"""Files a person relies on are whole or untouched: written beside their place, then renamed in."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; when the block ends without an error it
    replaces ``path`` (one rename: atomic on POSIX). On any error or interruption the temporary
    file is removed and ``path`` keeps what it held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # Created as any new file is (0666 less the umask), not 0600 as tempfile.mkstemp makes it:
    # the rename keeps the mode, and a shared price list must stay readable to the team.
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
