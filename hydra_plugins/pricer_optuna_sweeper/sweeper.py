"""The Sweeper: ask Optuna for a batch of trials, launch them as Hydra jobs, tell the results."""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.pricer_optuna_sweeper import search_space
from hydra_plugins.pricer_optuna_sweeper import study as studies
from hydra_plugins.pricer_optuna_sweeper.settings import study_settings

log = logging.getLogger(__name__)


class OptunaSweeper(Sweeper):
    """Hydra 1.3 sweeper on current Optuna; the official sweeper's config keys."""

    def __init__(
        self,
        sampler: Any,
        direction: Any,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        custom_search_space: str | None,
        params: DictConfig | None,
        heartbeat_interval: int = 10,
        grace_period: int | None = None,
        not_compared: Sequence[str] = (),
        compared_as_text: Sequence[str] = (),
        redact: str | None = None,
        best_of_tied: str | None = None,
    ) -> None:
        if isinstance(direction, Sequence) and not isinstance(direction, str):
            if len(direction) != 1:
                raise ValueError(f"one direction is supported, got {list(direction)}")
            direction = direction[0]
        direction = str(getattr(direction, "name", direction))
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be minimize or maximize, got {direction!r}")
        if not 0.0 <= max_failure_rate <= 1.0:
            raise ValueError(f"max_failure_rate must be within [0, 1], got {max_failure_rate}")
        if n_jobs < 0:  # joblib's "every core but |n_jobs| - 1", the joblib launcher's default -1
            n_jobs = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
        # 0 ran no trial, and its sweep's parent run ended FINISHED, a search done.
        if n_trials < 1 or n_jobs < 1:
            raise ValueError(f"need n_trials >= 1 and n_jobs >= 1, got {n_trials}, {n_jobs}")
        # Optuna refuses them only as the study opens ("cannot open the sweep's parent run"),
        # and 0 stopped the heartbeats: a killed process's trial then stayed RUNNING for good.
        if heartbeat_interval < 1 or (grace_period is not None and grace_period < 1):
            raise ValueError(
                "heartbeat_interval and grace_period must be whole seconds >= 1 (grace_period "
                f"null: twice the interval), got {heartbeat_interval} and {grace_period}"
            )
        self.sampler = _sampler(sampler)
        self.direction = direction
        self.storage = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.extend_space = (
            instantiate({"_target_": custom_search_space, "_partial_": True})
            if custom_search_space
            else None
        )
        self.params = OmegaConf.to_container(params) if params else {}
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        # Read from the config by settings.study_settings, as pricer's sweep callback reads
        # them: kept here to say what this sweeper was given.
        self.not_compared = list(not_compared)
        self.compared_as_text = list(compared_as_text)
        self.redact = redact
        self.best_of_tied = best_of_tied
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None
        self.job_idx = 0

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.job_idx = 0

    def sweep(self, arguments: list[str]) -> None:
        import optuna

        assert self.config is not None and self.launcher is not None
        space, fixed = search_space.parse(self.params, arguments)
        # Every process of the study, and each trial wherever it runs, opens the same file.
        cwd = OmegaConf.select(self.config, "hydra.runtime.cwd")
        self.storage = studies.absolute(self.storage, cwd)
        self._save_config()
        n_trials = self.n_trials
        sampler = self.sampler
        grid = isinstance(sampler, functools.partial)
        grid = grid and sampler.func is optuna.samplers.GridSampler
        if grid:
            values = search_space.grid(space)
            sampler = sampler(values)
            n_trials = min(n_trials, _product(len(choices) for choices in values.values()))
        store = studies.storage(self.storage, self.heartbeat_interval, self.grace_period)
        # A shared study takes only trials that compare with its own (pricer's sweep callback
        # has checked already, before opening the parent run; an app without it is checked here).
        settings = study_settings(self.config) if store is not None else None
        with studies.answering(self.storage):
            study, created = studies.open_study(
                store, self.study_name, self.direction, sampler, settings
            )
        created = created or studies.created_here(study, store)  # by pricer's sweep callback
        if store is not None and not created and hasattr(sampler, "reseed_rng"):
            # Every process of a shared study is configured with the same seed: left alone, each
            # would propose the same trials.
            sampler.reseed_rng()
        log.info(
            "Optuna study %s (%s, %s), %d trial(s) in it; this process runs %d, %d at a time",
            study.study_name,
            f"shared in {studies.safe_url(self.storage)}" if store is not None else "in memory",
            type(sampler).__name__,
            len(study.trials),
            n_trials,
            self.n_jobs,
        )
        to_go = n_trials
        while to_go > 0:
            batch = min(to_go, self.n_jobs)
            with studies.answering(self.storage), warnings.catch_warnings():
                studies.fail_stale_trials(study)
                # Optuna warns that heartbeats are meant for study.optimize: we beat ourselves.
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                if grid:
                    left = _points_left(study, values)
                    # A grid a shared study has covered (a rerun, another process): Optuna's
                    # GridSampler would run its points again, each a trial more of the same.
                    if not left:
                        log.info(
                            "the grid of study %s is covered (a complete trial at every "
                            "point): no trial left to run",
                            study.study_name,
                        )
                        break
                    batch = min(batch, len(left))
                    # GridSampler counts a point whose trial failed (or was interrupted) as
                    # visited: once every point has been tried it would pick any one again,
                    # so the points still without a value are asked for by name.
                    if sampler.is_exhausted(study):
                        for point in left[:batch]:
                            study.enqueue_trial(point)
                trials = [study.ask() for _ in range(batch)]
            self._run_batch(study, trials, space, fixed)
            to_go -= batch
        with studies.answering(self.storage):
            self._save_results(study)

    def _run_batch(
        self,
        study: Any,
        trials: list[Any],
        space: dict[str, Any],
        fixed: dict[str, str],
    ) -> None:
        import optuna

        try:
            overrides = [self._overrides(trial, space, fixed) for trial in trials]
            with studies.Heartbeat(study, trials):
                returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
        except BaseException as error:
            # Interrupted (SIGTERM, Ctrl-C) or the launcher broke (a worker killed): these
            # trials did not finish. Say so now rather than leave them RUNNING in the study,
            # and say why: a run its trial's process could not end is ended by whoever
            # reconciles the study, which took every failed trial's for stale (no heartbeat).
            why = studies.stopped(error)
            try:
                for trial in trials:
                    # One its own process told COMPLETE as its run ended stays as it is.
                    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                        trial.set_user_attr(studies.STOPPED_ATTR, why)
                    studies.tell(
                        study, trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True
                    )
            except studies.database_errors():
                # The database is away too: the trials are failed as stale by the next process
                # of the study; what stopped the batch (an interrupt) is what this one says.
                log.warning("could not fail trials %s in the study", [t.number for t in trials])
            raise
        self.job_idx += len(returns)
        # With a storage, pricer's sweep callback has each trial tell the study its own result
        # as its run ends (pricer.tracking.study.SharedStudy.result_teller): telling it again
        # would only make Optuna log "Skipped telling".
        told: set[int] = set()
        failures = []
        with studies.answering(self.storage):
            if self.storage:
                complete = (optuna.trial.TrialState.COMPLETE,)
                told = {t.number for t in study.get_trials(deepcopy=False, states=complete)}
            for trial, result in zip(trials, returns, strict=True):
                try:
                    value = float(result.return_value)  # re-raises the job's own error
                    if value != value:  # NaN
                        raise ValueError("the objective is NaN")
                except Exception as error:
                    studies.tell(
                        study, trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True
                    )
                    log.warning("trial %d failed: %s", trial.number, error)
                    failures.append(result)
                else:
                    if trial.number not in told:
                        studies.tell(study, trial, value, skip_if_finished=True)
        if failures and len(failures) / len(returns) > self.max_failure_rate:
            log.error(
                "%d of %d trials failed, over max_failure_rate=%s",
                len(failures),
                len(returns),
                self.max_failure_rate,
            )
            failures[0].return_value  # raises the first failed job's error  # noqa: B018

    def _overrides(self, trial: Any, space: dict[str, Any], fixed: dict[str, str]) -> list[str]:
        for key, dist in space.items():
            trial._suggest(key, dist)  # the official sweeper's way to sample a given distribution
        # Recorded in the study's database, shared: redacted as the job config stored there is
        # (a key given on the command line), while the job itself gets them as typed.
        recorded = get_method(self.redact)(dict(fixed)) if self.redact else fixed
        for key, value in recorded.items():
            trial.set_user_attr(key, value)
        if self.extend_space is not None:
            self.extend_space(self.config, trial)
        clash = set(trial.params) & set(fixed)
        if clash:
            raise ValueError(f"keys both searched and fixed: {sorted(clash)}")
        values = {**trial.params, **fixed}
        return [
            *(f"{key}={_override_value(value)}" for key, value in values.items()),
            f"++hydra.job.env_set.{studies.TRIAL_ENV}={trial.number}",
        ]

    def _save_config(self) -> None:
        """The sweep's config in its folder (``multirun.yaml``), as Hydra's basic sweeper
        writes it, for a user (or ``--experimental-rerun``) who looks there: interpolations as
        typed, secrets redacted by ``redact`` and the storage's password hidden (written
        before any job starts, so before an app's callback could rewrite it)."""
        assert self.config is not None
        tree = OmegaConf.to_container(self.config, resolve=False)
        if self.redact:
            tree = get_method(self.redact)(tree)
        sweeper = tree.get("hydra", {}).get("sweeper", {})  # type: ignore[union-attr]
        if isinstance(sweeper, dict) and sweeper.get("storage"):
            sweeper["storage"] = studies.safe_url(str(sweeper["storage"])) or "<storage>"
        folder = Path(str(self.config.hydra.sweep.dir))
        folder.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(tree), folder / "multirun.yaml")

    def _save_results(self, study: Any) -> None:
        import optuna

        assert self.config is not None
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not done:
            log.warning("no trial of study %s has completed", study.study_name)
            return
        best = self._best(study.best_trial, done)
        log.info("Best trial %d: %s = %s", best.number, best.params, best.value)
        folder = self.config.hydra.sweep.dir
        os.makedirs(folder, exist_ok=True)
        OmegaConf.save(
            OmegaConf.create(
                {"name": "optuna", "best_params": best.params, "best_value": best.value}
            ),
            f"{folder}/optimization_results.yaml",
        )

    def _best(self, first: Any, done: list[Any]) -> Any:
        """The trial to name best: of trials tied for the best value, the one ``best_of_tied``
        chooses (pricer's sweep names the one its saved view lists first, the later run), else
        Optuna's ``first``. Without it, of trials of equal value this line and
        optimization_results.yaml named one, the sweep's parent run and its view the other."""
        tied = [trial for trial in done if trial.value == first.value]
        if not self.best_of_tied or len(tied) < 2:
            return first
        try:
            chosen = get_method(self.best_of_tied)([trial.number for trial in tied])
        except Exception as error:  # naming one of equals is not worth the sweep's end
            log.warning(
                "could not choose among tied trials %s: %s", [t.number for t in tied], error
            )
            return first
        return next((trial for trial in tied if trial.number == chosen), first)


# Every sampler's seed ends in numpy's RandomState, which takes 0 to 2**32 - 1.
_SEEDS = (0, 2**32 - 1)
# A sampler's settings that count trials, with the fewest each may be: Optuna takes any
# (n_startup_trials=-3 made TPE model the objective from its first trial, unsaid).
_COUNTS = {"n_startup_trials": 0, "n_ei_candidates": 1, "population_size": 2, "popsize": 1}


def _sampler(sampler: Any) -> Any:
    """The sampler built from its config (``hydra.sweeper.sampler``), its seed and counts
    checked first (``ValueError`` naming the key); one already built is taken as it is.

    Built here, not by Hydra before the sweeper: ``seed=abc`` failed inside numpy ("Cannot cast
    scalar from dtype('<U3') to dtype('int64')"), and a negative count was taken.
    """
    if not isinstance(sampler, DictConfig):
        return sampler
    settings = {str(key): sampler[key] for key in sampler if not str(key).startswith("_")}
    low, high = _SEEDS
    seed = settings.get("seed")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not low <= seed <= high
    ):
        raise ValueError(
            f"hydra.sweeper.sampler.seed must be a whole number from {low} to {high} (or null: "
            f"a new one each sweep), got {seed!r}"
        )
    for key, fewest in _COUNTS.items():
        value = settings.get(key, fewest)
        if isinstance(value, bool) or not isinstance(value, int) or value < fewest:
            raise ValueError(
                f"hydra.sweeper.sampler.{key} must be a whole number >= {fewest}, got {value!r}"
            )
    return instantiate(sampler)


def _override_value(value: Any) -> str:
    """A sampled value as Hydra override text (bools as true/false, like the config)."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _points_left(study: Any, values: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The grid's points (``values``: each key's choices) that no COMPLETE trial of ``study``
    has priced, in grid order."""
    import optuna

    complete = (optuna.trial.TrialState.COMPLETE,)
    done = [trial.params for trial in study.get_trials(deepcopy=False, states=complete)]
    points = (
        dict(zip(values, chosen, strict=True)) for chosen in itertools.product(*values.values())
    )
    return [
        point
        for point in points
        if not any(all(params.get(key) == value for key, value in point.items()) for params in done)
    ]


def _product(counts: Any) -> int:
    total = 1
    for count in counts:
        total *= count
    return total
