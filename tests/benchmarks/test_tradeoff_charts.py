"""benchmarks.tradeoff_charts: the README's trade-off charts, redrawn from a stored leaderboard."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmarks import tradeoff_charts
from pricer.evaluation import tradeoff


def test_a_family_can_be_charted_under_the_server_that_answered_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The README's charts showed the stub's $377 as plain "frontier", beside the course's $80.
    board = pd.DataFrame(
        {
            "mae": [90.0, 377.0],
            "mae_ci_low": [80.0, 344.0],
            "mae_ci_high": [100.0, 408.0],
            "time.fit_seconds": [10.0, 0.0],
            "time.predict_seconds": [1.0, 80.0],
            "llm.cost_per_1k_items_usd": [float("nan"), 0.03],
            "llm.latency_p50_s": [float("nan"), 0.3],
            "n": [250, 250],
            "n_failed": [0, 0],
        },
        index=pd.Index(["stack", "frontier"], name="family"),
    )
    board.to_csv(tmp_path / "leaderboard.csv")
    charted: list[list[str]] = []
    for name in ("cost_chart", "latency_chart"):
        real = getattr(tradeoff, name)
        monkeypatch.setattr(
            tradeoff,
            name,
            lambda table, title, real=real: charted.append(list(table.index)) or real(table, title),
        )
    table = tradeoff_charts.main(
        [
            str(tmp_path / "leaderboard.csv"),
            "--out",
            str(tmp_path),
            "--label",
            "frontier=frontier (127.0.0.1:8765)",
        ]
    )
    assert charted == [["stack", "frontier (127.0.0.1:8765)"]] * 2
    assert list(table.index) == ["stack", "frontier"]  # the printed table keeps the family
    with pytest.raises(SystemExit):
        tradeoff_charts.main([str(tmp_path / "leaderboard.csv"), "--label", "frontier"])
