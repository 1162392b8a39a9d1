"""How long an app takes to answer a typo, and what a spawned cleaning worker costs to start.

    python -m benchmarks.startup [--repeats 5]

Each figure is the median over ``--repeats`` fresh interpreters (the first one warms the file
cache and is not counted):

- ``typo``: ``python -m pricer.<app> no_such_key=1``, which Hydra rejects while composing (exit
  2, one line): what a user waits for a mistake, and the floor of every run of the app;
- ``help``: ``python -m pricer.<app> --help``;
- ``worker``: ``import pricer.<app>, pricer.data.sources``, what each process of curation's
  spawn pool imports before its first chunk (the pool imports the app's module again).
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

from benchmarks.common import base_parser, load_average, measure_child, print_table, write_report
from pricer.console import HYDRA_APPS

COMMANDS = {
    "typo": lambda app: ["-m", f"pricer.{app}", "no_such_key=1"],
    "help": lambda app: ["-m", f"pricer.{app}", "--help"],
    "worker": lambda app: ["-c", f"import pricer.{app}, pricer.data.sources"],
}
EXPECTED_EXIT = {"typo": 2, "help": 0, "worker": 0}


def measure(app: str, what: str, repeats: int) -> dict[str, Any]:
    runs = [
        measure_child([sys.executable, *COMMANDS[what](app)], answer_file=False)
        for _ in range(repeats + 1)
    ][1:]
    wrong = [run.returncode for run in runs if run.returncode != EXPECTED_EXIT[what]]
    if wrong:
        raise SystemExit(f"pricer.{app} {what}: exit {wrong[0]}: {runs[0].stderr_tail[-500:]}")
    return {
        "app": app,
        "what": what,
        "seconds": statistics.median(run.wall_seconds for run in runs),
        "peak_mib": statistics.median(run.child_peak_rss_mib for run in runs),
    }


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--apps", nargs="+", default=list(HYDRA_APPS), choices=HYDRA_APPS)
    args = parser.parse_args(argv)
    load_before = load_average()
    rows = [
        measure(app, what, args.repeats)
        for app in args.apps
        for what in COMMANDS
        if what != "worker" or app in ("train", "curate")  # the apps that curate
    ]
    print_table(rows, ["app", "what", "seconds", "peak_mib"], title="Fresh-interpreter medians")
    write_report(
        "startup",
        {
            "repeats": args.repeats,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "rows": rows,
        },
        args.results_dir,
    )


if __name__ == "__main__":
    main()
