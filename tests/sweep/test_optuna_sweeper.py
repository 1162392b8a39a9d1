"""pricer's Optuna sweeper plugin: the official sweeper's syntax, current Optuna, packaging."""

from __future__ import annotations

import importlib.metadata
import json
import math
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna
import pytest
from omegaconf import open_dict
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from packaging.requirements import Requirement

from hydra_plugins.pricer_optuna_sweeper import search_space
from hydra_plugins.pricer_optuna_sweeper import study as studies
from hydra_plugins.pricer_optuna_sweeper.settings import (
    SETTINGS_ATTR,
    differences,
    refusal,
    study_settings,
)
from pricer.paths import PROJECT_ROOT
from pricer.tracking.redaction import REDACTED
from tests.sweep.test_sweep_configs import SEARCHES, compose_train


def test_search_space_syntax_maps_to_optuna_distributions() -> None:
    space, fixed = search_space.parse(
        {
            "a": "choice(1, 2, 5)",
            "b": "int(interval(100, 400))",
            "c": "interval(0.1, 0.6)",
            "d": "tag(log, interval(0.05, 30))",
            "e": "range(1, 9, 2)",
            "f": "range(0.0, 1.0, 0.25)",
            "g": "choice(true, false)",
            "h": "fixed",
        },
        ["c=0.3", "i=interval(1, 8)"],  # the command line beats the config; adds keys
    )
    assert space == {
        "a": CategoricalDistribution([1, 2, 5]),
        "b": IntDistribution(100, 400),
        "d": FloatDistribution(0.05, 30.0, log=True),
        "e": IntDistribution(1, 7, step=2),  # Hydra's range stops before 9, as it does in a grid
        "f": FloatDistribution(0.0, 0.75, step=0.25),
        "g": CategoricalDistribution([True, False]),
        "i": FloatDistribution(1.0, 8.0),  # interval() is float unless int(...)
    }
    assert fixed == {"c": "0.3", "h": "fixed"}
    assert search_space.grid({"a": space["a"], "e": space["e"]}) == {
        "a": [1, 2, 5],
        "e": [1, 3, 5, 7],
    }
    with pytest.raises(ValueError, match="grid sampler needs"):
        search_space.grid({"d": space["d"]})


@pytest.mark.parametrize("family", SEARCHES)
def test_every_search_space_of_the_project_parses(family: str) -> None:
    cfg = compose_train(f"hparams_search={family}")
    space, fixed = search_space.parse(dict(cfg.hydra.sweeper.params), [])
    assert set(space) == set(cfg.hydra.sweeper.params) and not fixed
    study = optuna.create_study()  # current Optuna samples every distribution
    trial = study.ask(space)
    assert set(trial.params) == set(space)


def test_current_optuna_and_no_old_sweeper_in_the_dependencies() -> None:
    assert int(optuna.__version__.split(".")[0]) >= 4
    requirements = [Requirement(r) for r in importlib.metadata.requires("pricer") or []]
    names = {r.name for r in requirements}
    assert "hydra-optuna-sweeper" not in names
    (optuna_req,) = [r for r in requirements if r.name == "optuna"]
    # An environment that already has Optuna 4 or 5 keeps it.
    assert optuna_req.specifier.contains("4.5.0") and optuna_req.specifier.contains("5.1.0")
    assert not optuna_req.specifier.contains("2.10.1")


def test_a_wheel_ships_the_plugin_in_hydras_namespace_package(tmp_path: Path) -> None:
    """Non-editable installs find the sweeper too: it is in the wheel, without __init__ above.

    Built from a copy of the project's files (tracked or not ignored): setuptools writes
    build/ and *.egg-info beside the sources.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    source = tmp_path / "source"
    for name in listed.stdout.splitlines():
        if (PROJECT_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, source / name)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("pricer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    plugin = "hydra_plugins/pricer_optuna_sweeper"
    assert {
        f"{plugin}/{module}.py" for module in ("config", "sweeper", "study", "settings")
    } <= names
    # hydra_plugins is shared with every other Hydra plugin: an __init__.py would hide theirs.
    assert "hydra_plugins/__init__.py" not in names


STORAGE = "hydra.sweeper.storage=sqlite:////tmp/optuna.db"  # composed only, never opened


def settings_of(*overrides: str) -> dict[str, object]:
    return study_settings(compose_train("hparams_search=tfidf_ridge", STORAGE, *overrides))


def test_how_a_process_runs_does_not_change_what_its_trials_are_measured_on() -> None:
    base = settings_of()
    assert base["data"] == "synthetic" and base["model"] == "tfidf_ridge"
    assert base["validation.size"] == 2000 and base["hydra.sweeper.direction"] == "minimize"
    # Per-process knobs (hydra.*, tracking, caches) and a fixed value of a key that is not
    # searched anyway are not compared; the searched keys are compared as their space.
    assert (
        settings_of(
            "hydra.sweeper.n_trials=3", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
            "hydra.sweeper.heartbeat_interval=2", "hydra.sweeper.study_name=other",
            "hydra/sweeper/sampler=random", "tracking.log_model=false",
            "tracking.experiment=elsewhere", "curation.cache_dir=/tmp/cache",
            "data.num_proc=1", "hydra.sweep.dir=/tmp/sweep",
        )
        == base
    )  # fmt: skip
    assert "model.alpha" not in base
    assert "FloatDistribution" in str(base["hydra.sweeper.params.model.alpha"])


@pytest.mark.parametrize(
    ("override", "first"),
    [
        ("data=real", "data"),
        ("data.n_records=4000", "data.n_records"),
        ("curation.split.test_size=200", "curation.split.test_size"),
        ("validation.size=300", "validation.size"),
        ("validation.like_test=true", "validation.like_test"),
        ("seed=7", "seed"),  # the validation split's seed, and the models'
        ("eval.size=100", "eval.size"),
        ("model.hand_features=false", "model.hand_features"),  # not searched: fixed by all
        # searched by the study, fixed here
        ("model.alpha=0.5", "hydra.sweeper.params.model.alpha"),
        ("hydra.sweeper.direction=maximize", "hydra.sweeper.direction"),
    ],
)
def test_what_trials_are_measured_on_is_compared(override: str, first: str) -> None:
    base, other = settings_of(), settings_of(override)
    found = differences(base, other)
    assert found and found[0].startswith(first), found
    line = refusal("tfidf_ridge", "sqlite:////x.db", base, other)
    assert line.startswith("study 'tfidf_ridge' in sqlite:////x.db was started with ")
    assert found[0] in line.split("; this sweep has ")[1]
    assert line.endswith("use another hydra.sweeper.study_name")
    assert "\n" not in line


def test_another_search_space_is_another_study() -> None:
    config = compose_train("hparams_search=tfidf_ridge", STORAGE)
    base = study_settings(config)
    with open_dict(config):
        config.hydra.sweeper.params["model.ngram_max"] = "choice(1, 2, 3)"
    assert differences(base, study_settings(config)) == ["hydra.sweeper.params.model.ngram_max"]


def test_another_family_is_another_study() -> None:
    base = settings_of()
    xgboost = study_settings(compose_train("hparams_search=xgboost", STORAGE))
    line = refusal("tfidf_ridge", "db", base, xgboost)
    assert "started with model=tfidf_ridge" in line and "this sweep has model=xgboost" in line
    assert "(and " in line  # the first three are named, the count of the others given


def test_settings_stored_in_the_study_hold_no_secret() -> None:
    leaked = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0kLmN"
    settings = settings_of(f"+model.api_key={leaked}", f"+data.note='bearer {leaked}'")
    assert leaked not in json.dumps(settings)
    assert settings["model.api_key"] == REDACTED


def test_a_value_from_the_environment_is_compared_as_the_environment_gives_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A value read from the environment was compared as its text, ``${oc.env:...}``: two
    processes given different values (another server, another fine-tuned model) joined one
    study and their trials were ranked together."""
    server = "+model.server=${oc.env:PRICER_TEST_SERVER,'http://localhost:8000'}"
    monkeypatch.setenv("PRICER_TEST_SERVER", "http://gpu-1:8000")
    one = settings_of(server)
    monkeypatch.setenv("PRICER_TEST_SERVER", "http://gpu-2:8000")
    other = settings_of(server)
    assert one["model.server"] == "http://gpu-1:8000"
    assert differences(one, other) == ["model.server"]
    line = refusal("tfidf_ridge", "db", one, other)
    assert "with model.server=http://gpu-1:8000; this sweep has model.server=http://gpu-2" in line
    monkeypatch.delenv("PRICER_TEST_SERVER")
    assert settings_of(server)["model.server"] == "http://localhost:8000"  # its default
    # A variable that is not set and has no default: its text (the trials would fail anyway),
    # which no process given a value matches.
    model = "+model.remote=${oc.env:PRICER_TEST_MODEL}"
    unset = settings_of(model)
    assert unset["model.remote"] == "${oc.env:PRICER_TEST_MODEL}"
    monkeypatch.setenv("PRICER_TEST_MODEL", "ft:gpt-4o-mini:acme::abc")
    assert differences(unset, settings_of(model)) == ["model.remote"]


def test_a_checkout_relative_value_is_compared_as_its_text_in_any_checkout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pricer import paths

    overrides = [
        "data=real",
        "+data.mirror='${oc.env:PRICER_TEST_MIRROR,${pricer.root:}/../mirror}'",
        "+data.stamp=${now:%H%M%S%f}",  # when a process started: its own, as its folders are
    ]
    here = settings_of(*overrides)
    monkeypatch.setattr(paths, "PROJECT_ROOT", Path("/elsewhere/pricer"))  # another checkout
    there = settings_of(*overrides)
    assert there == here
    assert here["data.shared_dir"] == "${pricer.root:}/../shared/data"
    assert here["data.mirror"] == "${pricer.root:}/../mirror"  # the default, in every checkout
    assert here["data.stamp"] == "${now:%H%M%S%f}"
    assert here["family"] == "${hydra:runtime.choices.model}"  # compared through the choice
    monkeypatch.setenv("PRICER_TEST_MIRROR", "/mnt/mirror")
    assert differences(here, settings_of(*overrides)) == ["data.mirror"]


def test_a_secret_in_the_environment_never_reaches_the_study_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values read from the environment are compared as it gives them, and secrets come in
    through it: each is redacted before the settings are stored, whatever key holds it."""
    key = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0kLmN"
    password = "hunter2-correct-horse"  # no known shape: only its variable's name says so
    monkeypatch.setenv("PRICER_TEST_OPENAI_KEY", key)
    monkeypatch.setenv("PRICER_TEST_DB_PASSWORD", password)
    settings = settings_of(
        "+model.api_key=${oc.env:PRICER_TEST_OPENAI_KEY}",  # a credential's key
        "+data.note=${oc.env:PRICER_TEST_OPENAI_KEY}",  # any key: the key's shape
        "+data.url='postgresql://me:${oc.env:PRICER_TEST_DB_PASSWORD}@db/items'",  # any key
    )
    assert settings["model.api_key"] == settings["data.note"] == settings["data.url"] == REDACTED
    path = tmp_path / "optuna.db"
    study, created = studies.open_study(
        studies.storage(f"sqlite:///{path}", None, None), "s", "minimize", settings=settings
    )
    assert created and study.user_attrs[SETTINGS_ATTR] == settings
    stored = path.read_bytes()
    assert key.encode() not in stored and password.encode() not in stored


def test_the_joblib_launchers_every_core_asks_that_many_trials_at_once() -> None:
    # The joblib launcher's default n_jobs=-1 (every core) reached the sweeper, which refused
    # it: "need ... n_jobs >= 1, got 1, -1".
    import os

    from hydra_plugins.pricer_optuna_sweeper.sweeper import OptunaSweeper

    def sweeper(n_jobs: int) -> OptunaSweeper:
        return OptunaSweeper(
            sampler=None, direction="minimize", storage=None, study_name=None, n_trials=4,
            n_jobs=n_jobs, max_failure_rate=0.0, custom_search_space=None, params=None,
        )  # fmt: skip

    cores = os.cpu_count() or 1
    assert sweeper(-1).n_jobs == cores
    assert sweeper(-2).n_jobs == max(1, cores - 1)
    assert sweeper(3).n_jobs == 3
    with pytest.raises(ValueError, match="n_jobs >= 1"):
        sweeper(0)


def test_a_sweep_writes_its_config_in_its_folder_as_hydra_does(tmp_path: Path) -> None:
    # Hydra's basic sweeper writes multirun.yaml in the sweep's folder; this one wrote none.
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    config = compose_train(
        "hparams_search=tfidf_ridge",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "+probe.api_key=sk-live-abcdefghijklmnopqrstuvwxyz",
        "hydra.sweeper.storage=postgresql+psycopg://someone:pw-q7Zr2@127.0.0.1:1/optuna",
    )
    sweeper = instantiate(config.hydra.sweeper)
    sweeper.config, sweeper.launcher = config, object()
    sweeper.storage = None  # in memory: what is written, not the study, is under test
    sweeper.n_trials = 0  # no trial: nothing but the sweep's own files
    sweeper.sweep([])
    written = OmegaConf.load(tmp_path / "sweep" / "multirun.yaml")
    assert written.hydra.sweeper.params == config.hydra.sweeper.params
    assert OmegaConf.to_container(written)["family"] == "${hydra:runtime.choices.model}"  # as typed
    text = (tmp_path / "sweep" / "multirun.yaml").read_text()
    # A password no checkout's path holds ("secret" failed in a clone named h_secret).
    assert "pw-q7Zr2" not in text and "abcdefghijklmnopqrstuvwxyz" not in text
    assert written.hydra.sweeper.storage == "postgresql+psycopg://someone:***@127.0.0.1:1/optuna"


def sweep_a_two_point_grid(
    tmp_path: Path, objectives: list[Callable[[str], float]], arguments: Sequence[str] = ()
) -> list[list[str]]:
    """Sweep model.alpha over choice(0.5, 1.0) with a shared study, once per objective (a
    rerun each time), launching nothing: each objective gives a trial's value from its alpha
    override. ``arguments``: the command line's other overrides. Returns the alpha overrides
    each sweep launched."""
    from types import SimpleNamespace

    from hydra.utils import instantiate

    config = compose_train(
        "hparams_search=tfidf_ridge",
        "hydra/sweeper/sampler=grid",
        "model.max_features=20000",
        "model.ngram_max=1",
        "model.min_df=1",
        "model.sublinear_tf=true",
        f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}",
        "hydra.sweeper.study_name=grid",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    with open_dict(config):  # a grid of two points
        config.hydra.sweeper.params = {"model.alpha": "choice(0.5, 1.0)"}

    class Launcher:
        def __init__(self, objective: Callable[[str], float]) -> None:
            self.objective = objective
            self.launched: list[str] = []

        def launch(self, overrides: list[list[str]], initial_job_idx: int) -> list[object]:
            alphas = [next(o for o in job if o.startswith("model.alpha=")) for job in overrides]
            self.launched.extend(alphas)
            return [SimpleNamespace(return_value=self.objective(alpha)) for alpha in alphas]

    sweeps: list[list[str]] = []
    for objective in objectives:
        launcher = Launcher(objective)
        sweeper = instantiate(config.hydra.sweeper)
        sweeper.config, sweeper.launcher = config, launcher
        sweeper.sweep(list(arguments))
        sweeps.append(sorted(launcher.launched))
    return sweeps


def test_a_secret_on_the_command_line_never_reaches_the_study_database(tmp_path: Path) -> None:
    # Each trial records the command line's fixed overrides as its user attributes: a key
    # given there (by mistake, or as a tag) was written as typed into the shared database.
    plain, key = "9fK2xQ7bLm4Np8Rt3Wy6Zc1V", "sk-proj-Zq3vX9kLm2Np4Rt6Wy8Ab1Cd3Ef5Gh7Jk9Lm0"
    arguments = [f"+tracking.tags.api_token={plain}", f"+tracking.tags.note={key}"]
    sweep_a_two_point_grid(tmp_path, [lambda alpha: 1.0], arguments)
    study = optuna.load_study(study_name="grid", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert len(study.trials) == 2
    for trial in study.trials:
        assert trial.user_attrs["+tracking.tags.api_token"] == "***"
        assert trial.user_attrs["+tracking.tags.note"] == "***"
    database = (tmp_path / "optuna.db").read_bytes()
    assert plain.encode() not in database and key.encode() not in database


def test_a_rerun_of_a_grid_its_shared_study_has_covered_runs_no_trial_again(
    tmp_path: Path,
) -> None:
    # A rerun (after a crash, or a second process) ran every point of the grid again: Optuna's
    # GridSampler re-evaluates once its grid is exhausted, and the sweeper asked n_trials.
    sweeps = sweep_a_two_point_grid(tmp_path, [lambda alpha: 1.0, lambda alpha: 1.0])
    assert sweeps == [["model.alpha=0.5", "model.alpha=1.0"], []]  # the rerun asked for none
    study = optuna.load_study(study_name="grid", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert sorted(trial.params["model.alpha"] for trial in study.trials) == [0.5, 1.0]


def test_a_rerun_of_a_grid_runs_again_the_point_whose_trial_failed(tmp_path: Path) -> None:
    # Optuna counts a FAILED trial's point as visited: a rerun after a failed (or interrupted)
    # trial said the grid was covered and ran nothing, the point never priced.
    def failing_at_one(alpha: str) -> float:
        return math.nan if alpha == "model.alpha=1.0" else 1.0

    sweeps = sweep_a_two_point_grid(tmp_path, [failing_at_one, lambda alpha: 2.0])
    assert sweeps == [["model.alpha=0.5", "model.alpha=1.0"], ["model.alpha=1.0"]]
    study = optuna.load_study(study_name="grid", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted((t.params["model.alpha"], t.value) for t in complete) == [(0.5, 1.0), (1.0, 2.0)]


def test_an_interrupt_is_what_stops_a_batch_whose_study_has_stopped_answering() -> None:
    # Its batch interrupted (SIGTERM, Ctrl-C), the sweeper fails the batch's trials in the
    # study; with the study's database away too, that failure was what the process raised
    # (Optuna's StorageInternalError, a traceback), not the interrupt, and the interrupt's
    # last line and exit status were lost. The next process fails those trials as stale.
    from hydra_plugins.pricer_optuna_sweeper.sweeper import OptunaSweeper

    class Interrupted:
        def launch(self, overrides: object, initial_job_idx: int) -> None:
            raise KeyboardInterrupt("interrupted by SIGTERM")

    study = optuna.create_study()
    trials = [study.ask()]

    def away(*args: object, **kwargs: object) -> None:
        raise optuna.exceptions.StorageInternalError("connection refused")

    study.tell = away  # type: ignore[method-assign]
    sweeper = OptunaSweeper(
        sampler=None, direction="minimize", storage="postgresql+psycopg://u@127.0.0.1:1/optuna",
        study_name="away", n_trials=1, n_jobs=1, max_failure_rate=0.0, custom_search_space=None,
        params=None,
    )  # fmt: skip
    sweeper.launcher = Interrupted()
    with pytest.raises(KeyboardInterrupt, match="interrupted by SIGTERM"):
        sweeper._run_batch(study, trials, {}, {})


@pytest.mark.parametrize(
    ("url", "made"),
    [
        ("sqlite:///optuna.db", "sqlite:////start/optuna.db"),
        ("sqlite:///db/optuna.db?timeout=5", "sqlite:////start/db/optuna.db?timeout=5"),
        ("sqlite+pysqlite:///optuna.db", "sqlite+pysqlite:////start/optuna.db"),
        ("sqlite:////abs/optuna.db", "sqlite:////abs/optuna.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql+psycopg://u:pw@host/optuna", "postgresql+psycopg://u:pw@host/optuna"),
        (None, None),
    ],
)
def test_a_relative_sqlite_file_is_made_absolute_and_nothing_else(
    url: str | None, made: str | None
) -> None:
    assert studies.absolute(url, "/start") == made


@pytest.mark.parametrize(
    "override",
    [
        "hydra.sweeper.heartbeat_interval=-5",
        "hydra.sweeper.heartbeat_interval=0",
        "hydra.sweeper.grace_period=-1",
    ],
)
def test_heartbeat_settings_below_a_second_are_refused_with_the_search(override: str) -> None:
    # Optuna refused a negative one only as the study opened: "cannot open the sweep's parent
    # run: The value of `heartbeat_interval` should be a positive integer"; 0 turned the
    # heartbeats off, and a SIGKILLed process's trial stayed RUNNING in the study for good.
    from pricer.tracking.sweep import SweepError, check_search

    config = compose_train(
        "hparams_search=tfidf_ridge", "hydra.sweeper.storage=sqlite:////tmp/optuna.db", override
    )
    with pytest.raises(SweepError, match=r"^hydra\.sweeper: heartbeat_interval and grace_period "):
        check_search(config)
    check_search(compose_train("hparams_search=tfidf_ridge", "hydra.sweeper.grace_period=5"))
