"""pricer runs: what each kind of run sums up to in one row."""

from __future__ import annotations

import math
import os
import re
import socket
import subprocess
import unicodedata
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.entities import Run

from pricer import console
from pricer.experiment import run_leaderboard
from pricer.tracking import browse, tags
from pricer.tracking.liveness import HOST_TAG, PID_TAG
from tests.conftest import compose_config


def test_recent_runs_sum_up_sweeps_and_curations(tracking_uri: str) -> None:
    with mlflow.start_run(run_name="curate-synthetic", tags={tags.KIND: "curation"}):
        mlflow.log_metrics({"data.train_items": 38424.0, "data.test_items": 2000.0})
    with mlflow.start_run(run_name="study-ridge", tags={tags.KIND: "sweep"}) as sweep:
        metrics = {"trials.total": 12.0, "trials.finished": 11.0, "trials.failed": 1.0}
        mlflow.log_metrics({**metrics, "best.validation.mae": 21.5283, "best.test_mae": 26.9})
        with mlflow.start_run(run_name="trial", nested=True, tags={tags.FAMILY: "tfidf_ridge"}):
            mlflow.log_metric("mae", 30.0)
    with mlflow.start_run(run_name="study-empty", tags={tags.KIND: "sweep"}):
        mlflow.log_metrics({"trials.total": 2.0, "trials.finished": 0.0, "trials.failed": 2.0})

    table = browse.recent_runs(None, 10).set_index("name")["result"]

    assert list(table.index) == ["study-empty", "study-ridge", "curate-synthetic"]  # no trial
    assert table["study-ridge"] == "val mae $21.53 (test $26.90), 11/12 trials"
    assert table["study-empty"] == "no trial finished, 2 failed"
    assert table["curate-synthetic"] == "train 38,424 / test 2,000 items"
    assert sweep.info.run_id[: browse.SHORT_ID] in set(browse.recent_runs(None, 10)["run"])


def test_runs_older_than_a_big_sweep_s_trials_are_still_listed(tracking_uri: str) -> None:
    # The listing read the newest 300 runs of any kind: a sweep of 300 trials hid everything
    # before it, its own parent too, and said "no leaderboard, sweep, curation or run".
    with mlflow.start_run(run_name="leaderboard · synthetic", tags={tags.KIND: "leaderboard"}):
        mlflow.log_metrics({"mae.constant": 52.3, "best_mae": 52.3})
        mlflow.set_tag(tags.BEST_FAMILY, "constant")
    with mlflow.start_run(run_name="sweep · svr · synthetic", tags={tags.KIND: "sweep"}) as sweep:
        client = mlflow.MlflowClient()
        for trial in range(301):
            run = client.create_run(
                sweep.info.experiment_id,
                run_name=f"svr · synthetic · trial {trial}",
                tags={browse.PARENT_TAG: sweep.info.run_id, tags.FAMILY: "svr"},
            )
            client.set_terminated(run.info.run_id)

    listed = browse.recent_runs(None, 15)

    assert list(listed["name"]) == ["sweep · svr · synthetic", "leaderboard · synthetic"]
    assert listed["result"].iloc[1] == "best constant $52.30, 1 family"


def test_a_run_s_name_is_one_short_line_wherever_runs_are_listed(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A line end in a name split its row in two, the second reading as a row of its own; a
    # 250-character name pushed every row's status and result 250 columns to the right.
    forged = "constant · synthetic\nFINISHED  best fake $1.00"
    long = "linéaire · 日本語 · " + "x" * 230
    ids = []
    for name, mae in ((forged, 52.3), (long, 37.1)):
        with mlflow.start_run(run_name="run", tags={tags.FAMILY: "linear"}) as run:
            mlflow.log_metric("mae", mae)
        mlflow.MlflowClient().update_run(run.info.run_id, name=name)
        ids.append(run.info.run_id)

    assert console.main(["runs"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 3 and all(len(line) <= 120 for line in listed)  # a header, 2 runs
    words = [" ".join(line.split()) for line in listed]
    assert "constant · synthetic FINISHED best fake… FINISHED mae $52.30" in words[2]
    assert "linéaire · 日本語 · xxx" in words[1] and "… FINISHED mae $37.10" in words[1]
    names = browse.compare_runs([mlflow.get_run(run_id) for run_id in ids]).loc["name"]
    assert all("\n" not in name and len(name) <= browse.NAME_WIDTH for name in names)
    assert console.main(["runs", ids[0]]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == f"constant · synthetic FINISHED best fake $1.00 ({ids[0]}), FINISHED"
    assert not any(line.startswith("FINISHED") for line in shown)


def test_a_sweep_ranked_by_a_rate_shows_it_as_a_rate(tracking_uri: str) -> None:
    # hydra.callbacks.mlflow_sweep.objective=validation.hit_rate (direction=maximize): the
    # list read "val hit_rate $0.82" for 82.5%, and `pricer runs RUN` left the objective out.
    with mlflow.start_run(run_name="sweep · tfidf_ridge", tags={tags.KIND: "sweep"}) as sweep:
        metrics = {"trials.total": 2, "trials.finished": 2, "trials.failed": 0}
        mlflow.log_metrics({**metrics, "best.validation.hit_rate": 0.825, "best.test_mae": 24.55})

    [listed] = browse.recent_runs(None, 5)["result"]
    shown = browse.run_summary(mlflow.get_run(sweep.info.run_id))

    assert listed == "val hit_rate 82.5% (test $24.55), 2/2 trials"
    assert "best.validation.hit_rate  82.5%" in shown
    assert "best.test_mae             $24.55" in shown


def test_a_sweep_s_count_that_is_no_number_is_listed_not_a_traceback(tracking_uri: str) -> None:
    # A NaN trials.finished (or total, or failed) ended `pricer runs` in a traceback:
    # "ValueError: cannot convert float NaN to integer".
    with mlflow.start_run(run_name="sweep · svr", tags={tags.KIND: "sweep"}):
        metrics = {"trials.total": 3, "trials.finished": math.nan, "best.validation.mae": 26.39}
        mlflow.log_metrics(metrics)
    with mlflow.start_run(run_name="sweep · linear", tags={tags.KIND: "sweep"}):
        mlflow.log_metrics({"trials.total": 2, "trials.failed": math.nan})

    listed = browse.recent_runs(None, 5).set_index("name")["result"]

    assert listed["sweep · svr"] == "val mae $26.39, NaN/3 trials"
    assert listed["sweep · linear"] == "no trial finished, NaN failed"


def test_a_run_that_left_items_unpriced_is_listed_with_its_mae_over_those_it_priced(
    tracking_uri: str,
) -> None:
    # Its own line said "mae $30.00 ... over the 238 of 250 items priced"; the list said
    # "mae $30.00", as if every item had been scored.
    with mlflow.start_run(run_name="frontier · real", tags={tags.FAMILY: "frontier"}):
        mlflow.log_metrics({"mae": 30.0, "n": 238, "n_failed": 12, "failure_rate": 12 / 250})
    with mlflow.start_run(run_name="xgboost · real", tags={tags.FAMILY: "xgboost"}):
        mlflow.log_metrics({"mae": 92.78, "n": 250, "n_failed": 0, "failure_rate": 0.0})

    listed = browse.recent_runs(None, 5).set_index("name")["result"]

    assert listed["frontier · real"] == "mae $30.00 over 238 of 250 items"
    assert listed["xgboost · real"] == "mae $92.78"


def terminal_columns(text: str) -> int:
    """The columns a terminal gives ``text``: two for an East Asian wide character."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def test_runs_named_in_wide_characters_keep_the_columns_in_line(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A name in Japanese takes two terminal columns a character: padded by characters, its
    # status and result stood 6 columns left of the others', under the next header.
    for name in ("linear · 日本語", "constant · synthetic"):
        with mlflow.start_run(run_name=name, tags={tags.FAMILY: "linear"}):
            mlflow.log_metric("mae", 20.0)

    assert console.main(["runs"]) == 0

    header, *rows = capsys.readouterr().out.splitlines()
    where = {
        terminal_columns(line[: line.index(word)])
        for line, word in [(header, "status")] + [(row, "FINISHED") for row in rows]
    }
    assert len(rows) == 2 and len(where) == 1


def test_a_run_that_failed_shows_why_where_its_result_would_be(tracking_uri: str) -> None:
    # Before, a FAILED run's result cell was empty: the reason was only in the UI's tags.
    reason = "ConfigError: like_test_weight must be a finite number above 0 or null, got 0.0"
    with mlflow.start_run(run_name="stack · real", tags={tags.FAMILY: "stack"}) as failed:
        mlflow.set_tag(tags.ERROR, reason)
    mlflow.MlflowClient().set_terminated(failed.info.run_id, "FAILED")
    with mlflow.start_run(run_name="xgboost · real", tags={tags.FAMILY: "xgboost"}):
        mlflow.log_metric("mae", 92.78)

    table = browse.recent_runs(None, 10).set_index("name")

    assert table.loc["xgboost · real", "result"] == "mae $92.78"
    assert table.loc["stack · real", "status"] == "FAILED"
    shown = table.loc["stack · real", "result"]
    assert shown.startswith("ConfigError: like_test_weight must") and shown.endswith("…")
    assert len(shown) <= 48


def test_promotions_and_fine_tunings_are_listed_with_their_outcome(tracking_uri: str) -> None:
    # The README says pricer runs lists every lone run; these two kinds were left out.
    with mlflow.start_run(run_name="promote · real", tags={tags.KIND: "promotion"}):
        mlflow.set_tag("pricer.decision", "champion")
        mlflow.log_metric("candidate.mae", 92.781)
    finetune = {tags.ENTRY_POINT: "finetune", tags.FT_FINE_TUNED_MODEL: "ft:gpt-4o-mini:x:y"}
    with mlflow.start_run(run_name="finetune · real", tags=finetune):
        pass

    table = browse.recent_runs(None, 10).set_index("name")["result"]

    assert table["promote · real"] == "champion, candidate mae $92.78"
    assert table["finetune · real"] == "ft:gpt-4o-mini:x:y"


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _ended(run_id: str, status: str, error: str | None = None) -> None:
    client = mlflow.MlflowClient()
    if error is not None:
        client.set_tag(run_id, tags.ERROR, error)
    client.set_terminated(run_id, status)


def test_a_run_whose_process_is_gone_is_listed_stale_with_why(tracking_uri: str) -> None:
    # A SIGKILLed train run was listed "RUNNING  mae $43.97" forever: is_stale was never asked.
    pid = _dead_pid()
    host = socket.gethostname()
    process = {tags.FAMILY: "linear", HOST_TAG: host, PID_TAG: str(pid)}
    dead = mlflow.start_run(run_name="linear · synthetic", tags=process)
    mlflow.log_metric("mae", 43.97)
    mlflow.end_run("RUNNING")  # what SIGKILL leaves: the store still says RUNNING
    alive = {tags.FAMILY: "constant", HOST_TAG: host, PID_TAG: str(os.getpid())}
    with mlflow.start_run(run_name="constant · synthetic", tags=alive) as live:
        mlflow.log_metric("mae", 80.0)

        table = browse.recent_runs(None, 10).set_index("name")

    assert mlflow.get_run(dead.info.run_id).info.status == "RUNNING"  # the store is untouched
    assert table.loc["linear · synthetic", "status"] == "STALE"
    assert table.loc["linear · synthetic", "result"] == _shorten(f"process {pid} on {host} is gone")
    assert table.loc["constant · synthetic", "status"] == "RUNNING"  # this process: alive
    assert table.loc["constant · synthetic", "result"] == "mae $80.00"
    summary = browse.run_summary(mlflow.get_run(dead.info.run_id))
    end = f"pricer runs {dead.info.run_id[:8]} --end ends it KILLED"
    assert f"stale    process {pid} on {host} is gone (the store says RUNNING; {end})" in summary
    assert "status   STALE" in summary
    assert "figures  partial: logged before its process died" in summary
    assert browse.status(mlflow.get_run(live.info.run_id)) == "FINISHED"


def _shorten(text: str) -> str:
    return text if len(text) <= browse.ERROR_WIDTH else text[: browse.ERROR_WIDTH - 1] + "…"


def test_runs_that_did_not_finish_lead_with_why_not_with_a_result(tracking_uri: str) -> None:
    # Each showed a result: "best  , 0 families", "mae $422.60", "val mae $23.09 (test
    # $27.04), 1/2 trials", "mae $43.97", though none of them finished.
    with mlflow.start_run(run_name="leaderboard", tags={tags.KIND: "leaderboard"}) as board:
        pass
    _ended(board.info.run_id, "KILLED", "interrupted by SIGTERM")
    with mlflow.start_run(run_name="frontier", tags={tags.FAMILY: "frontier"}) as llm:
        mlflow.log_metric("mae", 422.60)
    too_many = "LLMFailures: 31 of 50 answers failed (62.0%), above failure_rate_max 20%:\nsee"
    _ended(llm.info.run_id, "FAILED", too_many)
    with mlflow.start_run(run_name="sweep", tags={tags.KIND: "sweep"}) as sweep:
        mlflow.log_metrics({"trials.total": 2, "trials.finished": 1, "best.validation.mae": 23.09})
    _ended(sweep.info.run_id, "KILLED", "interrupted by SIGINT")
    with mlflow.start_run(run_name="linear", tags={tags.FAMILY: "linear"}) as train:
        mlflow.log_metric("mae", 43.97)
    _ended(train.info.run_id, "KILLED")  # no error tag (ended by hand): figures, marked

    table = browse.recent_runs(None, 10).set_index("name")["result"]

    assert table["leaderboard"] == "interrupted by SIGTERM"
    assert table["frontier"] == _shorten(" ".join(too_many.split()))
    assert table["frontier"].startswith("LLMFailures: 31 of 50") and "\n" not in table["frontier"]
    assert table["sweep"] == "interrupted by SIGINT"
    assert table["linear"] == "partial: mae $43.97"
    summary = browse.run_summary(mlflow.get_run(llm.info.run_id))
    assert "figures  partial: logged before the run ended FAILED" in summary
    assert summary.index("figures  partial: logged before the run ended FAILED") < next(
        i for i, line in enumerate(summary) if line.startswith("mae ")
    )


def test_a_killed_leaderboard_shows_its_error_and_its_families(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # It said only "has no leaderboard/leaderboard.csv" and exited 2.
    with mlflow.start_run(run_name="leaderboard · synthetic", tags={tags.KIND: "leaderboard"}):
        board = mlflow.active_run()
        assert board is not None
        family = {tags.FAMILY: "constant"}
        with mlflow.start_run(run_name="constant · synthetic", nested=True, tags=family) as done:
            mlflow.log_metric("mae", 80.5)
        family = {tags.FAMILY: "linear"}
        with mlflow.start_run(run_name="linear · synthetic", nested=True, tags=family) as cut:
            pass
        _ended(cut.info.run_id, "KILLED", "interrupted by SIGTERM")
    _ended(board.info.run_id, "KILLED", "interrupted by SIGTERM")

    assert console.main(["runs", board.info.run_id[:8]]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"leaderboard · synthetic ({board.info.run_id}), KILLED"
    assert "status   KILLED" in lines and "error    interrupted by SIGTERM" in lines
    families = lines[lines.index("family runs:") + 1 :]
    assert families == [
        f"  {done.info.run_id[:8]}  constant · synthetic  FINISHED  mae $80.50",
        f"  {cut.info.run_id[:8]}  linear · synthetic    KILLED    interrupted by SIGTERM",
    ]


def test_a_deleted_run_is_not_shown_as_a_live_one(tracking_uri: str) -> None:
    # By its whole id it was shown FINISHED with its figures (and compared with live runs);
    # by its prefix it was "no run": a deleted result read as a current one.
    mlflow.set_experiment("elsewhere")
    with mlflow.start_run(run_name="kept") as kept:
        mlflow.log_metric("mae", 20.0)
    with mlflow.start_run(run_name="deleted") as deleted:
        mlflow.log_metric("mae", 5.0)
    mlflow.MlflowClient().delete_run(deleted.info.run_id)
    for asked in (deleted.info.run_id, deleted.info.run_id[: browse.SHORT_ID]):
        with pytest.raises(browse.RunNotFound):
            browse.find_run(asked)
    assert browse.find_run(kept.info.run_id).info.run_name == "kept"
    with pytest.raises(browse.RunNotFound, match="not in experiment 'pricer'"):
        browse.find_run(kept.info.run_id, "pricer")  # as its prefix is not found there


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "No columns to parse from file"),
        ("name,mae\nlinear,20.1\n", "Index family invalid"),
        ("name,mae\n", "no family column"),
        ("family,mae\nlinear,$20.10\n", "no numeric mae column"),
    ],
)
def test_a_damaged_leaderboard_table_is_one_line(tracking_uri: str, text: str, why: str) -> None:
    # Each was a pandas traceback from `pricer runs RUN` (EmptyDataError, ValueError, TypeError).
    with mlflow.start_run(run_name="leaderboard", tags={tags.KIND: "leaderboard"}) as board:
        mlflow.log_text(text, "leaderboard/leaderboard.csv")
    with pytest.raises(browse.RunNotFound) as refused:
        browse.stored_leaderboard(mlflow.get_run(board.info.run_id))
    short = board.info.run_id[: browse.SHORT_ID]
    assert (
        str(refused.value) == f"leaderboard {short}'s leaderboard/leaderboard.csv is damaged: {why}"
    )


def runs_tagged(*tag_sets: dict[str, str], mae: float) -> list[Run]:
    """One finished run per tag set, each with the same mae."""
    ids = []
    for tagged in tag_sets:
        with mlflow.start_run(tags=tagged) as run:
            mlflow.log_metric("mae", mae)
        ids.append(run.info.run_id)
    return [mlflow.get_run(run_id) for run_id in ids]


def test_compare_says_when_runs_were_scored_on_other_items(tracking_uri: str) -> None:
    # Two maes on 50 items each read as comparable; the items themselves differed.
    runs = runs_tagged(
        *(
            {tags.FAMILY: "linear", tags.EVAL_SIZE: "50", tags.EVAL_DIGEST: digest}
            for digest in ("aaaa1111bbbb2222", "cccc3333dddd4444", "aaaa1111bbbb2222")
        ),
        mae=20.0,
    )
    table = browse.compare_runs(runs)
    assert table.loc["eval digest"].tolist() == ["aaaa1111…", "cccc3333…", "aaaa1111…"]
    assert "eval digest" not in browse.compare_runs([runs[0], runs[2]]).index


def test_compare_says_when_leaderboards_were_scored_on_other_items(
    tracking_uri: str, tmp_path: Path
) -> None:
    # A leaderboard's parent had no digest or size: two leaderboards' best_mae, one over 20
    # items and one over 30, stood side by side with a blank "eval items" row.
    def leaderboard(size: int) -> Run:
        cfg = compose_config(
            "leaderboard",
            [
                "families=[constant]",
                "data.n_records=3000",
                "curation.split.test_size=50",
                f"eval.size={size}",
                f"curation.cache_dir={tmp_path}/cache",
                "tracking.log_model=false",
            ],
        )
        run_leaderboard(cfg)
        return mlflow.last_active_run()

    boards = [leaderboard(20), leaderboard(30)]
    assert all(board.data.tags[tags.KIND] == "leaderboard" for board in boards)
    family = mlflow.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{boards[0].info.run_id}'",
        output_format="list",
    )[0]
    assert boards[0].data.tags[tags.EVAL_DIGEST] == family.data.tags[tags.EVAL_DIGEST]
    table = browse.compare_runs(boards)
    assert table.loc["eval items"].tolist() == ["20", "30"]
    assert "eval digest" in table.index


def test_compare_says_when_runs_came_from_other_machines(tracking_uri: str) -> None:
    # Same commit, same items, other figures: the BLAS kernel of another CPU.
    runs = runs_tagged(
        *(
            {tags.FAMILY: "xgboost", tags.CPU: "AMD EPYC", tags.BLAS: kernel}
            for kernel in ("openblas 0.3.31 Haswell", "openblas 0.3.31 SkylakeX")
        ),
        mae=95.0,
    )
    table = browse.compare_runs(runs)
    assert table.loc["blas"].tolist() == ["openblas 0.3.31 Haswell", "openblas 0.3.31 SkylakeX"]
    assert "cpu" not in table.index  # the same: not shown
    assert "blas" not in browse.compare_runs([runs[0], runs[0]]).index
    # The same CPU name and kernel, numpy's own kernels on other SIMD extensions (AVX-512 or
    # not): xgboost $92.65 against $95.73 on the real benchmark.
    simd = runs_tagged(
        *(
            {tags.FAMILY: "xgboost", tags.CPU: "AMD EPYC", tags.SIMD: extensions}
            for extensions in ("numpy X86_V3 X86_V4 AVX512_ICL", "numpy X86_V3")
        ),
        mae=95.0,
    )
    assert browse.compare_runs(simd).loc["simd"].tolist() == [
        "numpy X86_V3 X86_V4 AVX512_ICL",
        "numpy X86_V3",
    ]
    # The same machine, another thread count: a sweep trial in joblib's workers (1 thread on
    # 2 cores, n_jobs=2) against its replay alone (2), cents apart.
    threads = runs_tagged(
        *({tags.FAMILY: "tfidf_ridge", "pricer.threads": count} for count in ("blas 1", "blas 2")),
        mae=22.16,
    )
    assert browse.compare_runs(threads).loc["threads"].tolist() == ["blas 1", "blas 2"]


def test_a_figure_that_is_no_number_says_so(tracking_uri: str) -> None:
    # A NaN mae was "mae" alone in the list and no row at all in `pricer runs RUN`, as if never
    # logged; an infinite r2 (stored as the largest float) a 309-digit number.
    with mlflow.start_run(run_name="all failed", tags={tags.FAMILY: "frontier"}) as run:
        mlflow.log_metrics({"mae": float("nan"), "r2": float("inf"), "rmsle": 0.5})
    stored = mlflow.get_run(run.info.run_id)
    assert browse.recent_runs(None, 10).set_index("name").loc["all failed", "result"] == "mae NaN"
    column = browse.compare_runs([stored]).iloc[:, 0]
    assert (column["mae"], column["r2"], column["rmsle"]) == ("NaN", "inf", "0.50")
    assert any(line.split() == ["mae", "NaN"] for line in browse.run_summary(stored))


def test_a_store_that_does_not_answer_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `pricer runs` against a tracking server that is down was an MlflowException traceback.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        server = f"http://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens there
    # Reading sets MLflow's global URI to the dead server: put back after, for later tests.
    uris = mlflow.tracking._tracking_service.utils
    monkeypatch.setattr(uris, "_tracking_uri", uris._tracking_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    for command in (["runs"], ["compare", "abc", "def"]):
        assert console.main(command) == 2
        err = capsys.readouterr().err
        assert (
            err.startswith(
                f"error: cannot reach the tracking server at {server} (Connection refused)"
            )
            and err.count("\n") == 1
        )


def test_a_password_in_the_store_uris_query_is_not_printed(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A database takes its password as a query parameter too (libpq's ?password=...): the
    # line naming an empty store printed it, hiding only one written before the host.
    uris = mlflow.tracking._tracking_service.utils
    monkeypatch.setattr(uris, "_tracking_uri", uris._tracking_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"{tracking_uri}?password=pw-9f8e7d6c")
    assert console.main(["runs"]) == 0
    out = capsys.readouterr().out
    assert out == f"no leaderboard, sweep, curation or run in {tracking_uri}?password=***\n"


@pytest.mark.parametrize(
    "command", [["runs"], ["runs", "abcd1234"], ["compare", "abcd1234", "ef567890"]]
)
def test_a_store_that_fails_while_it_is_read_is_one_line(
    tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    # It answered the first read (connect), then failed (a server's 503, SQLite locked):
    # MLflow's traceback, which reads as a bug.
    from mlflow.exceptions import MlflowException

    def failing(*args: object, **kwargs: object) -> None:
        raise MlflowException("API request failed with error code 503\nbody: try later")

    connect = browse.connect

    def connect_then_fail(uri: str) -> str:
        where = connect(uri)
        monkeypatch.setattr(mlflow, "search_runs", failing)
        monkeypatch.setattr(mlflow.MlflowClient, "search_runs", failing)
        monkeypatch.setattr(mlflow.MlflowClient, "get_run", failing)
        return where

    monkeypatch.setattr(browse, "connect", connect_then_fail)
    assert console.main(command) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: the tracking store at {tracking_uri} failed while it was read "
        "(MlflowException: API request failed with error code 503); try again once it "
        "answers\n"
    )


def test_a_leaderboard_shown_again_says_what_was_said_under_its_table(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # `pricer runs RUN` left out which server answered an LLM family and what it left
    # unanswered: only the course's note and the best family were rebuilt.
    from pricer.tracking.leaderboard import log_leaderboard
    from tests.tracking.test_leaderboard import board

    table = board().drop(index="frontier")  # every family finished: it takes the view over
    notes = ["xgboost: answered by http://127.0.0.1:8796/v1, not OpenAI's API"]
    with mlflow.start_run(tags={"pricer.kind": "leaderboard", "pricer.data": "real"}) as run:
        log_leaderboard(table, data="real", notes=notes)
    printed = capsys.readouterr().out.splitlines()
    under = printed[printed.index(notes[0]) :]  # the notes, the best family, the links
    assert under[-3] == "best: xgboost, mae $92.78 on real data"
    assert under[-2].startswith("families, best first: http")  # the comparison first
    assert under[-1].startswith("leaderboard run (its tables and charts): http")
    assert run.info.run_id in under[-1]
    shown = browse.leaderboard_notes(mlflow.get_run(run.info.run_id), table)
    assert shown[: len(under)] == under
    # Once a later leaderboard on the same data has the view, it is that one's link, not this.
    with mlflow.start_run(tags={"pricer.kind": "leaderboard", "pricer.data": "real"}):
        log_leaderboard(table, data="real")
    again = browse.leaderboard_notes(mlflow.get_run(run.info.run_id), table)
    assert again[: len(under) - 1] == [*under[:-2], under[-1]]  # the run's link alone
    assert not any(line.startswith("families") for line in again)


def test_a_stored_tradeoff_without_intervals_is_shown_not_a_traceback(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A leaderboard run with columns=[mae] logged its trade-off without intervals, as JSON
    # nulls: `pricer runs RUN` read them as None and ended in a TypeError traceback.
    from pricer.evaluation.tradeoff import tradeoff_table
    from pricer.schemas import ComputePrice
    from pricer.tracking.leaderboard import log_leaderboard
    from tests.tracking.test_leaderboard import board

    table = board(n=[250.0, 250.0, 250.0]).drop(index="frontier")
    without = table.drop(columns=["mae_ci_low", "mae_ci_high"])
    tradeoff = tradeoff_table(without, ComputePrice(cpu_hour_usd=0.05, cpus=2))
    with mlflow.start_run(tags={"pricer.kind": "leaderboard", "pricer.data": "real"}) as run:
        log_leaderboard(without, data="real", tradeoff=tradeoff)
    printed = capsys.readouterr().out
    shown_then = printed[printed.index("Trade-off ($") :].splitlines()[:4]
    assert console.main(["runs", run.info.run_id[:8]]) == 0
    again = capsys.readouterr().out
    # As the leaderboard printed it: each mae without an interval, the rest as it was.
    assert again[again.index("Trade-off ($") :].splitlines()[:4] == shown_then
    assert "$92.78 " in shown_then[3] and "(80-107)" not in again


@pytest.mark.parametrize("command", [["runs"], ["compare", "a1", "b2"]])
def test_a_deleted_experiment_is_said_to_be_deleted_not_empty(
    tracking_uri: str, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    # `pricer runs --experiment gone` said "no leaderboard, sweep, curation or run", exit 0,
    # of an experiment that held runs until it was deleted.
    client = mlflow.MlflowClient()
    gone = client.create_experiment("gone")
    with mlflow.start_run(experiment_id=gone):
        mlflow.log_metric("mae", 20.0)
    client.delete_experiment(gone)
    assert console.main([*command, "--experiment", "gone"]) == 2
    assert capsys.readouterr().err == (
        f"error: experiment 'gone' was deleted, its runs with it: restore it (mlflow "
        f"experiments restore --experiment-id {gone}) to see them\n"
    )


def test_a_leaderboard_says_which_of_its_family_runs_were_deleted(tracking_uri: str) -> None:
    # Its best family's run deleted since, `pricer runs RUN` still named it best with its id,
    # and `pricer compare` of that id said "no run starts with", as if it were mistyped.
    from pricer.tracking.leaderboard import log_leaderboard
    from tests.tracking.test_leaderboard import board

    table = board()
    with mlflow.start_run(tags={"pricer.kind": "leaderboard", "pricer.data": "real"}) as run:
        for family in table.index:
            with mlflow.start_run(nested=True, run_name=f"{family} · real") as child:
                table.loc[family, "run_id"] = child.info.run_id
        log_leaderboard(table, data="real")
    best = str(table.loc["xgboost", "run_id"])
    mlflow.MlflowClient().delete_run(best)

    shown = browse.leaderboard_notes(mlflow.get_run(run.info.run_id), table)

    short = best[: browse.SHORT_ID]
    assert f"best: xgboost, mae $92.78 on real data (its run {short} was deleted since)" in shown
    assert f" xgboost {short} (deleted)," in next(x for x in shown if x.startswith("family runs"))
    constant = str(table.loc["constant", "run_id"])[: browse.SHORT_ID]
    assert f" constant {constant}," in next(x for x in shown if x.startswith("family runs"))
    with pytest.raises(browse.RunNotFound, match=f"^run {best} was deleted: not shown$"):
        browse.find_run(short)


def test_a_leaderboard_without_its_best_family_tag_still_names_its_best(
    tracking_uri: str,
) -> None:
    # Without the tag (deleted by hand, or never written) the list read "best  $92.78, 2
    # families", naming none, and `pricer runs RUN` left its best line out.
    from pricer.tracking.leaderboard import log_leaderboard
    from tests.tracking.test_leaderboard import board

    table = board()
    with mlflow.start_run(tags={"pricer.kind": "leaderboard", "pricer.data": "real"}) as run:
        log_leaderboard(table, data="real")
    mlflow.MlflowClient().delete_tag(run.info.run_id, tags.BEST_FAMILY)
    stored = mlflow.get_run(run.info.run_id)

    assert browse.recent_runs(None, 5)["result"].tolist() == ["best xgboost $92.78, 2 families"]
    shown = browse.leaderboard_notes(stored, browse.stored_leaderboard(stored))
    assert "best: xgboost, mae $92.78 on real data" in shown


def test_a_sweep_says_when_its_best_trial_s_run_was_deleted(tracking_uri: str) -> None:
    # It named the deleted run as its best, beside the command that replays it.
    with mlflow.start_run(run_name="sweep · svr", tags={tags.KIND: "sweep"}) as sweep:
        mlflow.log_metrics({"trials.total": 2, "trials.finished": 2, "best.validation.mae": 21.5})
        with mlflow.start_run(run_name="svr · trial 1", nested=True) as trial:
            mlflow.log_metric("validation.mae", 21.5)
        mlflow.log_param(tags.SWEEP_BEST_TRIAL, 1)
        mlflow.set_tag(tags.SWEEP_BEST_RUN, trial.info.run_id)
    short = trial.info.run_id[: browse.SHORT_ID]
    assert f"best run             {short}" in browse.run_summary(mlflow.get_run(sweep.info.run_id))

    mlflow.MlflowClient().delete_run(trial.info.run_id)

    shown = browse.run_summary(mlflow.get_run(sweep.info.run_id))
    assert f"best run             {short} (deleted)" in shown


def test_a_sweep_or_a_curation_shown_alone_shows_its_figures(tracking_uri: str) -> None:
    # `pricer runs <sweep>` printed its name, status and start only, where the list said
    # "val mae $21.53 (test $26.90), 11/12 trials"; a curation's counts were left out too.
    with mlflow.start_run(run_name="curate-synthetic", tags={tags.KIND: "curation"}) as curation:
        mlflow.log_metrics({"data.train_items": 38424.0, "data.test_items": 2000.0})
    best = "0123456789abcdef" * 2
    with mlflow.start_run(
        run_name="study-ridge",
        tags={tags.KIND: "sweep", tags.SWEEP_BEST_RUN: best, tags.SWEEP_BEST_TRIAL_TAG: "7"},
    ) as sweep:
        metrics = {"trials.total": 12.0, "trials.finished": 11.0, "trials.failed": 1.0}
        mlflow.log_metrics({**metrics, "best.validation.mae": 21.5283, "best.test_mae": 26.9})

    def shown(run_id: str) -> dict[str, str]:
        lines = browse.run_summary(mlflow.get_run(run_id))
        return dict(re.split(r"\s{2,}", line, maxsplit=1) for line in lines)

    study = shown(sweep.info.run_id)
    assert study["best.validation.mae"] == "$21.53" and study["best.test_mae"] == "$26.90"
    assert study["trials.finished"] == "11" and study["trials.total"] == "12"
    assert study["best trial"] == "7" and study["best run"] == best[: browse.SHORT_ID]
    assert shown(curation.info.run_id)["data.train_items"] == "38,424"


def test_a_promotion_shown_alone_shows_its_decision_and_figures(tracking_uri: str) -> None:
    # `pricer runs <promotion>` printed its name, status, data and start only, where the list
    # said "challenger, candidate mae $20.17": not the decision, the version, nor the test.
    with mlflow.start_run(run_name="promote · synthetic", tags={tags.KIND: "promotion"}) as run:
        mlflow.set_tags({"pricer.decision": "challenger", "pricer.registered_version": "2"})
        mlflow.log_metrics({"candidate.mae": 20.1714, "champion.mae": 22.6577, "p_value": 0.08396})
    lines = browse.run_summary(mlflow.get_run(run.info.run_id))
    shown = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in lines)
    assert shown["decision"] == "challenger" and shown["registered version"] == "2"
    assert shown["candidate.mae"] == "$20.17" and shown["champion.mae"] == "$22.66"
    assert shown["p_value"] == "0.0840"


def test_compare_says_which_model_answered_an_llm_run(tracking_uri: str) -> None:
    # Two frontier runs asked for gpt-4o-mini: one was priced by a proxy's substitute, and
    # side by side nothing told them apart.
    from pricer.models.llm.answering import ANSWERED_BY

    assert tags.LLM_ANSWERED_BY == ANSWERED_BY  # what the LLM runs write is what is read
    runs = runs_tagged(
        *(
            {tags.FAMILY: "frontier", tags.LLM_SERVER: "https://proxy.example/v1", ANSWERED_BY: m}
            for m in ("gpt-4o-mini-2024-07-18", "llama-3.1-8b-instruct")
        ),
        mae=80.0,
    )
    table = browse.compare_runs(runs)
    assert table.loc["llm answered by"].tolist() == [
        "gpt-4o-mini-2024-07-18",
        "llama-3.1-8b-instruct",
    ]
    summary = browse.run_summary(runs[1])
    assert any(
        line.split() == ["llm", "answered", "by", "llama-3.1-8b-instruct"] for line in summary
    )
    classical = runs_tagged({tags.FAMILY: "linear"}, mae=90.0)
    assert "llm answered by" not in browse.compare_runs(classical).index


def test_a_leaderboard_without_its_table_says_which_file_of_which_run_is_missing(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # It said "(unfinished, or its artifacts are gone): The following failures occurred while
    # downloading one or more artifacts from ...": MLflow's line, cut at its colon.
    name = "leaderboard · synthetic"
    with mlflow.start_run(run_name=name, tags={tags.KIND: "leaderboard"}) as board:
        mlflow.log_text("kept\n", "leaderboard/notes.txt")  # its other files are there
    run_id = board.info.run_id

    assert console.main(["runs", run_id[: browse.SHORT_ID]]) == 2

    err = capsys.readouterr().err
    assert err == (
        f"error: run {run_id} ({name}) has no artifact leaderboard/leaderboard.csv, "
        "which `pricer runs RUN` shows: its artifacts were deleted, or it ended before "
        "logging its table\n"
    )


def test_a_run_older_than_the_most_runs_a_search_reads_is_found_by_its_prefix(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A prefix was looked up among the newest RUNS_READ runs of the store (50,000, MLflow's
    # most), read whole: an older run was "no run starts with". A store past it is too big to
    # build here, so the cap is lowered.
    monkeypatch.setattr(browse, "RUNS_READ", 3)
    for number in range(5):
        with mlflow.start_run(run_name=f"linear {number}", tags={tags.FAMILY: "linear"}):
            mlflow.log_metric("mae", 20.0 + number)
    newest = {run.info.run_id for run in mlflow.search_runs(max_results=3, output_format="list")}
    older = [
        run for run in mlflow.search_runs(output_format="list") if run.info.run_id not in newest
    ]
    deleted = older.pop()
    mlflow.MlflowClient().delete_run(deleted.info.run_id)
    beyond = older[0].info.run_id

    assert browse.find_run(beyond[: browse.SHORT_ID]).info.run_id == beyond
    assert browse.find_run(beyond[: browse.SHORT_ID].upper()).info.run_id == beyond
    with pytest.raises(browse.RunNotFound, match=f"^run {deleted.info.run_id} was deleted"):
        browse.find_run(deleted.info.run_id[: browse.SHORT_ID])
    # What LIKE reads as a wildcard, or a quote, is no run id: one line, not every run.
    for asked in ("%", "_", "a'b"):
        assert console.main(["runs", asked]) == 2
        assert capsys.readouterr().err == (
            f"error: {asked!r} is no run id or id prefix: run ids are hexadecimal (0-9, a-f), "
            "as `pricer runs` lists them\n"
        )


def test_a_leaderboard_whose_best_is_tied_is_listed_so(tracking_uri: str) -> None:
    # The list read "best linear $25.05, 3 families", as if linear alone were best.
    from pricer.tracking.leaderboard import log_leaderboard
    from tests.tracking.test_leaderboard import board

    table = board().drop(index="frontier")
    table = pd.concat([table, table.iloc[[0]]]).set_axis(["linear", "constant", "tfidf_ridge"])
    table.index.name = "family"
    table.loc[["linear", "tfidf_ridge"], "mae"] = 25.05
    with mlflow.start_run(tags={"pricer.kind": "leaderboard", "pricer.data": "real"}) as run:
        log_leaderboard(table, data="real")
    best = mlflow.get_run(run.info.run_id).data.tags[tags.BEST_FAMILY]

    assert best in ("linear", "tfidf_ridge")
    listed = browse.recent_runs(None, 5)["result"].tolist()
    assert listed == [f"best {best} (+1 tied) $25.05, 3 families"]


def test_a_leaderboard_where_no_family_priced_every_item_is_listed_with_none_ranked(
    tracking_uri: str,
) -> None:
    # Its one family left items unpriced: not ranked, so no best_mae; the row is not "best mae".
    from pricer.tracking.leaderboard import log_leaderboard
    from tests.tracking.test_leaderboard import board

    table = board().drop(index=["frontier", "constant"]).set_axis(["frontier"])
    table.index.name = "family"
    table.loc["frontier", ["n", "n_failed", "failure_rate"]] = [238, 12, 12 / 250]
    with mlflow.start_run(tags={"pricer.kind": "leaderboard", "pricer.data": "real"}):
        log_leaderboard(table, data="real")
    assert browse.recent_runs(None, 5)["result"].tolist() == ["none ranked (incomplete), 1 family"]
