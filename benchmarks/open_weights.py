"""One chat model on the real benchmark: error, latency per item, cost, licence, cut-off split.

    python -m benchmarks.open_weights                       # the stub server (a control run)
    python -m benchmarks.open_weights --base-url http://127.0.0.1:8080/v1 \\
        --model smollm2-135m-instruct --concurrency 1       # e.g. llama.cpp's server

Any OpenAI-compatible server: the frontier family (``conf/model/frontier.yaml``, zero-shot
prompt, cache off, unpaced: a local server has no tier) prices the first ``--items`` test
items of ``data=real`` and the report gives the mean absolute error with its interval,
failures, call latency (p50/p95) and wall time per item, the token cost from the model
catalogue (open weights: $0 per token; the machine is what you pay) and the error before
and after the model's knowledge cut-off. Without ``--base-url`` it starts the stub server, whose
answers are a hash of the prompt: the figures every real model should beat.

Kept out of the default install and of CI: a local model server is the user's own (see the
README's open-weights recipe). Needs the real data in ../shared/data.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from benchmarks.common import base_parser, compose, load_average, print_table, write_report

API_KEY_ENV = "PRICER_BENCH_LOCAL_KEY"  # local servers accept any non-empty key


def measure(args: Any, base_url: str) -> dict[str, Any]:
    from hydra.utils import instantiate

    from pricer.data.dataset import load_curated
    from pricer.evaluation import EvalSettings, evaluate
    from pricer.evaluation.cutoff import cutoff_split, first_available
    from pricer.models.base import INPUT_COLUMNS

    overrides = [
        f"data={args.data}",
        "model=frontier",
        f"model.model={args.model}",
        f"model.base_url={base_url}",
        f"model.api_key_env={API_KEY_ENV}",
        f"model.max_concurrency={args.concurrency}",
        f"model.timeout={args.timeout}",
        "model.tier=null",
        "model.cache_dir=null",
        "model.progress=false",
    ]
    cfg = compose("train", overrides)
    curated = load_curated(cfg.data, cfg.curation)
    items = curated.test.head(args.items).reset_index(drop=True)
    features = list(INPUT_COLUMNS)
    pricer = instantiate(cfg.model).fit(curated.train[features], curated.train["price"])
    load_before = load_average()
    started = time.perf_counter()
    report = pricer.predict_report(items[features])
    wall = time.perf_counter() - started
    settings = EvalSettings.from_config(cfg.eval)
    evaluation = evaluate(items["price"], report.prices, settings=settings)
    split = cutoff_split(
        items["price"],
        report.prices,
        first_available(items["details"].tolist()),
        pricer.knowledge_cutoff(),
    )
    facts = pricer.catalogue_entry()
    stats, metrics = report.stats, evaluation.metrics
    return {
        "model": args.model,
        "server": base_url,
        "weights": facts["llm.model.weights"],
        "licence": facts["llm.model.licence"],
        "parameters_b": facts["llm.model.parameters_b"],
        "items": len(items),
        "mae": metrics["mae"],
        "mae_ci_low": metrics["mae_ci_low"],
        "mae_ci_high": metrics["mae_ci_high"],
        "hit_rate": metrics["hit_rate"],
        "failures": int(metrics["n_failed"]),
        "latency_p50_s": stats["llm.latency_p50_s"],
        "latency_p95_s": stats["llm.latency_p95_s"],
        "wall_seconds_per_item": wall / len(items),
        "cost_per_1k_items_usd": stats["llm.cost_per_1k_items_usd"],
        "concurrency": args.concurrency,
        "cutoff": split.line,
        **{key: value for key, value in split.metrics.items()},
        "load_before": load_before,
        "load_after": load_average(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="an OpenAI-compatible server; default: the stub")
    parser.add_argument("--model", default="gpt-4o-mini", help="model name sent to the server")
    parser.add_argument("--items", type=int, default=250)
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per call")
    parser.add_argument("--data", default="real", help="data config (real: ../shared/data)")
    args = parser.parse_args(argv)
    os.environ.setdefault(API_KEY_ENV, "local")

    from pricer.devtools.stub_server import StubServer

    with contextlib.ExitStack() as stack:
        base_url = args.base_url or stack.enter_context(StubServer()).base_url
        row = measure(args, base_url)
    print_table(
        [row],
        [
            "model",
            "weights",
            "licence",
            "mae",
            "mae_ci_low",
            "mae_ci_high",
            "failures",
            "latency_p50_s",
            "wall_seconds_per_item",
            "cost_per_1k_items_usd",
        ],
        f"{args.model} on {args.items} {args.data} items ({row['server']})",
    )
    print(row["cutoff"])
    name = "open_weights" if args.base_url else "open_weights_stub"
    path = write_report(name, row, args.results_dir)
    print(f"report: {path}")
    return row


if __name__ == "__main__":
    main()
