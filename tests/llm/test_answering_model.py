"""Which model answered, as the server's replies say, over real HTTP: a proxy or an
OpenAI-compatible server may answer "gpt-4o-mini" with another model, and the run recorded
that model's answers as gpt-4o-mini's (its name, catalogue entry and prices), with no word of
the model that actually answered. Each reply's ``model`` is now recorded (``llm.answered_by``),
kept in the cache with its answer, and an answer from another model than the one asked for
(beyond a dated snapshot of it) is counted, warned about and said in the run's description."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from hydra.utils import instantiate

from pricer.devtools.stub_server import StubServer
from pricer.experiment import run_family, server_notes
from pricer.models.ensemble import EnsemblePricer
from pricer.models.llm.answering import MAX_ANSWERED_BY, answered_by, same_model
from pricer.models.llm.cache import _digest
from pricer.models.llm.frontier import FrontierPricer
from pricer.tracking.browse import compare_runs
from pricer.tracking.candidates import Candidate
from tests.llm.conftest import ensemble_config, frontier_config
from tests.llm.test_ensemble import ridge, ridge_and

SUBSTITUTE = "llama-3.1-8b-instruct"  # what a proxy answered "gpt-4o-mini" with


@pytest.fixture
def items(make_items: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    return make_items(6, seed=4)


@pytest.mark.parametrize(
    ("requested", "answered", "same"),
    [
        ("gpt-4o-mini", "gpt-4o-mini", True),
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", True),  # the snapshot the alias names
        ("gpt-3.5-turbo", "gpt-3.5-turbo-0125", True),  # OpenAI's older snapshot suffix
        ("claude-sonnet-4", "claude-sonnet-4-20250514", True),
        ("llama3.1", "llama3.1:latest", True),  # Ollama's default tag
        ("GPT-4o-mini", "gpt-4o-mini", True),
        ("gpt-4o-mini", "gpt-4o-2024-08-06", False),  # another model, dated or not
        ("gpt-4o", "gpt-4o-mini-2024-07-18", False),  # a longer name is not a snapshot
        ("gpt-4o-mini", SUBSTITUTE, False),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-08-06", False),  # a pinned snapshot is asked for
        ("ft:gpt-4o-mini-2024-07-18:org:pricer:abc", "gpt-4o-mini-2024-07-18", False),
    ],
)
def test_a_dated_snapshot_is_the_model_asked_for_and_anything_else_is_not(
    requested: str, answered: str, same: bool
) -> None:
    assert same_model(requested, answered) is same


def test_the_answering_models_tag_is_sorted_distinct_and_bounded() -> None:
    assert answered_by([]) == "unknown"
    assert answered_by(["b", "a", "b"]) == "a, b"
    many = [f"proxy-model-{i:03d}-{'x' * 40}" for i in range(100)]
    tag = answered_by(many)
    assert len(tag) <= MAX_ANSWERED_BY
    assert tag.startswith(many[0]) and tag.endswith(" more)")
    shown = tag.rsplit(" (+", 1)[0].split(", ")
    assert int(tag.rsplit("(+", 1)[1].split()[0]) == len(many) - len(shown)


def test_a_reply_from_another_model_is_recorded_counted_and_warned_about(
    make_pricer: Callable[..., FrontierPricer],
    items: pd.DataFrame,
    stub: StubServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub.state.answering_model = SUBSTITUTE
    pricer = make_pricer().fit(items, items["price"])
    with caplog.at_level(logging.WARNING):
        report = pricer.predict_report(items)
    assert all(request["model"] == "gpt-4o-mini" for request in stub.state.chat_requests)
    assert report.facts["llm.answered_by"] == SUBSTITUTE
    assert report.stats["llm.answers_from_other_model"] == len(items)
    assert report.stats["llm.answers_without_model"] == 0
    warning = f"6 of 6 answers came from {SUBSTITUTE}, not the model asked for (gpt-4o-mini)"
    assert warning in caplog.text


def test_a_dated_snapshot_of_the_model_asked_for_is_recorded_without_a_warning(
    make_pricer: Callable[..., FrontierPricer],
    items: pd.DataFrame,
    stub: StubServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub.state.answering_model = "gpt-4o-mini-2024-07-18"  # what OpenAI itself answers
    pricer = make_pricer().fit(items, items["price"])
    with caplog.at_level(logging.WARNING):
        report = pricer.predict_report(items)
    assert report.facts["llm.answered_by"] == "gpt-4o-mini-2024-07-18"
    assert report.stats["llm.answers_from_other_model"] == 0
    assert "not the model asked for" not in caplog.text


def test_a_proxy_answering_a_fine_tuned_model_with_its_base_is_caught(
    make_pricer: Callable[..., FrontierPricer],
    items: pd.DataFrame,
    stub: StubServer,
    load_prompt: Callable[[str], dict[str, Any]],
) -> None:
    # The fine-tuned family goes through the same pricer: its own name back is no alarm, and
    # its base model answering in its place (a proxy that does not route ft: names) is one.
    tuned = "ft:gpt-4o-mini-2024-07-18:org:pricer:abc123"
    pricer = make_pricer(model=tuned, prompt=load_prompt("finetuned")).fit(items, items["price"])
    report = pricer.predict_report(items)
    assert report.facts["llm.answered_by"] == tuned
    assert report.stats["llm.answers_from_other_model"] == 0
    stub.state.answering_model = "gpt-4o-mini-2024-07-18"
    report = pricer.predict_report(items)
    assert report.facts["llm.answered_by"] == "gpt-4o-mini-2024-07-18"
    assert report.stats["llm.answers_from_other_model"] == len(items)


def test_a_reply_naming_no_model_or_a_garbled_one_is_recorded_as_such(
    make_pricer: Callable[..., FrontierPricer], items: pd.DataFrame, stub: StubServer
) -> None:
    names = iter([None, "", 42, "evil\x1b[2J\nmodel"] + [f"gpt-4o-mini{'!' * 300}"] * 2)

    def rename(body: dict[str, Any]) -> dict[str, Any]:
        body["model"] = next(names)
        return body

    stub.state.reply_fn = rename
    pricer = make_pricer(max_concurrency=1).fit(items, items["price"])
    report = pricer.predict_report(items)
    assert report.stats["llm.answers_without_model"] == 3  # none, empty, not a string
    # A terminal escape and a line break are not written to the terminal or the tag as sent,
    # and a name beyond any real one is cut.
    long_name = "gpt-4o-mini" + "!" * 189
    assert report.facts["llm.answered_by"] == f"evil?[2J?model, {long_name}"
    assert report.stats["llm.answers_from_other_model"] == 3


def test_an_answer_from_the_cache_carries_the_model_that_answered_it(
    make_pricer: Callable[..., FrontierPricer],
    items: pd.DataFrame,
    stub: StubServer,
    tmp_path: Path,
) -> None:
    stub.state.answering_model = SUBSTITUTE
    pricer = make_pricer(cache_dir=str(tmp_path)).fit(items, items["price"])
    first = pricer.predict_report(items)
    stub.state.answering_model = None  # the server would now answer as gpt-4o-mini...
    again = pricer.predict_report(items)
    assert again.stats["llm.cache_hits"] == len(items)  # ... but is not asked
    assert stub.state.counters["POST /chat/completions"] == len(items)
    # The re-run records what the paid run did: the answers are the substitute's.
    assert again.facts == first.facts == {"llm.answered_by": SUBSTITUTE}
    assert again.stats["llm.answers_from_other_model"] == len(items)


def test_an_answer_cached_before_models_were_kept_still_reads_its_model_unknown(
    make_pricer: Callable[..., FrontierPricer],
    items: pd.DataFrame,
    stub: StubServer,
    tmp_path: Path,
) -> None:
    pricer = make_pricer(cache_dir=str(tmp_path)).fit(items, items["price"])
    pricer.predict_report(items)
    entries = sorted(tmp_path.rglob("*.json"))
    assert len(entries) == len(items)
    for path in entries:  # as pricer wrote them before: no model, checksummed without one
        entry = json.loads(path.read_text(encoding="utf-8"))
        assert entry["answer"].pop("model") == "gpt-4o-mini"
        entry["checksum"] = _digest([path.stem, entry["answer"]])
        path.write_text(json.dumps(entry), encoding="utf-8")
    report = pricer.predict_report(items)
    assert report.stats["llm.cache_hits"] == len(items)  # read, not paid for again
    assert stub.state.counters["POST /chat/completions"] == len(items)
    assert report.facts == {"llm.answered_by": "unknown"}
    assert report.stats["llm.answers_without_model"] == len(items)
    assert report.stats["llm.answers_from_other_model"] == 0


def test_a_run_answered_by_another_model_says_so_in_its_tags_metrics_and_description(
    compose_conf, item_files, stub: StubServer, api_key: str, tracking_uri: str
) -> None:
    stub.state.answering_model = SUBSTITUTE
    cfg = frontier_config(compose_conf, item_files, stub, "model.tier=null", "validation.size=10")
    run = mlflow.get_run(run_family("frontier", cfg).run_id)
    assert run.data.tags["llm.model.catalogue_name"] == "gpt-4o-mini"  # what was asked for
    assert run.data.tags["llm.answered_by"] == SUBSTITUTE  # and what answered
    assert run.data.tags["validation.llm.answered_by"] == SUBSTITUTE
    assert run.data.metrics["llm.answers_from_other_model"] == 12
    assert run.data.metrics["validation.llm.answers_from_other_model"] == 10
    said = f"Asked for gpt-4o-mini, answered by {SUBSTITUTE}: 22 answers came from another model"
    assert said in run.data.tags["mlflow.note.content"]


def test_a_run_answered_by_the_model_asked_for_has_no_such_line(
    compose_conf, item_files, stub: StubServer, api_key: str, tracking_uri: str
) -> None:
    stub.state.answering_model = "gpt-4o-mini-2024-07-18"
    run = mlflow.get_run(
        run_family(
            "frontier", frontier_config(compose_conf, item_files, stub, "model.tier=null")
        ).run_id
    )
    assert run.data.tags["llm.answered_by"] == "gpt-4o-mini-2024-07-18"
    assert run.data.metrics["llm.answers_from_other_model"] == 0
    assert "Asked for" not in run.data.tags["mlflow.note.content"]


def test_an_ensembles_llm_member_answered_by_another_model_is_in_the_ensembles_record(
    compose_conf, item_files, stub: StubServer, api_key: str, tracking_uri: str
) -> None:
    stub.state.answering_model = SUBSTITUTE
    cfg = ensemble_config(compose_conf, item_files, stub)
    run = mlflow.get_run(run_family("ensemble", cfg).run_id)
    assert run.data.tags["ensemble.llm.llm.answered_by"] == SUBSTITUTE
    assert run.data.tags["ensemble.llm.fit.llm.answered_by"] == SUBSTITUTE
    assert run.data.tags["llm.answered_by"] == SUBSTITUTE
    # 12 test items and 12 of the stacker's validation split, priced at fit.
    assert run.data.metrics["ensemble.llm.fit.llm.answers_from_other_model"] == 12
    assert run.data.metrics["llm.fit_answers_from_other_model"] == 12
    assert run.data.metrics["llm.answers_from_other_model"] == 24
    said = f"Asked for gpt-4o-mini (member llm), answered by {SUBSTITUTE}: 24 answers"
    assert said in run.data.tags["mlflow.note.content"]


def test_an_ensemble_answered_by_another_model_at_fit_only_says_so(
    make_pricer: Callable[..., FrontierPricer], make_items, stub: StubServer
) -> None:
    # The stacker's weights come from the LLM member's answers at fit: a proxy that
    # substituted only there (a fallback while the asked model was busy) shaped every price,
    # and the record named only the model that answered the test items.
    train, test = make_items(40, seed=0), make_items(8, seed=1, start=1000)
    model = ridge_and(make_pricer())
    stub.state.answering_model = SUBSTITUTE
    model.fit(train, train["price"])
    at_fit = stub.state.counters["POST /chat/completions"]
    assert at_fit == model.validation_items_ == 12
    stub.state.answering_model = None  # the test items get the model asked for
    report = model.predict_report(test)
    assert report.facts == {
        "ensemble.mini.llm.answered_by": "gpt-4o-mini",
        "ensemble.mini.fit.llm.answered_by": SUBSTITUTE,
        "llm.answered_by": f"gpt-4o-mini, {SUBSTITUTE}",
    }
    assert report.stats["ensemble.mini.llm.answers_from_other_model"] == 0
    assert report.stats["ensemble.mini.fit.llm.answers_from_other_model"] == at_fit
    assert report.stats["llm.fit_answers_from_other_model"] == at_fit
    assert report.stats["llm.answers_from_other_model"] == at_fit


def test_an_ensemble_run_answered_by_another_model_at_fit_says_so_wherever_it_is_read(
    compose_conf, item_files, stub: StubServer, api_key: str, tracking_uri: str
) -> None:
    cfg = ensemble_config(compose_conf, item_files, stub)
    _, valid = instantiate(cfg.model).validation_split(60)  # the 60 training items
    replies = {"n": 0}

    def substitute_at_fit(body: dict[str, Any]) -> dict[str, Any]:
        # Fit prices the validation split before any test item is asked for.
        replies["n"] += 1
        if replies["n"] <= len(valid):
            body["model"] = SUBSTITUTE
        return body

    stub.state.reply_fn = substitute_at_fit
    result = run_family("ensemble", cfg)
    run = mlflow.get_run(result.run_id)
    assert run.data.metrics["llm.fit_calls"] == len(valid) == 12
    assert run.data.tags["llm.answered_by"] == f"gpt-4o-mini, {SUBSTITUTE}"
    assert run.data.metrics["llm.answers_from_other_model"] == len(valid)
    said = f"Asked for gpt-4o-mini (member llm), answered by gpt-4o-mini / {SUBSTITUTE}: 12"
    assert said in run.data.tags["mlflow.note.content"]
    # What reads the record: a leaderboard's row (no course figure beside it), promote's
    # and a champion's note, pricer compare.
    assert result.other_model_answers == len(valid)
    assert result.answered_by == f"gpt-4o-mini, {SUBSTITUTE}"
    note = f"ensemble: 12 answers from gpt-4o-mini, {SUBSTITUTE}, not gpt-4o-mini as asked"
    assert note in server_notes([result])  # it said "not  as asked": an ensemble has no model
    candidate = Candidate.from_run(run, f"runs:/{run.info.run_id}/model")
    assert f"12 of its answers from gpt-4o-mini, {SUBSTITUTE}" in candidate.describe()
    compared = compare_runs([run])
    assert SUBSTITUTE in compared.loc["llm answered by"].iloc[0]


def test_an_ensemble_names_every_model_its_members_were_answered_by(
    make_pricer: Callable[..., FrontierPricer], make_items, stub: StubServer
) -> None:
    train, test = make_items(40, seed=0), make_items(8, seed=1, start=1000)
    members = {"ridge": ridge(), "mini": make_pricer(), "big": make_pricer(model="gpt-4o")}
    model = EnsemblePricer(members, validation_fraction=0.3, log_space=True, random_state=0)
    model.fit(train, train["price"])
    stub.state.answering_model = "gpt-4o-2024-08-06"  # right for one member, wrong for the other
    report = model.predict_report(test)
    assert report.facts == {
        "ensemble.mini.llm.answered_by": "gpt-4o-2024-08-06",
        "ensemble.big.llm.answered_by": "gpt-4o-2024-08-06",
        "ensemble.mini.fit.llm.answered_by": "gpt-4o-mini",  # at fit, each as asked
        "ensemble.big.fit.llm.answered_by": "gpt-4o",
        "llm.answered_by": "gpt-4o, gpt-4o-2024-08-06, gpt-4o-mini",
    }
    assert report.stats["ensemble.mini.llm.answers_from_other_model"] == len(test)
    assert report.stats["ensemble.big.llm.answers_from_other_model"] == 0
    assert report.stats["llm.answers_from_other_model"] == len(test)


def substitute_in(*spans: tuple[int, int]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A stub reply hook: the replies numbered within any of ``spans`` (first, last; from 1)
    name the substitute, the others the model asked for."""
    replies = {"n": 0}

    def reply(body: dict[str, Any]) -> dict[str, Any]:
        replies["n"] += 1
        if any(first <= replies["n"] <= last for first, last in spans):
            body["model"] = SUBSTITUTE
        return body

    return reply


def test_a_run_whose_validation_pass_alone_another_model_answered_says_so_where_it_is_read(
    compose_conf, item_files, stub: StubServer, api_key: str, tracking_uri: str
) -> None:
    # A sweep ranks its trials by their validation mae: a trial whose validation items alone
    # a substitute answered was ranked, and promoted, with no word of it (the readers read
    # llm.answers_from_other_model, the test items' count, alone).
    cfg = frontier_config(compose_conf, item_files, stub, "model.tier=null", "validation.size=10")
    stub.state.reply_fn = substitute_in((12 + 1, 12 + 10))  # after the 12 test items
    result = run_family("frontier", cfg)
    run = mlflow.get_run(result.run_id)
    assert run.data.metrics["llm.answers_from_other_model"] == 0
    assert run.data.metrics["validation.llm.answers_from_other_model"] == 10
    assert result.other_model_answers == 10
    assert result.answered_by == f"gpt-4o-mini, {SUBSTITUTE}"
    note = f"frontier: 10 answers from gpt-4o-mini, {SUBSTITUTE}, not gpt-4o-mini as asked"
    assert note in server_notes([result])
    candidate = Candidate.from_run(run, f"runs:/{run.info.run_id}/model")
    assert (candidate.other_model_answers, candidate.answered_by) == (
        10,
        f"gpt-4o-mini, {SUBSTITUTE}",
    )
    assert f"10 of its answers from gpt-4o-mini, {SUBSTITUTE}" in candidate.describe()


def test_an_ensembles_validation_pass_counts_its_calls_at_fit_once(
    compose_conf, item_files, stub: StubServer, api_key: str, tracking_uri: str
) -> None:
    # Each pass of an ensemble repeats its members' answers at fit in its count: read in both
    # passes, a substitute at fit would be counted twice.
    cfg = ensemble_config(compose_conf, item_files, stub, "validation.size=10")
    _, at_fit = instantiate(cfg.model).validation_split(60 - 10)
    fit, test = len(at_fit), 12
    # The substitute answered at fit and the validation pass, not the test items.
    stub.state.reply_fn = substitute_in((1, fit), (fit + test + 1, fit + test + 10))
    result = run_family("ensemble", cfg)
    run = mlflow.get_run(result.run_id)
    assert run.data.metrics["llm.fit_calls"] == fit
    assert run.data.metrics["llm.answers_from_other_model"] == fit
    assert run.data.metrics["validation.llm.answers_from_other_model"] == fit + 10
    assert result.other_model_answers == fit + 10
    candidate = Candidate.from_run(run, f"runs:/{run.info.run_id}/model")
    assert candidate.other_model_answers == fit + 10
    assert f"{fit + 10} of its answers from gpt-4o-mini, {SUBSTITUTE}" in candidate.describe()
