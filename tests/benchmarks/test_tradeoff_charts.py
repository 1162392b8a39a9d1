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
            "--prefix",
            "tradeoff_",
        ]
    )
    assert charted == [["stack", "frontier (127.0.0.1:8765)"]] * 2
    # The README's names: a redraw replaces its pictures, not two new files beside them.
    assert {p.name for p in tmp_path.glob("*.png")} == {
        "tradeoff_mae_vs_cost.png",
        "tradeoff_mae_vs_latency.png",
    }
    assert list(table.index) == ["stack", "frontier"]  # the printed table keeps the family
    with pytest.raises(SystemExit):
        tradeoff_charts.main([str(tmp_path / "leaderboard.csv"), "--label", "frontier"])


def test_a_file_that_is_not_a_leaderboard_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A missing file was a FileNotFoundError traceback; a CSV without a family column, pandas'
    # "Index family invalid" traceback.
    (tmp_path / "runs.csv").write_text("run_id,mae\nabc,90.0\n")
    for path, reason in (
        (tmp_path / "missing.csv", "no such file"),
        (tmp_path / "runs.csv", "not a leaderboard.csv: it has no 'family' column"),
    ):
        with pytest.raises(SystemExit) as stop:
            tradeoff_charts.main([str(path), "--out", str(tmp_path / "charts")])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.strip().splitlines()[-1].endswith(f"error: {path}: {reason}")
    assert not (tmp_path / "charts").exists()
