"""A pricer installed without its conf/ (a plain ``pip install .``) says so in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pricer import cli, console, paths


@pytest.fixture
def no_configs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    missing = tmp_path / "site-packages" / "conf"
    monkeypatch.setattr(paths, "CONFIG_DIR", missing)
    return missing


def test_the_pricer_command_names_the_missing_configs(
    no_configs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert console.main(["runs"]) == cli.USER_ERROR_STATUS
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and str(no_configs) in err[0]
    assert "pip install -e ." in err[0]


def test_an_app_fails_in_one_line_before_hydra_looks(
    no_configs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def main() -> None:
        raise AssertionError("the app must not start without its configs")

    with pytest.raises(SystemExit) as stopped:
        cli.run(main)
    assert stopped.value.code == cli.USER_ERROR_STATUS
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(no_configs) in err[0], err


def test_predict_names_the_missing_configs(
    no_configs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pricer import predict

    assert predict.main(["Cordless drill, 20V"]) == cli.USER_ERROR_STATUS
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(no_configs) in err[0], err
