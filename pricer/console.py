"""The ``pricer`` command: every app behind one name, with the same Hydra overrides.

    pricer train model=xgboost data=real        # = python -m pricer.train model=xgboost data=real
    pricer leaderboard data=real 'families=[constant,xgboost]'
    pricer promote data=real
    pricer promote data=real retire=true                # retire its champion
    pricer predict --data real "Cordless drill, 20V"
    pricer serve --data real --port 5001                # mlflow models serve, files checked
    pricer runs [RUN] [--experiment NAME] [--limit N]   # recent runs; RUN: its leaderboard
    pricer compare RUN RUN [RUN ...]                    # runs side by side

``pricer <app>`` runs exactly what ``python -m pricer.<app>`` runs (the module as
``__main__``); ``runs`` and ``compare`` read the store and train nothing.
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import sys
from collections.abc import Sequence
from typing import Any

from hydra import compose, initialize_config_dir

from pricer import configs  # noqa: F401  (registers resolvers and config schemas)
from pricer.cli import USER_ERROR_STATUS, CommandParser, report
from pricer.errors import UserError, unknown_name
from pricer.paths import require_config_dir
from pricer.wording import left_aligned

HYDRA_APPS = {
    "train": "one family, one tracked run (a sweep with -m)",
    "leaderboard": "every family on the same data, one parent run",
    "curate": "curate raw records into a saved split",
    "promote": "register a data's best run; champion if it beats it (retire=true: retire it)",
    "finetune": "fine-tune an OpenAI model on the curated items",
    "human_export": "export the evaluation items for a person to price",
}
OTHER_APPS = {
    "predict": "price items with a registered model (see pricer predict --help)",
    "serve": "serve a registered model over HTTP, its files checked first",
    "runs": "recent leaderboards, sweeps, curations, runs; pricer runs RUN: one run in full",
    "compare": "stored runs side by side: figures and the params that differ",
}


def usage() -> str:
    lines = ["usage: pricer <app> [Hydra overrides | options]", "", "apps:"]
    for name, what in {**HYDRA_APPS, **OTHER_APPS}.items():
        lines.append(f"  {name:<13} {what}")
    lines += ["", "Hydra apps take the same overrides as python -m pricer.<app> (--help: theirs)."]
    return "\n".join(lines)


# Exit status when the reader of stdout went away (`pricer runs | head`): 128 + SIGPIPE, what
# a Unix tool killed by SIGPIPE reports. Python ignores SIGPIPE, so a write raises instead.
BROKEN_PIPE_STATUS = 128 + signal.SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    """The ``pricer`` command; a closed stdout ends it quietly, as it ends other Unix tools.

    ``pricer runs | head`` closes the pipe after ten lines: the next write, or the flush at
    exit, raised BrokenPipeError, and a traceback followed the lines ``head`` printed. Caught
    here, stdout is pointed at /dev/null so that the interpreter's own flush at exit does not
    raise it again (Python docs, "Note on SIGPIPE").
    """
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit: a closed pipe is caught below
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_STATUS
    return code


def _main(argv: Sequence[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    app, rest = args[0], args[1:]
    if app in HYDRA_APPS:
        # Run as __main__, exactly as python -m does: Hydra finds conf/ relative to the app's
        # file only then (imported as pricer.<app>, it looks for a 'conf' package instead).
        sys.argv = [f"pricer {app}", *rest]
        runpy.run_module(f"pricer.{app}", run_name="__main__", alter_sys=True)
        return 0
    if app == "predict":
        from pricer.predict import cli as predict

        return predict(rest)
    if app == "serve":
        from pricer.serve import cli as serve

        return serve(rest)
    if app in ("runs", "compare"):
        try:
            return browse(app, rest)
        except UserError as error:
            return report(error)
    apps = [*HYDRA_APPS, *OTHER_APPS]
    # One line, as every user error (the usage after it was 17 more); `pricer` alone lists them.
    print(f"error: {unknown_name('app', app, apps)}", file=sys.stderr)
    return USER_ERROR_STATUS


def _left_aligned(table: Any) -> str:
    """A table of words, each column left-aligned under its header (pandas right-aligns)."""
    rows = [list(map(str, table.columns)), *([str(cell) for cell in row] for row in table.values)]
    return "\n".join(left_aligned(rows))


def _positive(text: str) -> int:
    """--limit: a whole number of runs, 1 or more (0 listed the default 15, -1 every run)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of runs, 1 or more; got {text!r}")
    return value


def _run_id(text: str) -> str:
    """A run: its id or an id prefix ('' was no run at all: `pricer runs ''` listed them)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must be a run id or an id prefix; got an empty one")
    return text.strip()


def _experiment_name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must name an experiment; got an empty name")
    return text


def browse(app: str, argv: Sequence[str]) -> int:
    parser = CommandParser(prog=f"pricer {app}", description=OTHER_APPS[app])
    if app == "runs":
        parser.add_argument(
            "run",
            nargs="?",
            type=_run_id,
            help="a run (id or id prefix) to show: a leaderboard's table, else its figures",
        )
        parser.add_argument(
            "--limit", type=_positive, help="how many runs to list (conf: runs.yaml)"
        )
        parser.add_argument(
            "--end",
            action="store_true",
            help="end RUN KILLED (and the runs nested in it): a RUNNING run whose process "
            "has stopped, which the next pricer run cannot prove dead (another host's)",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="with --end: end it though this host cannot tell its process has stopped, "
            "or though it is a shared study's trial (its study's next process ends it)",
        )
    else:
        parser.add_argument(
            "runs", nargs="+", type=_run_id, metavar="RUN", help="run ids or id prefixes"
        )
    parser.add_argument(
        "--experiment", type=_experiment_name, help="only this experiment (default: all)"
    )
    args = parser.parse_args(argv)
    if app == "runs" and (args.end or args.force) and not (args.run and args.end):
        parser.error("--end needs a RUN to end" if args.end else "--force goes with --end RUN")
    if app == "runs" and args.run and args.limit is not None:  # it was silently ignored
        parser.error("--limit is for the listing, not with a RUN")
    with initialize_config_dir(config_dir=str(require_config_dir()), version_base="1.3"):
        cfg = compose(config_name="runs")
    from pricer.tracking import browse as store  # imports MLflow: only for these two apps

    where = store.connect(cfg.tracking.uri)
    # The store failing while it is read (a server's 503, SQLite's "database is locked"):
    # one line, not its traceback, which reads as a bug.
    with store.read_failures_as_one_line(where):
        return _show(app, args, parser, cfg.limit, where)


def _show(app: str, args: argparse.Namespace, parser: CommandParser, limit: int, where: str) -> int:
    """What ``browse`` shows (or, with ``--end``, ends), from the store it connected to."""
    from pricer.tracking import browse as store  # imports MLflow: only for these two apps
    from pricer.tracking.leaderboard import display_table

    if app == "compare":
        if len(args.runs) < 2:
            parser.error("give at least two runs to compare")
        found = [store.find_run(run_id, args.experiment) for run_id in args.runs]
        # Each run once: "compare abc abc" (or two prefixes of one run) showed it twice, side by
        # side, as if two runs had given the same figures.
        distinct = list({run.info.run_id: run for run in found}.values())
        if len(distinct) < 2:
            raise UserError(
                f"{' and '.join(args.runs)} name one run, {distinct[0].info.run_id}: "
                "give two different runs to compare"
            )
        print(store.compare_runs(distinct).to_string())
        return 0
    if args.run and args.end:
        from pricer.tracking.reaper import end_by_hand

        done = end_by_hand(store.find_run(args.run, args.experiment), force=args.force)
        for run_id, name, why in done.ended:
            print(f"ended run {run_id} ({name}) KILLED: {why}")
        for run_id, name, why in done.left:
            print(f"left run {run_id} ({name}) RUNNING: {why}")
        if done.kept is not None:  # refused after all: exit 2, as when it had ended before
            raise UserError(done.kept)
        return 0
    if args.run:
        board = store.find_run(args.run, args.experiment)
        print(f"{store.run_name(board)} ({board.info.run_id}), {store.status(board)}")
        # A leaderboard that did not finish has no table: what it is, why it stopped, and
        # which of its families finished (as for any other run, plus its children).
        unfinished = board.info.status != "FINISHED"
        if not store.is_leaderboard(board) or unfinished:  # a family's run, a sweep, ...
            print("\n".join(store.run_summary(board)))
            if store.is_leaderboard(board):
                print("\n".join(store.child_runs(board)))
            return 0
        table = store.stored_leaderboard(board)
        print(display_table(table).to_string())
        print("\n".join(store.leaderboard_notes(board, table)))
        return 0
    recent = store.recent_runs(args.experiment, args.limit or limit)
    if recent.empty:
        print(f"no leaderboard, sweep, curation or run in {where}")
        return 0
    print(_left_aligned(recent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
