"""LLM evaluation throughput: 250 items against a loopback OpenAI-compatible server.

    python -m benchmarks.llm
    python -m benchmarks.llm --concurrency 16 32     # also try other concurrency limits

The server is ``pricer.devtools.stub_server`` on 127.0.0.1 with a fixed per-call latency
(300 ms by default), so the figures measure the client: the frontier family, built from
``conf/model/frontier.yaml`` with Hydra's compose API, with the cache off. Runs:

- sequential: ``max_concurrency=1``;
- configured: the ``max_concurrency`` of the config;
- configured with injected 429s: bursts of HTTP 429 (with Retry-After) at the start and in
  the middle of the run; items lost (no price) must be zero;
- any ``--concurrency`` given, with the same 429s.

Target (issue 5): 250 evaluations at least 10x faster than one at a time, zero items lost.
With a fixed latency the best possible speed-up is the concurrency limit itself.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np

from benchmarks.common import base_parser, compose, load_average, print_table, write_report

TARGET_SPEEDUP = 10.0
API_KEY_ENV = "PRICER_BENCH_STUB_KEY"  # a variable of our own: never a real key


def evaluation_items(n_items: int, n_records: int) -> Any:
    """The first ``n_items`` test items of the default synthetic curation (cached)."""
    from pricer.data.dataset import load_curated
    from pricer.models.base import INPUT_COLUMNS

    cfg = compose("train", [f"data.n_records={n_records}"])
    curated = load_curated(cfg.data, cfg.curation)
    return curated.test.head(n_items)[list(INPUT_COLUMNS)]


def run_once(
    items: Any,
    base_url: str,
    concurrency: int | None,
    server: Any,
    burst: int,
    retry_after: float,
) -> dict[str, Any]:
    """Price ``items`` once; ``burst`` 429s at the start and again half-way through."""
    from hydra.utils import instantiate

    overrides = [
        "model=frontier",
        f"model.base_url={base_url}",
        f"model.api_key_env={API_KEY_ENV}",
        "model.cache_dir=null",
        "model.progress=false",
    ]
    if concurrency is not None:
        overrides.append(f"model.max_concurrency={concurrency}")
    cfg = compose("train", overrides)
    pricer = instantiate(cfg.model).fit(items, np.ones(len(items)))
    state = server.state
    with state.lock:
        state.max_in_flight = 0
        state.faults.clear()
        calls_before = state.counters["POST /chat/completions"]
    timer = None
    if burst:
        state.fail_next(burst, 429, retry_after=retry_after)
        # A second burst once the first calls are answered: 429s in the middle of a run too.
        halfway = len(items) * state.latency / max(cfg.model.max_concurrency, 1) / 2
        timer = threading.Timer(halfway, state.fail_next, (burst, 429, retry_after))
        timer.start()
    load_before = load_average()
    started = time.perf_counter()
    report = pricer.predict_report(items)
    wall = time.perf_counter() - started
    if timer is not None:
        timer.cancel()
    stats = report.stats
    return {
        "max_concurrency": int(cfg.model.max_concurrency),
        "items": len(items),
        "wall_seconds": wall,
        "items_lost": int(np.isnan(report.prices).sum()),
        "failures": stats.get("llm.failures"),
        "retries": stats.get("llm.retries"),
        "injected_429": 2 * burst if burst else 0,
        "http_calls": state.counters["POST /chat/completions"] - calls_before,
        "max_in_flight": state.max_in_flight,
        "load_before": load_before,
        "load_after": load_average(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from pricer.devtools.stub_server import StubServer

    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=250)
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per call")
    parser.add_argument("--burst", type=int, default=20, help="429s per burst (two bursts)")
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[])
    parser.add_argument("--records", type=int, default=60_000, help="synthetic raw records")
    args = parser.parse_args(argv)

    os.environ.setdefault(API_KEY_ENV, "stub-key")
    items = evaluation_items(args.items, args.records)
    runs = []
    with StubServer(latency=args.latency) as server:
        plan = [("sequential", 1, 0), ("configured", None, 0), ("configured + 429s", None, 1)]
        plan += [(f"concurrency {c} + 429s", c, 1) for c in args.concurrency]
        for name, concurrency, with_faults in plan:
            burst = args.burst if with_faults else 0
            run = run_once(items, server.base_url, concurrency, server, burst, args.retry_after)
            runs.append({"run": name, **run})
            print(f"{name}: {run['wall_seconds']:,.1f} s, lost {run['items_lost']}", flush=True)
    sequential = runs[0]["wall_seconds"]
    for run in runs:
        run["speedup"] = sequential / run["wall_seconds"]
    print_table(
        runs,
        [
            "run",
            "max_concurrency",
            "items",
            "wall_seconds",
            "speedup",
            "items_lost",
            "injected_429",
            "retries",
            "http_calls",
            "max_in_flight",
            "load_before",
        ],
        f"LLM evaluation: {args.items} items, {args.latency * 1000:.0f} ms per call (loopback)",
    )
    verdicts = []
    for run in runs[1:]:
        met = run["speedup"] >= TARGET_SPEEDUP and run["items_lost"] == 0
        verdicts.append(
            f"{run['run']}: {run['speedup']:.1f}x, {run['items_lost']} lost -> "
            f"{'met' if met else 'MISSED'} (target >= {TARGET_SPEEDUP:.0f}x, 0 lost)"
        )
    for line in verdicts:
        print(line)
    figures = {
        "settings": {
            "items": args.items,
            "latency_seconds": args.latency,
            "burst": args.burst,
            "retry_after_seconds": args.retry_after,
        },
        "runs": runs,
        "verdicts": verdicts,
    }
    path = write_report("llm", figures, args.results_dir)
    print(f"report: {path}")
    return figures


if __name__ == "__main__":
    main()
