"""The default leaderboard, timed as a user runs it: ``python -m pricer.leaderboard``.

    python -m benchmarks.leaderboard
    python -m benchmarks.leaderboard --warm          # a second run, with the curated data cached

The command runs in a fresh process against a fresh SQLite store (created and migrated
beforehand: that happens once per store, not per leaderboard) and an empty curation cache,
so the first run includes curating the embedded synthetic data. Its Hydra output folder,
store and cache live in a temporary folder. Afterwards each family's child run is read back
from the store: fit, predict and model-logging seconds and the run's duration.

Target (issue 5): the default leaderboard under 3 minutes on 2 cores.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import base_parser, measure_child, print_table, store_env, write_report

TARGET_SECONDS = 180.0


def family_runs(uri: str) -> list[dict[str, Any]]:
    """Each family's child run in the store: its timings and duration."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiments = client.search_experiments()
    runs = client.search_runs(
        [experiment.experiment_id for experiment in experiments],
        filter_string="tags.`pricer.family` != ''",
    )
    rows = []
    for run in runs:
        metrics = run.data.metrics
        rows.append(
            {
                "family": run.data.tags.get("pricer.family"),
                "status": run.info.status,
                "run_s": (run.info.end_time - run.info.start_time) / 1000
                if run.info.end_time
                else None,  # still running when the leaderboard was stopped
                "fit_s": metrics.get("time.fit_seconds"),
                "predict_s": metrics.get("time.predict_seconds"),
                "log_model_s": metrics.get("time.log_model_seconds"),
                "mae": metrics.get("mae"),
            }
        )
    return sorted(rows, key=lambda row: row["run_s"] or float("inf"), reverse=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import mlflow

    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--warm", action="store_true", help="also time a second, cached run")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (default: none)")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)

    runs = []
    with tempfile.TemporaryDirectory(prefix="pricer-bench-leaderboard-") as folder:
        uri = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        mlflow.MlflowClient(tracking_uri=uri).search_experiments()  # create + migrate
        command = [
            sys.executable,
            "-m",
            "pricer.leaderboard",
            f"hydra.run.dir={Path(folder) / 'hydra'}",
            f"curation.cache_dir={Path(folder) / 'cache'}",
            *args.overrides,
        ]
        env = store_env(uri)
        for name in ["cold cache", *(["warm cache"] if args.warm else [])]:
            result = measure_child(command, timeout=args.timeout, env=env, answer_file=False)
            runs.append({"run": name, **result.as_dict()})
            print(
                f"{name}: {'ok' if result.ok else 'FAILED'} in {result.wall_seconds:,.1f} s "
                f"(load {result.load_before} -> {result.load_after})",
                flush=True,
            )
            if not result.ok:
                print(result.stderr_tail, file=sys.stderr)
        families = family_runs(uri)
    print_table(
        runs,
        ["run", "ok", "wall_seconds", "tree_peak_rss_mib", "load_before", "load_after"],
        "python -m pricer.leaderboard " + " ".join(args.overrides),
    )
    print_table(
        families,
        ["family", "status", "run_s", "fit_s", "predict_s", "log_model_s", "mae"],
        "Per family (all runs above; seconds)",
    )
    verdicts = [
        f"{run['run']}: {run['wall_seconds']:,.0f} s -> "
        f"{'met' if run['ok'] and run['wall_seconds'] <= TARGET_SECONDS else 'MISSED'} "
        f"(target <= {TARGET_SECONDS:.0f} s)"
        for run in runs
    ]
    for line in verdicts:
        print(line)
    figures = {
        "overrides": args.overrides,
        "runs": runs,
        "families": families,
        "target_seconds": TARGET_SECONDS,
        "verdicts": verdicts,
    }
    path = write_report("leaderboard", figures, args.results_dir)
    print(f"report: {path}")
    return figures


if __name__ == "__main__":
    main()
