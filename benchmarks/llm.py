"""LLM evaluation throughput and pacing: 250 items against a loopback OpenAI-compatible server.

    python -m benchmarks.llm
    python -m benchmarks.llm --concurrency 16 32     # also try other concurrency limits
    python -m benchmarks.llm --only-pacing            # just the enforced-limit runs

The server is ``pricer.devtools.stub_server`` on 127.0.0.1 with a fixed per-call latency
(300 ms by default), so the figures measure the client: the frontier family, built from
``conf/model/frontier.yaml`` with Hydra's compose API, with the cache off. Runs:

- sequential: ``max_concurrency=1``;
- configured: the ``max_concurrency`` of the config;
- configured with injected 429s: bursts of HTTP 429 (with Retry-After) at the start and in
  the middle of the run; items lost (no price) must be zero;
- any ``--concurrency`` given, with the same 429s;
- an enforced limit (issue 13): the stub refuses calls beyond ``--rpm`` requests a minute
  (token bucket, ``--burst`` seconds' worth at once) with 429 + Retry-After, as a provider
  tier does; the same evaluation unpaced (``model.tier=null``: only the SDK's retries) and
  paced to that limit (``model.pacing.rpm``). Reported: 429s answered, items lost, wall time.

The throughput runs set ``model.tier=null``: the stub enforces no limit there, and they
measure the client's concurrency, not a tier.

Targets: 250 evaluations at least 10x faster than one at a time, zero items lost (issue 5);
under an enforced limit, pacing answers every item with few or no 429s (issue 13).
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
    """The first ``n_items`` test items of the default synthetic curation (cached), with the
    training items and prices the pricer is fitted on (a zero-shot pricer reads only the
    prices' ceiling)."""
    from pricer.data.dataset import load_curated
    from pricer.models.base import INPUT_COLUMNS

    cfg = compose("train", [f"data.n_records={n_records}"])
    curated = load_curated(cfg.data, cfg.curation)
    columns = list(INPUT_COLUMNS)
    return curated.test.head(n_items)[columns], (
        curated.train[columns],
        curated.train["price"].to_numpy(),
    )


def run_once(
    items: Any,
    training: tuple[Any, Any],
    base_url: str,
    concurrency: int | None,
    server: Any,
    burst: int,
    retry_after: float,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    """Price ``items`` once; ``burst`` 429s at the start and again half-way through."""
    from hydra.utils import instantiate

    overrides = [
        "model=frontier",
        f"model.base_url={base_url}",
        f"model.api_key_env={API_KEY_ENV}",
        "model.cache_dir=null",
        "model.progress=false",
        *(extra or ["model.tier=null"]),
    ]
    if concurrency is not None:
        overrides.append(f"model.max_concurrency={concurrency}")
    cfg = compose("train", overrides)
    pricer = instantiate(cfg.model).fit(*training)
    state = server.state
    with state.lock:
        state.max_in_flight = 0
        state.faults.clear()
        calls_before = state.counters["POST /chat/completions"]
        refused_before = state.rate_limit.refused if state.rate_limit else 0
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
        "limit_429": (state.rate_limit.refused - refused_before) if state.rate_limit else 0,
        "client_429": stats.get("llm.rate_limited_responses"),
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
    parser.add_argument("--rpm", type=float, default=600.0, help="enforced requests a minute")
    parser.add_argument(
        "--limit-burst",
        type=float,
        default=10.0,
        help="seconds' worth the enforced limit lets through at once",
    )
    parser.add_argument("--only-pacing", action="store_true", help="skip the throughput runs")
    args = parser.parse_args(argv)

    from pricer.devtools.stub_ratelimit import RateLimit

    os.environ.setdefault(API_KEY_ENV, "stub-key")
    items, training = evaluation_items(args.items, args.records)
    runs = []
    with StubServer(latency=args.latency) as server:
        plan = [("sequential", 1, 0), ("configured", None, 0), ("configured + 429s", None, 1)]
        plan += [(f"concurrency {c} + 429s", c, 1) for c in args.concurrency]
        for name, concurrency, with_faults in [] if args.only_pacing else plan:
            burst = args.burst if with_faults else 0
            run = run_once(
                items, training, server.base_url, concurrency, server, burst, args.retry_after
            )
            runs.append({"run": name, **run})
            print(f"{name}: {run['wall_seconds']:,.1f} s, lost {run['items_lost']}", flush=True)
    limited = []
    for name, extra in (
        ("limit, unpaced", ["model.tier=null"]),
        ("limit, paced", ["model.tier=null", f"model.pacing.rpm={args.rpm:g}"]),
    ):
        # A fresh server per run: each starts with a full bucket, as after a quiet minute.
        with StubServer(latency=args.latency) as server:
            server.state.rate_limit = RateLimit(rpm=args.rpm, burst_seconds=args.limit_burst)
            run = run_once(
                items, training, server.base_url, None, server, 0, args.retry_after, extra
            )
        limited.append({"run": name, **run})
        print(
            f"{name}: {run['wall_seconds']:,.1f} s, {run['limit_429']} 429s, "
            f"lost {run['items_lost']}",
            flush=True,
        )
    sequential = runs[0]["wall_seconds"] if runs else None
    for run in runs:
        run["speedup"] = sequential / run["wall_seconds"]
    if runs:
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
    print_table(
        limited,
        [
            "run",
            "max_concurrency",
            "items",
            "wall_seconds",
            "items_lost",
            "limit_429",
            "client_429",
            "retries",
            "http_calls",
            "max_in_flight",
            "load_before",
        ],
        f"Enforced limit: {args.rpm:g} requests a minute, {args.limit_burst:g} s bursts "
        f"({args.items} items, {args.latency * 1000:.0f} ms per call)",
    )
    verdicts = []
    unpaced, paced = limited
    met = paced["items_lost"] == 0 and paced["limit_429"] <= max(2, unpaced["limit_429"] // 20)
    verdicts.append(
        f"pacing: {unpaced['limit_429']} -> {paced['limit_429']} 429s, lost "
        f"{unpaced['items_lost']} -> {paced['items_lost']} -> {'met' if met else 'MISSED'} "
        "(target: no item lost, 429s cut at least 20-fold)"
    )
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
            "enforced_rpm": args.rpm,
            "enforced_burst_seconds": args.limit_burst,
        },
        "runs": runs,
        "enforced_limit": limited,
        "verdicts": verdicts,
    }
    path = write_report("llm", figures, args.results_dir)
    print(f"report: {path}")
    return figures


if __name__ == "__main__":
    main()
