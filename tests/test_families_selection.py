"""Which families a leaderboard runs: ``families=`` as a user types it."""

from __future__ import annotations

import pytest

from pricer.errors import ConfigError
from pricer.experiment import selected_families

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
