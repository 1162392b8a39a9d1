"""Where the project lives on disk, and the OmegaConf resolvers that expose it to configs."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from pricer.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT_ROOT / "conf"


def require_config_dir() -> Path:
    """conf/, or a one-line error: a plain ``pip install .`` copies the code without it."""
    if not CONFIG_DIR.is_dir():
        raise UserError(
            f"pricer's configs are missing: no {CONFIG_DIR}. pricer runs from its clone, "
            "installed there with `pip install -e .` (a plain `pip install .` leaves conf/ behind)"
        )
    return CONFIG_DIR


def family_names() -> list[str]:
    """Every model family pricer can train: one YAML each in conf/model/ (the single list)."""
    return sorted(path.stem for path in (CONFIG_DIR / "model").glob("*.yaml"))


def register_resolvers() -> None:
    """Make `${pricer.root:}` and `${pricer.process:}` available to every config.

    Paths in configs are resolved against the project root, not the current folder, so Hydra
    output folders and `mlflow run` working folders all reach the same store and caches.
    ``pricer.process`` is this process's id, which tells apart the output folders of commands
    started in the same second (conf/hydra/default.yaml); cached in the config, so a sweep's
    worker processes name the folder of the process that launched them.
    """
    if not OmegaConf.has_resolver("pricer.root"):
        OmegaConf.register_new_resolver("pricer.root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("pricer.process"):
        OmegaConf.register_new_resolver("pricer.process", lambda: str(os.getpid()), use_cache=True)


register_resolvers()
