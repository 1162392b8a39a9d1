"""Every key a command's families need is read before anything runs (``check_api_keys``), by
the rule their clients are built by, on the configs the apps compose."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from omegaconf import DictConfig

from pricer.models.llm.client import MissingApiKeyError, check_api_keys

MEMBER_KEY = "PRICER_TEST_MEMBER_KEY"  # the ensemble's LLM member's, apart from OpenAI's


@pytest.fixture
def leaderboard(compose_conf: Callable[..., DictConfig]) -> DictConfig:
    """A leaderboard's families: classical, both LLM families and an ensemble whose LLM member
    reads a key of its own."""
    return compose_conf(
        "leaderboard",
        [
            "+model@models.frontier=frontier",
            "+model@models.frontier_rag=frontier_rag",
            "+model@models.ensemble=ensemble",
            "+model@models.ensemble.members.llm=frontier",
            f"models.ensemble.members.llm.api_key_env={MEMBER_KEY}",
        ],
    ).models


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", MEMBER_KEY):
        monkeypatch.delenv(name, raising=False)


def test_every_family_without_its_key_is_named_on_one_line(leaderboard: DictConfig) -> None:
    with pytest.raises(MissingApiKeyError) as refused:
        check_api_keys(leaderboard)
    line = str(refused.value)
    assert "\n" not in line
    # Those refused for the same reason together; the member by its place in the ensemble.
    assert line.startswith(
        "frontier, frontier_rag: environment variable OPENAI_API_KEY (named by api_key_env) "
        "is not set;"
    ), line
    assert f"; ensemble (members.llm): environment variable {MEMBER_KEY} " in line
    for classical in ("constant", "xgboost", "tfidf_ridge"):
        assert classical not in line


def test_classical_families_need_no_key(leaderboard: DictConfig) -> None:
    check_api_keys({name: leaderboard[name] for name in ("constant", "linear", "xgboost")})


def test_the_keys_set_pass_and_a_broken_one_is_refused(
    leaderboard: DictConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-anything")
    monkeypatch.setenv(MEMBER_KEY, "  local\n")  # a paste's spaces and line end: still a key
    check_api_keys(leaderboard)
    # A line break inside the value is no key: the same rule as the client's, the same words.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-any\nthing")
    with pytest.raises(MissingApiKeyError, match=r"^frontier, frontier_rag: environment "):
        check_api_keys({name: leaderboard[name] for name in ("frontier", "frontier_rag")})
