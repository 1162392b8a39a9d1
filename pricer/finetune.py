"""python -m pricer.finetune [confirm=false] [job_id=...]: fine-tune a chat model, tracked.

The run logs the config, the estimated cost, the training files, the job id and fine-tuned
model name (tags ``ft.job_id``, ``ft.fine_tuned_model``) and the losses per step
(``ft.train_loss``, ``ft.valid_loss``). A failed or cancelled job fails the run with the
server's reason; no terminal to confirm the cost on is a one-line error (``confirm=false``
accepts it). ``job_id=...`` re-attaches to a running job after the client stopped.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from pricer import configs  # noqa: F401  (registers resolvers and config schemas)
from pricer.cli import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="finetune")
def main(cfg: DictConfig) -> None:
    # After composing, not at the top: see pricer.cli.run.
    from pricer.preparation import run_finetune

    run_finetune(cfg)


if __name__ == "__main__":
    run(main)
