"""The sweep configs: every Optuna search composes, tunes its own family, searches real keys."""

from __future__ import annotations

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pricer.paths import CONFIG_DIR
from pricer.tracking.sweep import SweepCallback
from pricer.validation import OBJECTIVE

SEARCHES = sorted(path.stem for path in (CONFIG_DIR / "hparams_search").glob("*.yaml"))


def compose_train(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_every_tunable_family_has_a_search() -> None:
    assert {"xgboost", "tfidf_ridge", "random_forest", "svr"} <= set(SEARCHES)


@pytest.mark.parametrize("family", SEARCHES)
def test_search_tunes_its_family_on_validation_items(family: str) -> None:
    cfg = compose_train(f"hparams_search={family}")
    assert cfg.hydra.runtime.choices.model == family
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.direction == "minimize"
    assert cfg.hydra.sweeper.storage is None  # in memory unless a database is named to share
    assert cfg.validation.size > 0
    # Every searched key is a real parameter of the family (a typo would fail every trial).
    model = OmegaConf.load(CONFIG_DIR / "model" / f"{family}.yaml")
    searched = [key.removeprefix("model.") for key in cfg.hydra.sweeper.params]
    assert searched and all(key in model for key in searched), searched


def test_a_search_batch_is_as_wide_as_the_launcher_runs_in_parallel() -> None:
    serial = compose_train("hparams_search=tfidf_ridge")
    parallel = compose_train(
        "hparams_search=tfidf_ridge", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"
    )
    assert OmegaConf.select(serial, "hydra.sweeper.n_jobs") == 1
    assert OmegaConf.select(parallel, "hydra.sweeper.n_jobs") == 2


def test_a_single_run_holds_nothing_out() -> None:
    cfg = compose_train()
    assert cfg.validation.size == 0
    assert cfg.hydra.sweeper._target_.endswith("BasicSweeper")


def test_the_callback_ranks_trials_by_what_train_returns() -> None:
    cfg = compose_train("validation.size=300")
    callback = cfg.hydra.callbacks.mlflow_sweep
    assert callback._target_ == f"{SweepCallback.__module__}.{SweepCallback.__name__}"
    assert callback.objective == OBJECTIVE
    assert callback.direction == "minimize"
    assert callback.validation_size == 300


@pytest.mark.parametrize("sampler", ["random", "qmc", "cmaes", "nsgaii"])
def test_a_search_runs_with_any_of_optunas_samplers_seeded_by_the_run(sampler: str) -> None:
    # The TPE-only keys (n_startup_trials, constant_liar) belong to the tpe option: set for every
    # sampler, `hydra/sweeper/sampler=random` failed with "unexpected keyword argument".
    cfg = compose_train("hparams_search=xgboost", f"hydra/sweeper/sampler={sampler}", "seed=7")
    built = instantiate(cfg.hydra.sweeper.sampler)
    assert type(built).__name__.lower().startswith(sampler[:3])
    assert cfg.hydra.sweeper.sampler.seed == 7


def test_the_default_tpe_search_starts_random_and_lies_about_running_trials() -> None:
    tpe = compose_train("hparams_search=xgboost", "seed=7").hydra.sweeper.sampler
    assert tpe.seed == 7 and tpe.n_startup_trials == 5 and tpe.constant_liar is True
    assert isinstance(instantiate(tpe), optuna.samplers.TPESampler)
