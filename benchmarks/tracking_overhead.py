"""Tracking overhead: time a run spends logging against the time it spends fitting and pricing.

    python -m benchmarks.tracking_overhead
    python -m benchmarks.tracking_overhead --families tfidf_ridge xgboost --train-items 25000

Each family runs once through the real ``pricer.experiment.run_family`` (as
``python -m pricer.train`` does) on 25,000 training items, in a fresh process with a fresh
SQLite store that is created and migrated before the clock starts. The tracking calls
``run_family`` makes are wrapped with timers:

- run lifecycle: ``tracked_run`` (experiment lookup, git tags, start and end of the run);
- params: ``log_config`` (flattened config + YAML);
- dataset inputs: ``log_data_inputs``;
- metrics: ``mlflow.log_metrics`` outside ``log_evaluation``;
- evaluation: ``log_evaluation`` (metrics, two plots, three tables);
- model: ``log_pricer`` (pickled pricer, pyfunc wrapper, code, requirements).

Fit and predict seconds come from the same timers; evaluation maths (bootstrap CIs) is
counted apart: it is neither fitting nor logging. Overhead = logging / whole run.

Target (issue 5): logging overhead under 10% of a run on 25k items.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import (
    base_parser,
    child_command,
    compose,
    measure_child,
    print_table,
    write_answer,
    write_report,
)

DEFAULT_FAMILIES = ("tfidf_ridge", "linear", "xgboost")
TARGET_SHARE = 0.10
LOGGING_PARTS = ("lifecycle", "params", "inputs", "metrics", "evaluation", "model")


def run_child(family: str, train_items: int, n_records: int, answer: str | None) -> None:
    import mlflow

    import pricer.experiment as experiment
    import pricer.scoring as scoring
    from pricer.data.dataset import load_curated

    seconds: dict[str, float] = defaultdict(float)

    def timed_call(part: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[part] += time.perf_counter() - started

        return wrapper

    original_run = experiment.tracked_run

    @contextlib.contextmanager
    def timed_run(*args: Any, **kwargs: Any) -> Iterator[Any]:
        started = time.perf_counter()
        manager = original_run(*args, **kwargs)
        run = manager.__enter__()
        seconds["lifecycle"] += time.perf_counter() - started
        try:
            yield run
        except BaseException:
            if not manager.__exit__(*sys.exc_info()):
                raise
        else:
            started = time.perf_counter()
            manager.__exit__(None, None, None)
            seconds["lifecycle"] += time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix="pricer-bench-store-") as folder:
        uri = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        overrides = [
            f"model={family}",
            f"data.n_records={n_records}",
            f"curation.split.train_size={train_items}",
            f"tracking.uri={uri}",
        ]
        cfg = compose("train", overrides)
        run_cfg = experiment.family_config(cfg, family, cfg.model)
        curated = load_curated(cfg.data, cfg.curation)
        # Store creation (schema migrations, seconds) and the experiment are one-time costs
        # of a new store, not of a run: pay them before the clock starts.
        mlflow.set_tracking_uri(uri)
        artifacts = Path(folder) / "artifacts"
        mlflow.create_experiment(cfg.tracking.experiment, artifact_location=artifacts.as_uri())

        experiment.tracked_run = timed_run
        experiment.log_config = timed_call("params", experiment.log_config)
        experiment.log_data_inputs = timed_call("inputs", experiment.log_data_inputs)
        experiment.log_evaluation = timed_call("evaluation", experiment.log_evaluation)
        experiment.log_pricer = timed_call("model", experiment.log_pricer)
        scoring.evaluate = timed_call("evaluate_maths", scoring.evaluate)
        # The run's own metric logging; log_evaluation's metrics count under "evaluation".
        experiment.log_metrics = timed_call("metrics", experiment.log_metrics)
        started = time.perf_counter()
        result = experiment.run_family(family, run_cfg, curated)
        whole = time.perf_counter() - started
        store_mib = (Path(folder) / "mlflow.db").stat().st_size / 2**20
        artifacts_mib = sum(path.stat().st_size for path in artifacts.rglob("*") if path.is_file())
    fit = result.metrics["time.fit_seconds"]
    predict = result.metrics["time.predict_seconds"]
    logging = sum(seconds[part] for part in LOGGING_PARTS)
    write_answer(
        answer,
        {
            "family": family,
            "train_items": len(curated.train),
            "run_seconds": whole,
            "fit_seconds": fit,
            "predict_seconds": predict,
            "evaluate_maths_seconds": seconds["evaluate_maths"],
            "logging_seconds": logging,
            "logging_parts_seconds": {part: seconds[part] for part in LOGGING_PARTS},
            "logging_share_of_run": logging / whole,
            "logging_vs_fit_predict": logging / (fit + predict),
            "store_mib": store_mib,
            "artifacts_mib": artifacts_mib / 2**20,
        },
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(DEFAULT_FAMILIES))
    parser.add_argument("--train-items", type=int, default=25_000)
    parser.add_argument("--records", type=int, default=60_000, help="synthetic raw records")
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args(argv)

    runs = []
    for family in args.families:
        command = child_command(
            "tracking_overhead",
            "child",
            "--family",
            family,
            "--train-items",
            str(args.train_items),
            "--records",
            str(args.records),
        )
        result = measure_child(command, timeout=args.timeout)
        runs.append({"family": family, **result.as_dict()})
        if not result.ok:
            print(result.stderr_tail, file=sys.stderr)
    rows = []
    for run in runs:
        parts = run.get("logging_parts_seconds", {})
        rows.append(
            {
                "family": run["family"],
                "items": run.get("train_items"),
                "run_s": run.get("run_seconds"),
                "fit_s": run.get("fit_seconds"),
                "predict_s": run.get("predict_seconds"),
                "eval_s": run.get("evaluate_maths_seconds"),
                **{f"{part}_s": parts.get(part) for part in LOGGING_PARTS},
                "logging_s": run.get("logging_seconds"),
                "share": run.get("logging_share_of_run"),
                "load_1m": run["load_before"][0],
            }
        )
    print_table(
        rows,
        [
            "family",
            "items",
            "run_s",
            "fit_s",
            "predict_s",
            "eval_s",
            *(f"{part}_s" for part in LOGGING_PARTS),
            "logging_s",
            "share",
            "load_1m",
        ],
        "Tracking overhead (seconds; share = logging / whole run)",
    )
    verdicts = [
        f"{run['family']}: logging {run['logging_share_of_run']:.1%} of the run -> "
        f"{'met' if run['logging_share_of_run'] < TARGET_SHARE else 'MISSED'} "
        f"(target < {TARGET_SHARE:.0%})"
        for run in runs
        if run["ok"]
    ]
    for line in verdicts:
        print(line)
    figures = {"runs": runs, "target_share": TARGET_SHARE, "verdicts": verdicts}
    path = write_report("tracking_overhead", figures, args.results_dir)
    print(f"report: {path}")
    return figures


def _child_main(argv: list[str]) -> None:
    parser = base_parser("one measured run (internal)")
    parser.add_argument("--family", required=True)
    parser.add_argument("--train-items", type=int, required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--answer")
    args = parser.parse_args(argv)
    run_child(args.family, args.train_items, args.records, args.answer)


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        _child_main(sys.argv[2:])
    else:
        main()
