"""A run that logs an LLM family's model records every call the run made, logging included.

Logging an LLM model used to spend calls nobody counted: MLflow validated the 2-item input
example by predicting on it, so 2 more requests reached the API after the run's ``llm.*``
figures were taken (and were cache hits with the cache on).
"""

from __future__ import annotations

from typing import Any

import mlflow
import pytest

from pricer.experiment import run_family
from tests.llm.test_interruptions import frontier_run

CHAT = "POST /chat/completions"


@pytest.mark.parametrize("cache", [False, True], ids=["no_cache", "cache"])
def test_a_logged_llm_model_costs_what_its_run_records(
    cache, compose_conf, item_files, stub, api_key, tracking_uri, tmp_path
) -> None:
    cache_dir = tmp_path / "llm_cache" if cache else "null"
    cfg = frontier_run(
        compose_conf, item_files, stub, f"model.cache_dir={cache_dir}", "tracking.log_model=true"
    )
    # What the server charged: the usage of every answer it sent.
    charged = {"input": 0, "output": 0}

    def tally(body: dict[str, Any]) -> dict[str, Any]:
        charged["input"] += body["usage"]["prompt_tokens"]
        charged["output"] += body["usage"]["completion_tokens"]
        return body

    stub.state.reply_fn = tally
    result = run_family("frontier", cfg)
    run = mlflow.get_run(result.run_id)
    metrics = run.data.metrics
    (model,) = mlflow.search_logged_models(output_format="list")
    assert model.source_run_id == run.info.run_id  # the model was logged, by this run
    # Every request the server saw is one of the run's calls, and nothing else was asked
    # (not even of the cache): the 12 test items, once each.
    assert stub.state.counters[CHAT] == metrics["llm.calls"] == metrics["llm.items"] == 12
    assert metrics["llm.cache_hits"] == 0
    assert metrics["llm.input_tokens"] == charged["input"]
    assert metrics["llm.output_tokens"] == charged["output"]
    # The logged model still answers (the signature describes its input).
    loaded = mlflow.pyfunc.load_model(model.model_uri)
    assert loaded.metadata.get_input_schema().input_names()[0] == "text"
