"""Which holdout ranks a sweep's settings better: random rows, or rows drawn like the test set?

    python -m benchmarks.validation_holdout [--family xgboost] [--trials 40] [--data real]

Runs two sweeps of the same search (``hparams_search=<family>``) on a throwaway store, every
trial drawn at random from one seed (``n_startup_trials`` = ``n_trials``), so both score the
same settings:

- ``random``: the search's own holdout (``validation.size`` from conf/optuna_search.yaml);
- ``like_test``: ``validation.like_test=true validation.size=500``, only rows drawn like the
  test set held out.

Each setting's "truth" is its test mae averaged over the two sweeps' models (each sweep fits
on different rows, so one sweep's test figure alone mixes in its own holdout). Prints, per
holdout: the Spearman correlation of validation mae with that truth, the truth of the setting
it would pick and its rank, the mean truth of its five best, and the ranges of its validation
and test figures. A random sampler, not TPE: TPE would steer each sweep by its own ranking, and
the two would no longer score the same settings.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import (
    PROJECT_ROOT,
    base_parser,
    load_average,
    print_table,
    store_env,
    write_report,
)

HOLDOUTS = {
    "random": [],
    "like_test": ["validation.like_test=true", "validation.size=500"],
}


def sweep(family: str, data: str, trials: int, holdout: list[str], folder: Path, uri: str) -> None:
    command = [
        sys.executable, "-m", "pricer.train", "-m", f"hparams_search={family}", f"data={data}",
        f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.sampler.n_startup_trials={trials}",
        "tracking.log_model=false", "tracking.system_metrics.enabled=false",
        f"hydra.sweep.dir={folder}", *holdout,
    ]  # fmt: skip
    subprocess.run(command, cwd=PROJECT_ROOT, env=store_env(uri), check=True, capture_output=True)


def trials_of(uri: str) -> dict[str, Any]:
    """Each sweep's finished trials, by trial number, oldest sweep first."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["pricer"], filter_string="status = 'FINISHED'")
    parents = runs[runs["tags.pricer.kind"] == "sweep"].sort_values("start_time")
    by_sweep = {}
    for name, parent_id in zip(HOLDOUTS, parents["run_id"], strict=True):
        trials = runs[runs["tags.mlflow.parentRunId"] == parent_id].copy()
        trials.index = trials["tags.pricer.sweep.trial"].astype(int)
        by_sweep[name] = trials.sort_index()
    return by_sweep


def compare(by_sweep: dict[str, Any]) -> list[dict[str, Any]]:
    from scipy.stats import spearmanr

    first, second = by_sweep.values()
    keys = [column for column in first.columns if column.startswith("params.model.")]
    if not (first[keys] == second[keys]).all(axis=None):
        raise SystemExit("the two sweeps drew different settings: compare would mean nothing")
    truth = (first["metrics.mae"] + second["metrics.mae"]) / 2
    rows = []
    for name, trials in by_sweep.items():
        validation = trials["metrics.validation.mae"]
        pick = validation.idxmin()
        rows.append(
            {
                "holdout": name,
                "spearman": round(float(spearmanr(validation, truth).statistic), 2),
                "pick test mae": float(truth[pick]),
                "pick rank": int(truth.rank()[pick]),
                "top-5 test mae": float(truth[validation.nsmallest(5).index].mean()),
                "validation mae": [float(validation.min()), float(validation.max())],
                "own test mae": [
                    float(trials["metrics.mae"].min()),
                    float(trials["metrics.mae"].max()),
                ],
            }
        )
    rows.append({"holdout": "best setting", "pick test mae": float(truth.min()), "pick rank": 1})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--family", default="xgboost")
    parser.add_argument("--data", default="real")
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args(argv)
    before = load_average()
    with tempfile.TemporaryDirectory() as folder:
        uri = f"sqlite:///{folder}/mlflow.db"
        for name, holdout in HOLDOUTS.items():
            print(f"sweep with the {name} holdout: {args.trials} trials ...", flush=True)
            sweep(args.family, args.data, args.trials, holdout, Path(folder) / name, uri)
        rows = compare(trials_of(uri))
    columns = ["holdout", "spearman", "pick test mae", "pick rank", "top-5 test mae",
               "validation mae", "own test mae"]  # fmt: skip
    print_table(rows, columns, f"{args.family} on {args.data}, {args.trials} settings")
    figures = {"family": args.family, "data": args.data, "trials": args.trials, "rows": rows}
    report = write_report(
        "validation_holdout",
        {**figures, "load_average_before": before, "load_average_after": load_average()},
        args.results_dir,
    )
    print(f"wrote {report}")


if __name__ == "__main__":
    main()
