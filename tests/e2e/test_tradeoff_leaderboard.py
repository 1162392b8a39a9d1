"""A leaderboard with an LLM family beside classical ones: the trade-off picture and the LLM's
catalogue entry and knowledge cut-off split land in the record (real CLI, real store, the
OpenAI-compatible stub over HTTP)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from pricer.devtools.stub_server import StubServer
from pricer.evaluation.tradeoff import significant
from tests.e2e.conftest import pricer_app, run_cli

pytestmark = pytest.mark.e2e


def test_leaderboard_logs_the_tradeoff_and_the_llm_facts(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-for-the-stub")
    with StubServer() as stub:
        # Replies that name another model than the one asked for, as a proxy's substitute's.
        stub.state.answering_model = "llama-3.1-8b-instruct"
        result = run_cli(
            pricer_app(
                "leaderboard",
                "families=[constant,linear,frontier]",
                "+model@models.frontier=frontier",
                f"models.frontier.base_url={stub.base_url}",
                "models.frontier.tier=null",
                f"models.frontier.cache_dir={tmp_path}/llm_cache",  # not the checkout's
                "data.n_records=4000",
                "curation.split.test_size=200",
                "eval.size=50",
                "reference_data=synthetic",  # the course's figures beside these rows
                f"curation.cache_dir={tmp_path}/cache",
                workdir=tmp_path,
            ),
            tracking_uri,
            tmp_path,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {
        r.info.run_name: r
        for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
    }
    parent = runs["leaderboard · synthetic"]
    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "leaderboard")}
    assert {
        "leaderboard/mae_vs_cost.png",
        "leaderboard/mae_vs_latency.png",
        "leaderboard/tradeoff.json",
    } <= artifacts
    table = mlflow.artifacts.load_dict(f"{parent.info.artifact_uri}/leaderboard/tradeoff.json")
    trade = pd.DataFrame(table["data"], columns=table["columns"])
    assert set(trade["family"]) == {"constant", "linear", "frontier"}
    # No family is free: classical ones pay for their CPU seconds, the LLM for its calls' too
    # (its tokens are billed at the answering model's rate, asserted below).
    costs = dict(zip(trade["family"], trade["cost_per_1k_usd"], strict=True))
    assert all(cost > 0 for cost in costs.values()), costs
    assert costs["frontier"] > costs["constant"]
    # The terminal's table says so too: a classical family's cost, not blank, to two figures.
    lines = result.stdout.splitlines()
    heading = next(i for i, line in enumerate(lines) if line.startswith("Trade-off ($"))
    rows = {line.split()[0]: line for line in lines[:heading] if line.strip()}
    for family in ("constant", "linear"):
        assert f"${significant(costs[family])}" in rows[family].split(), result.stdout
    # ... and the trade-off under it, as in the parent's description: each family's whole cost,
    # its latency and where it sits against the others.
    trade_rows = {line.split()[0]: line for line in lines[heading + 2 :] if line.strip()}
    assert "p50 call" in trade_rows["frontier"] and "(batch)" in trade_rows["constant"]
    assert significant(costs["frontier"]) in trade_rows["frontier"].split()
    assert "Pareto front" in lines[heading + 1]
    note = parent.data.tags["mlflow.note.content"]
    assert "Trade-off ($" in note and "| latency per item |" in note.replace("&nbsp;", "")
    files, link = note.split("\n\n")[-2:]  # which files hold the figures, then the families
    assert files.endswith("`leaderboard/leaderboard.csv`, `leaderboard/tradeoff.json`.")
    assert link.startswith("[The family runs side by side") and "viewStateShareKey=" in link
    # The course's figure stands beside constant, not beside the stub's prices: they are not
    # gpt-4o-mini's on OpenAI's API. The run records which server answered.
    assert "$146" in rows["constant"] and "$80" not in rows["frontier"], result.stdout
    # Under the table and in the parent's description: whose answers the frontier row holds.
    server_line = f"frontier: answered by {stub.base_url}, not OpenAI's API"
    assert server_line in result.stdout.splitlines(), result.stdout
    assert server_line in parent.data.tags["mlflow.note.content"]
    model_line = "frontier: 50 answers from llama-3.1-8b-instruct, not gpt-4o-mini as asked"
    assert model_line in result.stdout.splitlines(), result.stdout
    assert model_line in parent.data.tags["mlflow.note.content"]
    llm = runs["frontier · synthetic"]
    assert llm.data.tags["llm.model.provider"] == "openai"
    assert llm.data.tags["llm.server"] == stub.base_url
    assert llm.data.tags["llm.answered_by"] == "llama-3.1-8b-instruct"
    # Its tokens cost the answering model's rate: llama-3.1-8b-instruct's, open weights
    # self-hosted, $0 (they were billed at gpt-4o-mini's, the model asked for, before).
    assert llm.data.metrics["llm.cost_per_1k_items_usd"] == 0
    assert llm.data.metrics["llm.input_tokens"] > 0
    assert llm.data.tags["llm.model.knowledge_cutoff"]
    assert "Knowledge cut-off" in llm.data.tags["mlflow.note.content"]
    # The family's own run says so too: alone, it read as gpt-4o-mini's answers on OpenAI.
    said = f"Answered by {stub.base_url}, not OpenAI's API"
    assert llm.data.tags["mlflow.note.content"].startswith(said)
    n = sum(
        llm.data.metrics.get(f"llm.n_{group}", 0)
        for group in ("before_cutoff", "after_cutoff", "undated")
    )
    assert n == 50 - llm.data.metrics.get("n_failed", 0)
    assert not math.isnan(llm.data.metrics["llm.mae_before_cutoff"])
    # Classical families carry no LLM facts.
    assert not any(key.startswith("llm.model.") for key in runs["linear · synthetic"].data.tags)
    # The stored leaderboard.csv is enough to redraw the trade-off: it says how many items
    # each family priced, so the costs per 1,000 items come out as the run logged them
    # (tradeoff.json holds them to about six digits).
    from benchmarks import tradeoff_charts

    csv = Path(mlflow.artifacts.download_artifacts(f"{parent.info.artifact_uri}/leaderboard"))
    redrawn = tradeoff_charts.main([str(csv / "leaderboard.csv"), "--out", str(tmp_path)])
    assert redrawn["cost_per_1k_usd"].to_dict() == pytest.approx(costs, rel=1e-4)
    assert (tmp_path / "mae_vs_cost.png").is_file()


def test_a_family_that_left_items_unpriced_is_not_ranked_and_says_so(
    tracking_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    real_slice: dict[str, str],
) -> None:
    # An LLM that priced 59 of 60 items, each exactly: its mae ($0) over fewer items sorted it
    # first in the saved view ("families, best first") and put it on both Pareto fronts,
    # beside the constant the leaderboard named best.
    from pricer.tracking.views import VIEW_TAG_PREFIX

    test = pd.read_parquet(real_slice["test"]).assign(price=50.0)
    for column in ("title", "text"):  # whichever the prompt holds
        test.loc[0, column] = f"UNPRICEABLE {test.loc[0, column]}"
    test.to_parquet(tmp_path / "test.parquet")

    def answer(messages: list[dict]) -> str:
        if "UNPRICEABLE" in str(messages):
            return "I cannot tell."
        return "50.00" if messages[-1]["role"] == "assistant" else "Price is $50.00"

    monkeypatch.setenv("OPENAI_API_KEY", "test-key-for-the-stub")
    with StubServer() as stub:
        stub.state.answer_fn = answer
        result = run_cli(
            pricer_app(
                "leaderboard",
                "data=items",
                f"data.train_paths=[{real_slice['train']}]",
                f"data.test_paths=[{tmp_path / 'test.parquet'}]",
                "families=[constant,frontier]",
                "+model@models.frontier=frontier",
                f"models.frontier.base_url={stub.base_url}",
                "models.frontier.tier=null",
                f"models.frontier.cache_dir={tmp_path}/llm_cache",  # not the checkout's
                "eval.size=60",
                "tracking.log_model=false",
                f"curation.cache_dir={tmp_path}/cache",
                workdir=tmp_path,
            ),
            tracking_uri,
            tmp_path,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {
        r.info.run_name.split(" · ")[0]: r
        for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
    }
    parent, frontier = runs["leaderboard"], runs["frontier"]
    assert frontier.info.status == "FINISHED" and frontier.data.metrics["n_failed"] == 1
    assert frontier.data.metrics["mae"] < runs["constant"].data.metrics["mae"]
    assert parent.data.tags["best_family"] == "constant"
    # The saved view, as the UI asks the server for it: the ranked family first.
    experiment = mlflow.get_experiment(parent.info.experiment_id)
    view = json.loads(experiment.tags[f"{VIEW_TAG_PREFIX}pricer-leaderboard-items"])
    state = json.loads(view["state"])
    listed = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string=state["searchFilter"],
        order_by=[f"{state['orderByKey']} ASC"],
        output_format="list",
    )
    assert [run.info.run_name for run in listed] == ["constant · items", "frontier · items"]
    # Not on a Pareto front; said to be incomplete in every table the terminal prints, as
    # `pricer runs` prints them again.
    table = mlflow.artifacts.load_dict(f"{parent.info.artifact_uri}/leaderboard/tradeoff.json")
    trade = pd.DataFrame(table["data"], columns=table["columns"]).set_index("family")
    assert not trade.loc["frontier", ["pareto_cost", "pareto_latency"]].any()
    assert trade.loc["constant", ["pareto_cost", "pareto_latency"]].all()
    shown = run_cli(
        [str(Path(sys.executable).with_name("pricer")), "runs", parent.info.run_id[:8]],
        tracking_uri,
        tmp_path,
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    for printed in (result.stdout, shown.stdout):
        rows = [line for line in printed.splitlines() if line.split()[:2] == ["frontier", "$0.00"]]
        assert len(rows) == 2 and all(row.split()[-1] == "incomplete" for row in rows), printed
        assert "frontier: incomplete, mae over the 59 of 60 items it priced" in printed
        assert "best: constant, mae $" in printed


def test_the_tradeoff_is_whole_whatever_columns_the_leaderboard_shows(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It was computed from the shown table: with columns=[mae] every cost and latency was
    # unknown, and without the llm.* columns the LLM was billed for its CPU seconds alone, at
    # a batch's latency, in the table, the charts and the description (and `pricer runs`
    # then ended in a traceback on the intervals the table left out).
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-for-the-stub")
    with StubServer() as stub:
        result = run_cli(
            pricer_app(
                "leaderboard",
                "families=[constant,frontier]",
                "+model@models.frontier=frontier",
                f"models.frontier.base_url={stub.base_url}",
                "models.frontier.tier=null",
                "models.frontier.cache_dir=null",  # every answer asked: a latency measured
                "columns=[mae]",
                "data.n_records=4000",
                "curation.split.test_size=200",
                "eval.size=50",
                f"curation.cache_dir={tmp_path}/cache",
                workdir=tmp_path,
            ),
            tracking_uri,
            tmp_path,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {
        r.info.run_name.split(" · ")[0]: r
        for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
    }
    parent = runs["leaderboard"]
    table = mlflow.artifacts.load_dict(f"{parent.info.artifact_uri}/leaderboard/tradeoff.json")
    trade = pd.DataFrame(table["data"], columns=table["columns"]).set_index("family")
    llm = runs["frontier"].data.metrics
    assert llm["llm.cost_per_1k_items_usd"] > 0
    assert trade.loc["frontier", "tokens_per_1k_usd"] == pytest.approx(
        llm["llm.cost_per_1k_items_usd"]
    )
    assert trade.loc["frontier", "latency_source"] == "p50 call"
    assert trade.loc["frontier", "latency_per_item_s"] == pytest.approx(llm["llm.latency_p50_s"])
    for family, run in runs.items():
        if family == "leaderboard":
            continue
        assert trade.loc[family, "compute_per_1k_usd"] > 0, family
        low, high = trade.loc[family, ["mae_ci_low", "mae_ci_high"]]
        assert (low, high) == pytest.approx(
            (run.data.metrics["mae_ci_low"], run.data.metrics["mae_ci_high"])
        )
    assert trade.loc["constant", ["pareto_cost", "pareto_latency"]].all()
    shown = run_cli(
        [str(Path(sys.executable).with_name("pricer")), "runs", parent.info.run_id[:8]],
        tracking_uri,
        tmp_path,
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "unknown" not in shown.stdout.split("Trade-off ($")[1], shown.stdout
