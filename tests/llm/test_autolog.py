"""mlflow.openai.autolog() (what tracking.trace_llm turns on) with the pricer's async calls."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from pricer.devtools.stub_chat import default_price


@pytest.fixture
def autolog():
    mlflow.openai.autolog()
    yield
    mlflow.openai.autolog(disable=True)


def test_autolog_traces_every_async_call_and_prices_stay_right(
    autolog, tracking_uri, make_pricer, make_items, stub, api_key
) -> None:
    items = make_items(6, seed=0)
    pricer = make_pricer(max_concurrency=3).fit(items, items["price"])
    stub.state.fail_next(1, 500, retry_after=0.01)  # a retried call is still one trace
    mlflow.set_experiment("autolog")
    with mlflow.start_run() as run:
        report = pricer.predict_report(items)
    mlflow.flush_trace_async_logging()

    users = [r["messages"][1]["content"] for r in pricer.requests(items)]
    np.testing.assert_allclose(report.prices, [default_price(user) for user in users])
    assert report.stats["llm.retries"] == 1
    traces = mlflow.search_traces(locations=[run.info.experiment_id], return_type="list")
    assert len(traces) == len(items)
    assert {t.info.request_metadata["mlflow.sourceRun"] for t in traces} == {run.info.run_id}
    assert all(t.info.state == "OK" for t in traces)
    assert all(t.data.spans[0].span_type == "CHAT_MODEL" for t in traces)
    answered = sorted(
        float(t.data.spans[0].outputs["choices"][0]["message"]["content"]) for t in traces
    )
    np.testing.assert_allclose(answered, sorted(report.prices))
    assert all(t.info.token_usage["input_tokens"] > 0 for t in traces)
    assert all(api_key not in t.to_json() for t in traces)  # the key is not traced
