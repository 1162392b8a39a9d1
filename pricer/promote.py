"""python -m pricer.promote data=real [candidates.family=xgboost] ...: register the best
comparable run's model on that data as pricer-<data>; it becomes champion only if it
significantly beats that data's champion on the same test items.

`retire=true` instead retires that data's champion (deletes the alias, records why).

Exits with status 2 and one line, moving no alias, when it cannot decide (no data chosen, no
candidate, a champion scored on other test items); a candidate that is not better becomes
challenger and exits 0.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from pricer import configs  # noqa: F401  (registers resolvers and config schemas)
from pricer.cli import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="promote")
def main(cfg: DictConfig) -> None:
    # After composing, not at the top: see pricer.cli.run.
    from pricer.tracking.registry import promote

    promote(cfg)


if __name__ == "__main__":
    run(main)
