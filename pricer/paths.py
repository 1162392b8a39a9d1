"""Where the project lives on disk, and the OmegaConf resolvers that expose it to configs."""

from __future__ import annotations

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
    """Make `${pricer.root:}` available to every config.

    Paths in configs are resolved against the project root, not the current folder, so Hydra
    output folders and `mlflow run` working folders all reach the same store and caches.
    """
    if not OmegaConf.has_resolver("pricer.root"):
        OmegaConf.register_new_resolver("pricer.root", lambda: str(PROJECT_ROOT))


register_resolvers()
