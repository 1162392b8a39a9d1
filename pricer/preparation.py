"""Work that prepares data or a family outside a training run, one call per app.

- ``run_curation`` (``python -m pricer.curate``): curate a source into the saved split every
  run reads, in a tracked run of its own;
- ``run_finetune`` (``python -m pricer.finetune``): fine-tune a chat model on training items,
  for ``model=finetuned``, in a tracked run of its own;
- ``export_for_human`` (``python -m pricer.human_export``): the evaluation items as a CSV for a
  person to price, for ``model=human``.

Like ``pricer.experiment``, this is where data, a family's workflow and tracking meet.
"""

from __future__ import annotations

import tempfile
from contextlib import AbstractContextManager
from pathlib import Path

import openai
from hydra.utils import instantiate
from omegaconf import DictConfig
from openai.types.fine_tuning import FineTuningJob

from pricer.data import cache
from pricer.data.dataset import (
    NotASplit,
    check_item_files,
    check_replaceable,
    load_curated,
    save_curated,
)
from pricer.errors import ConfigError, UserError
from pricer.evaluation import EvalSettings
from pricer.experiment import evaluation_items
from pricer.files import folder_problem, unwritable
from pricer.models.human import ExportError, export_items
from pricer.models.llm import finetuning as ft
from pricer.models.llm.client import (
    ClientSettings,
    check_reachable_now,
    make_client,
    read_api_key,
)
from pricer.models.llm.prompts import PromptTemplate
from pricer.schemas import CurateConfig, FinetuneConfig
from pricer.tracking import finetune as ft_log
from pricer.tracking import names, tags
from pricer.tracking.data import data_name, log_curation_charts, log_data_inputs
from pricer.tracking.run import log_config, tracked_run


class SplitNotSaved(UserError, OSError):
    """``pricer curate`` could not write its split to ``output_dir``."""


def run_curation(cfg: DictConfig) -> None:
    """Curate ``cfg.data`` into ``cfg.output_dir``, logging its inputs and charts."""
    # Before the run and the work: save_curated checks again, after the items are curated.
    check_replaceable(output := Path(cfg.output_dir))
    # The split is written beside its folder: a file or a read-only folder there failed the
    # run once the items were curated (minutes at the course's scale), "File exists".
    if (why := folder_problem(output.parent)) is not None:
        raise SplitNotSaved(f"cannot write {output}: {why}; choose another output_dir")
    CurateConfig.from_root(cfg)  # histogram_bins=0: numpy's traceback after the split was saved
    # The data's settings and item files, as train checks them: data.batch_size=0 was the
    # generator's traceback, and a mistyped item path an error, each in a FAILED run.
    check_item_files(cfg.data, cfg.curation)
    # One curate per folder, until its run has ended: two at once each saved a split and
    # ended FINISHED, and the one saved first was recorded by a run whose files were gone.
    # The second is refused before its run opens.
    with cache.sole_writer(output, "pricer curate"):
        _curate(cfg, output)


def _curate(cfg: DictConfig, output: Path) -> None:
    run_tags = {tags.KIND: "curation", tags.DATA_SOURCE: str(cfg.data.source)}
    with tracked_run(
        cfg.tracking, run_name=names.run_name("curate", cfg.data.source), tags=run_tags
    ):
        log_config(cfg)
        curated = load_curated(cfg.data, cfg.curation)
        try:
            save_curated(curated, output, replace=True)
        except NotASplit:
            raise
        except OSError as error:
            # A full disk: the split is written whole beside the folder, then swapped in, so
            # the folder is as it was; it was an OSError traceback.
            raise SplitNotSaved(
                f"cannot write {cfg.output_dir}: {error.strerror or error}; "
                "the split there is as it was"
            ) from None
        log_data_inputs(curated, None, cfg.data)
        log_curation_charts(curated, cfg.histogram_bins)
        report = curated.report
        print(
            f"{report.raw_records:,} records -> {report.items:,} items -> {report.sampled:,} "
            f"sampled -> train {report.train:,} / test {report.test:,} in {cfg.output_dir}\n"
            f"rejected: {report.rejections}",
            flush=True,
        )


def run_finetune(cfg: DictConfig) -> FineTuningJob:
    """Fine-tune ``cfg.base_model`` (conf/finetune.yaml), or re-attach to ``cfg.job_id``.

    The cost is estimated and confirmed before any run is opened or file uploaded, so a
    refusal (``ft.ConfirmationRefused``) leaves nothing behind. The run logs the config, the
    estimate, the training files, the job id, the fine-tuned model's name and the losses per
    step; a failed or cancelled job fails it with the server's reason (``ft.JobFailed``).
    """
    FinetuneConfig.from_root(cfg)  # sizes, hyperparameters: before the cost or any upload
    settings = ClientSettings(**cfg.client)
    read_api_key(settings.api_key_env)  # a missing key fails before a bill is shown or confirmed
    client = make_client(settings)
    check_reachable_now(client, settings.server())  # so does a server that is not there
    run_tags = {tags.ENTRY_POINT: "finetune", tags.FT_BASE_MODEL: cfg.base_model}
    name = names.run_name("finetune", cfg.data.name)
    if cfg.job_id:  # resume: the files and the job exist already
        # The job's own base model, not the config's: a resumed job was made by another call.
        with ft.server_errors(
            settings.server(),
            settings.api_key_env,
            f"looking up job_id={cfg.job_id}",
            "nothing was followed",
        ):
            try:
                base_model = client.fine_tuning.jobs.retrieve(cfg.job_id).model
            except openai.NotFoundError as error:
                raise ConfigError(
                    f"job_id={cfg.job_id}: no such fine-tuning job ({error})"
                ) from None
        # Re-attached with other data (`pricer finetune job_id=...` alone: the default,
        # synthetic), the run was named for that data and its last line said to evaluate the
        # model on it, not on the data it was tuned for.
        tuned = ft_log.tuned_on(cfg.tracking, cfg.job_id)
        if tuned is not None and tuned != cfg.data.name:
            raise ConfigError(
                f"job_id={cfg.job_id}: the job was fine-tuned on {tuned} data, not "
                f"{cfg.data.name}: re-attach with its data, e.g. pricer finetune data={tuned} "
                f"job_id={cfg.job_id}"
            )
        resumed = {
            **run_tags,
            tags.FT_BASE_MODEL: base_model,
            tags.FT_RESUMED: "true",
            tags.FT_JOB_ID: cfg.job_id,
        }
        with tracked_run(cfg.tracking, run_name=name, tags=resumed):
            log_config(cfg)
            return _follow(cfg, client, cfg.job_id, settings)

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
            train_path, hyper.n_epochs, cfg.base_model, instantiate(cfg.catalogue)
        )
        ft.confirm(estimate, assume_yes=not cfg.confirm)

        # A key the server refuses, a base model it does not tune, a spent quota: each was
        # the SDK's traceback after the cost had been confirmed.
        def refused(doing: str) -> AbstractContextManager[None]:
            server, key = settings.server(), settings.api_key_env
            return ft.server_errors(server, key, doing, "no fine-tuning job was created")

        with tracked_run(cfg.tracking, run_name=name, tags=run_tags):
            log_config(cfg)
            ft_log.log_estimate(estimate)
            ft_log.log_training_file(train_path)
            with refused(f"uploading {train_path.name}"):
                training_file = ft.upload(client, train_path)
            validation_file = None
            if cfg.validation_size:
                ft_log.log_training_file(valid_path)
                with refused(f"uploading {valid_path.name}"):
                    validation_file = ft.upload(client, valid_path)
            with refused(f"creating a fine-tuning job of {cfg.base_model}"):
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
            ft_log.log_job_id(job.id)
            print(
                f"created fine-tuning job {job.id} "
                f"(re-attach: pricer finetune data={cfg.data.name} job_id={job.id})",
                flush=True,
            )
            return _follow(cfg, client, job.id, settings)


def _follow(
    cfg: DictConfig, client: openai.OpenAI, job_id: str, settings: ClientSettings
) -> FineTuningJob:
    """Follow the job to its end, logging losses as they appear."""
    losses = ft.LossLog()
    # A traceback that did not say the job was still running, nor how to follow it again.
    with ft.server_errors(
        settings.server(),
        settings.api_key_env,
        f"fine-tuning job {job_id} was followed",
        f"the job goes on at the server; follow it again with data={cfg.data.name} job_id={job_id}",
    ):
        job = ft.follow_job(
            client,
            job_id,
            poll_seconds=cfg.poll_seconds,
            on_metrics=ft_log.log_losses,
            progress=cfg.progress,
            losses=losses,
        )
        ft_log.log_losses(losses.new(ft.result_losses(client, job)))  # steps the polls missed
    # The bill as the job reports it, not only the estimate made before it (chars / 4,
    # n_epochs=auto assumed to be 3): the run records what the training cost.
    ft_log.log_fine_tuned(job, ft.training_cost(job, instantiate(cfg.catalogue)))
    print(
        f"fine-tuned model: {job.fine_tuned_model}\n"
        f"evaluate it: pricer train model=finetuned data={cfg.data.name} "
        f"model.model={job.fine_tuned_model}",
        flush=True,
    )
    return job


def export_for_human(cfg: DictConfig) -> Path:
    """Write the evaluation items (exactly those every family is scored on) to
    ``cfg.output_path`` with an empty price column, for ``model=human``'s guesses."""
    # A folder there (output_path= is ".") was read as a table, a file in a folder's place
    # failed to be made one: tracebacks, after the items had loaded.
    if (why := unwritable(output := Path(cfg.output_path))) is not None:
        raise ExportError(f"cannot write {output}: {why}")
    curated = load_curated(cfg.data, cfg.curation)
    items = evaluation_items(curated, EvalSettings.from_config(cfg.eval))
    path = export_items(items, cfg.output_path, overwrite=cfg.overwrite)
    print(
        f"wrote {len(items)} items to price to {path}; fill in the price column, save it as "
        "human/guesses.csv (model=human's guesses_path; model.guesses_path=... for another "
        f"place), then: pricer train model=human data={data_name(cfg.data)}",
        flush=True,
    )
    return path
