"""pricer's Optuna sweeper plugin: the official sweeper's syntax, current Optuna, packaging."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from packaging.requirements import Requirement

from hydra_plugins.pricer_optuna_sweeper import search_space
from pricer.paths import PROJECT_ROOT
from tests.sweep.test_sweep_configs import SEARCHES, compose_train


def test_search_space_syntax_maps_to_optuna_distributions() -> None:
    space, fixed = search_space.parse(
        {
            "a": "choice(1, 2, 5)",
            "b": "int(interval(100, 400))",
            "c": "interval(0.1, 0.6)",
            "d": "tag(log, interval(0.05, 30))",
            "e": "range(1, 9, 2)",
            "f": "range(0.0, 1.0, 0.25)",
            "g": "choice(true, false)",
            "h": "fixed",
        },
        ["c=0.3", "i=interval(1, 8)"],  # the command line beats the config; adds keys
    )
    assert space == {
        "a": CategoricalDistribution([1, 2, 5]),
        "b": IntDistribution(100, 400),
        "d": FloatDistribution(0.05, 30.0, log=True),
        "e": IntDistribution(1, 7, step=2),  # Hydra's range stops before 9, as it does in a grid
        "f": FloatDistribution(0.0, 0.75, step=0.25),
        "g": CategoricalDistribution([True, False]),
        "i": FloatDistribution(1.0, 8.0),  # interval() is float unless int(...)
    }
    assert fixed == {"c": "0.3", "h": "fixed"}
    assert search_space.grid({"a": space["a"], "e": space["e"]}) == {
        "a": [1, 2, 5],
        "e": [1, 3, 5, 7],
    }
    with pytest.raises(ValueError, match="grid sampler needs"):
        search_space.grid({"d": space["d"]})


@pytest.mark.parametrize("family", SEARCHES)
def test_every_search_space_of_the_project_parses(family: str) -> None:
    cfg = compose_train(f"hparams_search={family}")
    space, fixed = search_space.parse(dict(cfg.hydra.sweeper.params), [])
    assert set(space) == set(cfg.hydra.sweeper.params) and not fixed
    study = optuna.create_study()  # current Optuna samples every distribution
    trial = study.ask(space)
    assert set(trial.params) == set(space)


def test_current_optuna_and_no_old_sweeper_in_the_dependencies() -> None:
    assert int(optuna.__version__.split(".")[0]) >= 4
    requirements = [Requirement(r) for r in importlib.metadata.requires("pricer") or []]
    names = {r.name for r in requirements}
    assert "hydra-optuna-sweeper" not in names
    (optuna_req,) = [r for r in requirements if r.name == "optuna"]
    # An environment that already has Optuna 4 or 5 keeps it.
    assert optuna_req.specifier.contains("4.5.0") and optuna_req.specifier.contains("5.1.0")
    assert not optuna_req.specifier.contains("2.10.1")


def test_a_wheel_ships_the_plugin_in_hydras_namespace_package(tmp_path: Path) -> None:
    """Non-editable installs find the sweeper too: it is in the wheel, without __init__ above.

    Built from a copy of the project's files (tracked or not ignored): setuptools writes
    build/ and *.egg-info beside the sources.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    source = tmp_path / "source"
    for name in listed.stdout.splitlines():
        if (PROJECT_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, source / name)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("pricer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    plugin = "hydra_plugins/pricer_optuna_sweeper"
    assert {f"{plugin}/config.py", f"{plugin}/sweeper.py", f"{plugin}/study.py"} <= names
    # hydra_plugins is shared with every other Hydra plugin: an __init__.py would hide theirs.
    assert "hydra_plugins/__init__.py" not in names
