"""A key passed by mistake through the real CLI reaches nothing in the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from pricer.devtools.stub_server import StubServer
from tests.e2e.conftest import files_holding, pricer_app, run_cli, runs

pytestmark = pytest.mark.e2e

KEY = "sk-proj-Zq3vX9kLm2Np4Rt6Wy8Ab1Cd3Ef5Gh7Jk9Lm0Pq2St4Uv6Wx8"  # made up, real format
PLAIN = "9fK2xQ7bLm4Np8Rt3Wy6Zc1V"  # made up, no provider's format: a secret by its key
NO_NAME = "api_key_env must name the environment variable that holds your API key"
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
    # No variable name: refused before any run, in one line that does not quote it.
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"error: frontier: {NO_NAME}" in result.stderr, result.stderr[-2000:]
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


def test_a_key_given_as_api_key_env_is_refused_even_where_a_variable_has_that_name(
    tracking_uri: str, tmp_path: Path
) -> None:
    # A variable of that name holding a key (local, for the stub): the run finished, with the
    # key redacted in its params and tags, and the logged model held it whole, as the name it
    # needs to read its key at serving (in its compressed .skops file, which a search of the
    # store's bytes does not look inside). No variable name looks like that: refused before
    # any run.
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
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"error: frontier: {NO_NAME}" in result.stderr, result.stderr[-2000:]
    assert runs(tracking_uri).empty
    # The store (database and artifacts), Hydra's output folder, the caches: all under tmp_path.
    assert not files_holding(KEY, tmp_path)
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


@pytest.mark.parametrize(
    "override",
    [
        f"+tracking.tags.api_token={PLAIN},x",  # "Ambiguous value for argument '<override>'"
        f"+tracking.tags.api_token=[{PLAIN}",  # "no viable alternative at input '[<value>'"
        f"model.api_key_env='{PLAIN}",
    ],
)
def test_an_override_hydra_cannot_read_is_refused_without_its_secret(
    tracking_uri: str, tmp_path: Path, override: str
) -> None:
    # Hydra's parse errors quote the override, or the part of it they stopped at: the line
    # printed a value that redaction hides everywhere else by the key it was given under.
    result = run_cli(
        pricer_app("train", "model=constant", override, workdir=tmp_path), tracking_uri, tmp_path
    )
    assert result.returncode == 2, result.stderr[-2000:]
    [line] = [row for row in result.stderr.splitlines() if row.startswith("error: ")]
    assert "***" in line
    assert PLAIN not in result.stdout + result.stderr
