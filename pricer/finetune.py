"""python -m pricer.finetune [confirm=false] [job_id=...]: fine-tune a chat model, tracked.

The run logs the config, the estimated cost, the training files, the job id and fine-tuned
model name (tags ``ft.job_id``, ``ft.fine_tuned_model``) and the losses per step
(``ft.train_loss``, ``ft.valid_loss``). A failed or cancelled job fails the run with the
server's reason. ``job_id=...`` re-attaches to a running job after the client stopped.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import hydra
import mlflow
import openai
from mlflow.entities import Metric as MlflowMetric
from omegaconf import DictConfig
from openai.types.fine_tuning import FineTuningJob

from pricer import configs  # noqa: F401  (registers resolvers and config schemas)
from pricer.data.dataset import load_curated
from pricer.models.llm import finetuning as ft
from pricer.models.llm.client import ClientSettings, make_client
from pricer.models.llm.prompts import PromptTemplate
from pricer.tracking.run import log_config, tracked_run

ENTRY_TAG = "pricer.entry_point"
BATCH = 1000  # metrics per MLflow log_batch call


def log_losses(metrics: list[ft.Metric]) -> None:
    run = mlflow.active_run()
    now = int(time.time() * 1000)
    rows = [MlflowMetric(name, value, now, step) for name, value, step in metrics]
    for start in range(0, len(rows), BATCH):
        mlflow.MlflowClient().log_batch(run.info.run_id, metrics=rows[start : start + BATCH])


def follow_and_log(cfg: DictConfig, client: openai.OpenAI, job_id: str) -> FineTuningJob:
    losses = ft.LossLog()
    job = ft.follow_job(
        client,
        job_id,
        poll_seconds=cfg.poll_seconds,
        on_metrics=log_losses,
        progress=cfg.progress,
        losses=losses,
    )
    log_losses(losses.new(ft.result_losses(client, job)))  # steps the polls did not see
    mlflow.set_tag("ft.fine_tuned_model", job.fine_tuned_model)
    if job.trained_tokens is not None:
        mlflow.log_metric("ft.trained_tokens", job.trained_tokens)
    print(
        f"fine-tuned model: {job.fine_tuned_model}\n"
        f"evaluate it: PRICER_FINETUNED_MODEL={job.fine_tuned_model} "
        "python -m pricer.train model=finetuned",
        flush=True,
    )
    return job


def run(cfg: DictConfig) -> FineTuningJob:
    settings = ClientSettings(**cfg.client)
    tags = {ENTRY_TAG: "finetune", "ft.base_model": cfg.base_model}
    if cfg.job_id:  # resume: the files and the job exist already
        client = make_client(settings)
        with tracked_run(
            cfg.tracking,
            run_name="finetune",
            tags={**tags, "ft.resumed": "true", "ft.job_id": cfg.job_id},
        ):
            log_config(cfg)
            return follow_and_log(cfg, client, cfg.job_id)

    prompt = PromptTemplate.from_config(cfg.prompt)
    prompt.validate(with_examples=False)
    train = load_curated(cfg.data, cfg.curation).train
    train_rows, valid_rows = ft.split_examples(train, cfg.train_size, cfg.validation_size, cfg.seed)
    with tempfile.TemporaryDirectory() as folder:
        train_path, valid_path = Path(folder) / "train.jsonl", Path(folder) / "validation.jsonl"
        ft.write_jsonl(train_rows, prompt, train_path)
        if cfg.validation_size:
            ft.write_jsonl(valid_rows, prompt, valid_path)
        hyper = cfg.hyperparameters
        estimate = ft.estimate_training_cost(
            train_path, hyper.n_epochs, cfg.base_model, cfg.price_table
        )
        ft.confirm(estimate, assume_yes=not cfg.confirm)
        client = make_client(settings)
        with tracked_run(cfg.tracking, run_name="finetune", tags=tags):
            log_config(cfg)
            mlflow.log_metrics(
                {
                    "ft.estimated_training_tokens": estimate.tokens,
                    "ft.estimated_cost_usd": estimate.usd,
                }
            )
            mlflow.log_artifact(str(train_path), "finetune")
            training_file = ft.upload(client, train_path)
            validation_file = None
            if cfg.validation_size:
                mlflow.log_artifact(str(valid_path), "finetune")
                validation_file = ft.upload(client, valid_path)
            job = ft.create_job(
                client,
                model=cfg.base_model,
                training_file=training_file,
                validation_file=validation_file,
                n_epochs=hyper.n_epochs,
                batch_size=hyper.batch_size,
                learning_rate_multiplier=hyper.learning_rate_multiplier,
                suffix=cfg.suffix,
                seed=cfg.seed,
            )
            mlflow.set_tag("ft.job_id", job.id)
            print(f"created fine-tuning job {job.id} (re-attach: job_id={job.id})", flush=True)
            return follow_and_log(cfg, client, job.id)


@hydra.main(version_base="1.3", config_path="../conf", config_name="finetune")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
