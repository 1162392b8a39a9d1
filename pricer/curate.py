"""python -m pricer.curate data=<source> ...: curate a source into a saved, tracked split."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from pricer import configs  # noqa: F401  (registers resolvers and config schemas)
from pricer.cli import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="curate")
def main(cfg: DictConfig) -> None:
    # After composing, not at the top: see pricer.cli.run.
    from pricer.preparation import run_curation

    run_curation(cfg)


if __name__ == "__main__":
    run(main)
