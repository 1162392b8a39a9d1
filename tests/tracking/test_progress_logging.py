"""Log records during a leaderboard go through tqdm, so they never land glued to its bar."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from pricer.experiment import run_leaderboard
from pricer.models.constant import ConstantPricer
from tests.conftest import compose_config


def test_a_family_logs_through_tqdm_while_the_leaderboard_bar_is_up(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The openai SDK's "Retrying request ..." (INFO) was written straight to the console, on
    # the line the bar was drawing. A console handler, as Hydra's job logging installs one:
    console = logging.StreamHandler(sys.stderr)
    logging.root.addHandler(console)
    seen: list[list[str]] = []
    fit = ConstantPricer.fit

    def noting_fit(self, X, y):  # type: ignore[no-untyped-def]
        seen.append([type(handler).__name__ for handler in logging.root.handlers])
        return fit(self, X, y)

    monkeypatch.setattr(ConstantPricer, "fit", noting_fit)
    cfg = compose_config(
        "leaderboard",
        [
            "families=[constant]",
            "data.n_records=3000",
            "curation.split.test_size=50",
            f"curation.cache_dir={tmp_path}/cache",
            "tracking.log_model=false",
        ],
    )
    try:
        run_leaderboard(cfg)
        after = list(logging.root.handlers)
    finally:
        logging.root.removeHandler(console)
    assert seen and "_TqdmLoggingHandler" in seen[0], seen
    assert "StreamHandler" not in seen[0]  # the console handler was swapped out meanwhile
    assert console in after  # and put back once the bar is gone
    assert not any(type(handler).__name__ == "_TqdmLoggingHandler" for handler in after)
