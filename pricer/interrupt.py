"""SIGTERM and SIGINT: stop workers, end every open run KILLED with the reason, exit non-zero.

Python's default SIGTERM ends the process without unwinding, so ``with mlflow.start_run()``
never exits (the run stays RUNNING) and spawn/loky worker processes are orphaned. Here a
signal becomes an exception instead:

- ``install()`` (called by ``pricer.cli.run`` for every app) replaces the SIGTERM and SIGINT
  handlers of the main thread. On the first signal the handler sends SIGTERM to this process's
  ``multiprocessing`` children (curation's spawn pool, the joblib launcher's loky workers),
  waits up to ``GRACE_SECONDS`` for them and SIGKILLs the rest, runs the callbacks registered
  with ``on_interrupt``, then raises ``Interrupted`` in the main thread. ``Interrupted`` is a
  ``KeyboardInterrupt``, so ``except Exception`` (a leaderboard's per-family guard, Hydra's
  job runner) lets it through, and ``tracked_run`` ends each run it unwinds KILLED with an
  ``error`` tag ``interrupted by SIGTERM``. ``cli.run`` turns it into exit code 128 + signal
  (143 for SIGTERM, 130 for SIGINT) after ``atexit`` handlers ran.
- ``deferred()`` holds a signal back until a block that must not be cut in half has ended
  (the creation of a new store).
- A signal that lands inside the tracking store's database code (SQLAlchemy, sqlite3,
  MLflow's store, Alembic) is held back too, and handled ~20 ms after that code has returned:
  raised just after a SQLite INSERT and before its commit, it left the write transaction
  open on a connection that the interrupt's own traceback kept alive, so ending the run
  waited 20 s for the lock (MLflow's busy timeout) and failed, "database is locked" replaced
  the interrupt, and a leaderboard went on to its next family (1 interrupted leaderboard in
  ~30 hung so; reproduced by tests/reliability/test_interrupt.py).
- So is one that lands while the process writes a message to a pipe of another process
  (``multiprocessing.connection``): a loky worker stopped half-way through sending a trial's
  result left the app reading the rest of it forever (its unwinding hung, and the watchdog's
  exit left the sweep's parent run RUNNING).
- A second signal while the first is being handled (or held back) exits at once
  (``os._exit``): a user who presses Ctrl-C twice wants out, whatever is left RUNNING.
- ``guarded()`` (entered by ``tracked_run``) makes a process that did not go through
  ``cli.run`` (a joblib-launcher worker running a sweep trial) handle SIGTERM too: while a run
  is open the signal unwinds it as above; once the outermost run has ended (or at once, with
  no run open) the worker stops itself (SIGSTOP) when its parent is a pricer app that is
  stopping, which then kills it (see ``stop_children`` for why it must not just exit), and
  exits otherwise. The worker loop would swallow the exception and start the next task.
  A worker signalled alone (``kill`` of its pid, its app not stopping) fails its trial
  instead (``TrialInterrupted``, its run KILLED) and goes on: stopped, it waited for a kill
  that never came, and the app waited for its trial for good.

- A closed stdout (``pricer train | head -1``: the reader went away, SIGPIPE, which Python
  turns into ``BrokenPipeError`` on the next write) is not a reason to stop: the terminal is
  not the record. ``install()`` and ``guarded()`` wrap ``sys.stdout`` so that the first
  write that meets a closed pipe points the file descriptor at /dev/null and the work goes
  on; it used to end the run FAILED with BrokenPipeError after the model had been scored.

Nothing here imports MLflow: data code (process pools) and tracking code both use it.
"""

from __future__ import annotations

import atexit
import contextlib
import faulthandler
import multiprocessing
import multiprocessing.connection
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import TextIO

from pricer.errors import UserError
from pricer.wording import counted

# How long stopped workers get to end their own runs before they are killed: ending a run is
# one store write (~50 ms on SQLite), a spawn cleaning worker dies at once; `docker stop`
# allows 10 s in all before SIGKILL.
GRACE_SECONDS = 5.0

# Unwinding (ending runs, atexit handlers) that has not ended the process after this long is
# cut short: the runs left RUNNING are ended KILLED if the store answers within
# ``FAREWELL_SECONDS`` (else left to ``is_stale``), and the process exits. Normally 0.3-3.4 s;
# 1 of ~10 interrupted leaderboards in the tests hung in unwinding (cause not found in time).
UNWIND_DEADLINE_SECONDS = 30.0

# How long the watchdog waits for the store to record the runs this process left RUNNING as
# KILLED before it exits anyway (``_end_runs_left``); a store that has not answered in this long
# is taken to be where unwinding hung. Per run: a read, a search of its LoggedModels, two
# writes for each model it left PENDING (failed first, as every other KILLED end does), two for
# the run; ~25-50 ms a write on SQLite. Measured on SQLite (2026-12-07, 2 busy cores, a fresh
# process, the call in a thread as here, 3 tries each): a run with no model 40-80 ms, with 1
# PENDING 20-120 ms, with 5 40-310 ms (500 other models in the experiment: no slower); the hung
# app of tests/reliability/test_interrupt.py (2 runs, 1 PENDING model) exits 1.14-1.19 s after
# its signal, 1.06-1.13 s without failing it. An app leaves a few runs open at most (a
# leaderboard: itself and the family's run it was in, which logs one model): far within.
FAREWELL_SECONDS = 3.0

Callback = Callable[["Interrupted"], object]
# Ends runs KILLED in the store: (run ids, the reason for their error tag). Set by the tracking
# code (``on_give_up``), which knows the store; this module imports no MLflow.
RunEnder = Callable[[list[str], str], object]
# Set by install() in an app; a worker whose parent is that app parks itself when stopped.
APP_PID_ENV = "PRICER_APP_PID"
# Set by install() too: a file the app creates as it stops, before it signals its workers. A
# worker signalled while it is absent was signalled alone: the app is not there to kill it.
STOPPING_ENV = "PRICER_APP_STOPPING"


class Interrupted(KeyboardInterrupt):
    """The process received SIGTERM or SIGINT; raised in the main thread by the handler."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signal_name}")

    def __str__(self) -> str:
        return f"interrupted by {self.signal_name}"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class TrialInterrupted(UserError):
    """A launcher worker was signalled on its own, its app going on: the trial it ran fails
    (an ``Exception``, so Hydra records the job failed and the worker takes the next one)."""


_lock = threading.Lock()
_mode: str | None = None  # None: not installed; "app": by cli.run; "worker": by guarded()
_received: Interrupted | None = None
_depth = 0  # open guarded() blocks (tracked runs) in this process
_deferring = 0  # open deferred() blocks
_pending: int | None = None  # a signal received inside deferred(), handled at its end
_callbacks: list[Callback] = []
_watchdog: threading.Timer | None = None  # ends the process if unwinding hangs
_held: int | None = None  # a signal that landed in database code, re-sent until it can raise
_resent = False  # the signal being handled is our own re-send of ``_held``
# Code an exception must not cut: its modules' names start so (see the module docstring).
DATABASE_MODULES = ("sqlalchemy.", "sqlite3", "mlflow.store.", "alembic.")
# ... and a message being written to a process pipe (``multiprocessing.connection``): cut
# there, its reader waits for the rest of it forever. A joblib-launcher worker stopped while
# it sent a finished trial's result back left the app's loky thread reading half a message,
# so the app's unwinding hung until the watchdog exited it, its sweep's parent run RUNNING.
PIPE_MODULE = "multiprocessing.connection"
PIPE_WRITES = ("_send", "_send_bytes", "send_bytes", "send")
RESEND_SECONDS = 0.02
HYDRA_JOBS = "hydra.core.utils"  # its run_job runs each job, in whatever process launches it
# The runs this process opened, by run id: (name, status), "RUNNING" until it ends. Told by
# ``tracked_run`` and the sweep's parent (``note_run``), read by ``outcome``: a signal held
# back while a run ended FINISHED (``deferred``) is raised after it, and the app's last line
# said "its runs ended KILLED" about a promotion the store shows FINISHED.
_runs: dict[str, tuple[str, str]] = {}
_end_runs: RunEnder | None = None  # see on_give_up
_stop_marker: str | None = None  # this app's STOPPING_ENV file, made by install()


def install() -> None:
    """Handle SIGTERM and SIGINT in this (main) process: see the module docstring.

    A SIGINT that the process started with ignored (a background job of a non-interactive
    shell) stays ignored. Does nothing outside the main thread, where signals cannot be set.
    """
    global _mode, _stop_marker
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _handle)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _handle)
    _mode = "app"
    _outlive_the_reader()
    os.environ[APP_PID_ENV] = str(os.getpid())  # inherited by the launcher's workers
    if _stop_marker is None:
        name = f"pricer-{os.getpid()}-{secrets.token_hex(6)}.stopping"
        _stop_marker = str(Path(tempfile.gettempdir()) / name)
    os.environ[STOPPING_ENV] = _stop_marker


def received() -> Interrupted | None:
    """The first interrupt this process received, if any."""
    return _received


def reason(error: BaseException) -> str | None:
    """'interrupted by SIGTERM' for an interrupt, None for any other error."""
    if isinstance(error, Interrupted):
        return str(error)
    if isinstance(error, KeyboardInterrupt):
        return "interrupted by SIGINT (KeyboardInterrupt)"
    return None


def note_run(run_id: str, name: str, status: str) -> None:
    """Record that this process opened a run ("RUNNING") or ended it (with ``status``)."""
    _runs[run_id] = (name, status)


def on_give_up(end_runs: RunEnder) -> None:
    """How the watchdog ends the runs this process left RUNNING when it exits (see
    ``_end_runs_left``): ``end_runs(run_ids, reason)``."""
    global _end_runs
    _end_runs = end_runs


def outcome(stop: Interrupted) -> str:
    """What the interrupt did to this process's runs, for the app's last line.

    "interrupted by SIGTERM: its runs ended KILLED", unless every run it opened had already
    ended FINISHED (the signal came, or was held back until, after the last one ended): then
    that, by name, since the record is the app's whole result. With no run noted, none was
    opened: every run a pricer process opens is noted as it is created (``tracked_run`` and a
    sweep's parent, both with the signal held back until they have), except the one that
    ``mlflow run`` created before the app started (``MLFLOW_RUN_ID``), which ``mlflow run``
    ends FAILED when the app exits non-zero.
    """
    runs = list(_runs.values())
    if not runs:
        waiting = os.environ.get("MLFLOW_RUN_ID")
        if waiting:
            return f"{stop} before it took up run {waiting}, which mlflow run ends FAILED"
        return f"{stop} before it opened a run: nothing was recorded"
    if runs and all(status == "FINISHED" for _, status in runs):
        first = runs[0][0]  # the outermost: opened first (a leaderboard, a sweep's parent)
        others = len(runs) - 1
        named = f"{first} and {counted(others, 'other run')}" if others else first
        return f"{stop} after its work was done: {named} ended FINISHED"
    return f"{stop}: its runs ended KILLED"


def register(callback: Callback) -> None:
    """Run ``callback(interrupted)`` in the signal handler, before ``Interrupted`` is raised.

    For what unwinding cannot reach, e.g. a run held open by an ``MlflowClient`` rather than
    a ``with`` block. Callbacks run newest first, after the worker processes were stopped; one
    that raises is reported on stderr and the others still run.
    """
    with _lock:
        _callbacks.append(callback)


def unregister(callback: Callback) -> None:
    with _lock:
        if callback in _callbacks:
            _callbacks.remove(callback)


@contextmanager
def on_interrupt(callback: Callback) -> Iterator[None]:
    """``register`` for the duration of a ``with`` block."""
    register(callback)
    try:
        yield
    finally:
        unregister(callback)


@contextmanager
def guarded() -> Iterator[None]:
    """Mark a tracked run as open; in a process without ``install``, handle SIGTERM meanwhile.

    When an interrupt unwinds the outermost block of such a worker process, the process exits
    with 128 + signal once the block (and so the run) has ended.
    """
    global _depth, _mode
    if _mode is None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handle)
        _mode = "worker"
        _outlive_the_reader()
    _depth += 1
    try:
        yield
    except Interrupted as stop:
        if _mode == "worker" and _depth == 1:
            if _signalled_alone():
                _carry_on()
                raise TrialInterrupted(_alone_message(stop, "its run ended KILLED")) from None
            _park_or_exit(stop.exit_code)
        raise
    finally:
        _depth -= 1


@contextmanager
def deferred(*, release: bool = True) -> Iterator[None]:
    """Hold a signal back until the block ends: for work that must not be cut in half.

    E.g. the migrations that create a new store (interrupted, they can leave it unopenable),
    or the creation of a run. With ``release=False`` a block that ends normally leaves the
    signal pending for the caller's ``release_pending()`` (in a ``try`` that can clean up);
    one that raises releases it anyway. A second signal inside the block exits at once.
    """
    global _deferring
    _deferring += 1
    completed = False
    try:
        yield
        completed = True
    finally:
        _deferring -= 1
        if _deferring == 0 and (release or not completed):
            release_pending()


def release_pending() -> None:
    """Handle a signal that ``deferred`` held back (raises ``Interrupted``); else nothing."""
    global _pending
    if _pending is not None and _deferring == 0:
        signum, _pending = _pending, None
        _handle(signum, None)


def stop_children(grace: float = GRACE_SECONDS) -> list[int]:
    """Stop every live ``multiprocessing`` child; the pids that had to be SIGKILLed.

    Children that handle SIGTERM themselves (launcher workers with a run open, see
    ``guarded``) go first: each ends its run and then stops itself (SIGSTOP) rather than
    exiting, because loky SIGKILLs every other worker as soon as one exits, which would cut
    the others' last store writes. Once all of them are stopped or gone (or after ``grace``)
    they are killed; the other children (a spawn cleaning pool) get SIGTERM, then SIGKILL.
    """
    children = [child for child in multiprocessing.active_children() if child.is_alive()]
    handlers = [child for child in children if _catches_sigterm(child.pid)]
    for child in handlers:
        _signal(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not all(_stopped(child.pid) for child in handlers):
        time.sleep(0.05)
    killed = [child.pid for child in handlers if child.pid is not None]
    for child in handlers:
        _signal(child, signal.SIGKILL)
    others = [child for child in children if child not in handlers]
    return killed + stop_processes(others, max(deadline - time.monotonic(), 1.0))


def die_with_parent() -> None:
    """In a child process (Linux): end with the process that started it, even a SIGKILLed one.

    For a pool's initializer. Without it a SIGKILLed app leaves its curation workers cleaning
    on (orphans of 270-410 MB).
    """
    parent_death_hook()()


def parent_death_hook() -> Callable[[], None]:
    """``die_with_parent`` for a ``Popen``'s ``preexec_fn`` (the setting outlives ``exec``):
    the C library is found here, in the parent, so the forked child only makes the call.
    A SIGKILLed ``pricer serve`` left its server listening."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except (OSError, ImportError):  # not Linux/glibc: orphans stay possible there
        return lambda: None
    pr_set_pdeathsig = 1

    def hook() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() == 1:  # the parent died before the call: nothing will signal us
            os._exit(1)

    return hook


def stop_processes(processes: Iterable[BaseProcess], grace: float = GRACE_SECONDS) -> list[int]:
    """SIGTERM the processes, wait up to ``grace`` s, SIGKILL the rest; the pids killed.

    Waits on the processes' sentinels rather than joining them: an executor's own thread may
    reap them first.
    """
    alive = [process for process in processes if process.is_alive()]
    for process in alive:
        _signal(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    waiting = {process.sentinel: process for process in alive}
    while waiting and (left := deadline - time.monotonic()) > 0:
        for sentinel in multiprocessing.connection.wait(list(waiting), timeout=left):
            waiting.pop(sentinel)  # type: ignore[call-overload]
    for process in waiting.values():
        _signal(process, signal.SIGKILL)
    return [process.pid for process in waiting.values() if process.pid is not None]


class ReaderSafeStream:
    """A text stream whose closed pipe sends the rest of the output to /dev/null.

    Everything but ``write`` and ``flush`` is the wrapped stream's (``fileno``, ``isatty``,
    ``encoding``), so Hydra's log handlers and tqdm treat it as the stream itself.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)

    def _to_devnull(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self.stream.fileno())
        finally:
            os.close(devnull)
        # What the failed write left buffered goes the same way (a second try may still
        # raise if the buffer kept the bytes the pipe refused; /dev/null takes them now).
        with contextlib.suppress(BrokenPipeError):
            self.stream.flush()


def _outlive_the_reader() -> None:
    if not isinstance(sys.stdout, ReaderSafeStream) and sys.stdout is not None:
        sys.stdout = ReaderSafeStream(sys.stdout)  # type: ignore[assignment]


def _start_watchdog(code: int) -> None:
    global _watchdog
    message = f"pricer: still stopping after {UNWIND_DEADLINE_SECONDS:.0f} s: exiting now\n"
    _watchdog = threading.Timer(UNWIND_DEADLINE_SECONDS, _give_up, (code, message))
    _watchdog.daemon = True
    _watchdog.start()


def cancel_watchdog() -> None:
    """For a process that handled an interrupt and goes on (a test): no forced exit."""
    if _watchdog is not None:
        _watchdog.cancel()


def _handle(signum: int, frame: FrameType | None) -> None:
    global _received, _pending, _held, _resent
    ours, _resent = _resent, False
    again = _received is not None or (_pending is not None and _deferring)
    if again or (_held is not None and not ours):
        _exit_now(128 + signum, f"pricer: {signal.Signals(signum).name} again: stopping now\n")
    if _deferring:
        _pending, _held = signum, None  # the block's end handles it
        return
    if _in_uncuttable_code(frame):
        if _held is None:
            _start_watchdog(128 + signum)
        _held = signum
        _resend_later()
        return
    _held = None
    _pending = None  # handled now (by release_pending, or a new signal after a deferred block)
    if _mode == "worker" and _depth == 0:
        if _signalled_alone():
            if not _in_job(frame):  # idle between trials: nothing to fail, the worker ends
                _exit_now(128 + signum)
            raise TrialInterrupted(_alone_message(Interrupted(signum), "before its run opened"))
        _park_or_exit(128 + signum)  # no run to end here
    stop = _received = Interrupted(signum)
    if _watchdog is None or not _watchdog.is_alive():
        _start_watchdog(stop.exit_code)
    if _mode == "app":
        _mark_stopping()
    stop_children()
    with _lock:
        callbacks = list(reversed(_callbacks))
    for callback in callbacks:
        try:
            callback(stop)
        except Exception as error:  # one broken callback must not keep the others from running
            print(f"pricer: on_interrupt callback failed: {error!r}", file=sys.stderr, flush=True)
    raise stop


def _in_uncuttable_code(frame: FrameType | None) -> bool:
    """Whether ``frame`` or a caller of it runs code of ``DATABASE_MODULES`` or writes to a
    process pipe (``PIPE_WRITES``; not a read, which an idle worker waits in for good)."""
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module.startswith(DATABASE_MODULES) or (
            module == PIPE_MODULE and frame.f_code.co_name in PIPE_WRITES
        ):
            return True
        frame = frame.f_back
    return False


def _resend_later() -> None:
    """Signal the main thread again in ``RESEND_SECONDS``: handled where it then is."""

    def resend() -> None:
        global _resent
        if _held is not None:
            _resent = True
            signal.pthread_kill(threading.main_thread().ident, _held)

    timer = threading.Timer(RESEND_SECONDS, resend)
    timer.daemon = True
    timer.start()


def exit_process(code: int) -> None:
    """Run the ``atexit`` handlers, flush, and end the process with ``code`` at once.

    Skips the interpreter's teardown: after an interrupted curation of 400k records it took
    6-9 s (freeing objects, no Python frame) on the shared 2-core machine, longer than the
    unwinding itself (0.5 s).
    """
    atexit._run_exitfuncs()  # CPython's own entry point for what sys.exit would run
    _exit_now(code)


def _give_up(code: int, message: str) -> None:
    """The watchdog: say where every thread is stuck (for a bug report), then exit."""
    os.write(2, b"pricer: unwinding hung; where each thread was:\n")
    with contextlib.suppress(Exception):
        faulthandler.dump_traceback(all_threads=True)
    _end_runs_left(code)
    _exit_now(code, message)


def _end_runs_left(code: int) -> None:
    """End the runs this process opened and left RUNNING KILLED, within ``FAREWELL_SECONDS``.

    Without it they stayed RUNNING, shown STALE only once the process was gone (or, from
    another host, after a day). Safe to try, as long as nothing here can keep the process
    from exiting:
    - the attempt runs in a daemon thread of its own and is waited for at most
      ``FAREWELL_SECONDS``; ``os._exit`` then ends the process whatever that thread is doing.
      The hang may be in the store itself (the stuck main thread holding SQLite's write lock,
      a server that does not answer) or in a lock the main thread holds (SQLAlchemy's pool,
      the import lock): the thread waits there, the exit does not.
    - the store never sees half an end: each write is one transaction (one request to a
      server), which ``os._exit`` either lets finish or leaves uncommitted, rolled back by
      SQLite's journal when the database is next opened.
    - only runs this process noted as RUNNING are ended, and the tracking code ends a run
      only if the store still says RUNNING: a run whose FINISHED end was recorded just
      before the hang keeps it.
    - a run's LoggedModels left PENDING (it was stopped while logging one) are failed before
      the run ends: an end cut short by the bound leaves the run RUNNING, and the next run's
      reap ends it whole, models too. Ended KILLED first, the model stayed PENDING for good.
    """
    left = [run_id for run_id, (_, status) in reversed(_runs.items()) if status == "RUNNING"]
    if _end_runs is None or not left:
        return
    try:
        name = signal.Signals(code - 128).name
    except ValueError:
        name = "a signal"
    reason = f"interrupted by {name}; unwinding hung, so the run was ended as the process exited"
    done: list[bool] = []
    ending = threading.Thread(
        target=_end_quietly, args=(_end_runs, left, reason, done), daemon=True
    )
    ending.start()
    ending.join(FAREWELL_SECONDS)
    if done:
        said = "ended KILLED"
    elif ending.is_alive():
        said = f"stay RUNNING: the store did not answer within {FAREWELL_SECONDS:.0f} s"
    else:
        said = "stay RUNNING: the store refused"
    os.write(2, f"pricer: {counted(len(left), 'run')} left open: {said}\n".encode())


def _end_quietly(end_runs: RunEnder, run_ids: list[str], reason: str, done: list[bool]) -> None:
    try:
        end_runs(run_ids, reason)
        done.append(True)
    except BaseException as error:  # the exit goes on; what failed is said
        with contextlib.suppress(Exception):
            os.write(2, f"pricer: could not end the runs left open ({error!r})\n".encode())


def _signal(process: BaseProcess, signum: int) -> None:
    """Signal a process; os.kill, as loky's process objects have no ``kill()``."""
    if process.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)


def _park_or_exit(code: int) -> None:
    """End this worker process after an interrupt: stop it if a pricer app is its parent.

    The app (``stop_children``) waits for its workers to be stopped or gone, then kills them.
    Any other parent (or none) gets an exit.
    """
    if os.environ.get(APP_PID_ENV) == str(os.getppid()):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.kill(os.getpid(), signal.SIGSTOP)
    _exit_now(code)


def _mark_stopping() -> None:
    """Tell this app's workers that the signal they are about to get is the app's own."""
    if _stop_marker is None:
        return
    with contextlib.suppress(OSError):  # no marker: a worker then fails its trial and goes on
        Path(_stop_marker).touch()
        atexit.register(_unmark_stopping)


def _unmark_stopping() -> None:
    """Remove the marker, if this app made one (also on exits that skip ``atexit``)."""
    if _stop_marker is not None:
        with contextlib.suppress(OSError):
            os.unlink(_stop_marker)


def _signalled_alone() -> bool:
    """Whether this worker's parent is a pricer app that is not stopping (see STOPPING_ENV)."""
    if os.environ.get(APP_PID_ENV) != str(os.getppid()):
        return False
    marker = os.environ.get(STOPPING_ENV)
    return bool(marker) and not Path(marker).exists()


def _in_job(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside a Hydra job (a launcher worker's trial)."""
    while frame is not None:
        if frame.f_code.co_name == "run_job" and frame.f_globals.get("__name__") == HYDRA_JOBS:
            return True
        frame = frame.f_back
    return False


def _carry_on() -> None:
    """Forget an interrupt this worker has dealt with (its trial failed): the next trial's
    interrupt is a first one, and no watchdog ends the worker meanwhile."""
    global _received
    _received = None
    cancel_watchdog()


def _alone_message(stop: Interrupted, what: str) -> str:
    return (
        f"a trial's worker process ({os.getpid()}) was {stop}, sent to it alone (not to the "
        f"sweep): the trial failed, {what}"
    )


def _catches_sigterm(pid: int | None) -> bool:
    """Whether process ``pid`` has a SIGTERM handler (Linux: the SigCgt mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def _stopped(pid: int | None) -> bool:
    """Whether process ``pid`` is stopped (SIGSTOP) or gone (Linux: its state in /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t", "Z", "X")


def _exit_now(code: int, message: str = "") -> None:
    _unmark_stopping()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed stream: nothing left to save
            stream.flush()
    if message:
        os.write(2, message.encode())
    os._exit(code)
