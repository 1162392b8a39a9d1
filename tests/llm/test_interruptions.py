"""Issue 10: an interrupted LLM run keeps the answers it paid for; a server that is not
listening fails in seconds; a run with too many missing prices says why."""

from __future__ import annotations

import gc
import logging
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pytest

from pricer.experiment import TooManyFailures, run_family
from pricer.interrupt import Interrupted
from pricer.models.llm.client import (
    CallOutcome,
    RetryCounter,
    ServerUnreachable,
    chat_calls,
    run_async,
)
from pricer.models.llm.failures import failure_summary
from pricer.tracking.browse import compare_runs
from tests.llm.conftest import ensemble_config, frontier_config

CHAT = "POST /chat/completions"

# A separate process prices the items, as `pricer.train model=frontier` would, until killed.
CHILD = """
import pickle, sys
import pandas as pd
items = pd.read_json(sys.argv[2], orient="records", lines=True)
with open(sys.argv[1], "rb") as file:
    pricer = pickle.load(file)
pricer.fit(items, items["price"]).predict_report(items)
"""


def cache_entries(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*.json") if not path.name.startswith(".")]


def test_a_killed_run_keeps_its_answers_and_the_rerun_pays_only_for_the_rest(
    make_pricer, make_items, stub, tmp_path
) -> None:
    items = make_items(20, seed=4)
    items_file = tmp_path / "items.jsonl"
    items.to_json(items_file, orient="records", lines=True)
    cache = tmp_path / "llm_cache"
    stub.state.latency = 0.05  # one call at a time: about 1 s for the whole batch
    pricer_file = tmp_path / "pricer.pkl"  # the unfitted pricer, built by the test's fixture
    pricer_file.write_bytes(pickle.dumps(make_pricer(cache_dir=str(cache), max_concurrency=1)))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(pricer_file), str(items_file)], env=dict(os.environ)
    )
    try:
        deadline = time.monotonic() + 60
        while stub.state.counters[CHAT] < 8:  # SIGKILL part-way: no handler, no cleanup
            assert child.poll() is None, "the child finished or died before being killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    asked_first = stub.state.counters[CHAT]
    kept = len(cache_entries(cache))
    # Calls go one at a time and each answer is cached before the next call is sent: every
    # answer but the one in flight when killed is on disk.
    assert 7 <= kept <= asked_first < len(items)

    pricer = make_pricer(cache_dir=str(cache)).fit(items, items["price"])
    report = pricer.predict_report(items)
    assert stub.state.counters[CHAT] - asked_first == len(items) - kept  # only the rest
    assert report.stats["llm.cache_hits"] == kept
    assert report.stats["llm.failures"] == 0 and not np.isnan(report.prices).any()
    assert len(cache_entries(cache)) == len(items)


def test_a_server_that_is_not_listening_fails_in_seconds(make_pricer, make_items) -> None:
    with socket.socket() as probe:  # a port nothing listens on once this socket closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    items = make_items(12, seed=5)
    pricer = make_pricer(base_url=url, max_retries=6, timeout=30.0).fit(items, items["price"])
    started = time.perf_counter()
    with pytest.raises(ServerUnreachable, match=f"^cannot connect to {re.escape(url)}$"):
        pricer.predict_report(items)
    # Before: each of the 12 items went through 6 SDK retries with backoff (tens of seconds).
    assert time.perf_counter() - started < 5


def test_a_slow_or_routeless_server_is_not_called_unreachable(make_pricer, make_items, stub):
    # The stub has no GET /models (404): the probe only asks whether anything listens.
    items = make_items(3, seed=6)
    report = make_pricer().fit(items, items["price"]).predict_report(items)
    assert report.stats["llm.failures"] == 0 and report.stats["llm.retries"] == 0
    assert stub.state.counters[CHAT] == len(items)


def test_failure_summary_names_leading_reasons_with_counts() -> None:
    stats = {
        "llm.failures.no_price": 80.0,
        "llm.failures.timeout": 20.0,
        "llm.failures.rate_limited": 5.0,
        "llm.failures.server_error": 0.0,
        "llm.failures": 105.0,
        "llm.failure_rate": 0.42,
    }
    assert failure_summary(stats) == "no_price 80, timeout 20, rate_limited 5"
    assert failure_summary({"mae": 3.0}) == "no reason reported"


def test_an_ensembles_failures_are_its_members_reasons() -> None:
    # An ensemble answers NaN where an LLM member did; its FAILED run said "no reason reported"
    # though the member's counts were in the same stats, under the member's name.
    stats = {
        "ensemble.weight.frontier": 0.4,
        "ensemble.frontier.llm.failures.no_price": 12.0,
        "ensemble.frontier.llm.failures.timeout": 3.0,
        "ensemble.frontier.llm.failures": 15.0,
        "ensemble.xgboost.mae": 90.0,
    }
    assert failure_summary(stats) == "frontier no_price 12, frontier timeout 3"


def test_an_ensembles_refused_calls_name_their_status_beside_their_member() -> None:
    stats = {
        "ensemble.frontier.llm.failures.api_error": 4.0,
        "ensemble.frontier.llm.refused.http_404": 4.0,
        "ensemble.frontier.llm.failures.rate_limited": 2.0,
        "ensemble.frontier.llm.refused.http_429": 2.0,  # its own reason already says it
    }
    assert failure_summary(stats) == "frontier api_error 4 (HTTP 404 4), frontier rate_limited 2"


def frontier_run(compose_conf, item_files, stub, *overrides: str):
    """A frontier run's config against the stub, one call at a time, no retries."""
    return frontier_config(
        compose_conf,
        item_files,
        stub,
        "model.max_concurrency=1",
        "model.max_retries=0",
        *overrides,
    )


def test_a_failed_llm_run_says_why_in_its_error(
    compose_conf, item_files, stub, api_key, tracking_uri
) -> None:
    cfg = frontier_run(compose_conf, item_files, stub)
    stub.state.no_number_next(5)
    stub.state.fail_next(2, 500)
    with pytest.raises(TooManyFailures) as error:
        run_family("frontier", cfg)
    reasons = "no price for 58.3% of the evaluation items (no_price 5, server_error 2;"
    assert reasons in str(error.value)
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FAILED" and reasons in run.data.tags["error"]


def test_the_validation_pass_is_accounted_and_held_to_the_failure_limit(
    compose_conf, item_files, stub, api_key, tracking_uri
) -> None:
    # A sweep trial's validation pass paid for its calls unrecorded (llm.* counted the test
    # pass only), and 60% of it unanswered still made a FINISHED run whose objective, the mae
    # over the few items answered, ranked the trial.
    cfg = frontier_run(compose_conf, item_files, stub, "validation.size=10")
    calls = {"n": 0}

    def no_price_after_the_test_pass(body: dict) -> dict:
        calls["n"] += 1
        if calls["n"] > 12 and calls["n"] % 5 < 3:  # 6 of the 10 validation items
            body["choices"][0]["message"]["content"] = "I cannot tell."
        return body

    stub.state.reply_fn = no_price_after_the_test_pass
    with pytest.raises(TooManyFailures, match=r"no price for 60\.0% of the validation items"):
        run_family("frontier", cfg)
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FAILED"
    metrics = run.data.metrics
    assert metrics["llm.calls"] == 12 and metrics["validation.llm.calls"] == 10
    assert metrics["validation.llm.failures.no_price"] == 6
    assert metrics["validation.llm.spent_usd"] > 0


def test_a_run_killed_mid_batch_records_the_calls_it_had_paid_for(
    compose_conf, item_files, stub, api_key, tracking_uri, installed
) -> None:
    # SIGTERM mid-batch ended the run KILLED with no llm.* figure at all: the calls answered
    # (and billed) before it, and those in flight, were in no record.
    cfg = frontier_run(compose_conf, item_files, stub, "model.max_concurrency=2")
    charged = {"answers": 0, "input": 0}

    def terminate_after_five(body: dict) -> dict:
        charged["answers"] += 1
        charged["input"] += body["usage"]["prompt_tokens"]
        if charged["answers"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # handled in the main thread, mid-batch
        return body

    stub.state.latency = 0.05
    stub.state.reply_fn = terminate_after_five
    with pytest.raises(KeyboardInterrupt):
        run_family("frontier", cfg)
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "KILLED"
    metrics = run.data.metrics
    answered = metrics["interrupted.llm.calls"]
    assert 1 <= answered <= charged["answers"] < 12
    # Every request the server saw is in the record: answered, or in flight when cut.
    in_flight = metrics["interrupted.llm.calls_in_flight"]
    assert answered + in_flight == stub.state.counters[CHAT]
    assert 0 < metrics["interrupted.llm.input_tokens"] <= charged["input"]
    assert metrics["interrupted.llm.spent_usd"] > 0


SUBSTITUTE = "llama-3.1-8b-instruct"  # what a proxy answered "gpt-4o-mini" with


def terminate_after(answers: int, substitute_first: int = 12**3) -> Callable[[dict], dict]:
    """A stub reply hook: the first ``substitute_first`` replies name the substitute, and this
    process gets SIGTERM (handled in the main thread, mid-batch) with answer ``answers``."""
    seen = {"n": 0}

    def reply(body: dict) -> dict:
        seen["n"] += 1
        if seen["n"] <= substitute_first:
            body["model"] = SUBSTITUTE
        if seen["n"] == answers:
            os.kill(os.getpid(), signal.SIGTERM)
        return body

    return reply


def test_a_run_killed_mid_batch_names_the_models_that_had_answered(
    compose_conf, item_files, stub, api_key, tracking_uri, installed
) -> None:
    # The killed run counted its answers from another model (interrupted.llm.*) but did not
    # say which model gave them: a finished run's llm.answered_by, warning and description
    # line were missing, and `pricer compare` showed no "llm answered by".
    cfg = frontier_run(compose_conf, item_files, stub, "model.max_concurrency=2")
    stub.state.latency = 0.05
    stub.state.reply_fn = terminate_after(5)
    with pytest.raises(KeyboardInterrupt):
        run_family("frontier", cfg)
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "KILLED"
    answered = run.data.metrics["interrupted.llm.calls"]
    assert 1 <= answered < 12
    assert run.data.metrics["interrupted.llm.answers_from_other_model"] == answered
    assert run.data.tags["llm.answered_by"] == SUBSTITUTE
    said = f"Asked for gpt-4o-mini, answered by {SUBSTITUTE}: {int(answered)} answer"
    assert run.data.tags["mlflow.note.content"].startswith(said)
    assert compare_runs([run]).loc["llm answered by"].iloc[0] == SUBSTITUTE


def test_a_killed_ensemble_names_the_models_that_answered_it_at_fit(
    compose_conf, item_files, stub, api_key, tracking_uri, installed
) -> None:
    # Its LLM member priced the stacker's validation split at fit (12 calls, answered by a
    # substitute), then was cut pricing the test items (answered as asked): the cut batch's
    # names alone would leave out the model whose answers the stacker's weights came from.
    cfg = ensemble_config(compose_conf, item_files, stub, "model.members.llm.max_concurrency=1")
    stub.state.reply_fn = terminate_after(12 + 3, substitute_first=12)
    with pytest.raises(KeyboardInterrupt):
        run_family("ensemble", cfg)
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "KILLED"
    assert run.data.tags["llm.answered_by"] == f"gpt-4o-mini, {SUBSTITUTE}"
    # ... and its figures counted the cut batch alone: the substitute named in the tag had
    # given 0 answers from another model, and the 12 calls at fit cost nothing.
    metrics = run.data.metrics
    assert 12 + 1 <= metrics["interrupted.llm.calls"] <= 12 + 3  # at fit, then the test items
    assert metrics["interrupted.llm.answers_from_other_model"] == 12
    assert (
        metrics["interrupted.llm.calls"] + metrics["interrupted.llm.calls_in_flight"]
        == (stub.state.counters[CHAT])
    )
    said = f"answered by gpt-4o-mini, {SUBSTITUTE}: 12 answers came from another model"
    assert said in run.data.tags["mlflow.note.content"]


def test_a_killed_ensemble_counts_every_member_and_its_calls_at_fit(
    compose_conf, item_files, stub, api_key, tracking_uri, installed
) -> None:
    # Two LLM members: each priced the 12 validation items at fit (by the substitute), the
    # first priced the 12 test items, and the second was cut pricing them. The record had
    # the cut batch's calls and spend only: 2 of 38 calls, a twentieth of what was paid.
    cfg = ensemble_config(
        compose_conf,
        item_files,
        stub,
        "+model@model.members.llm2=frontier",
        f"model.members.llm2.base_url={stub.base_url}",
        "model.members.llm2.api_key_env=${model.members.llm.api_key_env}",
        "model.members.llm2.tier=null",
        "model.members.llm2.cache_dir=null",
        "model.members.llm2.progress=false",
        "model.members.llm.max_concurrency=1",
        "model.members.llm2.max_concurrency=1",
    )
    tokens = {"input": 0, "output": 0}
    reply = terminate_after(12 + 12 + 12 + 2, substitute_first=24)

    def counting(body: dict) -> dict:
        tokens["input"] += body["usage"]["prompt_tokens"]
        tokens["output"] += body["usage"]["completion_tokens"]
        return reply(body)

    stub.state.reply_fn = counting
    with pytest.raises(KeyboardInterrupt):
        run_family("ensemble", cfg)
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "KILLED"
    metrics = run.data.metrics
    answered = metrics["interrupted.llm.calls"]
    assert 36 + 1 <= answered <= 38
    assert answered + metrics["interrupted.llm.calls_in_flight"] == stub.state.counters[CHAT]
    assert metrics["interrupted.llm.answers_from_other_model"] == 24
    # Every answer the record counts was billed (those cut in flight are not in the counts).
    assert 0 < metrics["interrupted.llm.input_tokens"] <= tokens["input"]
    assert metrics["interrupted.llm.input_tokens"] > tokens["input"] * 36 / 38
    assert metrics["interrupted.llm.spent_usd"] == pytest.approx(
        metrics["interrupted.llm.cost_usd"]
    )
    assert run.data.tags["llm.answered_by"] == f"gpt-4o-mini, {SUBSTITUTE}"


def test_a_run_killed_in_its_validation_pass_counts_its_test_pass_too(
    compose_conf, item_files, stub, api_key, tracking_uri, installed
) -> None:
    # A sweep trial's test pass (12 calls, by the substitute) finished, and its validation
    # pass was cut: the record counted the validation calls only, and named their model only.
    cfg = frontier_run(compose_conf, item_files, stub, "validation.size=10")
    stub.state.reply_fn = terminate_after(12 + 3, substitute_first=12)
    with pytest.raises(KeyboardInterrupt):
        run_family("frontier", cfg)
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "KILLED"
    metrics = run.data.metrics
    assert 12 + 1 <= metrics["interrupted.llm.calls"] <= 12 + 3
    assert metrics["interrupted.llm.answers_from_other_model"] == 12
    assert run.data.tags["llm.answered_by"] == f"gpt-4o-mini, {SUBSTITUTE}"


def unretrieved_task_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What asyncio logged about tasks whose exception nobody read, once they are collected:
    it reports them from ``Task.__del__`` (on stderr outside pytest, after the run)."""
    gc.collect()
    return [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]


def chat_requests(n: int) -> list[dict]:
    return [
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Price item {i}"}]}
        for i in range(n)
    ]


def test_an_interrupt_inside_a_call_task_leaves_no_task_unretrieved(
    client_settings, stub, caplog
) -> None:
    # SIGTERM handled while a call's task was running (as the handler raises it there in the
    # SIGTERM tests, by chance) made asyncio print "Task exception was never retrieved ...
    # Interrupted": the call's task re-raised it out of the loop, and chat_calls' own task
    # raised it again from asyncio.run's cleanup, which it cut short.
    stub.state.latency = 0.05

    def interrupt_at_the_third(index: int, outcome: CallOutcome) -> None:
        if index == 2:  # in the call's own task, as a signal landing there is raised
            raise Interrupted(signal.SIGTERM)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        with pytest.raises(Interrupted):
            run_async(
                chat_calls(
                    client_settings, chat_requests(8), 2, False, on_outcome=interrupt_at_the_third
                )
            )
        assert unretrieved_task_errors(caplog) == []
        assert not [r for r in caplog.records if r.name == "asyncio"]


def test_an_interrupt_in_the_batchs_own_task_leaves_no_task_unretrieved(
    client_settings, stub, caplog
) -> None:
    # ... and one that lands in chat_calls' own task (here in the reachability probe, before
    # any call) is left on it unread: asyncio.run does not read its main task's exception.
    class InterruptedCounter(RetryCounter):
        async def __call__(self, request) -> None:
            raise Interrupted(signal.SIGTERM)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        with pytest.raises(Interrupted):
            run_async(
                chat_calls(
                    client_settings, chat_requests(2), 2, False, counter=InterruptedCounter()
                )
            )
        assert unretrieved_task_errors(caplog) == []
    assert stub.state.counters[CHAT] == 0
