"""Tell a run whose process is gone (SIGKILL, power loss, OOM killer) from a live one.

SIGKILL cannot be caught: the run stays RUNNING. Every run pricer starts is tagged with the
process that runs it (``pricer.host``, ``pricer.pid`` and, on Linux, ``pricer.process_start``,
the process's start time in clock ticks since boot, so a recycled pid is not taken for the
same process). ``is_stale`` says a RUNNING run is dead when its process is gone from this
host, or, for a run of another host (or one without the tags), when it started longer ago than
``max_age_hours``. A run several processes share (a shared study's parent run, which every
sweep process of the study joins, days apart on a resume) names each of them in a tag of its
own (``shared_process_tag``), which the process removes as it leaves: it is stale once every
process still named is gone. Lookups of "the latest run" consider only FINISHED runs
(``FINISHED_FILTER``, ``finished``), so a dead or live RUNNING run is never picked.

``provably_dead`` is the narrower question asked before a run is ended on its dead process's
behalf (``pricer.tracking.reaper``): every process that runs it is of this host and gone. Age
proves nothing: a run of another host, or without the tags, is only ever shown stale. A host
name is not a machine: containers sharing the host's name (``--network host``) each number
their own processes, and two machines may be named alike, so a run also records the set its pid
belongs to (``pricer.pid_space``: this boot and PID namespace), and a run of another set is
never ended from here, whatever its pid says.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from mlflow.entities import Run

HOST_TAG = "pricer.host"
PID_TAG = "pricer.pid"
PROCESS_START_TAG = "pricer.process_start"
PID_SPACE_TAG = "pricer.pid_space"  # which processes a pid numbers (pid_space)
# A run several processes share: one tag per process (host, pid, start, when it joined, as
# JSON); the key only has to be unique, the value is what is read.
SHARED_PROCESS_PREFIX = "pricer.process."
MAX_TAG_KEY = 250  # MLflow's longest tag key (its database column's width)
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


def pid_space() -> str | None:
    """The processes this process's pid is one of (Linux: this boot's id and the PID
    namespace, e.g. ``4d4e...f9/pid:[4026531836]``); None where unknown.

    Only a pid of this space can be looked up from here: another container on this host (the
    same host name with ``--network host``) or another machine of the same name numbers its own
    processes, and its live run's pid is absent here.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}"


def process_tags() -> dict[str, str]:
    """Tags naming this process, for ``is_stale`` and ``provably_dead``."""
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    started = process_start(os.getpid())
    if started is not None:
        tags[PROCESS_START_TAG] = started
    space = pid_space()
    if space is not None:
        tags[PID_SPACE_TAG] = space
    return tags


def shared_process_tag() -> tuple[str, str]:
    """This process's tag (key, value) on a run it shares with other processes."""
    host, pid = socket.gethostname(), os.getpid()
    safe_host = re.sub(r"[^\w.-]", "_", host)  # a tag key takes letters, digits, _ - . only
    room = MAX_TAG_KEY - len(f"{SHARED_PROCESS_PREFIX}.{pid}")
    if len(safe_host) > room:
        # A fully qualified host name may run to 253 characters: over MLflow's limit, the
        # joining process's tag was refused. Cut, with a digest of the whole name so two
        # hosts alike in the part kept still get keys of their own.
        digest = hashlib.sha256(host.encode()).hexdigest()[:12]
        safe_host = f"{safe_host[: room - len(digest) - 1]}-{digest}"
    key = f"{SHARED_PROCESS_PREFIX}{safe_host}.{pid}"
    value = {
        "host": host,
        "pid": pid,
        "start": process_start(pid),
        "joined": time.time(),
        "space": pid_space(),  # see PID_SPACE_TAG
    }
    return key, json.dumps(value)


def _shared_processes(tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """The processes named on a shared run (``shared_process_tag``); unreadable ones left out."""
    found = []
    for key, value in tags.items():
        if not key.startswith(SHARED_PROCESS_PREFIX):
            continue
        try:
            process = json.loads(value)
            if isinstance(process, dict) and isinstance(process.get("pid"), int):
                found.append(process)
        except ValueError:
            continue
    return found


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

    On this host (its ``pid_space``: ``checkable``): its process is gone (or its pid now
    belongs to another process). Elsewhere, or without the process tags (runs of older
    versions): it started over ``max_age_hours`` ago.
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
    shared = _shared_processes(tags)
    if shared:
        # A study's parent: started when the study was, so its age says nothing of a resume;
        # the processes that joined it say whether it runs. A SIGKILLed one leaves its tag.
        return _shared_stale_reason(shared, max_age_hours, now or time.time())
    host = tags.get(HOST_TAG)
    if checkable(host, tags.get(PID_SPACE_TAG)) and tags.get(PID_TAG, "").isdigit():
        pid = int(tags[PID_TAG])
        if process_alive(pid, tags.get(PROCESS_START_TAG)):
            return None
        return f"process {pid} on {host} is gone"
    age_hours = ((now or time.time()) * 1000 - run.info.start_time) / 3_600_000
    if age_hours <= max_age_hours:
        return None
    return f"RUNNING for {age_hours:.0f} h, {started_where(host)}"


def checkable(host: object, recorded: object) -> bool:
    """Whether a process recorded as of ``host``, its pid of the set ``recorded``
    (``pid_space``; None: recorded before pricer tagged it), can be looked up from here.

    A pid of another set is absent here, alive or not: another container with this host's
    name (``--network host``) runs its process still. Looked up here, its live run was
    "process 1234 on box1 is gone": STALE in ``pricer runs``, and ended by ``pricer runs RUN
    --end`` without ``--force``, as if this host had checked it.
    """
    return str(host) == socket.gethostname() and recorded in (None, pid_space())


def started_where(host: object) -> str:
    """Where a run this host cannot check started, for a person."""
    return f"started {_on(host)}" if host else "no process recorded"


def _on(host: object) -> str:
    """Where a process this host cannot check runs: "on box2"."""
    if str(host) == socket.gethostname():  # of another pid_space
        return f"on {host} in another container or boot"
    return f"on {host}"


def provably_dead(run: Run) -> str | None:
    """Why ``run``, RUNNING, has certainly stopped, as ``stale_reason`` words it; None unless
    this host can tell.

    Only a process of this host can be checked: ``run``'s own (``pricer.pid``) or, for a run
    processes share, every one named on it, each gone or its pid now another process's. One of
    another host, or a run without the tags, may be alive however old (a laptop asleep for two
    days resumes its run): ``stale_reason``'s age limit is a guess fit for a listing, not for
    ending the run. Nor is one whose pid numbers another set of processes (``pid_space``:
    another container of this host's name, a machine named alike, the boot before a restart);
    a run recorded before pricer tagged the set is taken as of this host's, as its name says.
    """
    if run.info.status != "RUNNING":
        return None
    shared = _shared_processes(run.data.tags)
    if shared:
        if not all(checkable(process.get("host"), process.get("space")) for process in shared):
            return None
        # All of this host: the age limit is never asked, only whether each process lives.
        return _shared_stale_reason(shared, DEFAULT_MAX_AGE_HOURS, time.time())
    tags = run.data.tags
    if (
        not checkable(tags.get(HOST_TAG), tags.get(PID_SPACE_TAG))
        or not tags.get(PID_TAG, "").isdigit()
    ):
        return None
    return stale_reason(run)


class Alive(NamedTuple):
    """A process of this host named on a run, alive now (``alive_here``)."""

    said: str  # "process 1234 on box1"
    # Its start time matched (or was not known: a run recorded before pricer tagged it, or a
    # system without /proc): then the pid may have been taken by another process since.
    certain: bool


def alive_here(run: Run) -> Alive | None:
    """A process named on ``run`` that runs on this host (of this host's ``pid_space``) now;
    None if none does (each is gone, of another host, or unknown). Ending such a run by hand
    would put KILLED on a run its process still writes, and its own end later put FINISHED
    over the error that says it was ended."""
    named = [
        (process.get("host"), process.get("space"), process.get("pid"), process.get("start"))
        for process in _shared_processes(run.data.tags)
    ]
    tags = run.data.tags
    if tags.get(PID_TAG, "").isdigit():
        pid = int(tags[PID_TAG])
        named.append(
            (tags.get(HOST_TAG), tags.get(PID_SPACE_TAG), pid, tags.get(PROCESS_START_TAG))
        )
    for host, recorded, pid, start in named:
        if not checkable(host, recorded) or not isinstance(pid, int):
            continue
        if process_alive(pid, None if start is None else str(start)):
            certain = start is not None and process_start(pid) is not None
            return Alive(f"process {pid} on {host}", certain)
    return None


def unjudged_where(run: Run, now: float | None = None) -> str:
    """Where ``run`` runs, for a person, as far as this host cannot check it: "on box2, started
    3 h ago", or, for a run processes share, the ones named on it that are not of this host
    ("in process 7 on box2, joined 3 h ago"); one of this host's name but another
    ``pid_space`` is "on box1 in another container or boot". For a refusal to end it."""
    now = now or time.time()
    shared = _shared_processes(run.data.tags)
    unjudged = [
        process for process in shared if not checkable(process.get("host"), process.get("space"))
    ]
    if unjudged:  # a study's parent: started with the study, its age says nothing
        named = []
        for process in unjudged:
            joined = process.get("joined")
            since = f", joined {_ago(now - joined)} ago" if isinstance(joined, int | float) else ""
            named.append(f"process {process['pid']} {_on(process.get('host'))}{since}")
        return f"in {'; '.join(named)}"
    host = run.data.tags.get(HOST_TAG)
    where = _on(host) if host else "on a host it does not name"
    return f"{where}, started {_ago(now - run.info.start_time / 1000)} ago"


def _ago(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.0f} h"


def names_process(run: Run) -> bool:
    """Whether ``run`` names the process(es) that run it (runs of older versions do not)."""
    return HOST_TAG in run.data.tags or bool(_shared_processes(run.data.tags))


def _shared_stale_reason(
    processes: list[dict[str, Any]], max_age_hours: float, now: float
) -> str | None:
    """Why a shared run is stale: every process named on it is gone (one of another host:
    joined over ``max_age_hours`` ago); None while any may still run it."""
    gone = []
    for process in processes:
        pid, host = int(process["pid"]), str(process.get("host"))
        if checkable(host, process.get("space")):
            start = process.get("start")
            if process_alive(pid, None if start is None else str(start)):
                return None
            gone.append(f"{pid} on {host}")
            continue
        joined = process.get("joined")
        hours = (now - float(joined)) / 3600 if isinstance(joined, int | float) else math.inf
        if hours <= max_age_hours:
            return None
        gone.append(f"{pid} on {host}, joined {hours:.0f} h ago")
    if len(gone) == 1:
        return f"process {gone[0]} is gone"
    return f"processes {'; '.join(gone)} are gone"


def finished(runs: Iterable[Run]) -> list[Run]:
    """Only the runs that ended normally: what a "latest run" lookup may choose from."""
    return [run for run in runs if run.info.status == "FINISHED"]
