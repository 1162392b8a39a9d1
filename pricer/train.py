"""python -m pricer.train model=<family> data=<source> ...: one tracked run of one family."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from pricer import configs  # noqa: F401  (registers resolvers and config schemas)
from pricer.cli import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    # After composing, not at the top: see pricer.cli.run.
    from pricer.experiment import run_training

    return run_training(cfg)


if __name__ == "__main__":
    run(main)
