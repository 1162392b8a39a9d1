"""An answer's cost is its answering model's, over real HTTP against the stub server.

A proxy or an OpenAI-compatible server may answer "gpt-4o-mini" with another model (the
reply's ``model`` names it). The run counted and named that model, but priced its tokens at
gpt-4o-mini's catalogue rate: answers from gpt-4o read about 16 times too cheap, a wrong cost
stated as a right one. Each answer is now billed at the catalogue rate of the model that
answered it (a dated snapshot is the model asked for; a reply naming none keeps the requested
model's rate), and an answering model the catalogue has no price for makes the costs NaN, with
the answers counted as ``llm.answers_not_in_catalogue`` and a line in the run's description.
"""

from __future__ import annotations

import math
import subprocess
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow.entities import Run

from pricer.devtools.stub_server import StubServer
from pricer.evaluation.tradeoff import BOARD_COLUMNS, COST, tradeoff_table
from pricer.experiment import FamilyResult, leaderboard_table
from pricer.models.llm.catalogue import ModelCatalogue, Price
from pricer.models.llm.frontier import FrontierPricer
from pricer.models.llm.retrieval import NeighbourIndex
from pricer.schemas import ComputePrice
from tests.e2e.conftest import pricer_app, run_cli
from tests.llm.conftest import KEY_ENV
from tests.llm.test_ensemble import ridge_and

CHAT = "POST /chat/completions"
UNPRICED = "mystery-llm-70b"  # a model no catalogue entry, alias or date-less name matches


def rate(model: str) -> Price:
    """The catalogue's price of ``model``, found as a run finds it (snapshots, ft: names)."""
    found = ModelCatalogue().lookup(model)
    assert found is not None, model
    return found[1].price


def dollars(price: Price, tokens: tuple[int, int]) -> float:
    return (tokens[0] * price.input + tokens[1] * price.output) / 1_000_000


class Charges:
    """A stub reply hook: names the model each reply says answered (``names``, in turn; a None
    sends no name) and tallies the tokens the server charged, by that name."""

    def __init__(self, *names: str | None) -> None:
        self.names = names
        self.replies = 0
        self.tokens: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
        self.lock = threading.Lock()  # the stub answers from several threads

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            name = self.names[self.replies % len(self.names)]
            self.replies += 1
            body["model"] = name
            self.tokens[name][0] += body["usage"]["prompt_tokens"]
            self.tokens[name][1] += body["usage"]["completion_tokens"]
        return body

    def of(self, *names: str | None) -> tuple[int, int]:
        """The input and output tokens charged for the replies naming any of ``names``."""
        return (
            sum(self.tokens[name][0] for name in names),
            sum(self.tokens[name][1] for name in names),
        )


@pytest.fixture
def items(make_items: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    return make_items(9, seed=4)


def retrieval_pricer(make_pricer: Callable[..., FrontierPricer], load_prompt) -> FrontierPricer:
    index = NeighbourIndex(
        k=2,
        max_features=1000,
        ngram_max=2,
        min_df=1,
        sublinear_tf=True,
        max_chars=60,
        max_items=None,
        random_state=0,
    )
    return make_pricer(prompt=load_prompt("rag"), retrieval=index)


TUNED = "ft:gpt-4o-mini-2024-07-18:org:pricer:abc123"


@pytest.mark.parametrize(
    ("family", "requested", "answered", "billed_as"),
    [
        # A proxy's substitute, dated as servers date it: the catalogue finds gpt-4o.
        ("frontier", "gpt-4o-mini", "gpt-4o-2024-08-06", "gpt-4o"),
        ("frontier_rag", "gpt-4o-mini", "gpt-4o", "gpt-4o"),
        # A dated snapshot of the model asked for is that model.
        ("frontier", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        # A fine-tuned model is billed at the fine-tuned rate; its base answering in its place
        # (a proxy that does not route ft: names) at the base's.
        ("finetuned", TUNED, TUNED, TUNED),
        ("finetuned", TUNED, "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        # A reply naming no model keeps the requested model's rate.
        ("frontier", "gpt-4o", None, "gpt-4o"),
    ],
)
def test_each_family_bills_an_answer_at_the_rate_of_the_model_that_answered_it(
    make_pricer: Callable[..., FrontierPricer],
    load_prompt,
    items: pd.DataFrame,
    stub: StubServer,
    tmp_path: Path,
    family: str,
    requested: str,
    answered: str | None,
    billed_as: str,
) -> None:
    if family == "frontier_rag":
        pricer = retrieval_pricer(make_pricer, load_prompt)
    elif family == "finetuned":
        pricer = make_pricer(model=requested, prompt=load_prompt("finetuned"))
    else:
        pricer = make_pricer(model=requested)
    pricer.cache_dir = str(tmp_path)
    pricer.fit(items, items["price"])
    stub.state.reply_fn = charges = Charges(answered)
    stats = pricer.predict_report(items).stats
    expected = dollars(rate(billed_as), charges.of(answered))
    assert expected > 0
    assert stats["llm.cost_usd"] == pytest.approx(expected)
    assert stats["llm.spent_usd"] == pytest.approx(expected)
    assert stats["llm.cost_per_1k_items_usd"] == pytest.approx(expected / len(items) * 1000)
    assert stats["llm.answers_not_in_catalogue"] == 0
    # A re-run served from the cache costs the same: each entry kept its answering model.
    again = pricer.predict_report(items).stats
    assert again["llm.cache_hits"] == len(items) and stub.state.counters[CHAT] == len(items)
    assert again["llm.cost_usd"] == pytest.approx(expected)
    assert again["llm.spent_usd"] == 0


def test_a_batch_answered_by_several_models_sums_each_ones_tokens_at_its_rate(
    make_pricer: Callable[..., FrontierPricer], items: pd.DataFrame, stub: StubServer
) -> None:
    snapshot = "gpt-4o-mini-2024-07-18"
    stub.state.reply_fn = charges = Charges("gpt-4o", None, snapshot)
    stats = make_pricer().fit(items, items["price"]).predict_report(items).stats
    mini = rate("gpt-4o-mini")
    expected = dollars(rate("gpt-4o"), charges.of("gpt-4o")) + dollars(
        mini, charges.of(None, snapshot)
    )
    assert stats["llm.cost_usd"] == pytest.approx(expected)
    # Not gpt-4o-mini's rate for every token, which read the gpt-4o answers ~16 times cheap.
    assert stats["llm.cost_usd"] > 2 * dollars(mini, charges.of("gpt-4o", None, snapshot))
    assert stats["llm.answers_from_other_model"] == 3 and stats["llm.answers_without_model"] == 3


def test_an_answering_model_missing_from_the_catalogue_makes_the_costs_unknown(
    make_pricer: Callable[..., FrontierPricer],
    items: pd.DataFrame,
    stub: StubServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Three answers of nine from a model with no rate: the other six's cost is not the batch's.
    stub.state.reply_fn = Charges(UNPRICED, None, None)
    with caplog.at_level("WARNING"):
        stats = make_pricer().fit(items, items["price"]).predict_report(items).stats
    for figure in ("cost_usd", "cost_per_1k_items_usd", "spent_usd"):
        assert math.isnan(stats[f"llm.{figure}"]), figure
    assert stats["llm.input_tokens"] > 0
    assert stats["llm.answers_not_in_catalogue"] == 3
    said = f"3 of 9 answers came from {UNPRICED}, which the model catalogue"
    assert said in caplog.text and "costs are NaN (unknown)" in caplog.text


def test_an_ensembles_llm_member_costs_what_its_answering_models_charge(
    make_pricer: Callable[..., FrontierPricer], make_items, stub: StubServer
) -> None:
    train, test = make_items(40, seed=0), make_items(8, seed=1, start=1000)
    model = ridge_and(make_pricer())
    # At fit (the stacker's validation split) a model with no rate answered; then gpt-4o.
    stub.state.reply_fn = at_fit = Charges(UNPRICED)
    model.fit(train, train["price"])
    stub.state.reply_fn = charges = Charges("gpt-4o")
    stats = model.predict_report(test).stats
    expected = dollars(rate("gpt-4o"), charges.of("gpt-4o"))
    assert stats["ensemble.mini.llm.cost_usd"] == pytest.approx(expected)
    assert stats["llm.cost_usd"] == pytest.approx(expected)
    assert stats["llm.cost_per_1k_items_usd"] == pytest.approx(expected / len(test) * 1000)
    # The calls at fit have no known cost, and the record says why.
    assert at_fit.replies == model.validation_items_ == 12
    assert math.isnan(stats["llm.fit_cost_usd"]) and math.isnan(stats["llm.spent_usd"])
    assert stats["ensemble.mini.fit.llm.answers_not_in_catalogue"] == at_fit.replies
    assert stats["llm.answers_not_in_catalogue"] == at_fit.replies


def test_an_ensembles_record_says_its_fit_cost_is_unknown_for_replies_without_usage(
    make_pricer: Callable[..., FrontierPricer], make_items, stub: StubServer
) -> None:
    # The ensemble kept only some of its member's figures from the calls at fit: a NaN
    # llm.fit_cost_usd from replies that came without usage had no reason in its own record.
    train, test = make_items(40, seed=0), make_items(8, seed=1, start=1000)
    model = ridge_and(make_pricer())
    replies = {"count": 0}

    def no_usage(body: dict[str, Any]) -> dict[str, Any]:
        replies["count"] += 1
        body.pop("usage")
        return body

    stub.state.reply_fn = no_usage  # at fit (the stacker's validation split) only
    model.fit(train, train["price"])
    stub.state.reply_fn = None
    stats = model.predict_report(test).stats
    assert replies["count"] == model.validation_items_ == 12
    assert math.isnan(stats["llm.fit_cost_usd"]) and math.isnan(stats["llm.spent_usd"])
    assert stats["ensemble.mini.fit.llm.answers_without_usage"] == replies["count"]
    assert stats["llm.answers_without_usage"] == replies["count"]
    # The test items' replies had usage: their cost is known.
    assert stats["ensemble.mini.llm.answers_without_usage"] == 0
    assert stats["llm.cost_usd"] > 0
    # ... and the leaderboard's trade-off, which counted the unknown fit cost as $0, gives the
    # ensemble no total cost rather than its test items' alone (a lower, made-up figure).
    figures = {"mae": 10.0, "n": 8.0, "time.fit_seconds": 1.0, "time.predict_seconds": 0.1}
    result = FamilyResult("ensemble", "run", "FINISHED", {**figures, **stats})
    board = leaderboard_table([result], list(BOARD_COLUMNS), {})
    costs = tradeoff_table(board, ComputePrice(cpu_hour_usd=0.05, cpus=2)).loc["ensemble"]
    assert math.isnan(costs["tokens_per_1k_usd"]) and math.isnan(costs[COST])


# -- the real CLI against a real store ----------------------------------------------------------


def train_frontier(
    item_files: tuple[str, str], stub: StubServer, tracking_uri: str, tmp_path: Path
) -> tuple[Run, subprocess.CompletedProcess[str]]:
    """``pricer.train model=frontier`` on the item files against the stub, with a response
    cache; it must succeed. The run it made (the latest) and the finished command."""
    train, test = item_files
    result = run_cli(
        pricer_app(
            "train",
            "model=frontier",
            "data=items",
            f"data.train_paths=[{train}]",
            f"data.test_paths=[{test}]",
            f"model.base_url={stub.base_url}",
            f"model.api_key_env={KEY_ENV}",
            "model.tier=null",
            "model.progress=false",
            f"model.cache_dir={tmp_path / 'llm_cache'}",
            "tracking.log_model=false",
            workdir=tmp_path,
        ),
        tracking_uri,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = mlflow.search_runs(
        search_all_experiments=True, output_format="list", order_by=["attribute.start_time DESC"]
    )
    return runs[0], result


@pytest.mark.e2e
def test_a_run_answered_by_a_dearer_model_records_that_models_cost(
    item_files, stub: StubServer, api_key: str, tracking_uri: str, tmp_path: Path
) -> None:
    stub.state.reply_fn = charges = Charges("gpt-4o-2024-08-06")  # asked for gpt-4o-mini
    run, _ = train_frontier(item_files, stub, tracking_uri, tmp_path)
    metrics = run.data.metrics
    tokens = charges.of("gpt-4o-2024-08-06")
    assert (metrics["llm.input_tokens"], metrics["llm.output_tokens"]) == tokens
    expected = dollars(rate("gpt-4o"), tokens)
    assert metrics["llm.cost_usd"] == pytest.approx(expected)
    assert metrics["llm.spent_usd"] == pytest.approx(expected)
    assert metrics["llm.cost_per_1k_items_usd"] == pytest.approx(expected / 12 * 1000)
    assert metrics["llm.cost_usd"] > 10 * dollars(rate("gpt-4o-mini"), tokens)
    note = run.data.tags["mlflow.note.content"]
    assert "its costs are at the catalogue rates of the models that answered" in note
    # The rerun is served from the cache, and costs what the paid run did.
    rerun, _ = train_frontier(item_files, stub, tracking_uri, tmp_path)
    assert rerun.info.run_id != run.info.run_id
    assert stub.state.counters[CHAT] == 12
    assert rerun.data.metrics["llm.cache_hits"] == 12
    assert rerun.data.metrics["llm.cost_usd"] == pytest.approx(expected)
    assert rerun.data.metrics["llm.spent_usd"] == 0


@pytest.mark.e2e
def test_a_run_answered_by_a_model_missing_from_the_catalogue_has_no_cost_and_says_why(
    item_files, stub: StubServer, api_key: str, tracking_uri: str, tmp_path: Path
) -> None:
    stub.state.reply_fn = Charges(UNPRICED)
    run, result = train_frontier(item_files, stub, tracking_uri, tmp_path)
    metrics = run.data.metrics
    # NaN figures are not logged: no cost at all, rather than gpt-4o-mini's rate.
    assert not {"llm.cost_usd", "llm.cost_per_1k_items_usd", "llm.spent_usd"} & set(metrics)
    assert metrics["llm.input_tokens"] > 0
    assert metrics["llm.answers_not_in_catalogue"] == 12
    said = (
        f"Asked for gpt-4o-mini, answered by {UNPRICED}: 12 answers came from another model "
        "than the one asked for, and the figures are its answers', under gpt-4o-mini's name "
        "and catalogue entry; its costs are unknown (NaN): 12 answers came from a model the "
        "catalogue has no price for."
    )
    assert said in run.data.tags["mlflow.note.content"]
    warned = f"12 of 12 answers came from {UNPRICED}, which the model catalogue"
    assert warned in result.stdout + result.stderr
