"""The saved view a leaderboard leaves in the MLflow UI: its family runs side by side, best first.

The view is read by the UI, not by pricer, so these tests hold it to what the UI will do with
it: its search filter and sort go through MLflow's own search, and each column and chart names
a metric the family runs logged.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from pricer.experiment import run_leaderboard
from pricer.tracking import browse
from pricer.tracking.leaderboard import families_line, log_leaderboard
from pricer.tracking.views import VIEW_TAG_PREFIX
from tests.conftest import compose_config
from tests.tracking.test_leaderboard import board

VIEW_KEY = f"{VIEW_TAG_PREFIX}pricer-leaderboard-real"


def leaderboard(
    data: str,
    maes: dict[str, float],
    incomplete: Mapping[str, int] | None = None,
    deleted: Collection[str] = (),
) -> tuple[str, list[str], pd.DataFrame]:
    """A parent run with one child run per family (the metrics a family run logs), and the
    leaderboard logged on it: the parent's id, the children's ids best first (the families
    that priced every item by mae), the table. ``incomplete`` families left that many of 50
    items unpriced; ``deleted`` families' runs are deleted (as the UI does) before the
    leaderboard is logged."""
    incomplete = dict(incomplete or {})
    table = board().drop(index="frontier")
    table = pd.concat([table.iloc[[0]]] * len(maes)).set_axis(list(maes))
    table.index.name = "family"
    with mlflow.start_run(tags={"pricer.kind": "leaderboard", "pricer.data": data}) as parent:
        children = {}
        for family, mae in maes.items():
            failed = incomplete.get(family, 0)
            counts = {"n": 50.0 - failed, "n_failed": float(failed), "failure_rate": failed / 50}
            with mlflow.start_run(nested=True, run_name=f"{family} · {data}") as child:
                metrics = {"mae": mae, "mae_ci_low": mae - 5, "mae_ci_high": mae + 5}
                mlflow.log_metrics({**metrics, "hit_rate": 0.5, "rmsle": 0.7})
                mlflow.log_metrics({**counts, "time.fit_seconds": 1.0})
                mlflow.log_metric("time.predict_seconds", 0.1)
            children[family] = child.info.run_id
            table.loc[family, ["mae", *counts]] = [mae, *counts.values()]
            table.loc[family, "run_id"] = child.info.run_id
        for family in deleted:
            mlflow.delete_run(children[family])
        log_leaderboard(table, data=data)
    ranked = sorted(set(maes) - set(incomplete), key=maes.__getitem__)
    return parent.info.run_id, [children[family] for family in ranked], table


def saved_views() -> dict[str, dict]:
    """The saved views on the experiment the runs went to, by id: their envelopes."""
    experiment = mlflow.get_experiment(mlflow.last_active_run().info.experiment_id)
    return {
        key.removeprefix(VIEW_TAG_PREFIX): json.loads(value)
        for key, value in experiment.tags.items()
        if key.startswith(VIEW_TAG_PREFIX)
    }


def test_a_leaderboard_saves_a_view_of_its_family_runs_best_first(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The runs page opened on one collapsed row per leaderboard, sorted by start time, with no
    # metric column: the families' figures were two clicks and a column picker away.
    parent, best_first, _ = leaderboard("real", {"svr": 97.9, "xgboost": 92.8, "constant": 146.0})
    [(key, view)] = saved_views().items()
    assert key == "pricer-leaderboard-real" and "real" in view["name"]
    state = json.loads(view["state"])  # the UI's envelope: the page's state as a JSON string
    order = state["orderByKey"].replace("`", "")
    assert state["orderByAsc"] is True and order == "metrics.ranked_mae"
    found = mlflow.search_runs(
        filter_string=state["searchFilter"], order_by=[f"{order} ASC"], output_format="list"
    )
    assert [run.info.run_id for run in found] == best_first
    logged = set(found[0].data.metrics)
    columns = [c.removeprefix("metrics.`").removesuffix("`") for c in state["selectedColumns"]]
    assert columns[:2] == ["ranked_mae", "mae"] and set(columns) <= logged
    assert {"hit_rate", "rmsle", "time.fit_seconds"} <= set(columns)
    assert state["columnOrder"] == state["selectedColumns"]
    charted = [chart["metricKey"] for chart in state["compareRunCharts"]]
    assert charted[0] == "mae" and set(charted) <= logged
    assert "llm.cost_per_1k_items_usd" not in columns + charted  # no family has it here
    # The terminal's first link opens it (the comparison: the run page came first, and shows
    # its description below the fold at 1600 pixels), then the leaderboard run's, each said
    # to be what it is; the parent's description links to it, relatively.
    experiment = found[0].info.experiment_id
    link = f"#/experiments/{experiment}/runs?viewStateShareKey={key}&workflowType=machine_learning"
    printed = capsys.readouterr().out.splitlines()
    links = [line for line in printed if "http://" in line]
    assert (
        links == printed[-2:] and links[0] == f"families, best first: http://127.0.0.1:5000/{link}"
    )
    run_page = f"http://127.0.0.1:5000/#/experiments/{experiment}/runs/{parent}?"
    assert links[1].startswith(f"leaderboard run (its tables and charts): {run_page}")
    assert f"]({link})" in mlflow.get_run(parent).data.tags["mlflow.note.content"]


def test_the_next_leaderboard_on_the_same_data_takes_the_view_over(tracking_uri: str) -> None:
    # One view per data set, not one per leaderboard: the UI keeps 40 views an experiment.
    leaderboard("real", {"svr": 97.9, "constant": 146.0})
    first = saved_views()["pricer-leaderboard-real"]
    _, best_first, _ = leaderboard("real", {"xgboost": 92.8, "linear": 139.0})
    leaderboard("synthetic", {"xgboost": 20.2})
    views = saved_views()
    assert set(views) == {"pricer-leaderboard-real", "pricer-leaderboard-synthetic"}
    again = views["pricer-leaderboard-real"]
    assert again["createdAt"] == first["createdAt"] and again["updatedAt"] >= first["updatedAt"]
    state = json.loads(again["state"])
    found = mlflow.search_runs(filter_string=state["searchFilter"], output_format="list")
    assert sorted(run.info.run_id for run in found) == sorted(best_first)


def test_an_llm_family_s_cost_is_a_column_and_a_chart_of_the_view(tracking_uri: str) -> None:
    table = board().drop(index="frontier")
    table["llm.cost_per_1k_items_usd"] = [0.0, 0.03]
    with mlflow.start_run():
        log_leaderboard(table, data="real")
    state = json.loads(saved_views()["pricer-leaderboard-real"]["state"])
    assert "metrics.`llm.cost_per_1k_items_usd`" in state["selectedColumns"]
    assert "llm.cost_per_1k_items_usd" in [c["metricKey"] for c in state["compareRunCharts"]]


def test_the_view_ranks_finished_family_runs_only(tracking_uri: str) -> None:
    # A family run that FAILED after logging its mae (an LLM that left too many items
    # unanswered: its mae over the few it priced) sat first in "best first", above the family
    # the leaderboard named best; the UI cannot sort by status.
    table = board().drop(index="frontier").iloc[[0]].set_axis(["xgboost"])
    table.index.name = "family"
    with mlflow.start_run(tags={"pricer.kind": "leaderboard", "pricer.data": "real"}) as parent:
        with mlflow.start_run(nested=True, run_name="xgboost · real") as finished:
            mlflow.log_metric("mae", 92.8)
        for name, status in (("frontier · real", "FAILED"), ("svr · real", "RUNNING")):
            with mlflow.start_run(nested=True, run_name=name) as unfinished:
                mlflow.log_metric("mae", 40.0)
            mlflow.MlflowClient().set_terminated(unfinished.info.run_id, status)
        table.loc["xgboost", "mae"] = 92.8
        log_leaderboard(table, data="real")
    state = json.loads(saved_views()["pricer-leaderboard-real"]["state"])
    found = mlflow.search_runs(
        filter_string=state["searchFilter"], order_by=["metrics.mae ASC"], output_format="list"
    )
    assert [run.info.run_id for run in found] == [finished.info.run_id]
    # A view an earlier pricer saved (every child) is still this leaderboard's: its line stays.
    client = mlflow.MlflowClient()
    run = client.get_run(parent.info.run_id)
    assert families_line(run, table, None) is not None
    earlier = json.loads(client.get_experiment(run.info.experiment_id).tags[VIEW_KEY])
    earlier["state"] = json.dumps(
        {"searchFilter": f"tags.`mlflow.parentRunId` = '{run.info.run_id}'"}
    )
    client.set_experiment_tag(run.info.experiment_id, VIEW_KEY, json.dumps(earlier))
    assert families_line(run, table, None) is not None


def test_a_leaderboard_with_a_failed_family_leaves_the_view_to_the_last_finished_one(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # One with a failed family ends FAILED, yet it took the data's view over: the finished
    # leaderboard before it lost its families line, and the view showed the failed one's.
    def failed_leaderboard() -> str:
        table = board()  # frontier FAILED: run_leaderboard then ends the run FAILED
        with mlflow.start_run(tags={"pricer.kind": "leaderboard", "pricer.data": "real"}) as run:
            log_leaderboard(table, data="real")
        return run.info.run_id

    failed_leaderboard()  # none finished before it: there is no view to show
    assert "pricer-leaderboard-real" not in saved_views()
    assert capsys.readouterr().out.splitlines()[-1] == (
        "the saved view of real data unchanged (families failed: it shows finished "
        "leaderboards only): none saved yet, as none finished"
    )
    finished, best_first, finished_table = leaderboard("real", {"svr": 97.9, "xgboost": 92.8})
    before = saved_views()["pricer-leaderboard-real"]
    capsys.readouterr()

    failed = failed_leaderboard()

    assert saved_views()["pricer-leaderboard-real"] == before
    state = json.loads(before["state"])
    found = mlflow.search_runs(
        filter_string=state["searchFilter"], order_by=["metrics.mae ASC"], output_format="list"
    )
    assert [run.info.run_id for run in found] == best_first
    client = mlflow.MlflowClient()
    line = families_line(client.get_run(finished), finished_table, None)
    assert line is not None and line.startswith("families, best first: http")
    assert families_line(client.get_run(failed), finished_table, None) is None
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == (
        "the saved view of real data unchanged (families failed: it shows finished "
        f"leaderboards only): it shows leaderboard {finished[:8]}'s families, best first: "
        f"{line.removeprefix('families, best first: ')}"
    )
    note = client.get_run(failed).data.tags["mlflow.note.content"]
    assert "viewStateShareKey" not in note and "did not take over the saved view" in note


def orders(printed: list[str], families: int) -> tuple[list[str], list[str]]:
    """The families in the order the terminal's table printed them, and in the order the
    saved view lists their runs (the filter and sort the UI sends to the server)."""
    header = next(i for i, line in enumerate(printed) if line.startswith("family"))
    in_terminal = [line.split()[0] for line in printed[header + 1 : header + 1 + families]]
    state = json.loads(saved_views()["pricer-leaderboard-real"]["state"])
    found = mlflow.search_runs(
        filter_string=state["searchFilter"],
        order_by=[f"{state['orderByKey']} ASC"],
        output_format="list",
    )
    return in_terminal, [run.info.run_name.split(" · ")[0] for run in found]


def test_families_of_equal_mae_are_named_together_and_listed_as_the_view_lists_them(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # "best:" named whichever family ran first; the view lists equal maes as MLflow's search
    # orders runs it cannot tell apart (the later first), so its top row was the other one,
    # and nothing said the two were tied.
    from pricer.tracking import browse

    parent, _, _ = leaderboard("real", {"linear": 25.05, "tfidf_ridge": 25.05, "constant": 146.0})
    printed = capsys.readouterr().out.splitlines()

    in_terminal, in_view = orders(printed, 3)
    assert in_terminal == in_view == ["tfidf_ridge", "linear", "constant"]  # the later first
    assert "best: tfidf_ridge, linear (tied, mae $25.05) on real data" in printed
    stored = mlflow.get_run(parent)
    assert stored.data.tags["best_family"] == "tfidf_ridge"  # the view's top row
    note = stored.data.tags["mlflow.note.content"]
    assert "**Best: tfidf_ridge, linear (tied), mae $25.05**" in note
    again = browse.leaderboard_notes(stored, browse.stored_leaderboard(stored))
    assert "best: tfidf_ridge, linear (tied, mae $25.05) on real data" in again


def test_maes_equal_to_the_cent_only_are_no_tie(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Tied means equal: a tenth of a cent less is ordered first in the view and the terminal.
    leaderboard("real", {"linear": 25.05, "svr": 25.049, "constant": 146.0})
    printed = capsys.readouterr().out.splitlines()
    in_terminal, in_view = orders(printed, 3)
    assert in_terminal == in_view == ["svr", "linear", "constant"]
    assert "best: svr, mae $25.05 on real data" in printed


def test_a_family_that_left_items_unpriced_is_listed_after_the_ranked_ones_and_said_so(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # frontier priced 48 of 50 items: its mae over them, the lowest, sorted it first in the
    # view ("families, best first") above the family the leaderboard named best.
    maes = {"svr": 97.9, "frontier": 40.0, "xgboost": 92.8, "constant": 146.0}
    parent, best_first, _ = leaderboard("real", maes, incomplete={"frontier": 2})
    printed = capsys.readouterr().out.splitlines()
    in_terminal, in_view = orders(printed, 4)
    assert in_terminal == in_view == ["xgboost", "svr", "constant", "frontier"]
    row = next(line for line in printed if line.startswith("frontier "))
    assert row.split()[-1] == "incomplete"  # the status column, in the terminal table
    assert "best: xgboost, mae $92.80 on real data" in printed
    assert any(line.startswith("frontier: incomplete, mae over the 48 of 50") for line in printed)
    stored = mlflow.get_run(parent)
    assert stored.data.tags["best_family"] == "xgboost"
    note = stored.data.tags["mlflow.note.content"].splitlines()
    assert next(line for line in note if line.startswith("| frontier |")).endswith("incomplete |")
    # The view's sort key is on the ranked families' runs only: a blank for frontier.
    children = {run.info.run_id: run for run in mlflow.search_runs(output_format="list")}
    assert [children[run_id].data.metrics["ranked_mae"] for run_id in best_first] == [
        92.8,
        97.9,
        146.0,
    ]
    frontier = next(run for run in children.values() if run.info.run_name == "frontier · real")
    assert "ranked_mae" not in frontier.data.metrics


def test_a_leaderboard_with_every_family_incomplete_says_its_view_ranks_none(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its saved view's title says "none ranked (every family incomplete)", as the description's
    # link does, but the terminal's line to it (and pricer runs') said "families, best first",
    # an order the view does not have: no family has the ranked_mae it sorts by.
    maes = {"svr": 97.9, "xgboost": 92.8}
    parent, _, _ = leaderboard("real", maes, incomplete={"svr": 2, "xgboost": 3})
    title = saved_views()["pricer-leaderboard-real"]["name"]
    assert (
        title == "pricer · real: latest finished leaderboard, none ranked (every family incomplete)"
    )
    said = "families, none ranked (every family incomplete): http://127.0.0.1:5000/#/experiments/"
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2].startswith(said) and "viewStateShareKey" in printed[-2]
    assert printed[-1].startswith("leaderboard run (its tables and charts): http")
    run = mlflow.get_run(parent)
    again = browse.leaderboard_notes(run, browse.stored_leaderboard(run))
    assert [line for line in again if line.startswith("families")] == [printed[-2]]
    assert not [line for line in printed + again if "best first" in line]


def test_a_failed_leaderboard_says_the_view_it_left_ranks_none_when_it_does(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The view a failed leaderboard leaves alone may be one whose families were all
    # incomplete: its line said "it shows leaderboard ...'s families, best first".
    finished, _, _ = leaderboard("real", {"svr": 97.9}, incomplete={"svr": 2})
    capsys.readouterr()
    with mlflow.start_run(tags={"pricer.kind": "leaderboard", "pricer.data": "real"}):
        log_leaderboard(board(), data="real")  # frontier FAILED: the run ends FAILED
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .startswith(
            "the saved view of real data unchanged (families failed: it shows finished "
            f"leaderboards only): it shows leaderboard {finished[:8]}'s families, none ranked "
            "(every family incomplete): http://127.0.0.1:5000/#/experiments/"
        )
    )


def test_a_family_run_deleted_before_the_leaderboard_ends_is_left_out_of_the_view_sort(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A family run deleted in the UI while the leaderboard ran: logging its ranked_mae at the
    # end raised (a deleted run is refused as not active, not as missing), after everything
    # else was logged, and the leaderboard failed without saving its view.
    maes = {"svr": 97.9, "xgboost": 92.8, "constant": 146.0}
    parent, best_first, _ = leaderboard("real", maes, deleted=["svr"])
    assert "pricer-leaderboard-real" in saved_views()
    printed = capsys.readouterr().out.splitlines()
    assert "best: xgboost, mae $92.80 on real data" in printed
    client = mlflow.MlflowClient()
    metrics = {run_id: client.get_run(run_id).data.metrics for run_id in best_first}
    assert [metrics[run_id].get("ranked_mae") for run_id in best_first] == [92.8, None, 146.0]
    assert client.get_run(parent).info.status == "FINISHED"


def test_a_login_in_the_ui_url_is_in_no_printed_link(
    tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Links to the tracking server's UI were printed without its login; one to the UI set in
    # tracking.ui_url (behind a proxy's basic auth, say) printed its password, which the
    # tracking.ui_url param hid.
    cfg = compose_config(
        "leaderboard",
        [
            "families=[constant]",
            "data.n_records=3000",
            "curation.split.test_size=50",
            f"curation.cache_dir={tmp_path}/cache",
            "tracking.log_model=false",
            "tracking.ui_url=https://alice:pw-9f8e7d6c@ui.example/mlflow/",
        ],
    )
    run_leaderboard(cfg)
    out = capsys.readouterr().out
    links = [line for line in out.splitlines() if "#/experiments/" in line]
    assert len(links) >= 2, out  # the families' view and the leaderboard run
    assert all("https://ui.example/mlflow/#/experiments/" in line for line in links), out
    assert "pw-9f8e7d6c" not in out
