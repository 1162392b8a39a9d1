"""Shared sweeps at team scale: worker processes joining one Optuna study, on two stores.

    python -m benchmarks.sweep_team [--workers 4] [--trials 5] [--family tfidf_ridge]

For each store:

- ``postgres``: a throwaway PostgreSQL cluster (tests/server/servers.py) with a real
  ``mlflow server`` on it (basic-auth, artifacts proxied; the workers log over HTTP as a user
  with MLFLOW_TRACKING_USERNAME/PASSWORD) and the Optuna study in the same PostgreSQL;
- ``sqlite``: the default local store (``sqlite:///.../mlflow.db``) and the study in a SQLite
  file beside it.

Each runs, after an untimed one-trial warm-up that fills the curation cache:

- one worker: one ``python -m pricer.train -m hparams_search=<family>`` process running
  workers x trials trials;
- the team: ``workers`` such processes started together, ``trials`` each, on one new study.

and counts, from Optuna's storage and MLflow: trials lost (asked of Optuna but not COMPLETE with
a FINISHED run under the study's parent), trials duplicated (a trial number with more than one
run), parent runs of the study (must be 1) and parameter sets proposed twice.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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

SMALL = [
    "data.n_records=3000",
    "curation.split.test_size=200",
    "validation.size=200",
    "tracking.log_model=false",
]
USER, PASSWORD = "bench", "bench-secret"


def sweep(
    family: str, storage: str, study: str, n_trials: int, folder: Path, tag: str
) -> list[str]:
    return [
        sys.executable, "-m", "pricer.train", "-m", f"hparams_search={family}", *SMALL,
        f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.study_name={study}", f"curation.cache_dir={folder / 'cache'}",
        f"hydra.sweep.dir={folder / 'multirun' / tag}",
    ]  # fmt: skip


def run_workers(commands: list[list[str]], env: dict[str, str], folder: Path) -> float:
    """Start the processes together; wall seconds until the last one ends. Fails on an error."""
    started = time.perf_counter()
    logs = [(folder / f"worker-{time.time_ns()}-{n}.log").open("w") for n in range(len(commands))]
    processes = [
        subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        for command, log in zip(commands, logs, strict=True)
    ]
    try:
        codes = [process.wait(timeout=3600) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        for log in logs:
            log.close()
    wall = time.perf_counter() - started
    if any(codes):
        failed = [
            Path(log.name).read_text()[-2000:] for log, c in zip(logs, codes, strict=True) if c
        ]
        raise RuntimeError(f"a sweep worker failed:\n{failed[0]}")
    return wall


def audit(storage: str, study_name: str, expected: int) -> dict[str, Any]:
    """What Optuna and MLflow hold for the study."""
    import mlflow
    import optuna

    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`pricer.sweep.study` = '{study_name}'",
        output_format="list",
    )
    parents = [run for run in runs if run.data.tags.get("pricer.kind") == "sweep"]
    parent_ids = {run.info.run_id for run in parents}
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") in parent_ids]
    per_trial = collections.Counter(run.data.tags["pricer.sweep.trial"] for run in children)
    finished = {
        int(run.data.tags["pricer.sweep.trial"])
        for run in children
        if run.info.status == "FINISHED" and "validation.mae" in run.data.metrics
    }
    complete = {t.number for t in trials if t.state == optuna.trial.TrialState.COMPLETE}
    proposals = collections.Counter(json.dumps(t.params, sort_keys=True) for t in trials)
    return {
        "trials_expected": expected,
        "optuna_trials": len(trials),
        "complete_with_finished_run": len(complete & finished),
        "trials_lost": expected - len(complete & finished),
        "trials_duplicated": sum(count - 1 for count in per_trial.values() if count > 1),
        "parent_runs": len(parents),
        "child_runs": len(children),
        "params_proposed_twice": sum(count - 1 for count in proposals.values() if count > 1),
    }


@contextlib.contextmanager
def store(kind: str, folder: Path) -> Iterator[tuple[dict[str, str], str]]:
    """(environment for the workers, Optuna storage URL) of a tracking store."""
    env = store_env()
    if kind == "sqlite":
        import mlflow

        uri = f"sqlite:///{folder / 'mlflow.db'}"
        mlflow.MlflowClient(tracking_uri=uri).search_experiments()  # created before workers
        env["MLFLOW_TRACKING_URI"] = uri
        yield env, f"sqlite:///{folder / 'optuna.db'}"
        return
    from tests.server.servers import create_users, mlflow_server, throwaway_postgres

    with throwaway_postgres() as postgres, mlflow_server(postgres, folder) as server:
        create_users(server, {USER: PASSWORD})
        env.update(
            MLFLOW_TRACKING_URI=server.uri,
            MLFLOW_TRACKING_USERNAME=USER,
            MLFLOW_TRACKING_PASSWORD=PASSWORD,
        )
        yield env, postgres.url("optuna")


def measure(kind: str, family: str, workers: int, trials: int) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"sweep-team-{kind}-") as tmp:
        folder = Path(tmp)
        with store(kind, folder) as (env, storage):
            os.environ.update({k: v for k, v in env.items() if k.startswith("MLFLOW_TRACKING")})
            run_workers([sweep(family, storage, "warmup", 1, folder, "warmup")], env, folder)
            for label, n_workers, n_trials in (
                ("1 worker", 1, workers * trials),
                (f"{workers} workers", workers, trials),
            ):
                study = f"{kind}-{n_workers}x{n_trials}"
                load_before = load_average()
                wall = run_workers(
                    [
                        sweep(family, storage, study, n_trials, folder, f"{study}-{n}")
                        for n in range(n_workers)
                    ],
                    env,
                    folder,
                )
                counts = audit(storage, study, n_workers * n_trials)
                rows.append(
                    {
                        "store": kind,
                        "run": label,
                        "trials": n_workers * n_trials,
                        "wall_s": round(wall, 1),
                        "trials_per_min": round(60 * n_workers * n_trials / wall, 1),
                        **counts,
                        "load_before": load_before,
                        "load_after": load_average(),
                    }
                )
                print_table(rows[-1:], list(rows[-1])[:9], f"{kind}: {label}")
    return rows


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=5, help="trials per worker")
    parser.add_argument("--family", default="tfidf_ridge", help="a family with an hparams_search")
    parser.add_argument("--stores", nargs="+", default=["postgres", "sqlite"])
    args = parser.parse_args()
    rows = []
    for kind in args.stores:
        rows += measure(kind, args.family, args.workers, args.trials)
    columns = [
        "store", "run", "trials", "wall_s", "trials_per_min", "trials_lost",
        "trials_duplicated", "parent_runs", "params_proposed_twice", "load_before",
    ]  # fmt: skip
    print_table(rows, columns, f"{args.workers} workers x {args.trials} trials of {args.family}")
    path = write_report(
        "sweep_team",
        {"family": args.family, "workers": args.workers, "trials": args.trials, "rows": rows},
        args.results_dir,
    )
    print(f"\nreport: {path}")


if __name__ == "__main__":
    main()
