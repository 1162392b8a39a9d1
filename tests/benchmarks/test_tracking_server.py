"""Beyond one machine, tested here: training against a real MLflow tracking server over HTTP.

A real ``mlflow server`` on 127.0.0.1 with a SQLite backend and a local folder as its
``--artifacts-destination`` (the shape of a shared server with PostgreSQL and S3, minus the
services), and ``python -m pricer.train`` pointed at it with ``MLFLOW_TRACKING_URI``: the
run's params, metrics, plots, tables and logged model must all arrive, the artifacts through
the server's proxy into its folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from benchmarks.common import store_env
from pricer.paths import PROJECT_ROOT

SERVER_START_SECONDS = 120
TRAIN_SECONDS = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """A tracking server in its own process group; stopped (the whole group) at the end."""
    with started_server(folder) as (url, _):
        yield url


@contextlib.contextmanager
def started_server(folder: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``mlflow_server``'s address, and its process (the leader of its group)."""
    port = free_port()
    log = open(folder / "server.log", "w")  # noqa: SIM115 (closed in finally)
    server = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination", str(folder / "artifacts"),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--workers", "1",
        ],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited: {(folder / 'server.log').read_text()[-3000:]}")
            if _healthy(url):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after {SERVER_START_SECONDS} s")
            time.sleep(0.5)
        yield url, server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.mark.e2e
def test_train_logs_run_and_model_to_a_tracking_server(tmp_path: Path) -> None:
    with mlflow_server(tmp_path) as url:
        env = {
            **store_env(url),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        result = subprocess.run(
            [
                sys.executable, "-m", "pricer.train",
                "model=constant",
                "data.n_records=3000",
                "curation.split.test_size=100",
                "curation.cache_dir=null",
                "eval.n_resamples=100",
                f"hydra.run.dir={tmp_path / 'hydra'}",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TRAIN_SECONDS,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]

        client = mlflow.MlflowClient(tracking_uri=url)
        experiment = client.get_experiment_by_name("pricer")
        assert experiment is not None
        (run,) = client.search_runs([experiment.experiment_id])
        assert run.info.status == "FINISHED"
        assert run.data.tags["pricer.family"] == "constant"
        assert run.data.params["model._target_"] == "pricer.models.constant.ConstantPricer"
        assert {"mae", "time.fit_seconds", "time.log_model_seconds"} <= set(run.data.metrics)
        # Artifacts go through the server (mlflow-artifacts:/...), not to a client-side path.
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
        logged = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
        assert {"config", "plots", "evaluation"} <= logged
        (model,) = client.search_logged_models(experiment_ids=[experiment.experiment_id])
        assert model.source_run_id == run.info.run_id
    # ... and they landed in the server's --artifacts-destination folder.
    stored = {path.name for path in (tmp_path / "artifacts").rglob("*") if path.is_file()}
    assert {"truth_vs_estimate.png", "config.yaml", "MLmodel", "pricer.skops"} <= stored
