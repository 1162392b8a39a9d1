"""Training and prediction at scale: every traditional family at 25k, 100k and 400k items.

    python -m benchmarks.training
    python -m benchmarks.training --families tfidf_ridge xgboost --sizes 25000 100000
    python -m benchmarks.training --families random_forest --sizes 100000 \
        --model-override model.max_samples=null --report-name training_rf_all_rows

Each family is built from ``conf/model/<family>.yaml`` with Hydra's compose API and
``instantiate`` (exactly as ``python -m pricer.train model=<family>`` builds it), fitted on the
first N training items of one curated split of 2.8M synthetic raw records
(``experiment=course_scale``: 400k/2k; the split is shuffled, so the head is a random sample),
and prices the 2,000 test items. ``--model-override`` changes a family's setting (Hydra
syntax), to measure what a setting costs in time and accuracy. Each (family,
size) runs in a fresh process: peak memory is that process tree's.

The curated split is built once (about as long as ``benchmarks.curation`` at 2.8M) and then
read from ``curation.cache_dir``; that preparation is not part of any figure.

Target (issue 5): every traditional family fits 400k items in at most 10 minutes on 2 cores.
"""

from __future__ import annotations

import sys
from typing import Any

from benchmarks.common import (
    base_parser,
    child_command,
    compose,
    measure_child,
    peak_rss_mib,
    print_table,
    timed,
    write_answer,
    write_report,
)

# The classical families: the default leaderboard's members (conf/leaderboard.yaml); the
# real-data leaderboard's add the stack (conf/leaderboard_models/real.yaml), measured on request.
FAMILIES = tuple(compose("leaderboard").models)
CHOICES = tuple(compose("leaderboard", ["data=real"]).models)
DEFAULT_SIZES = (25_000, 100_000, 400_000)
RAW_RECORDS = 2_800_000
TARGET_FIT_SECONDS = 600.0


def data_overrides(raw_records: int, train_items: int) -> list[str]:
    return [
        "experiment=course_scale",
        f"data.n_records={raw_records}",
        f"curation.split.train_size={train_items}",
    ]


def prepare(raw_records: int, train_items: int, answer: str | None) -> None:
    """Curate (or find in the cache) the split every measurement reads."""
    from pricer.data.dataset import load_curated

    cfg = compose("train", data_overrides(raw_records, train_items))
    with timed() as took:
        curated = load_curated(cfg.data, cfg.curation)
    write_answer(
        answer,
        {"train": len(curated.train), "test": len(curated.test), "seconds": took.wall},
    )


def run_child(
    family: str,
    size: int,
    raw_records: int,
    train_items: int,
    model_overrides: list[str],
    answer: str | None,
) -> None:
    """Fit one family on ``size`` items and price the test set, in this fresh process."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from pricer.data.dataset import load_curated
    from pricer.models.base import INPUT_COLUMNS

    overrides = data_overrides(raw_records, train_items)
    cfg = compose("train", [f"model={family}", *overrides, *model_overrides])
    with timed() as load:
        curated = load_curated(cfg.data, cfg.curation)
    if len(curated.train) < size:
        raise SystemExit(f"only {len(curated.train):,} training items, {size:,} asked")
    train = curated.train.head(size)
    features = list(INPUT_COLUMNS)
    pricer = instantiate(cfg.model)
    with timed() as fit:
        pricer.fit(train[features], train["price"].to_numpy())
    with timed() as predict:
        prices = pricer.predict(curated.test[features])
    mae = float(abs(prices - curated.test["price"].to_numpy()).mean())
    write_answer(
        answer,
        {
            "family": family,
            "model": OmegaConf.to_container(cfg.model, resolve=True),  # the settings measured
            "train_items": size,
            "predict_items": len(curated.test),
            "load_seconds": load.wall,
            "fit_seconds": fit.wall,
            "fit_cpu_seconds": fit.cpu,
            "predict_seconds": predict.wall,
            "predict_items_per_second": len(curated.test) / predict.wall,
            "test_mae": mae,
            **peak_rss_mib(),
        },
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=CHOICES)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument(
        "--raw-records", type=int, default=RAW_RECORDS, help="synthetic records to curate"
    )
    parser.add_argument(
        "--model-override",
        action="append",
        default=[],
        help="a Hydra override of the family's config, e.g. model.max_samples=null (repeatable)",
    )
    parser.add_argument("--report-name", default="training", help="results/<name>.json")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per measurement")
    args = parser.parse_args(argv)
    train_items = max(args.sizes)
    shared = ["--raw-records", str(args.raw_records), "--train-items", str(train_items)]

    prepared = measure_child(child_command("training", "prepare", *shared), timeout=3600)
    if not prepared.ok:
        print(prepared.stderr_tail, file=sys.stderr)
        raise SystemExit("could not prepare the curated split")
    print(
        f"split: {prepared.payload['train']:,} train / {prepared.payload['test']:,} test "
        f"({prepared.payload['seconds']:,.1f} s; 0 means it came from the cache)",
        flush=True,
    )
    runs = []
    for size in sorted(args.sizes):
        for family in args.families:
            command = child_command(
                "training",
                "child",
                "--family",
                family,
                "--size",
                str(size),
                *shared,
                *(f"--model-override={override}" for override in args.model_override),
            )
            result = measure_child(command, timeout=args.timeout)
            run = {"family": family, "requested_items": size, **result.as_dict()}
            runs.append(run)
            status = "ok" if result.ok else ("TIMED OUT" if result.timed_out else "FAILED")
            print(
                f"{family} @ {size:,}: {status}, fit {run.get('fit_seconds', float('nan')):,.1f} s "
                f"(load {result.load_before} -> {result.load_after})",
                flush=True,
            )
            if not result.ok and not result.timed_out:
                print(result.stderr_tail, file=sys.stderr)
            # Written after every measurement: a long run stopped half-way keeps its figures.
            figures = _figures(prepared.payload, runs, train_items, args.model_override)
            write_report(args.report_name, figures, args.results_dir)
    print_table(
        [_row(run) for run in runs],
        [
            "family",
            "items",
            "fit_s",
            "fit_cpu_s",
            "predict_s",
            "pred/s",
            "peak_MiB",
            "mae",
            "status",
            "load_1m",
        ],
        "Training (fit on N items; predict the 2,000 test items; fresh process each)",
    )
    figures = _figures(prepared.payload, runs, train_items, args.model_override)
    for line in figures["verdicts"]:
        print(line)
    path = write_report(args.report_name, figures, args.results_dir)
    print(f"report: {path}")
    return figures


def _figures(
    split: dict[str, Any], runs: list[dict[str, Any]], largest: int, model_overrides: list[str]
) -> dict[str, Any]:
    return {
        "split": split,
        "model_overrides": model_overrides,
        "runs": runs,
        "target_fit_seconds": TARGET_FIT_SECONDS,
        "verdicts": _verdicts(runs, largest),
    }


def _row(run: dict[str, Any]) -> dict[str, Any]:
    status = "ok" if run["ok"] else ("timeout" if run["timed_out"] else "failed")
    return {
        "family": run["family"],
        "items": run["requested_items"],
        "fit_s": run.get("fit_seconds"),
        "fit_cpu_s": run.get("fit_cpu_seconds"),
        "predict_s": run.get("predict_seconds"),
        "pred/s": run.get("predict_items_per_second"),
        "peak_MiB": run["tree_peak_rss_mib"],
        "mae": run.get("test_mae"),
        "status": status,
        "load_1m": run["load_before"][0],
    }


def _verdicts(runs: list[dict[str, Any]], largest: int) -> list[str]:
    lines = []
    for run in runs:
        if run["requested_items"] != largest or largest < 400_000:
            continue
        if run["ok"]:
            seconds = run["fit_seconds"]
            verdict = "met" if seconds <= TARGET_FIT_SECONDS else "MISSED"
            lines.append(f"{run['family']}: fit {largest:,} items in {seconds:,.0f} s ({verdict})")
        else:
            lines.append(
                f"{run['family']}: no figure ({'timeout' if run['timed_out'] else 'failed'})"
            )
    return lines


def _child_main(argv: list[str], mode: str) -> None:
    parser = base_parser("one measured fit (internal)")
    parser.add_argument("--family")
    parser.add_argument("--size", type=int)
    parser.add_argument("--raw-records", type=int, required=True)
    parser.add_argument("--train-items", type=int, required=True)
    parser.add_argument("--model-override", action="append", default=[])
    parser.add_argument("--answer")
    args = parser.parse_args(argv)
    if mode == "prepare":
        prepare(args.raw_records, args.train_items, args.answer)
    else:
        run_child(
            args.family,
            args.size,
            args.raw_records,
            args.train_items,
            args.model_override,
            args.answer,
        )


if __name__ == "__main__":
    if sys.argv[1:2] in (["child"], ["prepare"]):
        _child_main(sys.argv[2:], sys.argv[1])
    else:
        main()
