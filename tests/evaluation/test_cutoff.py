"""The before/after knowledge cut-off split of an LLM's error."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest

from pricer.evaluation.cutoff import MIN_GROUP, cutoff_split, first_available

CUTOFF = dt.date(2023, 10, 31)


def details(date: str | None) -> str:
    body = {"Brand": "Acme"} | ({"Date First Available": date} if date else {})
    return json.dumps(body)


def test_dates_are_read_from_the_details_json() -> None:
    rows = [
        details("June 1, 2017"),
        details("Oct 31, 2023"),
        details(None),
        "not json",
        None,
        details("sometime"),
        json.dumps(["a list"]),
    ]
    assert first_available(rows) == [
        dt.date(2017, 6, 1),
        dt.date(2023, 10, 31),
        None,
        None,
        None,
        None,
        None,
    ]


def test_errors_are_split_at_the_cutoff_and_failures_left_out() -> None:
    dates = [dt.date(2020, 1, 1), CUTOFF, dt.date(2023, 11, 1), dt.date(2024, 5, 1), None, None]
    truth = [100.0, 100.0, 100.0, 100.0, 100.0, 100.0]
    estimate = [90.0, 130.0, 150.0, np.nan, 100.0, 50.0]  # the 2024 item failed
    split = cutoff_split(truth, estimate, dates, CUTOFF)
    m = split.metrics
    assert m["llm.mae_before_cutoff"] == 20.0  # 10 and 30: the cut-off day counts as before
    assert m["llm.mae_after_cutoff"] == 50.0  # only the answered 2023-11 item
    assert m["llm.mae_cutoff_gap"] == 30.0
    assert (m["llm.n_before_cutoff"], m["llm.n_after_cutoff"], m["llm.n_undated"]) == (2, 1, 2)
    assert "Knowledge cut-off 2023-10-31" in split.line and "$20.00 on 2 items" in split.line
    assert "too few to compare" in split.line


def test_large_groups_get_a_reading_hint_and_unknown_cutoffs_say_so() -> None:
    n = MIN_GROUP
    dates = [dt.date(2019, 1, 1)] * n + [dt.date(2024, 1, 1)] * n
    truth = np.full(2 * n, 50.0)
    split = cutoff_split(truth, truth + 5.0, dates, CUTOFF)
    assert split.metrics["llm.mae_cutoff_gap"] == 0.0
    assert "classical family" in split.line and "too few" not in split.line
    unknown = cutoff_split(truth, truth, dates, None)
    assert math.isnan(unknown.metrics["llm.mae_before_cutoff"])
    assert unknown.metrics["llm.n_before_cutoff"] == 0 and "unknown" in unknown.line


def test_lengths_must_agree() -> None:
    with pytest.raises(ValueError, match="differ"):
        cutoff_split([1.0, 2.0], [1.0, 2.0], [None], CUTOFF)
