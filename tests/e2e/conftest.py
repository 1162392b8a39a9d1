"""Helpers for end-to-end tests: run the real CLI in a subprocess against a real store."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from benchmarks.common import store_env
from pricer.paths import PROJECT_ROOT


def run_cli(
    args: list[str],
    tracking_uri: str,
    workdir: Path,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command the way a user would, from the project folder, with the venv first on PATH.

    Hydra's output folder goes to ``workdir`` so tests leave nothing in the checkout; ``env``
    adds variables to this process's environment.
    """
    env = {
        **store_env(),
        **(env or {}),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def small_leaderboard(
    tracking_uri: str, workdir: Path, *overrides: str
) -> subprocess.CompletedProcess[str]:
    """``pricer.leaderboard`` of constant and tfidf_ridge on a little synthetic data; it must
    succeed."""
    result = run_cli(
        pricer_app(
            "leaderboard",
            "data.n_records=4000",
            "curation.split.test_size=200",
            f"curation.cache_dir={workdir}/cache",
            "families=[constant,tfidf_ridge]",
            *overrides,
            workdir=workdir,
        ),
        tracking_uri,
        workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def pricer_app(app: str, *overrides: str, workdir: Path) -> list[str]:
    return [sys.executable, "-m", f"pricer.{app}", *overrides, f"hydra.run.dir={workdir}/hydra"]


def files_holding(secret: str, folder: Path) -> list[str]:
    """Every file under ``folder`` whose bytes hold ``secret``, and every member of a zip
    file that does (a logged model's .skops file is a compressed zip: its bytes never do)."""
    needle, found = secret.encode(), []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                found += [f"{path}!{n}" for n in archive.namelist() if needle in archive.read(n)]
        if needle in path.read_bytes():
            found.append(str(path))
    return found


def runs(tracking_uri: str) -> pd.DataFrame:
    return mlflow.search_runs(search_all_experiments=True, output_format="pandas")


@pytest.fixture
def real_slice(shared_data: Path, tmp_path: Path) -> dict[str, str]:
    """A small slice of the real items: 400 training rows and 60 test rows, read by path."""
    extra = pd.read_json(shared_data / "pricer_extra_items.jsonl", lines=True)
    extra = extra[extra["category"] != "Software"].sample(400, random_state=0)
    canonical = pd.read_json(shared_data / "pricer_canonical_test_rest_1750.jsonl", lines=True)
    paths = {"train": tmp_path / "train.jsonl", "test": tmp_path / "test.parquet"}
    extra.to_json(paths["train"], orient="records", lines=True)
    canonical.head(60).to_parquet(paths["test"])
    return {name: str(path) for name, path in paths.items()}
