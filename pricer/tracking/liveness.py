"""Tell a run whose process is gone (SIGKILL, power loss, OOM killer) from a live one.

SIGKILL cannot be caught: the run stays RUNNING. Every run pricer starts is tagged with the
process that runs it (``pricer.host``, ``pricer.pid`` and, on Linux, ``pricer.process_start``,
the process's start time in clock ticks since boot, so a recycled pid is not taken for the
same process). ``is_stale`` says a RUNNING run is dead when its process is gone from this
host, or, for a run of another host (or one without the tags), when it started longer ago than
``max_age_hours``. Lookups of "the latest run" consider only FINISHED runs
(``FINISHED_FILTER``, ``finished``), so a dead or live RUNNING run is never picked.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from mlflow.entities import Run

HOST_TAG = "pricer.host"
PID_TAG = "pricer.pid"
PROCESS_START_TAG = "pricer.process_start"
# A run of another host cannot be checked; after this long RUNNING it is taken for dead.
# The longest pricer runs (a full-data leaderboard with LLM families) take a few hours.
DEFAULT_MAX_AGE_HOURS = 24.0
# For mlflow.search_runs(filter_string=...): runs that ended normally.
FINISHED_FILTER = "attributes.status = 'FINISHED'"


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (Linux: clock ticks since boot); None if unknown/absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces, so count from its closing ')'.
    return stat.rsplit(")", 1)[1].split()[19]


def process_tags() -> dict[str, str]:
    """Tags naming this process, for ``is_stale``."""
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    started = process_start(os.getpid())
    if started is not None:
        tags[PROCESS_START_TAG] = started
    return tags


def process_alive(pid: int, started: str | None) -> bool:
    """Whether process ``pid`` on this host is alive and, if ``started`` is known, the same one."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return started is None or process_start(pid) in (None, started)


def is_stale(
    run: Run, *, max_age_hours: float = DEFAULT_MAX_AGE_HOURS, now: float | None = None
) -> bool:
    """Whether ``run`` says RUNNING although nothing runs it any more.

    On this host: its process is gone (or its pid now belongs to another process). Elsewhere,
    or without the process tags (runs of older versions): it started over ``max_age_hours``
    ago.
    """
    return stale_reason(run, max_age_hours=max_age_hours, now=now) is not None


def stale_reason(
    run: Run, *, max_age_hours: float = DEFAULT_MAX_AGE_HOURS, now: float | None = None
) -> str | None:
    """Why ``run`` is stale (``is_stale``), in a few words for a person; None if it is not.

    E.g. "process 1234 on box1 is gone", or "RUNNING for 30 h, started on box2".
    """
    if run.info.status != "RUNNING":
        return None
    tags = run.data.tags
    host = tags.get(HOST_TAG)
    if host == socket.gethostname() and tags.get(PID_TAG, "").isdigit():
        pid = int(tags[PID_TAG])
        if process_alive(pid, tags.get(PROCESS_START_TAG)):
            return None
        return f"process {pid} on {host} is gone"
    age_hours = ((now or time.time()) * 1000 - run.info.start_time) / 3_600_000
    if age_hours <= max_age_hours:
        return None
    where = f"started on {host}" if host else "no process recorded"
    return f"RUNNING for {age_hours:.0f} h, {where}"


def finished(runs: Iterable[Run]) -> list[Run]:
    """Only the runs that ended normally: what a "latest run" lookup may choose from."""
    return [run for run in runs if run.info.status == "FINISHED"]
