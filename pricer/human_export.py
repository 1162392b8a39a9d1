"""python -m pricer.human_export: the evaluation items as a CSV for a person to price.

The items are exactly those every family is scored on (``pricer.experiment.evaluation_items``:
the first ``eval.size`` test items), with an id derived from each text, so ``model=human``
matches the guesses back without any extra file.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from pricer import configs  # noqa: F401  (registers resolvers and config schemas)
from pricer.data.dataset import load_curated
from pricer.evaluation import EvalSettings
from pricer.experiment import evaluation_items
from pricer.models.human import export_items


def run(cfg: DictConfig) -> str:
    curated = load_curated(cfg.data, cfg.curation)
    items = evaluation_items(curated, EvalSettings.from_config(cfg.eval))
    path = export_items(items, cfg.output_path)
    print(
        f"wrote {len(items)} items to price to {path}; fill in the price column and save it "
        "as model=human's guesses_path",
        flush=True,
    )
    return str(path)


@hydra.main(version_base="1.3", config_path="../conf", config_name="human_export")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
