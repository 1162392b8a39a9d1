"""End the runs a killed process left RUNNING, when pricer next starts a run in their experiment.

SIGKILL (the OOM killer, ``kill -9``, a CI timeout) cannot be caught: the run stays RUNNING
in the store and, killed while it logged its model, its LoggedModel stays PENDING. ``pricer
runs`` tells such a run from a live one (``liveness.stale_reason``), but the MLflow UI, where
people decide, showed both as in progress for good. So the first run a pricer process starts in
an experiment (``tracked_run``) first ends the runs there that are provably dead
(``liveness.provably_dead``: every process that ran it is of this host and gone): their
LoggedModels still PENDING are finalized FAILED, then the run ends KILLED, with why in its
``error`` tag and who ended it in ``pricer.ended_by``.

What is left alone:

- a run of another host, or without the process tags (runs of older versions), however old:
  this host cannot tell it from a live one (``pricer runs`` shows it STALE past 24 h);
- a run any of whose processes lives here; a shared study's parent while any process it names
  may still run it, or once another has joined it (named itself on it) since it was read:
  ended as that process joined, it is made RUNNING again (``reopen_if_joined``);
- the run this process is about to take up by its id (``MLFLOW_RUN_ID``: ``mlflow run
  --run-id``, a run resumed), however dead the process its tags still name;
- the trial runs of a shared study (``tags.SWEEP_STUDY``): its next process fails a dead trial
  in Optuna and ends its run KILLED, or ends a COMPLETE trial's run FINISHED (its result is in
  the study): ended KILLED here first, the study's best trial could never be promoted.

The runs nested under a dead run (a leaderboard's family runs) end with it, unless they name a
process of their own that may still run them. Everything is read in one search of the
experiment's RUNNING runs (plus one of the logged models of each run ended). Reaping never fails
the run about to start: a store error is a warning, and what was not ended is ended next time
(its models first, its status last, so a reap cut short is done again whole). Two processes of
this host reaping the same experiment at once take turns under a lock (another host cannot end
these runs; ``_turn``): the second finds nothing left to end, and nothing is written twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus, Run, RunStatus
from mlflow.exceptions import MlflowException

from pricer.errors import UserError
from pricer.files import still_names
from pricer.tracking import tags as tag_names
from pricer.tracking.liveness import (
    SHARED_PROCESS_PREFIX,
    alive_here,
    names_process,
    provably_dead,
    stale_reason,
    unjudged_where,
)
from pricer.tracking.store import STORE_ERRORS, sqlite_path, store_address, store_cause

try:
    import fcntl
except ImportError:  # Windows: no flock; two reapers there may both end a run (same outcome)
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
RUNNING_FILTER = "attributes.status = 'RUNNING'"
# The error of a run ended here: the run's own process never said why it stopped.
ERROR = "its process stopped without ending the run (SIGKILL, the OOM killer, a crash): {why}"

# How long ``end_by_hand`` waits for a reap of the run's experiment by another process of this
# host to finish: a reap ends a run in 40-310 ms (five PENDING models, SQLite, 2 busy cores).
HAND_WAIT_SECONDS = 30.0
# (store, experiment id) pairs this process has reaped: once per process is enough (a
# leaderboard's family runs and a sweep's trials start runs in the same experiment).
_reaped: set[tuple[str, str]] = set()


def reap_once(experiment_id: str | None, keep: str | None = None) -> list[str]:
    """``reap`` the experiment the first time this process starts a run in it; the ids ended.
    ``keep``: the run this process is about to take up (``MLFLOW_RUN_ID``), never ended.

    Never raises for the store: the run about to start matters more than the dead ones.
    """
    if experiment_id is None:
        return []
    key = (store_address(mlflow.get_tracking_uri()), experiment_id)
    if key in _reaped:
        return []
    _reaped.add(key)
    try:
        return reap(experiment_id, keep)
    except STORE_ERRORS as error:
        log.warning("could not end the runs left RUNNING by dead processes: %s", error)
        return []


def reap(experiment_id: str, keep: str | None = None) -> list[str]:
    """End KILLED the provably dead RUNNING runs of ``experiment_id``, their PENDING models
    FAILED; returns the ids of the runs this call ended.

    ``keep``: a run this process is about to take up by its id (``mlflow run --run-id``,
    ``MLFLOW_RUN_ID``): still tagged with the process that ran it before, gone when a SIGKILL
    left it RUNNING, it runs again here in a moment. Ended, it was resumed KILLED-then-RUNNING
    and ended FINISHED with the reaper's "its process stopped" error on it.
    """
    with _turn(experiment_id) as mine:
        if not mine:  # another process of this host is reaping it now
            return []
        client = MlflowClient()
        running = {run.info.run_id: run for run in _running(experiment_id)}
        ended = []
        for run_id, why in _dead(client, running, keep).items():
            try:
                if _end(client, running[run_id], why):
                    ended.append(run_id)
            except STORE_ERRORS as error:  # the next run's reap tries it again
                log.warning("could not end run %s of a dead process: %s", run_id, error)
        return ended


@dataclass(frozen=True)
class HandEnding:
    """What ``end_by_hand`` did: the runs it ended KILLED and the nested runs it left
    RUNNING, each as (run id, name, why); ``kept``: why the run asked for was not ended after
    all (it ended, or a process joined it, after it was read; the store refused or failed),
    one line; None if it was."""

    ended: list[tuple[str, str, str]]
    left: list[tuple[str, str, str]]
    kept: str | None = None


def end_by_hand(run: Run, *, force: bool = False) -> HandEnding:
    """End KILLED a RUNNING run its user says has stopped (``pricer runs RUN --end``), its
    PENDING models FAILED, and with it the runs nested under it, deepest first.

    The reaper ends only what this host can prove dead; a run of another host (a laptop
    gone, a CI machine recycled) or of the boot before a power loss stayed RUNNING for good,
    shown in progress in the MLflow UI. Its user knows better. Refused (``UserError``, one
    line) for a run that has ended, and for one whose process runs on this host now (stop
    that process: it ends its run KILLED itself); one this host cannot judge (another host's,
    RUNNING under 24 h) only with ``force``, as a shared study's trial (its study's next
    process ends it as the study says). Left RUNNING: nested runs whose own process runs here,
    and a shared study's trials.
    """
    # In turn with this host's reapers of its experiment (a pricer run starting here at that
    # moment): both read the run RUNNING before either wrote, and both ended it, each with its
    # own error and ended_by (the last writer's kept, not always the same one for both), its
    # models failed twice. After a reap, it is read here ended.
    with _turn(run.info.experiment_id, wait=HAND_WAIT_SECONDS) as mine:
        if not mine:  # a reap takes well under a second a run; one held this long is stuck
            raise UserError(
                f"run {run.info.run_id} was not ended: another pricer process of this host has "
                f"been ending runs of its experiment for over {HAND_WAIT_SECONDS:g} s (paused, "
                "or its store slow); try again once it has finished"
            )
        return _end_by_hand(MlflowClient(), run.info.run_id, force)


def _end_by_hand(client: MlflowClient, run_id: str, force: bool) -> HandEnding:
    """``end_by_hand``, under this host's lock on reaping the run's experiment."""
    run = client.get_run(run_id)  # as it is now, not as it was listed
    run_id, name = run.info.run_id, run.info.run_name or ""
    if run.info.status != RunStatus.to_string(RunStatus.RUNNING):
        raise UserError(
            f"run {run_id} ({name}) has ended already ({run.info.status}): nothing to end"
        )
    alive = alive_here(run)
    if alive is not None and alive.certain:
        raise UserError(
            f"run {run_id} ({name}) is running: {alive.said} is alive; stop that process "
            "(Ctrl-C, or kill -TERM) and it ends its run KILLED itself"
        )
    if alive is not None and not force:
        # No start time recorded: the pid may be another process's since. Told to kill it,
        # the user might have stopped a process that has nothing to do with pricer.
        raise UserError(
            f"run {run_id} ({name}) records no start time for its {alive.said}, which is "
            "alive: if that is the run's process, stop it (Ctrl-C, or kill -TERM) and it ends "
            "its run KILLED itself; if its pid was taken by another process since, add --force"
        )
    if not force and _study_trial(client, run, {}):
        # Its study's next process ends it as the study says: FINISHED if its trial is
        # COMPLETE (its result told just before its process stopped). Ended KILLED here, the
        # study's best trial was no run promote takes.
        study = run.data.tags.get(tag_names.SWEEP_STUDY, "")
        raise UserError(
            f"run {run_id} ({name}) is a trial of shared study {study!r}: its next sweep process "
            "ends it, FINISHED if the study has its result; to end it KILLED now, add --force"
        )
    why = stale_reason(run)
    if why is None and not force:
        raise UserError(
            f"run {run_id} ({name}) is RUNNING {unjudged_where(run)}: this host cannot tell "
            "whether its process is gone; if you know it is, add --force"
        )
    why = f"ended by hand (pricer runs --end): {why or 'its process was not checked (--force)'}"
    running = {found.info.run_id: found for found in _running(run.info.experiment_id)}
    running[run_id] = run
    nested, left = _nested(client, run_id, why, running)
    ended: list[tuple[str, str, str]] = []
    try:
        for child_id, child_why in nested:  # deepest first: cut short, the parent stays RUNNING
            child = running[child_id]
            if _end(client, child, child_why, child_why):
                ended.append((child_id, child.info.run_name or "", child_why))
        if _end(client, run, why, why):
            ended.append((run_id, name, why))
            return HandEnding(ended, left)
    except STORE_ERRORS as error:  # the runs ended so far are said, then why not the rest
        return HandEnding(ended, left, _store_refused(run_id, name, error))
    # Not ended after all: read before, it ended meanwhile (its process, the reaper, the UI),
    # or a process joined it (a shared study resumed: reopen_if_joined). Said nothing, the
    # command exited 0 as if it had ended it.
    return HandEnding(ended, left, _why_kept(client, run))


def _store_refused(run_id: str, name: str, error: Exception) -> str:
    """Why the store did not let ``end_by_hand`` end run ``run_id``, in one line.

    On a team server a teammate may read an experiment (the server's default permission,
    READ) but not write to it: the server's 403, as MLflow's traceback, was all he saw. Nothing
    is written then (each run's first write is refused); a store that fails midway leaves a
    run RUNNING, its models maybe FAILED, which the same command ends whole the next time.
    """
    if isinstance(error, MlflowException) and error.error_code == "PERMISSION_DENIED":
        return (
            f"run {run_id} ({name}) was not ended: the tracking store refused it (permission "
            "denied): ending a run writes to its experiment, so its manager must grant you EDIT "
            "on it"
        )
    return (
        f"run {run_id} ({name}) was not ended: the tracking store failed ({store_cause(error)}); "
        f"pricer runs {run_id} --end again ends what is left"
    )


def _why_kept(client: MlflowClient, run: Run) -> str:
    """Why ``_end`` did not end ``run`` (as read before it), in one line."""
    run_id, name = run.info.run_id, run.info.run_name or ""
    now = client.get_run(run_id)
    if now.info.status != RunStatus.to_string(RunStatus.RUNNING):
        ended_by, who = now.data.tags.get(tag_names.ENDED_BY), ""
        if ended_by and ended_by != run.data.tags.get(tag_names.ENDED_BY):  # a reaper's end
            who = f" (by {ended_by.partition(': ')[0]})"  # "host/pid at <when>"
        return f"run {run_id} ({name}) ended {now.info.status} meanwhile{who}: nothing to end"
    joined = []
    for key, value in sorted(_shared_tags(now) - _shared_tags(run)):
        try:
            process = json.loads(value)
            joined.append(f"process {process['pid']} on {process['host']}")
        except (ValueError, TypeError, KeyError):  # unreadable: its key names it
            joined.append(key.removeprefix(SHARED_PROCESS_PREFIX))
    return (
        f"run {run_id} ({name}) runs again: {', '.join(joined) or 'a process'} joined it "
        "meanwhile (its study resumed); left RUNNING"
    )


def _nested(
    client: MlflowClient, run_id: str, why: str, running: dict[str, Run]
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """The RUNNING runs nested under ``run_id`` at any depth to end with it (ended for
    ``why``), deepest first, each with why; and those left RUNNING, each as (id, name, why).

    Each is judged by its own parent: a run nested under one left RUNNING (its process alive
    here) stops with that one's process, not with ``run_id``'s, and is left too; and its
    ``error`` names its parent run, not ``run_id`` (a leaderboard trial's family run, nested in
    the leaderboard nested in the sweep, said "its parent run <the sweep>")."""
    depth, parents = {run_id: 0}, {}
    grew = True
    while grew:
        grew = False
        for found_id, found in running.items():
            parent = found.data.tags.get(PARENT_TAG)
            if found_id not in depth and parent in depth:
                depth[found_id], parents[found_id] = depth[parent] + 1, parent
                grew = True
    reasons: dict[str, str] = {}  # why each is ended
    kept: dict[str, str] = {}  # why each is left
    for found_id in sorted(depth, key=depth.__getitem__):  # parents before their children
        if found_id == run_id:
            continue
        found, parent = running[found_id], parents[found_id]
        alive = alive_here(found)
        if alive is not None:
            kept[found_id] = f"{alive.said} is alive"
        elif parent in kept:
            kept[found_id] = f"its parent run {parent} is left RUNNING"
        elif _study_trial(client, found, running):
            kept[found_id] = "a shared study's trial: its study's next process ends it"
        elif parent == run_id:
            reasons[found_id] = f"its parent run {run_id} was {why}"
        else:
            reasons[found_id] = f"its parent run {parent} was ended with run {run_id}: {why}"
    deepest = sorted(depth, key=depth.__getitem__, reverse=True)
    nested = [(found_id, reasons[found_id]) for found_id in deepest if found_id in reasons]
    left = [
        (found_id, running[found_id].info.run_name or "", kept[found_id])
        for found_id in deepest
        if found_id in kept
    ]
    return nested, left


def _running(experiment_id: str) -> list[Run]:
    return mlflow.search_runs(  # every page
        experiment_ids=[experiment_id], filter_string=RUNNING_FILTER, output_format="list"
    )


def _dead(client: MlflowClient, running: dict[str, Run], keep: str | None) -> dict[str, str]:
    """The runs of ``running`` to end, by id, each with why; a run's children before it;
    never ``keep`` (see ``reap``), nor so its children."""
    dead: dict[str, str] = {}
    for run_id, run in running.items():
        why = provably_dead(run)
        if why is not None and run_id != keep and not _study_trial(client, run, running):
            dead[run_id] = why
    # The runs nested under a dead one, at any depth: a child that names no process of its own
    # stopped with its parent's; one that does is ended only on its own account (above). A
    # parent ended by an earlier reap counts too: one cut short after it ended the parent
    # would have left such a child RUNNING for good.
    ended_before: dict[str, str | None] = {}
    grew = True
    while grew:
        grew = False
        for run_id, run in running.items():
            parent = run.data.tags.get(PARENT_TAG)
            if run_id in dead or parent is None or names_process(run):
                continue
            if parent in dead:
                why = f"its parent run {parent} was ended: {dead[parent]}"
            elif parent in running:
                continue
            else:
                if parent not in ended_before:
                    ended_before[parent] = _reaped_run(client, parent)
                if ended_before[parent] is None:
                    continue
                why = f"its parent run {parent} was ended KILLED by {ended_before[parent]}"
            if not _study_trial(client, run, running):
                dead[run_id] = why
                grew = True

    def depth(run_id: str) -> int:
        seen = {run_id}  # a parent tag set by hand may loop
        parent = running[run_id].data.tags.get(PARENT_TAG)
        while parent in dead and parent not in seen:
            seen.add(parent)
            parent = running[parent].data.tags.get(PARENT_TAG)
        return len(seen)

    # Deepest first: a reap cut short between a child and its parent finds both again.
    return {run_id: dead[run_id] for run_id in sorted(dead, key=depth, reverse=True)}


def _reaped_run(client: MlflowClient, run_id: str) -> str | None:
    """Who ended run ``run_id`` KILLED on its dead process's behalf (its ``ENDED_BY``); None if
    no one did (it ended as runs do, or is gone)."""
    try:
        run = client.get_run(run_id)
    except STORE_ERRORS:
        return None
    if run.info.status != RunStatus.to_string(RunStatus.KILLED):
        return None
    return run.data.tags.get(tag_names.ENDED_BY)


def _study_trial(client: MlflowClient, run: Run, running: dict[str, Run]) -> bool:
    """Whether ``run`` is a trial of a shared study, which the study's processes end."""
    parent_id = run.data.tags.get(PARENT_TAG)
    if parent_id is None:  # the study's parent itself: dead once every process it names is
        return False
    if tag_names.SWEEP_STUDY in run.data.tags:
        return True
    if tag_names.SWEEP_TRIAL not in run.data.tags:
        return False
    parent = running.get(parent_id)
    if parent is None:  # its parent ended: read it (a trial's, rarely)
        try:
            parent = client.get_run(parent_id)
        except STORE_ERRORS:  # gone: no study will end this trial either
            return False
    return tag_names.SWEEP_STUDY in parent.data.tags


def _end(client: MlflowClient, run: Run, why: str, error: str | None = None) -> bool:
    """Finalize ``run``'s PENDING models FAILED, then end it KILLED; False if it had ended, or
    a process joined it (a shared study's parent) meanwhile. ``error``: its ``error`` tag (by
    default, that its process stopped without ending it, and ``why``)."""
    run_id = run.info.run_id
    # Read again: the search may be seconds old, and a run ended meanwhile keeps its end.
    current = client.get_run(run_id)
    if current.info.status != RunStatus.to_string(RunStatus.RUNNING) or _joined(run, current):
        return False
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    ended_by = f"{socket.gethostname()}/{os.getpid()} at {stamp}: {why}"
    # Its models first: a reap cut short leaves the run RUNNING, to be found again.
    fail_pending_models(client, run.info.experiment_id, run_id, {tag_names.ENDED_BY: ended_by})
    written = [tag_names.ENDED_BY]
    if tag_names.ERROR not in run.data.tags:  # one there says the real cause (an end refused)
        client.set_tag(run_id, tag_names.ERROR, error or ERROR.format(why=why))
        written.append(tag_names.ERROR)
    client.set_tag(run_id, tag_names.ENDED_BY, ended_by)
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
    if reopen_if_joined(client, run, written):
        log.info("left run %s (%s) RUNNING: a process joined it", run_id, run.info.run_name)
        return False
    log.info("ended run %s (%s) KILLED: %s", run_id, run.info.run_name, why)
    return True


def _shared_tags(run: Run) -> set[tuple[str, str]]:
    """The processes named on a run several share (``liveness.shared_process_tag``)."""
    return {(k, v) for k, v in run.data.tags.items() if k.startswith(SHARED_PROCESS_PREFIX)}


def _joined(before: Run, after: Run) -> bool:
    """Whether a process named itself on ``after`` that ``before`` (what the run was judged
    dead on) did not name: it joined the run since, and runs it."""
    return bool(_shared_tags(after) - _shared_tags(before))


def reopen_if_joined(client: MlflowClient, run: Run, written: Iterable[str]) -> bool:
    """Make RUNNING again, without the tags ``written`` as it was ended, a shared run this
    process has just ended KILLED, if a process joined it since it was judged dead (``run``);
    whether it did.

    A sweep process joining a study whose every process was gone writes its tag on the parent,
    then reads the parent's status, and reopens a parent found ended
    (``SharedStudy.parent_run``). Read after this end, the status says KILLED there; read
    before it, the joining process's tag was there already, and this read after the end sees
    it. So, between the two, a parent ended as a process joined it runs again: the sweep ran
    under a KILLED parent when the reaper ended it between the other's read and its tag.
    """
    if not _shared_tags(run):  # no process joins a run of one process
        return False
    after = client.get_run(run.info.run_id)
    if not _joined(run, after):
        return False
    reopen(client, after, written)
    return True


def reopen(client: MlflowClient, run: Run, ending_tags: Iterable[str]) -> None:
    """Make ``run``, ended, RUNNING again, without those of ``ending_tags`` it has (that say how
    it ended). One another process removed meanwhile, reopening it too, is no matter."""
    client.update_run(run.info.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
    for tag in ending_tags:
        if tag not in run.data.tags:
            continue
        try:
            client.delete_tag(run.info.run_id, tag)
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise


def fail_pending_models(
    client: MlflowClient, experiment_id: str, run_id: str, tags: dict[str, str]
) -> list[str]:
    """Finalize FAILED, ``tags`` (why) set on each first, the LoggedModels of run ``run_id``
    still PENDING; their ids.

    MLflow marks a model FAILED only when its logging raises an ``Exception``: a run stopped
    while it logged one (SIGKILL here; SIGTERM or Ctrl-C, a ``KeyboardInterrupt``, in
    ``tracked_run``) left it PENDING for good, shown in progress in the UI.
    """
    failed = []
    # MLflow's search cannot filter on a model's status: it is stored as a number, and
    # "status = 'PENDING'" matches nothing. It answers a page at a time (100 models): read
    # as one, a run's 101st model stayed PENDING.
    token: str | None = None
    while True:
        page = client.search_logged_models(
            [experiment_id], filter_string=f"source_run_id = '{run_id}'", page_token=token
        )
        for model in page:
            if model.status == LoggedModelStatus.PENDING:
                client.set_logged_model_tags(model.model_id, tags)
                client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
                failed.append(model.model_id)
        token = page.token
        if not token:
            return failed


@contextlib.contextmanager
def _turn(experiment_id: str, wait: float = 0.0) -> Iterator[bool]:
    """Hold this host's lock on reaping ``experiment_id`` of this store; False if another
    process holds it (it is ending the same runs now) and has not let it go within ``wait``
    seconds. Only processes of one host can end a run (``provably_dead``), so a lock on this host
    is enough: beside a SQLite store's file, else in the temporary folder (one file per store
    and experiment, removed by its holder as it lets go)."""
    if fcntl is None:
        yield True
        return
    store = store_address(mlflow.get_tracking_uri())
    database = sqlite_path(store)
    if database is not None:
        path = database.with_name(f"{database.name}.reap-{experiment_id}.lock")
    else:
        digest = hashlib.sha256(f"{store}\0{experiment_id}".encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"pricer-reap-{digest}.lock"
    deadline = time.monotonic() + wait
    while True:
        try:  # read-only: another user's lock file can be locked too
            descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
        except OSError:  # no temporary folder to write in: re-reading each run is the guard
            yield True
            return
        try:
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.05)
            if not still_names(path, descriptor):
                # Its holder removed the file as it let go, after this process opened it: a
                # lock on it excludes no one who opens the path now.
                continue
            try:
                yield True  # released by close, also if this process dies
            finally:
                # Removed while still held, so each store and experiment does not leave a file
                # for good; a waiter on it sees it gone (above). Another user's stays.
                with contextlib.suppress(OSError):
                    os.unlink(path)
            return
        finally:
            os.close(descriptor)
