"""python -m pricer.human_export: the evaluation items as a CSV for a person to price.

The items are exactly those every family is scored on (``pricer.experiment.evaluation_items``:
the first ``eval.size`` test items), with an id derived from each text, so ``model=human``
matches the guesses back without any extra file.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from pricer import configs  # noqa: F401  (registers resolvers and config schemas)
from pricer.cli import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="human_export")
def main(cfg: DictConfig) -> None:
    # After composing, not at the top: see pricer.cli.run.
    from pricer.preparation import export_for_human

    export_for_human(cfg)


if __name__ == "__main__":
    run(main)
