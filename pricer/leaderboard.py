"""python -m pricer.leaderboard ...: every family on the same curated data, one table."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from pricer import configs  # noqa: F401  (registers resolvers and config schemas)
from pricer.cli import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="leaderboard")
def main(cfg: DictConfig) -> None:
    # After composing, not at the top: see pricer.cli.run.
    from pricer.experiment import run_leaderboard

    run_leaderboard(cfg)


if __name__ == "__main__":
    run(main)
