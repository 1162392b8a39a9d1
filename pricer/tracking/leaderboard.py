"""Logging a leaderboard on its parent run: the table, as data and as a chart."""

from __future__ import annotations

import mlflow
import pandas as pd

from pricer.evaluation import leaderboard_chart


def log_leaderboard(table: pd.DataFrame) -> None:
    """Print the table and log it (JSON table for the UI, CSV, bar chart) on the active run."""
    print(table.drop(columns=["run_id"]).to_string(float_format=lambda v: f"{v:,.3f}"), flush=True)
    mlflow.log_table(table.reset_index(), "leaderboard/leaderboard.json")
    mlflow.log_text(table.to_csv(), "leaderboard/leaderboard.csv")
    mlflow.log_figure(
        leaderboard_chart(table, "Mean absolute error by family"), "leaderboard/mae_by_family.png"
    )


def last_run_id() -> str:
    """The id of the run this process started last ('' if none): a family that failed."""
    run = mlflow.last_active_run()
    return run.info.run_id if run else ""
