"""Curated-data cache entries swapped, raced and shared: an entry is complete or absent, and
another host's save in progress is not taken for junk."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pricer.data import cache
from pricer.paths import PROJECT_ROOT


def writer(text: str):
    def write(staging: Path) -> None:
        (staging / "items.txt").write_text(text)

    return write


def test_an_interrupted_replace_leaves_the_new_entry_not_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The old entry was deleted before the new one was renamed in: interrupted while deleting,
    # pricer curate left no output at all, only hidden folders.
    entry = tmp_path / "curated"
    cache.write_entry(entry, writer("old"))
    removing = shutil.rmtree

    def interrupted(path: str | Path, *args: object, **kwargs: object) -> None:
        if "retired" in Path(path).name:
            raise KeyboardInterrupt
        removing(path, *args, **kwargs)

    monkeypatch.setattr(cache.shutil, "rmtree", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.write_entry(entry, writer("new"), replace=True)
    assert cache.problem(entry) is None
    assert (entry / "items.txt").read_text() == "new"


RACE = """
import sys
from pathlib import Path
from pricer.data import cache

entry, name = Path(sys.argv[1]), sys.argv[2]
for n in range(60):
    cache.write_entry(entry, lambda staging: (staging / "items.txt").write_text(f"{name} {n}"),
                      replace=True)
"""


def test_two_processes_replacing_one_entry_take_turns(tmp_path: Path) -> None:
    # Discard, then rename, by two writers at once: "OSError: Directory not empty" in about a
    # third of the swaps, each a traceback that failed its pricer curate run.
    entry = tmp_path / "curated"
    command = [sys.executable, "-c", RACE, str(entry)]
    writers = [
        subprocess.Popen([*command, name], cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True)
        for name in ("a", "b")
    ]
    errors = [process.communicate(timeout=300)[1] for process in writers]
    assert [process.returncode for process in writers] == [0, 0], errors
    assert cache.problem(entry) is None
    assert (entry / "items.txt").read_text() in ("a 59", "b 59")
    assert [path.name for path in tmp_path.iterdir() if path.name != ".curated.lock"] == ["curated"]


def test_a_save_in_progress_on_another_host_is_left_alone(tmp_path: Path) -> None:
    # A shared cache folder: the pid of another host's writer was asked of this host, found
    # dead, and its save deleted under it.
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    pid = ended.stdout.strip()
    ours = tmp_path / f".entry{cache.staging_infix(int(pid))}abc"
    theirs = tmp_path / f".entry{cache.staging_infix(int(pid), host='another-host')}abc"
    for staging in (ours, theirs):
        staging.mkdir()
    cache.remove_stale_staging(tmp_path)
    assert theirs.is_dir() and not ours.exists()
    assert os.getpid() != int(pid)
