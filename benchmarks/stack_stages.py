"""Where the stack family's fit time goes at scale, stage by stage, printed as it goes.

    python -m benchmarks.stack_stages --size 400000
    python -m benchmarks.stack_stages --size 400000 --family stack_budget
    python -m benchmarks.stack_stages --size 25000 --model-override model.stack_folds=2

Fits ``conf/model/stack.yaml`` (or ``--family``'s, e.g. ``stack_budget``) on the first N
training items of the same curated split of 2.8M synthetic raw records as
``benchmarks.training`` (``experiment=course_scale``; the split is built once and cached, not
timed), with each stage timed and printed the moment it ends: the features, part by part
(words: TF-IDF, SVD, ridge, neighbour prices; characters; title; details; hand features), then
every member fit (``stack_folds`` fold fits and the refit on every row, per member; ``n_jobs``
of them at a time, so their lines overlap), the neighbour residuals, then the whole fit and the
prediction of the test items. A whole fit of the stack at 400k took 1,920 s on 2 cores
(2026-12-03, member fits, ridge folds and neighbour chunks in threads, one holdout instead of
the members' folds; 7,008 s with none of that), of stack_budget 546 s (2026-12-04). The printed
lines are the measurement even when the run is stopped before its end, and ``results/<report
name>.json`` is written at the end. The fit is the family's own code (``StackPricer.fit``);
only its feature building and member fitting are wrapped to read the clock.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import base_parser, compose, load_average, peak_rss_mib, write_report
from benchmarks.training import RAW_RECORDS, data_overrides


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from hydra.utils import instantiate
    from sklearn import pipeline as pipeline_module
    from sklearn.compose import _column_transformer as column_transformer

    from pricer.data.dataset import load_curated
    from pricer.models import stack as stack_module
    from pricer.models.base import INPUT_COLUMNS

    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=400_000, help="training items")
    parser.add_argument(
        "--raw-records", type=int, default=RAW_RECORDS, help="synthetic records to curate"
    )
    parser.add_argument(
        "--family", default="stack", help="a stack config in conf/model/: stack, stack_budget"
    )
    parser.add_argument("--model-override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--report-name", default="stack_stages")
    args = parser.parse_args(argv)

    data = data_overrides(args.raw_records, args.size)
    cfg = compose("train", [f"model={args.family}", *data, *args.model_override])
    curated = load_curated(cfg.data, cfg.curation)
    if len(curated.train) < args.size:
        raise SystemExit(f"only {len(curated.train):,} training items, {args.size:,} asked")
    train = curated.train.head(args.size)
    items, prices = train[list(INPUT_COLUMNS)], train["price"].to_numpy()
    stages: list[dict[str, Any]] = []
    started = time.perf_counter()

    def stage(name: str, seconds: float) -> None:
        stages.append({"stage": name, "seconds": round(seconds, 1), "load": load_average()})
        print(
            f"[{time.strftime('%H:%M:%S')}] {name}: {seconds:.1f} s "
            f"(total {time.perf_counter() - started:.0f} s, load {load_average()})",
            flush=True,
        )

    pricer = instantiate(cfg.model)
    names = {id(member): name for name, member in pricer.members.items()}
    fits: dict[str, int] = {}
    fit_member = stack_module.StackPricer._fit_member

    def timed_member(self: Any, member: Any, dense: Any, target: Any) -> Any:
        name = names.get(id(member), type(member).__name__)
        # Threads start a member's fold fits in any order: a fold fit is told from the refit
        # by its rows, and numbered as it starts, not by its fold.
        if len(target) == len(prices):
            kind = "refit"
        else:
            fits[name] = fits.get(name, 0) + 1
            kind = f"fold fit {fits[name]}"
        begun = time.perf_counter()
        fitted = fit_member(self, member, dense, target)
        stage(f"{name} {kind} ({len(target):,} rows)", time.perf_counter() - begun)
        return fitted

    make_features = stack_module.StackPricer.make_features
    fit_residuals = stack_module.StackPricer._fit_own_residuals

    def timed_residuals(self: Any, items: Any, target: Any, weights: Any) -> None:
        begun = time.perf_counter()
        fit_residuals(self, items, target, weights)
        stage(
            "neighbour residuals (text and title of the out-of-fold rows)",
            time.perf_counter() - begun,
        )

    # Each part of the features' ColumnTransformer, timed where it fits its (cloned) part;
    # the parts fit one after another, in the order they are listed.
    # Inside a part, each step a pipeline or feature union fits through scikit-learn's
    # helper is timed too, one level down (the words' TF-IDF, SVD, ridge and neighbours).
    fit_part = column_transformer._fit_transform_one
    fit_step = pipeline_module._fit_transform_one
    parts: list[str] = []
    within: list[str] = []  # the part being fitted, if any

    def timed_part(*args: Any, **kwargs: Any) -> Any:
        if within:  # a part that is a ColumnTransformer itself (the hand features)
            return fit_part(*args, **kwargs)
        within.append(parts.pop(0) if parts else "part")
        begun = time.perf_counter()
        try:
            fitted = fit_part(*args, **kwargs)
        finally:
            name = within.pop()
        stage(f"features: {name}", time.perf_counter() - begun)
        return fitted

    def timed_step(transformer: Any, *args: Any, **kwargs: Any) -> Any:
        if len(within) != 1:  # outside the features, or deeper than one level
            return fit_step(transformer, *args, **kwargs)
        within.append(type(transformer).__name__)
        begun = time.perf_counter()
        try:
            fitted = fit_step(transformer, *args, **kwargs)
        finally:
            name = within.pop()
        stage(f"features: {within[0]} / {name}", time.perf_counter() - begun)
        return fitted

    def timed_features(self: Any, without: Any = ()) -> Any:
        features = make_features(self, without)
        fit_transform = features.fit_transform

        def fit_transform_timed(X: Any, y: Any, **params: Any) -> Any:
            parts[:] = [name for name, _, _ in features.transformers]
            begun = time.perf_counter()
            dense = fit_transform(X, y, **params)  # params: routed weights, if any
            stage(f"features ({dense.shape[1]} columns)", time.perf_counter() - begun)
            return dense

        features.fit_transform = fit_transform_timed
        return features

    print(f"{args.family} on {args.size:,} items, load {load_average()}", flush=True)
    stack_module.StackPricer._fit_member = timed_member
    stack_module.StackPricer.make_features = timed_features
    stack_module.StackPricer._fit_own_residuals = timed_residuals
    column_transformer._fit_transform_one = timed_part
    pipeline_module._fit_transform_one = timed_step
    try:
        pricer.fit(items, prices)
    finally:
        stack_module.StackPricer._fit_member = fit_member
        stack_module.StackPricer.make_features = make_features
        stack_module.StackPricer._fit_own_residuals = fit_residuals
        column_transformer._fit_transform_one = fit_part
        pipeline_module._fit_transform_one = fit_step
    total = time.perf_counter() - started
    stage("whole fit", total)
    begun = time.perf_counter()
    predicted = pricer.predict(curated.test[list(INPUT_COLUMNS)])
    stage(f"predict ({len(predicted):,} items)", time.perf_counter() - begun)
    mae = float(abs(predicted - curated.test["price"].to_numpy()).mean())
    figures = {
        "train_items": args.size,
        "family": args.family,
        "model_overrides": args.model_override,
        "fit_seconds": round(total, 1),
        "test_mae": round(mae, 2),
        "stages": stages,
        **peak_rss_mib(),
    }
    write_report(args.report_name, figures, args.results_dir)
    return figures


if __name__ == "__main__":
    main()
