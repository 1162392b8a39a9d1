"""Curated-data cache entries swapped, raced and shared: an entry is complete or absent, and
another host's save in progress is not taken for junk."""

from __future__ import annotations

import os
import shutil
import signal
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


@pytest.mark.parametrize("replace", [False, True])
def test_a_save_interrupted_while_writing_leaves_nothing_of_its_own(
    tmp_path: Path, replace: bool
) -> None:
    # SIGTERM (a KeyboardInterrupt here) half-way through writing left the staging folder,
    # a split's worth of files, hidden beside the entry until the next save on this host.
    entry = tmp_path / "curated"
    cache.write_entry(entry, writer("old"))

    def interrupted(staging: Path) -> None:
        (staging / "items.txt").write_text("half of it")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.write_entry(entry, interrupted, replace=replace)
    assert sorted(path.name for path in tmp_path.iterdir() if "partial" in path.name) == []
    assert cache.problem(entry) is None
    assert (entry / "items.txt").read_text() == "old"


def test_a_replace_cut_between_its_two_renames_keeps_the_old_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The old entry had been renamed out of the way and the new one was not yet in: the
    # folder was gone, the old split hidden under a name the next save deletes.
    entry = tmp_path / "curated"
    cache.write_entry(entry, writer("old"))
    rename = Path.rename

    def cut(self: Path, target: str | Path) -> Path:
        if Path(target) == entry and "retired" not in self.name:  # the new one going in
            raise KeyboardInterrupt
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", cut)
    with pytest.raises(KeyboardInterrupt):
        cache.write_entry(entry, writer("new"), replace=True)
    monkeypatch.undo()
    assert cache.problem(entry) is None
    assert (entry / "items.txt").read_text() == "old"
    assert [path.name for path in tmp_path.iterdir() if "partial" in path.name] == []


KILLED_WHILE_RETIRING = """
import os, shutil, signal, sys
from pathlib import Path
from pricer.data import cache

def killed(path, *args, **kwargs):  # SIGKILL between the rename and the deletion
    if "retired" in Path(path).name:
        os.kill(os.getpid(), signal.SIGKILL)
    shutil.rmtree(path, *args, **kwargs)

cache.shutil = type("patched", (), {"rmtree": staticmethod(killed)})
cache.write_entry(Path(sys.argv[1]), lambda staging: (staging / "items.txt").write_text("new"),
                  replace=True)
"""


def dead_pid() -> int:
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(ended.stdout)


def test_an_old_entry_retired_by_a_killed_replace_goes_with_the_next_save(tmp_path: Path) -> None:
    # SIGKILL after a replace renamed the old entry away and before it deleted it: its folder
    # was named without a parseable process id, so it stayed a day (a whole old split, hidden).
    entry = tmp_path / "curated"
    cache.write_entry(entry, writer("old"))
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_RETIRING, str(entry)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [retired] = [path for path in tmp_path.iterdir() if "retired" in path.name]
    assert (retired / "items.txt").read_text() == "old"
    assert (entry / "items.txt").read_text() == "new"
    # Left by an older version: the pid in the name, no host (as older staging folders).
    older = tmp_path / f".curated.partial-retired-{dead_pid()}-{1_000}"
    shutil.copytree(retired, older)
    # A live process's (the test runner's parent) and another host's are left alone.
    live = tmp_path / f".curated.partial-retired-{os.getppid()}-{2_000}"
    elsewhere = tmp_path / f".curated{cache.staging_infix(dead_pid(), host='another')}retired-3"
    for kept in (live, elsewhere):
        shutil.copytree(retired, kept)
    cache.write_entry(entry, writer("newer"), replace=True)  # the next pricer curate
    assert not retired.exists() and not older.exists()
    assert live.is_dir() and elsewhere.is_dir()
    assert (entry / "items.txt").read_text() == "newer"


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
