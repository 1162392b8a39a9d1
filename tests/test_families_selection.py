"""Which families a leaderboard runs and which columns its table shows: ``families=`` and
``columns=`` as a user types them."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from pricer.errors import ConfigError
from pricer.experiment import leaderboard_columns, run_leaderboard, selected_families
from tests.conftest import compose_config

CONFIGURED = ["constant", "linear", "xgboost"]


def test_no_selection_runs_every_configured_family() -> None:
    assert selected_families(None, CONFIGURED) == CONFIGURED


def test_an_empty_selection_is_refused_not_read_as_every_family() -> None:
    with pytest.raises(ConfigError, match=r"families=\[\] selects no family"):
        selected_families([], CONFIGURED)


def test_one_name_without_brackets_is_one_family() -> None:
    # families=constant: read letter by letter, it was "unknown families ['a', 'c', ...]".
    assert selected_families("constant", CONFIGURED) == ["constant"]


def test_a_list_keeps_its_order() -> None:
    assert selected_families(["xgboost", "constant"], CONFIGURED) == ["xgboost", "constant"]


def test_an_unknown_family_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"unknown families \['xgbost'\]; configured"):
        selected_families(["constant", "xgbost"], CONFIGURED)
    with pytest.raises(ConfigError, match=r"unknown families \['xgbost'\]"):
        selected_families("xgbost", CONFIGURED)


def test_a_family_named_twice_is_refused_not_fitted_twice() -> None:
    # families=[constant,linear,constant] fitted constant twice: two runs under the
    # leaderboard, one row in its table, and the saved view listing the second unranked.
    with pytest.raises(ConfigError, match=r"^families names constant more than once"):
        selected_families(["constant", "linear", "constant"], CONFIGURED)


# -- which columns its table shows: ``columns=`` ---------------------------------------------
def test_an_unknown_column_is_refused_before_any_run(tracking_uri: str, tmp_path: Path) -> None:
    # It was accepted: every family fitted, and the table left the column out.
    cfg = compose_config(
        "leaderboard",
        [
            "families=[constant]",
            "columns=[mae,foo,hit_rat]",
            "data.n_records=4000",
            "curation.split.test_size=200",
            f"curation.cache_dir={tmp_path / 'cache'}",
        ],
    )
    with pytest.raises(ConfigError) as refused:
        run_leaderboard(cfg)
    assert str(refused.value) == (
        "columns: unknown columns 'foo', 'hit_rat' (did you mean 'hit_rate'?); known: mae, "
        "mae_ci_low, mae_ci_high, rmsle, hit_rate, r2, n, n_failed, failure_rate, "
        "time.fit_seconds, time.predict_seconds, time.log_model_seconds, and a family's own "
        "figures (llm.*, human.*, ensemble.*)"
    )
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_the_committed_columns_and_a_family_s_own_figures_are_known() -> None:
    committed = list(compose_config("leaderboard").columns)
    assert leaderboard_columns(committed) == committed
    own = ["ensemble.weight.xgboost", "llm.failures.no_price", "human.failures.blank"]
    assert leaderboard_columns(own) == own


def test_one_column_without_brackets_is_one_column() -> None:
    # columns=mae was read letter by letter: columns m, a and e, each NaN.
    assert leaderboard_columns("mae") == ["mae"]
