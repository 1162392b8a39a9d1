"""Relative paths are the folder's a command starts in, with ``hydra.job.chdir=true`` too."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from benchmarks.common import store_env
from pricer.paths import PROJECT_ROOT

SMALL = ["data.n_records=3000", "curation.split.test_size=200", "eval.size=50"]


def run_in(start: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``python -m pricer.<arguments>`` typed in ``start``, its store ``sqlite:///mlflow.db``
    (relative: beside the user), Hydra's output folders under ``start/out``."""
    env = {**store_env("sqlite:///mlflow.db"), "PYTHONPATH": str(PROJECT_ROOT)}
    app, *overrides = arguments
    command = [
        sys.executable, "-m", f"pricer.{app}", *overrides, "hydra.job.chdir=true",
        f"hydra.run.dir={start / 'out'}", f"hydra.sweep.dir={start / 'out'}",
    ]  # fmt: skip
    return subprocess.run(command, cwd=start, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "arguments",
    [
        ["train", "model=constant"],
        ["train", "-m", "model=constant", "seed=1,2", "validation.size=100"],
    ],
)
def test_a_relative_store_and_cache_are_where_the_command_started(
    arguments: list[str], migrated_store: Path, tmp_path: Path
) -> None:
    # Each job worked in its output folder: its run went to a new store there, the line's link
    # pointed at the user's store (where it was not), and its cache was a new one there too.
    shutil.copyfile(migrated_store, tmp_path / "mlflow.db")
    result = run_in(tmp_path, *arguments, *SMALL, "curation.cache_dir=cache")
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(tmp_path.rglob("mlflow.db")) == [tmp_path / "mlflow.db"]
    assert (tmp_path / "cache").is_dir()
    assert not list((tmp_path / "out").rglob("cache"))
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs(
        [experiment.experiment_id for experiment in client.search_experiments()]
    )
    trials = 2 if "-m" in arguments else 1
    assert sum(run.data.tags.get("pricer.kind") != "sweep" for run in runs) == trials
    assert {run.info.status for run in runs} == {"FINISHED"}


@pytest.mark.e2e
def test_a_relative_output_file_is_where_the_command_started(tmp_path: Path) -> None:
    # It was written into the output folder, the line saying "wrote ... to h.csv".
    result = run_in(
        tmp_path, "human_export", "output_path=h.csv", f"curation.cache_dir={tmp_path}/cache"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "h.csv").is_file()
    assert "to h.csv" in result.stdout + result.stderr
    assert not list((tmp_path / "out").rglob("h.csv"))
