"""A key passed by mistake through the real CLI reaches nothing in the store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from pricer.devtools.stub_server import StubServer
from tests.e2e.conftest import pricer_app, run_cli, runs

pytestmark = pytest.mark.e2e

KEY = "sk-proj-Zq3vX9kLm2Np4Rt6Wy8Ab1Cd3Ef5Gh7Jk9Lm0Pq2St4Uv6Wx8"  # made up, real format
PLAIN = "9fK2xQ7bLm4Np8Rt3Wy6Zc1V"  # made up, no provider's format: a secret by its key
SMALL = ["data.n_records=3000", "curation.split.test_size=200", "eval.size=20"]


def test_a_key_given_as_api_key_env_is_refused_and_written_nowhere(
    tracking_uri: str, tmp_path: Path
) -> None:
    result = run_cli(
        pricer_app(
            "train",
            "model=frontier",
            f"model.api_key_env={KEY}",  # the mistake: the key instead of the variable's name
            f"+tracking.tags.note={KEY}",  # and as a tag
            f"+tracking.tags.api_token={PLAIN}",  # a secret by the name it is given
            *SMALL,
            f"curation.cache_dir={tmp_path / 'cache'}",
            f"model.cache_dir={tmp_path / 'llm_cache'}",
            workdir=tmp_path,
        ),
        tracking_uri,
        tmp_path,
    )
    # No variable of that name: refused before any run, in one line that hides the name.
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: frontier: environment variable *** (named by api_key_env) is not set" in (
        result.stderr
    ), result.stderr[-2000:]
    assert KEY not in result.stdout + result.stderr
    assert runs(tracking_uri).empty
    # Nor Hydra's own record of the job (its .hydra folder: config.yaml, hydra.yaml,
    # overrides.yaml), which kept the key as typed.
    written = [path for path in (tmp_path / "hydra").rglob("*") if path.is_file()]
    assert {path.name for path in written} >= {"config.yaml", "hydra.yaml", "overrides.yaml"}
    assert not [str(path) for path in written if KEY.encode() in path.read_bytes()]
    # hydra.yaml's hydra.job.override_dirname joins the overrides as typed, in one value
    # that was searched for key formats only.
    assert not [str(path) for path in written if PLAIN.encode() in path.read_bytes()]
    overrides = (tmp_path / "hydra" / ".hydra" / "overrides.yaml").read_text()
    assert "model.api_key_env=***" in overrides and "eval.size=20" in overrides


def test_a_key_given_as_api_key_env_is_not_stored_anywhere(
    tracking_uri: str, tmp_path: Path
) -> None:
    # A variable of that name holding a key (local, for the stub): the run logs everything
    # it would, and the key, the variable's name here, must still reach none of it.
    with StubServer() as stub:
        result = run_cli(
            pricer_app(
                "train",
                "model=frontier",
                f"model.api_key_env={KEY}",
                f"+tracking.tags.note={KEY}",
                f"model.base_url={stub.base_url}",
                "model.tier=null",
                *SMALL,
                f"curation.cache_dir={tmp_path / 'cache'}",
                f"model.cache_dir={tmp_path / 'llm_cache'}",
                workdir=tmp_path,
            ),
            tracking_uri,
            tmp_path,
            env={KEY: "local"},
        )
    assert result.returncode == 0, result.stderr[-2000:]
    [run] = runs(tracking_uri).itertuples()
    logged = mlflow.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["model.api_key_env"] == "***"
    assert logged.data.tags["note"] == "***"
    # Everything the store holds: the database (params, tags, descriptions, metrics, inputs)
    # and every artifact file (config YAML, tables, plots, the logged model).
    store = Path(tracking_uri.removeprefix("sqlite:///"))
    artifacts = Path(mlflow.get_experiment(logged.info.experiment_id).artifact_location)
    files = [store, *(path for path in artifacts.rglob("*") if path.is_file())]
    assert len(files) > 1
    leaked = [str(path) for path in files if KEY.encode() in path.read_bytes()]
    assert not leaked
    assert (artifacts / logged.info.run_id / "artifacts/config/config.yaml").is_file()
    assert KEY not in result.stdout + result.stderr


def test_a_sweeps_console_echo_of_its_overrides_holds_no_key(
    tracking_uri: str, tmp_path: Path
) -> None:
    # Hydra's launcher logs each job's overrides ("#0 : model=constant ..."), as typed.
    plain = PLAIN
    result = run_cli(
        [
            *pricer_app(
                "train",
                "-m",
                "model=constant",
                "model.statistic=mean,median",
                f"+tracking.tags.note={KEY}",
                f"+tracking.tags.api_token={plain}",
                "data.n_records=3000",
                "curation.split.test_size=200",
                "validation.size=100",
                f"curation.cache_dir={tmp_path / 'cache'}",
                workdir=tmp_path,
            )[:-1],
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
        ],
        tracking_uri,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    terminal = result.stdout + result.stderr
    assert "#1 : model=constant model.statistic=median" in terminal  # the echo is still there
    assert "+tracking.tags.note=***" in terminal and "+tracking.tags.api_token=***" in terminal
    assert KEY not in terminal and plain not in terminal
    logs = [path for path in (tmp_path / "multirun").rglob("*.log") if path.is_file()]
    assert logs and not [str(path) for path in logs if KEY.encode() in path.read_bytes()]
