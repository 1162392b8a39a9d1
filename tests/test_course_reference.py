"""The course's published figures beside a leaderboard's rows: only where they are the same
kind of experiment (conf/leaderboard.yaml's ``reference_mae``, composed as the app sees it)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from omegaconf import OmegaConf

from pricer.experiment import FamilyResult, course_reference, leaderboard_table
from tests.conftest import compose_config

OPENAI = "https://api.openai.com/v1"


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return OmegaConf.to_container(compose_config("leaderboard").reference_mae)  # type: ignore[return-value]


def row(family: str, server: str | None = None, model: str | None = None) -> FamilyResult:
    return FamilyResult(family, "run", "FINISHED", {"mae": 1.0}, server=server, llm_model=model)


def test_a_classical_family_shows_its_course_figure(reference: dict[str, Any]) -> None:
    assert course_reference(row("constant"), reference) == 146
    assert course_reference(row("random_forest"), reference) == 97
    assert math.isnan(course_reference(row("xgboost"), reference))  # the course had none


def test_an_llm_on_openai_shows_the_figure_of_the_model_it_asked(
    reference: dict[str, Any],
) -> None:
    assert course_reference(row("frontier", OPENAI, "gpt-4o-mini"), reference) == 80
    assert course_reference(row("frontier", OPENAI, "gpt-4o"), reference) == 76
    # A dated snapshot is its model; gpt-4o-mini is not gpt-4o.
    assert course_reference(row("frontier", OPENAI, "gpt-4o-2024-08-06"), reference) == 76
    assert course_reference(row("frontier", OPENAI, "gpt-4o-mini-2024-07-18"), reference) == 80
    tuned = "ft:gpt-4o-mini-2024-07-18:acme:pricer:abc123"
    assert course_reference(row("finetuned", OPENAI, tuned), reference) == 91
    # A model the course did not measure gets no figure.
    assert math.isnan(course_reference(row("frontier", OPENAI, "gpt-5"), reference))


def test_an_llm_on_another_server_shows_none(reference: dict[str, Any]) -> None:
    # The stub's hash-based prices stood beside "course mae $80" on the real leaderboard.
    for server in ("http://127.0.0.1:8765/v1", "http://localhost:11434/v1"):
        assert math.isnan(course_reference(row("frontier", server, "gpt-4o-mini"), reference))
    table = leaderboard_table(
        [row("constant"), row("frontier", "http://127.0.0.1:8765/v1", "gpt-4o-mini")],
        ["mae"],
        reference,
    )
    assert table.loc["constant", "reference_mae"] == 146
    assert math.isnan(table.loc["frontier", "reference_mae"])


def test_an_llm_on_another_server_is_charted_with_its_server() -> None:
    # The trade-off charts plotted the stub's $377 as "frontier", with nothing beside it.
    from pricer.experiment import chart_labels

    results = [
        row("constant"),
        row("frontier", "http://127.0.0.1:8765/v1", "gpt-4o-mini"),
        row("frontier_rag", OPENAI, "gpt-4o-mini"),
    ]
    assert chart_labels(results) == {"frontier": "frontier (127.0.0.1:8765)"}


def test_an_llm_whose_replies_named_another_model_shows_no_figure_and_a_note(
    reference: dict[str, Any],
) -> None:
    # OpenAI's URL, gpt-4o-mini asked for, but 3 replies named another model: the row would
    # stand beside gpt-4o-mini's $80 and the leaderboard said nothing of the substitute.
    from pricer.experiment import server_notes

    substituted = FamilyResult(
        "frontier",
        "run",
        "FINISHED",
        {"mae": 1.0, "llm.answers_from_other_model": 3.0},
        server=OPENAI,
        llm_model="gpt-4o-mini",
        answered_by="gpt-4o-mini-2024-07-18, llama-3.1-8b",
    )
    assert math.isnan(course_reference(substituted, reference))
    assert server_notes([row("constant"), substituted]) == [
        "frontier: 3 answers from gpt-4o-mini-2024-07-18, llama-3.1-8b, not gpt-4o-mini as asked"
    ]
    # A snapshot of the model asked for is that model: figure, and no note.
    snapshot = row("frontier", OPENAI, "gpt-4o-mini")
    snapshot.answered_by = "gpt-4o-mini-2024-07-18"
    assert course_reference(snapshot, reference) == 80
    assert server_notes([snapshot]) == []
