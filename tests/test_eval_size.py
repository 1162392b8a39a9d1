"""eval.size beyond the test split: every item is scored, and the user is told so."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pandas as pd
import pytest

from pricer.evaluation import EvalSettings
from pricer.experiment import evaluation_items, warn_short_test_split
from tests.conftest import compose_config


def eval_settings(size: int | None) -> EvalSettings:
    """conf/eval/default.yaml as the apps compose it, with ``eval.size`` set."""
    override = f"eval.size={'null' if size is None else size}"
    return EvalSettings.from_config(compose_config("train", [override]).eval)


def curated(n: int) -> SimpleNamespace:
    return SimpleNamespace(test=pd.DataFrame({"text": [f"item {i}" for i in range(n)]}))


def test_asking_for_more_items_than_the_split_holds_says_so(caplog: pytest.LogCaptureFixture):
    # eval.size=100000 on the real data scored its 250 items without a word.
    data, settings = curated(250), eval_settings(100000)
    with caplog.at_level(logging.WARNING):
        warn_short_test_split(data, settings)
    assert "eval.size=100000, but the test split holds 250 items: scoring all of them" in (
        caplog.text
    )
    assert len(evaluation_items(data, settings)) == 250


def test_a_split_that_holds_enough_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        warn_short_test_split(curated(250), eval_settings(250))
        warn_short_test_split(curated(10), eval_settings(None))
    assert caplog.text == ""


def test_a_setting_out_of_range_names_where_it_sits_in_the_config() -> None:
    # "EvalSettings: size must be >= 1 or null, got 0": a class name no user types.
    from pricer.errors import ConfigError
    from tests.conftest import compose_config

    cfg = compose_config("train", ["eval.size=0"])
    with pytest.raises(ConfigError) as refused:
        EvalSettings.from_config(cfg.eval)
    assert str(refused.value) == "eval: size must be >= 1 or null, got 0"
