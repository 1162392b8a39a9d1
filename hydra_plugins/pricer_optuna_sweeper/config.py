"""The sweeper's config schema, registered as ``hydra/sweeper=pricer_optuna``.

Only Hydra and OmegaConf are imported here: Hydra imports every plugin module of the
environment when any Hydra app starts. No ``from __future__ import annotations``: OmegaConf
reads the field types at run time, and Hydra loads this module outside ``sys.modules``.
"""

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

SWEEPER = "hydra_plugins.pricer_optuna_sweeper.sweeper.OptunaSweeper"


@dataclass
class OptunaSweeperConf:
    """The official sweeper's keys, plus the heartbeat that makes shared studies survive kills."""

    _target_: str = SWEEPER
    # The sweeper builds its sampler itself, once its settings are checked (sweeper.py).
    _recursive_: bool = False
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])
    sampler: Any = MISSING
    # "minimize" or "maximize" (a one-item list is accepted too): pricer's apps return one value.
    direction: Any = "minimize"
    # A database URL (e.g. postgresql+psycopg://..., sqlite:///...): the study is shared by every
    # process that names it and survives the process. None: an in-memory study of this process.
    storage: Optional[str] = None  # noqa: UP045
    study_name: Optional[str] = None  # noqa: UP045
    n_trials: int = 20  # trials THIS process runs (a shared study grows by every process's)
    n_jobs: int = 2  # trials asked of Optuna at once: the launcher's parallelism
    max_failure_rate: float = 0.0
    # "module.function" called as function(config, trial) after the params are suggested
    custom_search_space: Optional[str] = None  # noqa: UP045
    params: Optional[dict[str, str]] = None  # noqa: UP045
    # Seconds between heartbeats of a running trial in a database study; a trial silent for
    # grace_period (None: 2 x heartbeat_interval, Optuna's default) is failed as stale.
    heartbeat_interval: int = 10
    grace_period: Optional[int] = None  # noqa: UP045
    # A process joins a study in a database only if its trials compare with those there: the
    # same job config (the hydra node and the searched keys aside) and search space. Keys (a
    # node: all of it) a process may set its own way, as they do not change what trials measure.
    not_compared: list[str] = field(default_factory=list)
    # Resolvers whose interpolations are compared as their text, not their value: the same text
    # in every process that should join (``now``: when a process started, as in its folders;
    # ``hydra``: its own Hydra settings). A value calling any other resolver (``oc.env``) is
    # compared resolved, as the process's environment gives it (settings.py).
    compared_as_text: list[str] = field(default_factory=lambda: ["now", "hydra"])
    # "module.function" that redacts secrets from the job config (a tree of plain containers)
    # before its settings are stored in the study's database; None: stored as compared (values
    # read from the environment included).
    redact: Optional[str] = None  # noqa: UP045
    # "module.function" called as function(numbers) with the numbers of the COMPLETE trials
    # tied for the best value (more than one), returning the one to name best in the log line
    # and optimization_results.yaml; None (or a number not among them): Optuna's best_trial,
    # the first of them. pricer's names the trial its sweep names (its saved view's first).
    best_of_tied: Optional[str] = None  # noqa: UP045


# Samplers as plain dicts, so any of the sampler's keyword arguments can be added in a config
# (e.g. n_startup_trials, constant_liar) and Optuna itself checks them.
# Each sampler's own settings live in its option, so `hydra/sweeper/sampler=random` brings none
# of TPE's (RandomSampler refuses them).
SAMPLERS = {
    "tpe": {
        "_target_": "optuna.samplers.TPESampler",
        "seed": None,
        "n_startup_trials": 5,  # random trials before TPE models the objective
        # Workers of a shared study see each other's running trials as (pessimistic) results and
        # search elsewhere, instead of proposing the same point at once.
        "constant_liar": True,
    },
    "random": {"_target_": "optuna.samplers.RandomSampler", "seed": None},
    "cmaes": {"_target_": "optuna.samplers.CmaEsSampler", "seed": None},
    "nsgaii": {"_target_": "optuna.samplers.NSGAIISampler", "seed": None},
    "qmc": {"_target_": "optuna.samplers.QMCSampler", "seed": None},
    # The grid comes from the search space: the sweeper builds it, so it is created later.
    "grid": {"_target_": "optuna.samplers.GridSampler", "_partial_": True},
}

store = ConfigStore.instance()
store.store(group="hydra/sweeper", name="pricer_optuna", node=OptunaSweeperConf, provider="pricer")
for _name, _node in SAMPLERS.items():
    store.store(group="hydra/sweeper/sampler", name=_name, node=_node, provider="pricer")
