"""Hydra's output folders: one per command, also for commands started in the same second."""

from __future__ import annotations

import subprocess
import sys

from pricer.paths import PROJECT_ROOT

# Hydra's output folders of `pricer train`, composed at a fixed second: a command started in
# the same second as another.
SAME_SECOND = """
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import pricer.configs
from pricer.paths import CONFIG_DIR

with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
    OmegaConf.register_new_resolver("now", lambda pattern: "2026-01-01_00-00-00", replace=True)
    cfg = compose("train", return_hydra_config=True)
print(cfg.hydra.run.dir)
print(cfg.hydra.sweep.dir)
"""


def folders() -> list[str]:
    command = [sys.executable, "-c", SAME_SECOND]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()


def test_commands_started_in_the_same_second_have_output_folders_of_their_own() -> None:
    # Both wrote .hydra/ (config, overrides) and their log into one folder: the record said
    # the second command's settings for both runs; two sweeps joining one study shared trial
    # folders 0, 1, ... and multirun.yaml.
    first, second = folders(), folders()
    assert [folder.startswith(str(PROJECT_ROOT)) for folder in first] == [True, True]
    assert "/2026-01-01_00-00-00" in first[0] and "/2026-01-01_00-00-00" in first[1]
    assert first[0] != second[0]
    assert first[1] != second[1]
