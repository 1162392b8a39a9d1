"""One tracked experiment: fit a family, price the evaluation items, evaluate, log everything.

This is the only place where data, a family, evaluation and tracking meet; each of them stays
ignorant of the others.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from pricer.configs import chosen_family
from pricer.data.dataset import CuratedData, check_item_files, load_curated
from pricer.errors import ConfigError, UserError, nearest
from pricer.evaluation import EvalSettings, Evaluation
from pricer.evaluation.cutoff import cutoff_split, first_available
from pricer.evaluation.report import METRICS
from pricer.evaluation.tradeoff import BOARD_COLUMNS, ComputePrice, tradeoff_table
from pricer.identity import fingerprints
from pricer.models.base import Pricer, training_items
from pricer.models.ensemble import EnsemblePricer, LoggedPricer
from pricer.models.features import NoVocabulary
from pricer.models.llm.answering import (
    ANSWERED_BY,
    ANSWERS_NOT_IN_CATALOGUE,
    OTHER_MODEL_ANSWERS,
    answered_by,
    answered_in_every_pass,
    other_model_answers,
)
from pricer.models.llm.catalogue import UNKNOWN
from pricer.models.llm.client import check_api_keys
from pricer.models.llm.failures import (
    INTERRUPTED_PASS,
    add_interrupted_stats,
    attach_interrupted_answers,
    failure_summary,
    interrupted_answers,
    interrupted_stats,
)
from pricer.scoring import price_and_evaluate
from pricer.settings import check_arguments, check_seed
from pricer.tracking import tags as tag_names
from pricer.tracking.data import (
    data_name,
    log_curation_counts,
    log_data_inputs,
    tag_evaluation_items,
)
from pricer.tracking.evaluation import log_evaluation, log_facts, log_metrics
from pricer.tracking.leaderboard import family_run_id, log_leaderboard, rankable, run_url
from pricer.tracking.mlflow3 import link_prompt, register_prompt
from pricer.tracking.model import check_logged_members, log_pricer, logged_keys
from pricer.tracking.names import family_run_name, leaderboard_run_name, model_name
from pricer.tracking.redaction import redact_text
from pricer.tracking.run import SWEEP_PARENT_ENV, log_config, tracked_run
from pricer.tracking.store import StoreUnreachable
from pricer.validation import PREFIX as VALIDATION_PREFIX
from pricer.validation import ValidationSettings, hold_out, sweep_objective, validation_scores
from pricer.wording import counted

log = logging.getLogger(__name__)


class TooManyFailures(UserError):
    """The pricer gave no price for more items than the evaluation allows."""


class SeenItems(UserError):
    """A logged ensemble member was trained on items the run would score it on."""


def trained_on(pricer: Pricer, train: pd.DataFrame) -> np.ndarray | None:
    """Fingerprints of every item the fitted pricer learned from: its training items and, for
    an ensemble, what its logged members were trained on; None if a member does not say."""
    seen = [fingerprints(train["text"])]
    if isinstance(pricer, EnsemblePricer):
        for member in pricer.members.values():
            if isinstance(member, LoggedPricer):
                if member.trained_on is None:
                    return None
                seen.append(member.trained_on)
    return np.unique(np.concatenate(seen))


def refuse_seen_items(pricer: Pricer, scored: Mapping[str, pd.DataFrame]) -> None:
    """Stop before fitting when a logged member of an ensemble was trained on items the run
    scores (``scored``: test, validation): its prices for them are in-sample, and the run
    would record a score it did not earn. A member that does not say what it was trained on
    (logged before pricer kept it) is only warned about."""
    if not isinstance(pricer, EnsemblePricer):
        return
    for what, items in scored.items():
        if items.empty:
            continue
        for name, count in pricer.seen_by_logged_members(items).items():
            source = pricer.members[name].source  # type: ignore[attr-defined]
            if count is None:
                log.warning(
                    "member %s (%s) does not say what it was trained on: pricer cannot check "
                    "that it never saw the %s items",
                    name,
                    source,
                    what,
                )
            elif count:
                raise SeenItems(
                    f"ensemble member {name} ({source}) was trained on {count:,} of the "
                    f"{len(items):,} {what} items: its prices for them are in-sample and the "
                    "score would be one it did not earn; score it on items it has not seen, or "
                    "leave it out"
                )


OPENAI_HOST = "api.openai.com"  # where the course measured its LLM figures


def is_openai(server: str | None) -> bool:
    """Whether a server (a base URL) is OpenAI's API, not a local or other one."""
    return server is not None and urlsplit(server).hostname == OPENAI_HOST


@dataclass
class FamilyResult:
    family: str
    run_id: str
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    # An LLM family's server (its base URL), the model it asked for and the models its
    # replies said answered (llm.answered_by): None for the others.
    server: str | None = None
    llm_model: str | None = None
    answered_by: str | None = None

    @property
    def other_model_answers(self) -> int:
        """How many of an LLM family's answers named another model than the one asked for,
        its validation pass's included (``answering.other_model_answers``)."""
        return other_model_answers(self.metrics)

    @property
    def on_openai(self) -> bool:
        """Whether an LLM family's answers came from OpenAI's API (not a local server)."""
        return is_openai(self.server)


def evaluation_items(curated: CuratedData, settings: EvalSettings) -> pd.DataFrame:
    """The first ``eval.size`` test items: every family is scored on exactly these."""
    test = curated.test
    return test if settings.size is None else test.head(settings.size).reset_index(drop=True)


def warn_short_test_split(curated: CuratedData, settings: EvalSettings) -> None:
    """Say so when ``eval.size`` asks for more items than the test split holds (it was silent:
    eval.size=100000 scored the real data's 250 items and looked like it scored 100,000)."""
    if settings.size is not None and settings.size > len(curated.test):
        log.warning(
            "eval.size=%d, but the test split holds %s: scoring all of them",
            settings.size,
            counted(len(curated.test), "item"),
        )


def fit_and_evaluate(
    pricer: Pricer, curated: CuratedData, eval_items: pd.DataFrame, settings: EvalSettings
) -> tuple[Evaluation, dict[str, float], dict[str, str]]:
    """Fit on the training items, price the evaluation items, score them: the evaluation,
    the figures (metrics) and the pricer's facts about its answers (tags). Logs nothing."""
    started = time.perf_counter()
    pricer.fit(training_items(curated.train), curated.train["price"].to_numpy())
    fit_seconds = time.perf_counter() - started
    evaluation, stats, facts = price_and_evaluate(pricer, eval_items, settings)
    return evaluation, {**stats, "time.fit_seconds": fit_seconds}, facts


def run_family(
    family: str, run_cfg: DictConfig, curated: CuratedData | None = None, *, nested: bool = False
) -> FamilyResult:
    """Fit, evaluate and log one family in its own MLflow run.

    ``run_cfg`` holds ``model``, ``eval``, ``tracking`` and the data settings of this run; it is
    logged whole. ``curated`` is data already loaded for several runs; without it the run loads
    ``run_cfg.data`` itself, so bad data fails the run too (a missing item file fails before the
    run exists, as a bad setting and a missing API key do). With a ``validation`` node, its
    items are held out of training and scored as ``validation.*`` metrics (a sweep's
    objective). Any error marks the run FAILED and propagates.
    """
    # A bad setting fails before anything is logged: the family's, the evaluation's and the
    # validation's (their ranges, which composing does not check).
    check_seed(run_cfg.seed)
    check_arguments(run_cfg.model, "model")
    # A logged member whose model is not there (a typo): refused, not a FAILED run.
    check_logged_members({"model": run_cfg.model}, run_cfg.tracking.uri)
    # A keyless LLM: refused, not a FAILED run; a logged member's too (the key its model was
    # fitted with), which failed at predict, after the other members had fitted.
    check_api_keys({family: run_cfg.model}, logged_keys(run_cfg.tracking.uri))
    settings = EvalSettings.from_config(run_cfg.eval)
    validation = (
        ValidationSettings.from_config(run_cfg.validation) if "validation" in run_cfg else None
    )
    data = data_name(run_cfg.data)
    tags = {
        tag_names.FAMILY: family,
        tag_names.DATA_SOURCE: str(run_cfg.data.source),
        tag_names.DATA: data,
    }
    run_name = family_run_name(family, data)
    if curated is None:
        check_item_files(run_cfg.data, run_cfg.curation)
    with tracked_run(run_cfg.tracking, run_name=run_name, tags=tags, nested=nested) as run:
        log_config(run_cfg)
        if curated is None:
            curated = load_curated(run_cfg.data, run_cfg.curation)
        if not nested:  # a leaderboard says it once, for all its families
            warn_short_test_split(curated, settings)
        if validation is not None:
            curated, validation_items = hold_out(curated, validation)
        else:
            validation_items = curated.train.iloc[:0]
        eval_items = evaluation_items(curated, settings)
        # In a leaderboard the curation counts go on the parent: identical for every family.
        datasets = log_data_inputs(
            curated,
            eval_items,
            run_cfg.data,
            curation_counts=not nested,
            validation_items=validation_items,
        )
        eval_dataset = datasets.get("evaluation")
        pricer: Pricer = instantiate(run_cfg.model)
        refuse_seen_items(pricer, {"test": eval_items, "validation": validation_items})
        # An LLM family's prompt: a registered version (new only when it changed), linked to
        # this run here and to the logged model below.
        prompts = (
            [link_prompt(register_prompt(family, run_cfg.model.prompt), run.info.run_id)]
            if run_cfg.model.get("prompt")
            else []
        )
        # A leaderboard shows one progress display of its own; a lone run shows this one.
        bar = nullcontext() if nested else tqdm(total=1, desc=f"{run_name}: fit", leave=False)
        tested: tuple[dict[str, float], dict[str, str]] | None = None  # the test pass, once done
        try:
            with bar, nullcontext() if nested else logging_redirect_tqdm():
                evaluation, stats, facts = fit_and_evaluate(pricer, curated, eval_items, settings)
            tested = (stats, facts)
            held_stats, held_facts = validation_scores(pricer, validation_items, settings)
            stats |= held_stats
            facts |= held_facts
        except NoVocabulary as error:  # its min_df is this family's setting: say which family
            raise NoVocabulary(f"{family}: {error}") from None
        except KeyboardInterrupt as interrupt:  # SIGTERM or Ctrl-C: the run ends KILLED
            if tested is not None:  # cut in the validation pass: the test pass's calls count
                add_finished_pass(interrupt, pricer, *tested)
            # An LLM batch cut short had made calls that cost money: the run records them
            # (interrupted.llm.*) rather than nothing, with those of the batches before it.
            if partial := interrupted_stats(interrupt):
                log_metrics(partial)
            if (names := interrupted_answers(interrupt)) is not None:
                log_interrupted_answers(pricer, names, partial)
            raise
        # The validation items too: a sweep ranks the trial by their mae, which over the few
        # items answered would read as a good trial.
        rates = {"evaluation": evaluation.metrics["failure_rate"]}
        if f"{VALIDATION_PREFIX}failure_rate" in stats:
            rates["validation"] = stats[f"{VALIDATION_PREFIX}failure_rate"]
        worst = max(rates, key=lambda name: rates[name])
        failure_rate = rates[worst]
        too_many_failures = failure_rate > settings.max_failure_rate
        model_id = None
        if run_cfg.tracking.log_model and not too_many_failures:
            started = time.perf_counter()
            logged = log_pricer(
                pricer,
                name=model_name(family, data),
                prompts=prompts,
                trained_on=trained_on(pricer, curated.train),
            )
            model_id = logged.model_id
            stats["time.log_model_seconds"] = time.perf_counter() - started
        # Linked to the dataset each was measured on and the logged model: the model's page
        # lists them. A trial's validation figures were linked to the test items' set.
        held_out = {k: v for k, v in stats.items() if k.startswith(VALIDATION_PREFIX)}
        log_metrics(held_out, dataset=datasets.get("validation"), model_id=model_id)
        rest = {k: v for k, v in stats.items() if k not in held_out}
        log_metrics(rest, dataset=eval_dataset, model_id=model_id)
        log_evaluation(evaluation, run_name, eval_items, dataset=eval_dataset, model_id=model_id)
        log_llm_facts(pricer, evaluation, eval_items, facts, stats)
        tqdm.write(evaluation.summary_line(run_name))  # above any progress bar, and stays
        if not nested and SWEEP_PARENT_ENV not in os.environ:  # a leaderboard or sweep: theirs
            # Its id and page: to compare it or promote it, without `pricer runs` first.
            tqdm.write(f"run: {run_url(run, run_cfg.tracking.get('ui_url'))}")
        if too_many_failures:
            validation = {key.removeprefix(VALIDATION_PREFIX): v for key, v in held_out.items()}
            reasons = failure_summary(validation if worst == "validation" else rest)
            raise TooManyFailures(
                f"{family} gave no price for {failure_rate:.1%} of the {worst} items "
                f"({reasons}; eval.max_failure_rate={settings.max_failure_rate:.1%})"
            )
        server = answering_server(pricer)
        return FamilyResult(
            family,
            run.info.run_id,
            "FINISHED",
            {**evaluation.metrics, **stats},
            server=server,
            llm_model=asked_model(pricer) if server else None,
            # Every pass's: a substitute that answered the validation items alone counts.
            answered_by=answered_in_every_pass(facts) if server else None,
        )


def run_training(cfg: DictConfig) -> float | None:
    """``pricer train``: one run of the family chosen (``model=``); returns what a Hydra
    sweeper minimises, the validation mae, never a test figure (None without validation)."""
    result = run_family(chosen_family(cfg), cfg)
    return sweep_objective(result.metrics)


def answering_server(pricer: Pricer) -> str | None:
    """The server an LLM family's answers came from (None for other families). An ensemble's
    are its LLM members': when they differ, the first that is not OpenAI's API, since figures
    that blend in its answers are not OpenAI's."""
    if isinstance(pricer, EnsemblePricer):
        servers = list(pricer.llm_servers().values())
        elsewhere = [server for server in servers if not is_openai(server)]
        return (elsewhere or servers or [None])[0]
    return pricer.server() if hasattr(pricer, "server") else None


def asked_model(pricer: Pricer) -> str:
    """The model an LLM family asked for; an ensemble's, those its LLM members asked for
    ("gpt-4o, gpt-4o-mini"): it has no ``model`` of its own, and the leaderboard's note on
    its answers from another model read "not  as asked"."""
    if isinstance(pricer, EnsemblePricer):
        return ", ".join(dict.fromkeys(pricer.llm_models().values()))
    return str(getattr(pricer, "model", ""))


def add_finished_pass(
    interrupt: BaseException, pricer: Pricer, stats: Mapping[str, float], facts: Mapping[str, str]
) -> None:
    """Put a pass that finished before the interrupt (the test items', when the validation
    items' was cut) on it: its LLM figures (``stats``) in the record's totals, and the models
    its replies named (``facts``). An ensemble's are its members', without their calls at
    fit: the cut pass adds those, which each pass repeats (``EnsemblePricer``)."""
    owners = (
        [f"ensemble.{name}." for name in pricer.members]
        if isinstance(pricer, EnsemblePricer)
        else [""]
    )
    add_interrupted_stats(
        interrupt,
        (
            {
                key.removeprefix(owner): v
                for key, v in stats.items()
                if key.startswith(f"{owner}llm.")
            }
            for owner in owners
        ),
    )
    if (tag := facts.get(ANSWERED_BY)) is not None and tag != UNKNOWN:
        # A tag is its names joined; a bounded one's "b (+3 more)" stays one name.
        attach_interrupted_answers(interrupt, tag.split(", "))


def log_interrupted_answers(pricer: Pricer, names: list[str], stats: Mapping[str, float]) -> None:
    """On a run cut short mid-batch, the models that answered so far (``names``): the tag a
    finished run has (``llm.answered_by``, what `pricer compare` and `pricer runs` show) and,
    when ``stats`` (``interrupted.llm.*``) count answers from another model, its description
    line. Names, unlike figures, need no ``interrupted.`` prefix: each one did answer."""
    tag = answered_by(names)
    # An ensemble's count is its cut member's, which the figures do not name: the line names
    # every model its LLM members asked for.
    asked = [(None, asked_model(pricer))]
    lines = other_model_lines(
        asked, {f"{INTERRUPTED_PASS}{ANSWERED_BY}": tag}, stats, passes=(INTERRUPTED_PASS,)
    )
    log_facts({ANSWERED_BY: tag}, description="\n\n".join(lines) or None)


def other_model_lines(
    asked: Iterable[tuple[str | None, str]],
    facts: Mapping[str, str],
    stats: Mapping[str, float],
    passes: Sequence[str] = ("", VALIDATION_PREFIX),
) -> list[str]:
    """A description line for each LLM whose replies named another model than it asked for
    (``asked``: member name, None for the run's own LLM, and the model asked for), over the
    ``passes`` (test and validation; an interrupted batch's) and an ensemble member's calls at
    fit: the run is named and tagged as the model asked for, and its figures would be another
    model's answers (a proxy's substitute) with no word of it. Their costs are the answering
    models' (NaN for one the catalogue has no price for), and the line says which."""
    lines = []
    for member, model in asked:
        prefix = f"ensemble.{member}." if member is not None else ""
        keys = [f"{p}{prefix}" for p in passes]
        if member is not None:
            # Its calls at fit (the stacker's validation split), whose answers the weights
            # came from: once, as the test pass reports them (each pass repeats them).
            keys.append(f"{prefix}fit.")
        count = sum(stats.get(f"{key}{OTHER_MODEL_ANSWERS}", 0.0) for key in keys)
        if count > 0:
            seen = [facts.get(f"{key}{ANSWERED_BY}") for key in keys]
            answered = " / ".join(dict.fromkeys(names for names in seen if names)) or "unknown"
            who = f" (member {member})" if member is not None else ""
            unpriced = sum(stats.get(f"{key}{ANSWERS_NOT_IN_CATALOGUE}", 0.0) for key in keys)
            costs = (
                f"its costs are unknown (NaN): {counted(int(unpriced), 'answer')} came from a "
                "model the catalogue has no price for"
                if unpriced > 0
                else "its costs are at the catalogue rates of the models that answered"
            )
            lines.append(
                f"Asked for {model}{who}, answered by {answered}: "
                f"{counted(int(count), 'answer')} came from another model than the one asked "
                f"for, and the figures are its answers', under {model}'s name and catalogue "
                f"entry; {costs}."
            )
    return lines


def log_member_servers(
    pricer: EnsemblePricer, facts: Mapping[str, str], stats: Mapping[str, float]
) -> None:
    """An ensemble's LLM members' servers (tags) and, when one is not OpenAI's API, a line for
    the description: its llm.* figures and its prices came from a member's answers, and the
    run said nothing of where they came from (a stub's answers read as gpt-4o-mini's). The
    models that answered (``facts``, tags) and a line when a member's replies named another
    model than it asked for."""
    servers = pricer.llm_servers()
    if not servers:
        return
    tags = {f"ensemble.{name}.{tag_names.LLM_SERVER}": url for name, url in servers.items()}
    tags[tag_names.LLM_SERVER] = answering_server(pricer) or ""
    elsewhere = [f"{url} (member {name})" for name, url in servers.items() if not is_openai(url)]
    lines = other_model_lines(pricer.llm_models().items(), facts, stats)
    if elsewhere:
        lines.insert(
            0,
            f"Answered in part by {', '.join(elsewhere)}, not OpenAI's API: the figures blend "
            "its answers.",
        )
    log_facts({**facts, **tags}, description="\n\n".join(lines) or None)


def log_llm_facts(
    pricer: Pricer,
    evaluation: Evaluation,
    eval_items: pd.DataFrame,
    facts: Mapping[str, str],
    stats: Mapping[str, float],
) -> None:
    """An LLM's catalogue entry (tags) and its error before and after its knowledge cut-off:
    a model may have read an item's price in training (metrics and a description line). An
    ensemble's: the servers its LLM members called. Either's: the models their replies said
    answered (``facts``, tags; ``stats`` counts the answers from another model than asked
    for, which get a description line)."""
    if isinstance(pricer, EnsemblePricer):
        log_member_servers(pricer, facts, stats)
        return
    if not hasattr(pricer, "catalogue_entry"):
        return
    split = cutoff_split(
        eval_items["price"].to_numpy(),
        evaluation.items["estimate"].to_numpy(),
        first_available(eval_items["details"].tolist()),
        pricer.knowledge_cutoff(),
    )
    log_metrics(split.metrics)
    server = pricer.server()
    tags = {**facts, **pricer.catalogue_entry(), tag_names.LLM_SERVER: server}
    lines = [split.line] if split.line else []
    # Before the cut-off line: the cut-off is the model asked for's, not the one that answered.
    lines[:0] = other_model_lines([(None, str(pricer.model))], facts, stats)
    if not is_openai(server):
        # Only the leaderboard said so: the run itself, named "frontier · real" and tagged
        # with gpt-4o-mini's catalogue entry, read as OpenAI's answers (the stub's hash too).
        lines.insert(0, f"Answered by {server}, not OpenAI's API: the figures are its answers'.")
    log_facts(tags, description="\n\n".join(lines) or None)


def family_config(cfg: DictConfig, family: str, model_cfg: Any) -> DictConfig:
    """The config one family's run is driven by (and logs): shared settings + its model."""
    shared = {key: cfg[key] for key in ("seed", "data", "curation", "eval", "tracking")}
    return DictConfig({**shared, "family": family, "model": model_cfg})


class LeaderboardIncomplete(UserError):
    """At least one family failed; the others are still on the leaderboard."""


def selected_families(selected: object, configured: list[str]) -> list[str]:
    """The families a leaderboard runs: ``families`` as given (one name, or a list), else all.

    ``families=xgboost`` (no brackets) names one family; it is not read letter by letter.
    """
    if selected is None:
        return configured
    if not selected:  # families=[]: it ran every family, for minutes, asked for none
        raise ConfigError(
            "families=[] selects no family: name some (families=[constant,xgboost]) or leave "
            "families out to run them all"
        )
    families = [selected] if isinstance(selected, str) else [str(name) for name in selected]
    unknown = sorted(set(families) - set(configured))
    if unknown:
        raise ConfigError(f"unknown families {unknown}; configured: {sorted(configured)}")
    # Named twice, a family was fitted twice: two runs under the leaderboard, one row in its
    # table, and the saved view listing the second run unranked after the others.
    repeated = sorted({family for family in families if families.count(family) > 1})
    if repeated:
        raise ConfigError(
            f"families names {', '.join(repeated)} more than once: name each family once"
        )
    return families


def run_leaderboard(cfg: DictConfig) -> pd.DataFrame:
    """Every selected family in a child run of one parent run; returns the leaderboard table.

    The data is loaded once, inside the parent run, and shared by every family.
    """
    families = selected_families(cfg.families, list(cfg.models))
    columns = leaderboard_columns(cfg.columns)
    check_seed(cfg.seed)
    for family in families:  # every family's settings are checked before the first fit
        check_arguments(cfg.models[family], f"models.{family}")
    # ... every logged member's model (a typo's refusal came after the families before it) ...
    check_logged_members(
        {f"models.{family}": cfg.models[family] for family in families}, cfg.tracking.uri
    )
    # ... and every key an LLM family needs: a missing one refused the leaderboard only after
    # it had fitted every family before that one (5.5 minutes on real data).
    check_api_keys(
        {family: cfg.models[family] for family in families}, logged_keys(cfg.tracking.uri)
    )
    eval_settings = EvalSettings.from_config(cfg.eval)
    compute_price = ComputePrice.from_config(cfg.tradeoff)
    check_item_files(cfg.data, cfg.curation)
    data = data_name(cfg.data)
    tags = {
        tag_names.KIND: "leaderboard",
        tag_names.DATA_SOURCE: str(cfg.data.source),
        tag_names.DATA: data,
    }
    with tracked_run(cfg.tracking, run_name=leaderboard_run_name(data), tags=tags):
        log_config(cfg)
        curated = load_curated(cfg.data, cfg.curation)
        log_curation_counts(curated)
        tag_evaluation_items(evaluation_items(curated, eval_settings))
        warn_short_test_split(curated, eval_settings)
        results = []
        progress = tqdm(families, desc="leaderboard", unit="family", leave=False)
        # Log records (the openai SDK's "Retrying request ...") go through tqdm, on lines of
        # their own, not glued to the bar.
        with logging_redirect_tqdm():
            for family in progress:
                progress.set_postfix_str(family)
                run_cfg = family_config(cfg, family, cfg.models[family])
                try:
                    results.append(run_family(family, run_cfg, curated, nested=True))
                except StoreUnreachable:  # gone: no other family could be recorded either
                    raise  # (each would wait out MLflow's retries, minutes a family, first)
                except Exception as error:  # one broken family must not hide the others
                    reason = redact_text(str(error))  # the terminal too, as the run's tag
                    failed = FamilyResult(family, family_run_id(family), "FAILED", error=reason)
                    results.append(failed)
                    # A reason that names its family already ("xgboost: ...") says it once.
                    tqdm.write(f"{family}: FAILED: {reason.removeprefix(f'{family}: ')}")
        progress.close()
        # The course's figures were measured on real items: beside other data they mislead.
        with_reference = data == cfg.reference_data
        reference_mae = OmegaConf.to_container(cfg.reference_mae) if with_reference else {}
        table = leaderboard_table(results, columns, reference_mae)
        # Every family priced: compute at a CPU-hour rate, LLMs their tokens too; never $0.
        # From the figures it reads, whichever of them the table shows.
        figures = leaderboard_table(results, [*columns, *BOARD_COLUMNS], {})
        tradeoff = tradeoff_table(
            figures,
            compute_price,
            n_items=eval_settings.size or len(curated.test),
            ranked=rankable(table),  # an incomplete family is never on a Pareto front
        )
        notes = [cfg.reference_note] if with_reference else []
        log_leaderboard(
            table,
            data=data,
            notes=[*notes, *server_notes(results)],
            labels=chart_labels(results),
            ui_url=cfg.tracking.ui_url,
            tradeoff=tradeoff,
        )
        failed = [result.family for result in results if result.status != "FINISHED"]
        if failed:
            names = ", ".join(failed)  # a list's repr said ['linear']
            raise LeaderboardIncomplete(f"families failed: {names} (see their runs)")
    return table


def course_reference(result: FamilyResult, reference_mae: Mapping[str, Any]) -> float:
    """The course's published mae for this family's row, NaN when it does not apply.

    An LLM family's figure was measured on OpenAI's API with a given model: on another server
    (a local model, the stub) it is not that experiment, so none is shown. Its entry maps model
    names to figures; the longest name the asked model starts with applies (``gpt-4o`` for
    ``gpt-4o-2024-08-06``, ``gpt-4o-mini`` rather than ``gpt-4o`` for ``gpt-4o-mini``).
    """
    figure = reference_mae.get(result.family)
    if result.server is not None:
        # Another model's answers (a substitute behind the URL) are not the course's model's.
        if not result.on_openai or result.other_model_answers:
            return math.nan
        if isinstance(figure, Mapping):
            model = result.llm_model or ""
            names = [name for name in figure if model.startswith(str(name))]
            figure = figure[max(names, key=len)] if names else None
    if figure is None or isinstance(figure, Mapping):
        return math.nan
    return float(figure)


def server_notes(results: list[FamilyResult]) -> list[str]:
    """A line per server other than OpenAI's that answered LLM families: their figures are that
    server's (the stub's hash-based prices stood on the leaderboard as 'frontier')."""
    by_server: dict[str, list[str]] = {}
    for result in results:
        if result.server and not result.on_openai:
            by_server.setdefault(result.server, []).append(result.family)
    lines = [
        f"{', '.join(families)}: answered by {server}, not OpenAI's API"
        for server, families in by_server.items()
    ]
    # The row is named as the model asked for (its costs are the answering model's): say
    # when replies named another.
    lines += [
        f"{result.family}: {counted(result.other_model_answers, 'answer')} from "
        f"{result.answered_by or 'an unnamed model'}, not {result.llm_model} as asked"
        for result in results
        if result.other_model_answers
    ]
    return lines


def chart_labels(results: list[FamilyResult]) -> dict[str, str]:
    """An LLM family answered by a server other than OpenAI's is charted with it:
    ``frontier (127.0.0.1:8765)``, so the stub's point is not read as gpt-4o-mini's."""
    return {
        result.family: f"{result.family} ({urlsplit(result.server).netloc})"
        for result in results
        if result.server and not result.on_openai
    }


# What pricer.tracking.leaderboard's best_family and unanswered_notes read.
RANKING_COLUMNS = ("mae", "failure_rate", "n", "n_failed")
# The times a family run records (fit_and_evaluate, price_and_evaluate, run_family).
TIME_COLUMNS = ("time.fit_seconds", "time.predict_seconds", "time.log_model_seconds")
# Figures of the families' own, whose names follow the model, its members or its failures
# (llm.failures.<reason>, ensemble.weight.<member>, human.failures.<reason>).
FAMILY_FIGURES = ("llm.", "human.", "ensemble.")


def leaderboard_columns(columns: object) -> list[str]:
    """``columns`` as the list of metric names the table shows; ``ConfigError`` naming the
    known ones for a name no family run records. An unknown name was accepted and left out of
    the table (or a column of NaN) after every family had been fitted; ``columns=mae`` was
    read letter by letter."""
    names = [columns] if isinstance(columns, str) else [str(name) for name in columns or []]
    known = (*METRICS, *TIME_COLUMNS)
    unknown = [name for name in names if name not in known and not name.startswith(FAMILY_FIGURES)]
    if not unknown:
        return names
    said = []
    for name in unknown:
        close = nearest(name, known)
        said.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    figures = ", ".join(f"{prefix}*" for prefix in FAMILY_FIGURES)
    raise ConfigError(
        f"columns: unknown {'column' if len(unknown) == 1 else 'columns'} {', '.join(said)}; "
        f"known: {', '.join(known)}, and a family's own figures ({figures})"
    )


def leaderboard_table(
    results: list[FamilyResult], columns: list[str], reference_mae: Mapping[str, Any]
) -> pd.DataFrame:
    """One row per family, best mean absolute error first.

    Whatever ``columns`` says, the table keeps what choosing the best family reads: a family
    that left items unanswered is not ranked (``pricer.tracking.leaderboard.rankable``).
    """
    columns = [*columns, *(c for c in RANKING_COLUMNS if c not in columns)]
    rows = {
        result.family: {
            **{column: result.metrics.get(column, float("nan")) for column in columns},
            **({"reference_mae": course_reference(result, reference_mae)} if reference_mae else {}),
            "status": result.status,
            "run_id": result.run_id,
        }
        for result in results
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "family"
    return table.sort_values("mae", na_position="last") if "mae" in table else table
