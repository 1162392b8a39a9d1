"""Pacing to a tier's limits, against the stub's enforced RPM/TPM (real HTTP, real SDK)."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import numpy as np
import pytest
from hydra.utils import instantiate

from pricer.devtools.stub_ratelimit import RateLimit, request_tokens
from pricer.devtools.stub_server import StubServer
from pricer.errors import ConfigError
from pricer.models.llm.client import Pacer, Pacing, estimate_tokens
from tests.llm.conftest import KEY_ENV

CHAT = "POST /chat/completions"


def test_stub_limit_refuses_beyond_the_bucket_and_says_when_to_come_back() -> None:
    limit = RateLimit(rpm=60, burst_seconds=2.0)  # one request a second, two at once
    assert limit.take(10, now=0.0) == 0.0
    assert limit.take(10, now=0.0) == 0.0
    assert limit.take(10, now=0.25) == pytest.approx(0.75)  # a quarter of a request refilled
    assert limit.take(10, now=1.0) == 0.0
    assert limit.refused == 1


def test_stub_token_limit_counts_prompt_and_completion_allowance() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 400}], "max_completion_tokens": 16}
    assert request_tokens(body) == 100 + 16
    limit = RateLimit(tpm=60 * 100, burst_seconds=2.0)  # 100 tokens a second, 200 at once
    assert limit.take(116, now=0.0) == 0.0
    assert limit.take(116, now=0.0) == pytest.approx(0.32)  # 84 left, 32 short at 100/s
    assert limit.take(10_000, now=10.0) == 0.0  # bigger than the bucket: passes when full


def test_client_estimate_matches_what_the_stub_charges(make_pricer, make_items) -> None:
    items = make_items(5, seed=3)
    pricer = make_pricer().fit(items, items["price"])
    for request in pricer.requests(items):
        assert estimate_tokens(request) == request_tokens(request)


def test_pacer_spaces_requests_to_the_rate_after_the_burst() -> None:
    async def send(n: int, pacing: Pacing) -> list[float]:
        pacer = Pacer(pacing)
        start = time.perf_counter()
        times = []
        for _ in range(n):
            await pacer.wait(50)
            times.append(time.perf_counter() - start)
        return times

    # 600 requests a minute at full headroom: 10 a second, bursts of 0.5 s worth (5).
    times = asyncio.run(send(10, Pacing(rpm=600, tpm=None, burst_seconds=0.5, headroom=1.0)))
    assert times[4] < 0.05  # the burst goes at once
    assert times[-1] == pytest.approx(0.5, abs=0.1)  # then 10 a second
    # Tokens: 50 per request against 6,000 a minute (100 a second), 100 at once.
    times = asyncio.run(send(4, Pacing(rpm=None, tpm=6000, burst_seconds=1.0, headroom=1.0)))
    assert times[1] < 0.05 and times[-1] == pytest.approx(1.0, abs=0.15)


def test_pacing_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="headroom"):
        Pacing(rpm=10, tpm=None, headroom=1.5)
    with pytest.raises(ValueError, match="rpm"):
        Pacing(rpm=0, tpm=None)
    assert not Pacing(rpm=None, tpm=None).active


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # Each was a TypeError traceback at fit, and true was taken for 1 request a minute.
        ("model.pacing.rpm=abc", r"^pacing rpm must be a number > 0 or null, got 'abc'$"),
        ("model.pacing.rpm=true", r"^pacing rpm must be a number > 0 or null, got True$"),
        # These two paced to the catalogue's tier, as if the knob were unset.
        ("model.pacing.rpm=false", r"^pacing rpm must be a number > 0 or null, got False$"),
        ("model.pacing.tpm=0", r"^pacing tpm must be a number > 0 or null, got 0$"),
        ("model.pacing.tpm=abc", r"^pacing tpm must be a number > 0 or null, got 'abc'$"),
        ("model.pacing.burst_seconds=soon", r"^pacing burst_seconds must be a number > 0, got"),
        ("model.pacing.headroom=nan", r"^pacing headroom must be in \(0, 1\], got nan$"),
        ("+model.pacing.rmp=100", r"^unknown key 'pacing\.rmp' \(did you mean 'pacing\.rpm'"),
    ],
)
def test_pacing_knobs_that_are_no_numbers_are_one_line_at_fit(
    compose_conf, make_items, api_key, override: str, message: str
) -> None:
    cfg = compose_conf("train", ["model=frontier", f"model.api_key_env={KEY_ENV}", override])
    items = make_items(3, seed=0)
    with pytest.raises(ConfigError, match=message):
        instantiate(cfg.model).fit(items, items["price"])


def test_the_tier_in_the_catalogue_sets_the_pace(compose_conf) -> None:
    pricer = instantiate(compose_conf("train", ["model=frontier"]).model)
    limits = pricer.pacing_limits()
    assert (limits.rpm, limits.tpm) == (500, 200_000)  # gpt-4o-mini, tier 1
    overridden = instantiate(
        compose_conf("train", ["model=frontier", "model.tier=tier3", "model.pacing.rpm=42"]).model
    ).pacing_limits()
    assert (overridden.rpm, overridden.tpm) == (42, 4_000_000)
    unpaced = instantiate(compose_conf("train", ["model=frontier", "model.tier=null"]).model)
    assert not unpaced.pacing_limits().active


def price_under_limit(make_pricer, items, pacing: dict) -> tuple[np.ndarray, dict, int, int]:
    """Price ``items`` against a fresh stub enforcing 600 requests a minute, 1 s bursts."""
    with StubServer(latency=0.02) as stub:
        stub.state.rate_limit = RateLimit(rpm=600, burst_seconds=1.0)
        pricer = make_pricer(
            base_url=stub.base_url, max_concurrency=16, max_retries=8, pacing=pacing
        ).fit(items, items["price"])
        report = pricer.predict_report(items)
        return report.prices, report.stats, stub.state.rate_limit.refused, stub.state.counters[CHAT]


def test_pacing_avoids_the_429_storm_an_enforced_limit_causes(make_pricer, make_items) -> None:
    items = make_items(40, seed=4)
    knobs = {"tpm": None, "burst_seconds": 1.0, "headroom": 0.9}
    # Unpaced: 16 calls in flight against 10 requests a second.
    _, unpaced, refused_unpaced, calls_unpaced = price_under_limit(
        make_pricer, items, {"rpm": None, **knobs}
    )
    prices, paced, refused_paced, calls_paced = price_under_limit(
        make_pricer, items, {"rpm": 600, **knobs}
    )
    assert refused_unpaced >= len(items) // 2  # a storm: at least one 429 per two items
    assert unpaced["llm.rate_limited_responses"] == refused_unpaced  # the client saw them all
    assert refused_paced <= 2 and calls_paced <= len(items) + 2
    assert paced["llm.failures"] == 0 and not np.isnan(prices).any()
    assert calls_unpaced > calls_paced
    # 40 items at 9 a second after a burst of 9: no faster than the limit allows.
    assert paced["llm.wall_seconds"] >= (len(items) - 9) / 9 - 0.2
    assert math.isfinite(paced["llm.latency_p50_s"])


@pytest.mark.parametrize(("retry_after", "refused"), [(86_400.0, 1), (math.inf, 0)])
def test_a_retry_after_beyond_what_the_sdk_waits_does_not_stall_the_batch(
    make_pricer, make_items, stub: StubServer, retry_after: float, refused: int
) -> None:
    # The SDK does not wait out a Retry-After over two minutes (that call fails as
    # rate_limited) nor an infinite one (it backs off as usual), but the pacer paused every
    # other request for the full day, or for ever: the batch hung. Now it goes on.
    items = make_items(6, seed=8)
    pacing = {"rpm": 6000, "tpm": None, "burst_seconds": 1.0, "headroom": 0.9}
    pricer = make_pricer(max_concurrency=1, max_retries=1, pacing=pacing)
    pricer.fit(items, items["price"])
    stub.state.fail_next(1, 429, retry_after=retry_after)
    outcome: dict[str, object] = {}
    worker = threading.Thread(
        target=lambda: outcome.update(report=pricer.predict_report(items)), daemon=True
    )
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the batch stalled on the Retry-After"
    report = outcome["report"]
    assert report.stats["llm.failures.rate_limited"] == refused
    assert np.isnan(report.prices).sum() == refused
