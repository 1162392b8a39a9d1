"""Every MLproject entry point's command line, as ``mlflow run`` builds it, reaches its app.

``mlflow run`` fills ``{data}`` and ``{overrides}`` with shell-quoted values, so an empty
``overrides`` arrives as ``''`` and ``overrides="a=1 b=2"`` as one argument. Each command is
run through a shell exactly as MLflow computes it, with Hydra's ``--cfg job`` appended so the
app composes its config and prints it instead of training.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from mlflow.projects._project_spec import load_project

from pricer.paths import PROJECT_ROOT, family_names

pytestmark = pytest.mark.e2e

PROJECT = load_project(str(PROJECT_ROOT))
ENTRY_POINTS = sorted(PROJECT._entry_points)
# A multirun (-m) cannot print one job's config (--cfg): the sweep entry point is run for real,
# with several overrides through `mlflow run`, in tests/sweep/test_sweep_e2e.py.
SINGLE_RUN = [
    name
    for name in ENTRY_POINTS
    # "python -m pricer.<app> ...": a -m after the module is Hydra's --multirun
    if "-m" not in PROJECT.get_entry_point(name).command.split()[3:]
]
# Two overrides that any app accepts: new keys, appended with "+".
TWO = "+probe.first=1 +probe.second=two"


def test_the_single_run_entry_points_are_found() -> None:
    assert "sweep" not in SINGLE_RUN
    assert {"main", "curate", "promote", *family_names()} <= set(SINGLE_RUN)


def test_one_entry_point_per_family_config() -> None:
    families = family_names()
    assert families, "no family configs found in conf/model"
    for family in families:
        assert family in ENTRY_POINTS, f"conf/model/{family}.yaml has no MLproject entry point"
        command = PROJECT.get_entry_point(family).command
        assert f"model={family} " in command, command


def compose_through_shell(entry_point: str, overrides: str | None, tmp_path: Path) -> dict:
    params = {} if overrides is None else {"overrides": overrides}
    command = PROJECT.get_entry_point(entry_point).compute_command(params, str(tmp_path))
    result = subprocess.run(
        f"{command} --cfg job",
        shell=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{entry_point}: {command}\n{result.stderr[-2000:]}"
    return yaml.safe_load(result.stdout)


@pytest.mark.parametrize("entry_point", SINGLE_RUN)
def test_entry_point_with_no_overrides_and_with_two(entry_point: str, tmp_path: Path) -> None:
    with ThreadPoolExecutor(2) as pool:
        plain, two = pool.map(
            lambda overrides: compose_through_shell(entry_point, overrides, tmp_path),
            [None, TWO],
        )
    assert "probe" not in plain
    assert two["probe"] == {"first": 1, "second": "two"}
    if "data" in PROJECT.get_entry_point(entry_point).parameters:
        assert plain["data"]["source"] in ("synthetic", "items")
