"""What each accuracy idea buys: paired 5-fold cross-validation on the real training rows.

    python -m benchmarks.accuracy                       # every recipe below, then the table
    python -m benchmarks.accuracy --recipes xgboost stack
    python -m benchmarks.accuracy --benchmark           # also fit on all training items and
                                                        # score the 250 test items (look once)

The yardstick is the canonical-distribution rows inside the real training data (the 1,500
rows of the canonical test file after the first 250, ``data=real``). They are cut into 5
folds; each fold is priced by a model fitted on every other training item (the other
canonical folds and all ~6,200 other items), so every canonical row gets one honest price
per recipe. Recipes are compared item by item on the same rows: the table gives each
recipe's MAE, and its mean paired difference in absolute error (with its standard error over
the 1,500 items) against the baseline and against the recipe it builds on. The 250 test items
are not touched unless ``--benchmark`` is given.

Each recipe's out-of-fold prices are cached under ``--cache-dir`` (keyed by its family and
overrides), so adding a recipe reruns only that recipe.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import base_parser, compose, load_average, print_table, write_report

FOLDS = 5
BANDS = ((0, 100), (100, 250), (250, 500), (500, 1000))
_PLAIN = [
    "~model.members.lgbm_l1",
    "~model.members.xgb_log",
    "model.char_ridge_alpha=null",
    "model.title_ridge_alpha=null",
    "model.details_ridge_alpha=null",
    "model.neighbours=false",
]


@dataclass(frozen=True)
class Recipe:
    name: str
    family: str
    overrides: tuple[str, ...]
    builds_on: str | None
    idea: str


# Each recipe adds one idea to the one it builds on; the last one is the committed stack.
RECIPES = (
    Recipe("xgboost", "xgboost", (), None, "today's best family (baseline)"),
    Recipe("lgbm", "stack", tuple(_PLAIN), "xgboost", "LightGBM, lr 0.02, 1500 trees"),
    Recipe(
        "lgbm+ridges",
        "stack",
        tuple(_PLAIN[:2] + _PLAIN[5:]),
        "lgbm",
        "char 2-5-gram, title and details-document ridges",
    ),
    Recipe(
        "lgbm+ridges+knn",
        "stack",
        tuple(_PLAIN[:2]),
        "lgbm+ridges",
        "nearest-neighbour prices",
    ),
    Recipe(
        "stack2",
        "stack",
        (_PLAIN[1],),
        "lgbm+ridges+knn",
        "L1 blend with LightGBM on dollars (L1)",
    ),
    Recipe("stack", "stack", (), "stack2", "+ XGBoost on log price"),
    Recipe(
        "stack+log_linear",
        "stack",
        ("model.correction=log_linear",),
        "stack",
        "calibrated log-linear correction of the blend",
    ),
    Recipe(
        "stack+isotonic",
        "stack",
        ("model.correction=isotonic",),
        "stack",
        "isotonic correction of the blend (log space)",
    ),
)


def real_split() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Training items, the 250 test items, and the positions of the canonical training rows."""
    from pricer.data.dataset import load_curated
    from pricer.data.sources import read_item_files

    cfg = compose("train", ["data=real"])
    curated = load_curated(cfg.data, cfg.curation)
    canonical = read_item_files(list(cfg.data.test_paths)).iloc[int(cfg.data.test_rows) :]
    rows = np.flatnonzero(curated.train["text"].isin(set(canonical["text"])).to_numpy())
    return curated.train, curated.test, rows


def build(recipe: Recipe, seed: int) -> Any:
    from hydra.utils import instantiate

    cfg = compose("train", [f"model={recipe.family}", f"seed={seed}", *recipe.overrides])
    return instantiate(cfg.model)


def _key(recipe: Recipe, seed: int, what: str) -> str:
    text = json.dumps([recipe.family, list(recipe.overrides), seed, what])
    return f"{recipe.name}-{what}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def cross_validate(
    recipe: Recipe, train: pd.DataFrame, rows: np.ndarray, seed: int, cache: Path
) -> dict[str, Any]:
    """Out-of-fold prices of the canonical rows (cached), plus seconds per fold fit."""
    path = cache / f"{_key(recipe, seed, 'cv')}.npz"
    if path.is_file():
        stored = np.load(path)
        return {"prices": stored["prices"], "fit_seconds": float(stored["fit_seconds"])}
    from sklearn.model_selection import KFold

    features = ["text", "title", "category", "details"]
    prices = np.full(len(rows), np.nan)
    seconds = []
    for fold, (_, held) in enumerate(KFold(FOLDS, shuffle=True, random_state=seed).split(rows)):
        keep = np.ones(len(train), dtype=bool)
        keep[rows[held]] = False
        started = time.perf_counter()
        model = build(recipe, seed).fit(train.loc[keep, features], train.loc[keep, "price"])
        seconds.append(time.perf_counter() - started)
        prices[held] = model.predict(train.iloc[rows[held]][features])
        print(f"  {recipe.name} fold {fold + 1}/{FOLDS}: fit {seconds[-1]:.0f} s", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, prices=prices, fit_seconds=np.mean(seconds))
    return {"prices": prices, "fit_seconds": float(np.mean(seconds))}


def benchmark(
    recipe: Recipe, train: pd.DataFrame, test: pd.DataFrame, seed: int, cache: Path
) -> np.ndarray:
    """Prices of the 250 test items from a fit on every training item (cached)."""
    path = cache / f"{_key(recipe, seed, 'benchmark')}.npy"
    if path.is_file():
        return np.load(path)
    features = ["text", "title", "category", "details"]
    model = build(recipe, seed).fit(train[features], train["price"])
    prices = np.asarray(model.predict(test[features]), dtype=float)
    np.save(path, prices)
    return prices


def paired(errors: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Mean paired difference in absolute error and its standard error."""
    difference = errors - reference
    return float(difference.mean()), float(difference.std(ddof=1) / np.sqrt(len(difference)))


def band_bias(truth: np.ndarray, prices: np.ndarray) -> dict[str, float]:
    """Mean signed error (prediction - truth) by true-price band."""
    return {
        f"bias {low}-{high}": float(np.mean(prices[m] - truth[m]))
        for low, high in BANDS
        if (m := (truth >= low) & (truth < high)).any()
    }


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=[r.name for r in RECIPES])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/pricer-accuracy"))
    parser.add_argument("--benchmark", action="store_true", help="also score the 250 test items")
    args = parser.parse_args()
    known = {recipe.name: recipe for recipe in RECIPES}
    unknown = sorted(set(args.recipes) - set(known))
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {list(known)}")
    train, test, rows = real_split()
    truth = train["price"].to_numpy()[rows]
    print(f"{len(train)} training items, {len(rows)} canonical rows in {FOLDS} folds", flush=True)
    load_before = load_average()
    results = {}
    for name in args.recipes:
        results[name] = cross_validate(known[name], train, rows, args.seed, args.cache_dir)
        if args.benchmark:
            results[name]["test"] = benchmark(known[name], train, test, args.seed, args.cache_dir)
    baseline = np.abs(results[args.recipes[0]]["prices"] - truth)
    table = []
    for name in args.recipes:
        recipe, errors = known[name], np.abs(results[name]["prices"] - truth)
        row: dict[str, Any] = {"recipe": name, "idea": recipe.idea, "CV MAE": errors.mean()}
        diff, se = paired(errors, baseline)
        row[f"vs {args.recipes[0]}"] = f"{diff:+.2f} ± {se:.2f}"
        if recipe.builds_on in results:
            diff, se = paired(errors, np.abs(results[recipe.builds_on]["prices"] - truth))
            row["vs builds_on"] = f"{diff:+.2f} ± {se:.2f}"
        row["fit s/fold"] = results[name]["fit_seconds"]
        row |= band_bias(truth, results[name]["prices"])
        if "test" in results[name]:
            row["benchmark MAE"] = float(np.mean(np.abs(results[name]["test"] - test["price"])))
        table.append(row)
    columns = list(dict.fromkeys(key for row in table for key in row))
    print_table(table, columns, title="Paired 5-fold CV on the canonical training rows")
    write_report(
        "accuracy",
        {
            "folds": FOLDS,
            "canonical_rows": len(rows),
            "training_items": len(train),
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "rows": table,
        },
    )


if __name__ == "__main__":
    main()
