"""Model files: size, save and load time, and accuracy of every leaderboard family.

    python -m benchmarks.model_size
    python -m benchmarks.model_size --families random_forest \
        --overrides models.random_forest.n_estimators=100
    python -m benchmarks.model_size --demo     # also: store growth of one real leaderboard run

Each family is built from the default leaderboard config (``conf/leaderboard.yaml``: the
embedded synthetic data, what ``make demo`` runs), fitted on its training items, and priced on
the 2,000 test items (MAE on all of them, and on the 250 the leaderboard reports). Then:

- ``pickle MB``: the pricer pickled (protocol 5), the format logged pricers used before;
- ``file MB``, ``save s``, ``load s``: the skops file ``pricer.tracking.model_files`` writes
  (training-only tree statistics dropped, deflate level 6) and reads back (trusted types
  checked); ``max diff $``: the largest difference between the loaded and the fitted pricer's
  prices;
- with ``--demo``: the store growth of one ``python -m pricer.leaderboard`` (same overrides) on a
  fresh SQLite store with its artifacts beside it: what ``make demo`` adds to a user's store.

Fitting runs in this process, one family after another (the fits are what the leaderboard
does; this benchmark measures what comes after them).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    PROJECT_ROOT,
    base_parser,
    compose,
    load_average,
    print_table,
    store_env,
    timed,
    write_report,
)

MB = 1e6
DEMO_TARGET_MB = 50.0
COLUMNS = (
    "family",
    "fit s",
    "pickle MB",
    "file MB",
    "save s",
    "load s",
    "mae 2000",
    "mae 250",
    "max diff $",
)


def measure_family(family: str, model_cfg: Any, curated: Any, folder: Path) -> dict[str, Any]:
    from hydra.utils import instantiate

    from pricer.models.base import INPUT_COLUMNS
    from pricer.tracking.model_files import load_pricer, save_pricer

    features = list(INPUT_COLUMNS)
    test, truth = curated.test[features], curated.test["price"].to_numpy()
    pricer = instantiate(model_cfg)
    with timed() as fit:
        pricer.fit(curated.train[features], curated.train["price"].to_numpy())
    prices = pricer.predict(test)
    pickled = len(pickle.dumps(pricer, protocol=5))
    path = folder / f"{family}.skops"
    with timed() as save:
        save_pricer(pricer, path)
    with timed() as load:
        loaded = load_pricer(path)
    errors = np.abs(prices - truth)
    return {
        "family": family,
        "fit s": round(fit.wall, 1),
        "pickle MB": round(pickled / MB, 2),
        "file MB": round(path.stat().st_size / MB, 2),
        "save s": round(save.wall, 2),
        "load s": round(load.wall, 2),
        "mae 2000": round(float(errors.mean()), 3),
        "mae 250": round(float(errors[:250].mean()), 3),
        # Not exactly 0 for forests with n_jobs > 1: threads add up the trees in any order.
        "max diff $": float(np.abs(loaded.predict(test) - prices).max()),
    }


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def demo_growth(overrides: list[str], families: list[str] | None) -> dict[str, Any]:
    """Run the leaderboard on a fresh store; how much the store (database + artifacts) grew."""
    with tempfile.TemporaryDirectory(prefix="model_size_demo_") as tmp:
        store = Path(tmp) / "store"
        store.mkdir()
        extra = [f"families=[{','.join(families)}]"] if families else []
        env = store_env(f"sqlite:///{store / 'mlflow.db'}")
        command = [
            sys.executable,
            "-m",
            "pricer.leaderboard",
            f"tracking.artifact_location={store / 'artifacts'}",
            f"hydra.run.dir={Path(tmp) / 'hydra'}",
            *overrides,
            *extra,
        ]
        with timed() as took:
            result = subprocess.run(
                command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
            )
        if result.returncode != 0:
            raise SystemExit(f"leaderboard failed:\n{result.stderr[-3000:]}")
        artifacts = folder_bytes(store / "artifacts")
        models_dir = store / "artifacts" / "models"  # MLflow 3 keeps logged models here
        models = folder_bytes(models_dir) if models_dir.is_dir() else 0
        return {
            "store_mb": round(folder_bytes(store) / MB, 1),
            "artifacts_mb": round(artifacts / MB, 1),
            "models_mb": round(models / MB, 1),
            "database_mb": round((store / "mlflow.db").stat().st_size / MB, 1),
            "wall_seconds": round(took.wall, 1),
            "target_mb": DEMO_TARGET_MB,
            "met": folder_bytes(store) / MB < DEMO_TARGET_MB,
        }


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="*", help="default: every leaderboard family")
    parser.add_argument(
        "--overrides", nargs="*", default=[], help="Hydra overrides of conf/leaderboard.yaml"
    )
    parser.add_argument("--demo", action="store_true", help="also measure a real leaderboard run")
    parser.add_argument("--report-name", default="model_size")
    args = parser.parse_args(argv)

    from pricer.data.dataset import load_curated

    cfg = compose("leaderboard", args.overrides)
    families = args.families or list(cfg.models)
    curated = load_curated(cfg.data, cfg.curation)
    load_before = load_average()
    rows = []
    with tempfile.TemporaryDirectory(prefix="model_size_") as tmp:
        for family in families:
            rows.append(measure_family(family, cfg.models[family], curated, Path(tmp)))
            print_table(rows[-1:], COLUMNS)
    print_table(rows, COLUMNS, title="Model files on the default synthetic leaderboard")
    figures: dict[str, Any] = {
        "overrides": args.overrides,
        "train_items": len(curated.train),
        "test_items": len(curated.test),
        "families": rows,
        "load_before": load_before,
        "load_after": load_average(),
    }
    if args.demo:
        demo = demo_growth(args.overrides, args.families)
        print(
            f"\nmake demo store growth: {demo['store_mb']} MB (models {demo['models_mb']} MB, "
            f"database {demo['database_mb']} MB; target < {DEMO_TARGET_MB:.0f} MB: "
            f"{'met' if demo['met'] else 'missed'}) in {demo['wall_seconds']} s"
        )
        figures["demo"] = demo
    print(f"report: {write_report(args.report_name, figures, args.results_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
