"""The `pricer` console script: every app by name, and stored runs read back from the terminal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from pricer.paths import PROJECT_ROOT
from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.e2e

PRICER = str(Path(sys.executable).with_name("pricer"))


def test_pricer_runs_the_apps_and_reads_their_runs_back(tracking_uri: str, tmp_path: Path) -> None:
    board = run_cli(
        [
            PRICER,
            "leaderboard",
            "data.n_records=4000",
            "curation.split.test_size=200",
            f"curation.cache_dir={tmp_path}/cache",
            "families=[constant,linear]",
            "tracking.log_model=false",
            f"hydra.run.dir={tmp_path}/hydra",
        ],
        tracking_uri,
        tmp_path,
    )
    assert board.returncode == 0, board.stderr[-3000:]
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    [parent] = [run for run in runs if run.data.tags.get("pricer.kind") == "leaderboard"]
    children = {r.data.tags["pricer.family"]: r for r in runs if "pricer.family" in r.data.tags}

    listed = run_cli([PRICER, "runs"], tracking_uri, tmp_path)
    assert listed.returncode == 0, listed.stderr[-3000:]
    [line] = [row for row in listed.stdout.splitlines() if "leaderboard · synthetic" in row]
    assert parent.info.run_id[:8] in line and f"best {parent.data.tags['best_family']} $" in line
    assert "constant · synthetic" not in listed.stdout  # a leaderboard's families: under it

    shown = run_cli([PRICER, "runs", parent.info.run_id[:8]], tracking_uri, tmp_path)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert f"${children['linear'].data.metrics['mae']:,.2f}" in shown.stdout
    assert shown.stdout.index("linear") < shown.stdout.index("constant")  # best first
    links = ("leaderboard run (its tables and charts): http", "families, best first: http")
    rows = [row for row in shown.stdout.splitlines() if not row.startswith(links)]
    assert all(len(row) <= 100 for row in rows)  # but a link, which cannot be cut
    # Each family's rows as the terminal printed them (the leaderboard's, then the
    # trade-off's): its cost was blank when read back, as the stored table lacked the compute
    # cost, and the trade-off table was printed by no command but the leaderboard itself.
    for family in ("constant", "linear"):
        rows = board.stdout.splitlines()
        printed = [row for row in rows if row.startswith(f"{family} ") and "·" not in row]
        assert len(printed) == 2 and "$0.0" in printed[0] and "(batch)" in printed[1]
        assert all(row in shown.stdout.splitlines() for row in printed), shown.stdout
    # ... with the lines under it (the best family said without its data, no link) and each
    # family's run id, for pricer compare.
    under = board.stdout.splitlines()[-3:]
    assert under[0].startswith(f"best: {parent.data.tags['best_family']}, mae $")
    assert under[0].endswith(" on synthetic data")
    assert under[1].startswith("families, best first: http") and "viewStateShareKey" in under[1]
    assert under[2].startswith("leaderboard run (its tables and charts): http")
    assert all(line in shown.stdout.splitlines() for line in under), shown.stdout
    family_runs = f"linear {children['linear'].info.run_id[:8]}"
    assert f"constant {children['constant'].info.run_id[:8]}" in shown.stdout
    assert family_runs in shown.stdout

    ids = [children["constant"].info.run_id[:8], children["linear"].info.run_id]
    compared = run_cli([PRICER, "compare", *ids], tracking_uri, tmp_path)
    assert compared.returncode == 0, compared.stderr[-3000:]
    rows = {row.split()[0]: row for row in compared.stdout.splitlines()[1:]}
    assert "constant · synthetic" in rows["name"] and "linear · synthetic" in rows["name"]
    assert f"${children['constant'].data.metrics['mae']:,.2f}" in rows["mae"]
    assert "param family" in compared.stdout  # differs between the families
    # ... and their class paths say so again, 40 characters a column: left out.
    assert "param model._target_" not in compared.stdout
    assert "param eval.size" not in compared.stdout  # the same for both

    # One run named twice (a prefix and the whole id): it was shown twice, side by side.
    twice = run_cli(
        [PRICER, "compare", ids[0], children["constant"].info.run_id], tracking_uri, tmp_path
    )
    assert twice.returncode == 2 and twice.stdout == ""
    assert twice.stderr.strip() == (
        f"error: {ids[0]} and {children['constant'].info.run_id} name one run, "
        f"{children['constant'].info.run_id}: give two different runs to compare"
    )

    missing = run_cli([PRICER, "compare", "ffff0000", ids[0]], tracking_uri, tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"error: no run starts with 'ffff0000' in {tracking_uri}: `pricer runs` lists them"
    )


def test_pricer_without_an_app_lists_them(tmp_path: Path, tracking_uri: str) -> None:
    result = run_cli([PRICER], tracking_uri, tmp_path)
    assert result.returncode == 0
    for app in ("train", "leaderboard", "promote", "predict", "serve", "runs", "compare"):
        assert f"\n  {app} " in result.stdout
    unknown = run_cli([PRICER, "trian"], tracking_uri, tmp_path)
    assert unknown.returncode == 2
    # One line, as every user error: the usage list after it stretched it to 18.
    assert unknown.stderr.strip() == "error: unknown app 'trian' (did you mean 'train'?)"
    assert unknown.stdout == ""


def test_reading_a_store_that_does_not_exist_says_so_and_creates_none(tmp_path: Path) -> None:
    # It created an empty store at the (mistyped) path and listed nothing in it.
    missing = tmp_path / "nowhere" / "mlflow.db"
    missing.parent.mkdir()
    # predict and serve created it too, then said no champion was in it.
    for command in (
        [PRICER, "runs"],
        [PRICER, "compare", "aaaa", "bbbb"],
        [PRICER, "predict", "Cordless drill"],
        [PRICER, "serve", "--data", "real"],
    ):
        result = run_cli(command, f"sqlite:///{missing}", tmp_path)
        assert result.returncode == 2, result.stderr[-2000:]
        assert result.stderr.strip() == (
            f"error: no MLflow store at {missing}: nothing was tracked there (a leaderboard or "
            "a train run creates it; MLFLOW_TRACKING_URI names another store)"
        )
    assert list(missing.parent.iterdir()) == []


@pytest.mark.parametrize("store", ["not_a_database", "a_folder", "a_mistyped_scheme"])
def test_a_store_mlflow_cannot_use_is_one_line_for_every_command(
    tmp_path: Path, store: str
) -> None:
    # Tracebacks of 50-80 lines: predict and serve on a file that is no database; train,
    # promote and predict on a folder (MLflow's retired file store) or an unknown scheme.
    garbage = tmp_path / "garbage.db"
    garbage.write_text("hello\n")
    uri, why = {
        "not_a_database": (f"sqlite:///{garbage}", "file is not a database"),
        "a_folder": (str(tmp_path / "runs"), "MLflow's file store"),
        "a_mistyped_scheme": (f"sqlit:///{tmp_path / 'x.db'}", "unknown scheme 'sqlit'"),
    }[store]
    hydra = f"hydra.run.dir={tmp_path}/hydra"
    for command in (
        [PRICER, "runs"],
        [PRICER, "predict", "Cordless drill"],
        [PRICER, "serve", "--data", "synthetic"],
        [PRICER, "train", "model=constant", "data.n_records=2000", hydra],
        [PRICER, "promote", "data=synthetic", hydra],
    ):
        result = run_cli(command, uri, tmp_path)
        assert result.returncode == 2, f"{command}: {result.stderr[-3000:]}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (command, lines[-3:])
        assert why in lines[0], (command, lines[0])
    assert garbage.read_text() == "hello\n"
    assert not (tmp_path / "runs").exists() and not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("app", ["predict", "serve"])
def test_help_names_the_command_users_type(tracking_uri: str, tmp_path: Path, app: str) -> None:
    # It said "usage: python -m pricer.predict", which no README command uses.
    result = run_cli([PRICER, app, "--help"], tracking_uri, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"usage: pricer {app} ")


def test_runs_refuses_a_limit_below_one(tracking_uri: str, tmp_path: Path) -> None:
    # --limit 0 listed the default 15 runs and --limit -1 every run.
    for limit in ("0", "-1", "many"):
        result = run_cli([PRICER, "runs", "--limit", limit], tracking_uri, tmp_path)
        assert result.returncode == 2
        said = f"must be a whole number of runs, 1 or more; got '{limit}'"
        assert result.stderr.startswith("error: ") and said in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr  # no usage block above it


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["runs", ""], "argument run: must be a run id or an id prefix; got an empty one"),
        (["runs", " "], "argument run: must be a run id or an id prefix; got an empty one"),
        (["compare", "abc", ""], "argument RUN: must be a run id or an id prefix"),
        (["runs", "--experiment", ""], "argument --experiment: must name an experiment"),
    ],
)
def test_an_empty_run_or_experiment_is_refused_not_read_as_every_one(
    tracking_uri: str, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    # `pricer runs ''` listed the recent runs, as if no run had been named.
    from pricer.console import main

    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert said in captured.err and captured.out == ""


def test_runs_shows_a_failed_run_with_its_whole_error(tracking_uri: str, tmp_path: Path) -> None:
    # `pricer runs RUN` refused any run but a leaderboard ("is no leaderboard"), and the list
    # cuts the reason to 40 characters: a failed run's whole error could not be read here.
    guesses = tmp_path / "a-rather-long-folder-name-for-the-guesses" / "guesses.csv"
    failed = run_cli(
        [
            PRICER,
            "train",
            "model=human",
            f"model.guesses_path={guesses}",
            "data.n_records=3000",
            "curation.split.test_size=200",
            f"curation.cache_dir={tmp_path}/cache",  # not the checkout's data_cache/
            f"hydra.run.dir={tmp_path}/hydra",  # nor its outputs/
        ],
        tracking_uri,
        tmp_path,
    )
    assert failed.returncode == 2, failed.stderr[-2000:]
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    shown = run_cli([PRICER, "runs", run.info.run_id[:8]], tracking_uri, tmp_path)
    assert shown.returncode == 0, shown.stderr[-2000:]
    lines = shown.stdout.splitlines()
    assert lines[0] == f"{run.info.run_name} ({run.info.run_id}), FAILED"
    [error] = [line for line in lines if line.startswith("error ")]
    assert error.split(None, 1)[1] == run.data.tags["error"] and str(guesses) in error


def test_runs_into_a_closed_pipe_exits_quietly(tracking_uri: str, tmp_path: Path) -> None:
    # `pricer runs | head` ended in a BrokenPipeError traceback once head had closed the pipe.
    for name in ("a", "b", "c"):
        with mlflow.start_run(run_name=name, tags={"pricer.kind": "curation"}):
            pass
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    reader = subprocess.Popen(  # as the shell runs `pricer runs | head`, with head gone at once
        [sys.executable, "-m", "pricer.console", "runs"],
        cwd=PROJECT_ROOT,  # `-m` imports this checkout's pricer
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None
    reader.stdout.close()  # before the app writes: its first write meets a closed pipe
    _, errors = reader.communicate(timeout=120)
    assert errors == ""
    assert reader.returncode == 128 + signal.SIGPIPE
