"""A user error prints one line and exits 2; no traceback (that is for bugs)."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pytest

from tests.e2e.conftest import pricer_app, run_cli

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # Missing input file: a DataError from the items source.
        (
            ["model=constant", "data=items", "data.train_paths=[/nonexistent/items.jsonl]"],
            "nonexistent",
        ),
        # The human baseline before anyone has priced the items.
        (["model=human", "model.guesses_path=/nonexistent/guesses.csv"], "human_export"),
        # A key no config has: Hydra's composition error.
        (["model=constant", "model.no_such_setting=1"], "no_such_setting"),
        # An unknown family.
        (["model=no_such_family"], "no_such_family"),
        # A data key the source does not have (each data option has a schema).
        (["model=constant", "data.n_record=5"], "n_record"),
        (["model=constant", "data=real", "data.test_rows=ten"], "test_rows"),
    ],
)
def test_user_error_is_one_line(
    overrides: list[str], expected: str, tracking_uri: str, tmp_path: Path
) -> None:
    result = run_cli(pricer_app("train", *overrides, workdir=tmp_path), tracking_uri, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "Error executing job" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert expected in errors[0]


@pytest.mark.parametrize(
    ("app", "overrides", "key"),
    [
        ("train", ["model=xgboost", "model.n_estimators=abc"], "n_estimators"),
        ("leaderboard", ["models.svr.C=high"], "C"),
        ("train", ["eval.size=abc"], "size"),
        ("curate", ["data.batch_size=big"], "batch_size"),
    ],
)
def test_a_mistyped_setting_fails_before_any_run_or_data(
    app: str, overrides: list[str], key: str, tracking_uri: str, tmp_path: Path
) -> None:
    # A synthetic source that would take minutes to build: the check comes first.
    slow = "data.n_records=5000000"
    result = run_cli(pricer_app(app, *overrides, slow, workdir=tmp_path), tracking_uri, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert re.search(rf"key: ([a-z_]+\.)*{key}\b", error), error
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
