"""Shared fixtures: composed configs, a private MLflow store per test, raw record builders."""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from hydra import compose, initialize_config_dir
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from benchmarks.common import STORE_BOUND
from pricer import (
    configs,  # noqa: F401  (config schemas, as the apps register them)
    interrupt,
)
from pricer.devtools.stub_server import StubServer
from pricer.paths import CONFIG_DIR, PROJECT_ROOT
from tests.families import KEY_ENV

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_ending_from_an_earlier_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """``pricer.errors`` keeps the error a process ends on, for runs closed at exit; a test
    that runs ``pricer.cli.run`` in this process would leave it for every later test (a sweep
    parent closed there recorded another test's "configs are missing")."""
    from pricer import errors

    monkeypatch.setattr(errors, "_ending", None)


# What the checkout may gain while tests run: the environment, pytest's and Python's caches.
_CHECKOUT_OWN = (".venv", ".pytest_cache", ".ruff_cache", "__pycache__", "*.egg-info")


def checkout_extras() -> set[str]:
    """The checkout's untracked and ignored files (paths from its root), its own caches left
    out (and not walked: a .venv holds thousands); empty where it is no git work tree."""
    excluded = [option for name in _CHECKOUT_OWN for option in ("-x", name)]
    listed = subprocess.run(
        ["git", "ls-files", "--others", "-z", *excluded],  # ignored files too: no standard ignores
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    if listed.returncode != 0:
        return set()
    return {path for path in listed.stdout.split("\0") if path}


@pytest.fixture(scope="module", autouse=True)
def _nothing_written_into_the_checkout() -> Iterator[None]:
    """Fail the module whose tests left files in the checkout: a subprocess started there with
    the project's default caches (``data_cache/``, ``llm_cache/``), Hydra's ``outputs/``, a
    store at the default ``mlflow.db``. All git-ignored, they went unnoticed, and a later test
    (or a user's command) read what a test had left there."""
    before = checkout_extras()
    yield
    new = sorted(checkout_extras() - before)
    if new:
        more = f" and {len(new) - 10} more" if len(new) > 10 else ""
        pytest.fail(
            f"tests of this module wrote into the checkout {PROJECT_ROOT}: "
            f"{', '.join(new[:10])}{more}; give them a folder under tmp_path"
        )


@pytest.fixture(scope="session")
def _import_path() -> list[str]:
    """``sys.path`` as the session's first test found it (collection's entries included)."""
    return list(sys.path)


@pytest.fixture(autouse=True)
def _no_import_path_from_an_earlier_test(_import_path: list[str]) -> Iterator[None]:
    """Put ``sys.path`` back after each test: a test that loads a model with
    ``mlflow.pyfunc.load_model`` itself (pricer's own loading keeps the path, see
    ``pricer.tracking.model.load_pyfunc``) left the model's code folder first on it, and
    every later test's spawned worker imported pricer from that partial copy (``No module
    named 'pricer.tracking.redaction'`` in tests/reliability's pipe test, in the full suite
    only)."""
    yield
    sys.path[:] = _import_path


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated MLflow SQLite store (creating one takes seconds; copying, not)."""
    folder = tmp_path_factory.mktemp("store")
    path = folder / "mlflow.db"
    # The Default experiment's artifact folder is fixed at creation, from the working directory.
    with contextlib.chdir(folder):
        mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_store: Path
) -> Iterator[str]:
    """A fresh SQLite store for this test, set the way users set it: the environment.

    A SQLite store puts artifacts under ./mlruns of the working directory; the project's
    experiment is created here with its artifacts in ``tmp_path``, and in-process tests run
    from ``tmp_path``, so no test writes into the checkout.
    """
    shutil.copyfile(migrated_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    forget_store_ids(monkeypatch)
    # Set by configure_tracking (tracking.http) where the user has not: undone after the test,
    # or the next test would take the first one's for the user's.
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    # MLflow's global URI is put back too: left on this test's store, a later test of the
    # session's champion store (which set it once) read the registry of this one.
    uris = mlflow.tracking._tracking_service.utils
    monkeypatch.setattr(uris, "_tracking_uri", uris._tracking_uri)
    mlflow.set_tracking_uri(uri)
    # An experiment chosen by an earlier test lives in another store: forget it.
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    mlflow.create_experiment(project_experiment(), artifact_location=str(tmp_path / "artifacts"))
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()


def forget_store_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset the run and experiment ids bound to another store, until ``monkeypatch`` undoes.

    Each is set before it is deleted, so that the value mlflow.set_experiment exports during
    the test is undone at its end too (delenv of an absent variable records nothing to undo).
    """
    for name in STORE_BOUND:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


@functools.cache
def project_experiment() -> str:
    return str(compose_config("train").tracking.experiment)


def compose_config(config_name: str, overrides: list[str] | None = None) -> DictConfig:
    """The config a Hydra app would see, composed from the real conf/ folder."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides or [])


def multirun_config(overrides: list[str], task: list[str]) -> DictConfig:
    """What Hydra hands a multirun's callbacks as it starts (``on_multirun_start``) for
    ``pricer train -m <task>``: the train config composed with ``overrides``, its ``hydra``
    node included (the sweeper, the callbacks) and writable, ``task`` as the command line's."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    OmegaConf.set_readonly(cfg, False)
    with open_dict(cfg):
        cfg.hydra.overrides.task = task
        cfg.hydra.mode = RunMode.MULTIRUN
        # Made as the sweep starts (pricer.configs.check_output_folder): in the test's working
        # folder (tracking_uri's tmp_path), not the checkout's multirun/.
        cfg.hydra.sweep.dir = str(Path.cwd() / "multirun")
    return cfg


def small_train_config(family: str, folder: Path, *overrides: str) -> DictConfig:
    """``pricer train model=<family>`` on a small synthetic split (seconds), as run_family is
    called in-process: its curation cache and artifacts under ``folder``."""
    return compose_config(
        "train",
        [
            f"model={family}",
            f"family={family}",  # not ${hydra:...}: no Hydra app runs here
            "data.n_records=4000",
            "curation.split.test_size=200",
            "eval.size=50",
            f"curation.cache_dir={folder / 'cache'}",
            f"tracking.artifact_location={folder / 'artifacts'}",
            *overrides,
        ],
    )


def raw_record(**fields: object) -> dict[str, object]:
    """A raw record in the Amazon-Reviews-2023 ``raw_meta`` schema, written for tests."""
    record: dict[str, object] = {
        "main_category": "Tools & Home Improvement",
        "title": "Sturdy Steel Hammer with Fiberglass Handle",
        "description": [
            "A dependable hammer for framing and general carpentry around the house. "
            "The forged steel head drives nails cleanly and the handle absorbs shock."
        ],
        "features": [
            "Forged steel head with a polished striking face",
            "Fiberglass handle with a cushioned non-slip grip",
            "Magnetic nail starter for one-handed starts",
        ],
        "details": json.dumps(
            {
                "Brand": "Ironwood",
                "Item Weight": "1.5 pounds",
                "Product Dimensions": "13 x 5 x 1.2 inches",
                "Best Sellers Rank": {"Tools & Home Improvement": 5120},
                "Date First Available": "May 2, 2020",
                "Item model number": "IW-HMR-16OZ",
            }
        ),
        "price": "24.99",
        "store": "Ironwood",
        "average_rating": 4.6,
        "rating_number": 310,
        "categories": ["Tools & Home Improvement", "Hand Tools"],
        "parent_asin": "B0TEST0001",
        "images": [],
        "videos": [],
        "bought_together": None,
    }
    record.update(fields)
    return record


def columns(records: list[dict[str, object]]) -> dict[str, list[object]]:
    """Row records -> the column batch the converters take."""
    return {key: [record.get(key) for record in records] for key in records[0]}


@pytest.fixture
def shared_data() -> Path:
    """The real curated items beside the checkout; tests that need them skip without them."""
    if not (SHARED_DATA / "pricer_canonical_test_rest_1750.jsonl").is_file():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the checkout in CI)")
    return SHARED_DATA


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The app's handlers, as ``cli.run`` installs them; pytest's own restored after."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    reset = (("_mode", None), ("_received", None), ("_pending", None), ("_held", None))
    for name, value in reset:
        monkeypatch.setattr(interrupt, name, value)
    monkeypatch.setattr(interrupt, "_callbacks", [])
    monkeypatch.setattr(interrupt, "_runs", {})
    monkeypatch.delenv(interrupt.APP_PID_ENV, raising=False)
    monkeypatch.delenv(interrupt.STOPPING_ENV, raising=False)
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # install() wraps it: pytest's comes back
    interrupt.install()
    yield
    interrupt.cancel_watchdog()  # this process goes on after its interrupts
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.fixture
def family_stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubServer]:
    """The stub OpenAI server, with the key ``tests.families.family_overrides`` names set: where
    the LLM families answer in a test that runs every family."""
    monkeypatch.setenv(KEY_ENV, "sk-test-families")
    with StubServer() as server:
        yield server
