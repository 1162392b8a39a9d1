"""Saved views of the MLflow UI's runs page: the comparison a person opens first.

Without one, the experiment's runs page shows one collapsed row per leaderboard, sorted by
start time, and no metric at all: the families' figures are two clicks and a column picker
away. The UI (3.15 and later) keeps its saved views as experiment tags,
``mlflow.sharedViewState.<id>``, each holding the view's name and the page's state as JSON: the
search filter, the sort, the columns and their order, the charts. Writing one is what the
UI's "Save as new view" does; opening ``#/experiments/<id>/runs?viewStateShareKey=<id>`` shows
it, and it is listed under "Views" for everyone using the store.

The state's fields are the UI's own names (``searchFilter``, ``orderByKey``,
``selectedColumns``, ``compareRunCharts``, ...), read from the UI of MLflow 3.17.2 and checked
there in a browser; they are not a documented API, so another version may show the view
otherwise. The search filter it holds is MLflow's own search syntax
(``tests/tracking/test_views.py`` runs it through ``search_runs``).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run

DEFAULT_UI = "http://127.0.0.1:5000"  # where `mlflow ui` listens unless told otherwise
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
VIEW_URL_PARAMETER = "viewStateShareKey"
CHART_SECTION = "pricer-comparison"
# What the terminal says before a view's address (the app's last line, and pricer runs').
FAMILIES_LINE = "families, best first: "
TRIALS_LINE = "trials, best first: "


@dataclass(frozen=True)
class RunsView:
    """What a saved view shows: which runs, sorted by which metric, with which metric columns,
    then param columns, and bar charts (names as the runs logged them)."""

    key: str
    name: str
    search_filter: str
    order_by: str
    ascending: bool
    columns: Sequence[str]
    charts: Sequence[str]
    section: str = "pricer"  # the charts' heading, above those the UI adds
    params: Sequence[str] = ()

    def state(self) -> dict[str, object]:
        """The runs page's state as the UI saves it (its field names)."""
        columns = [_metric_column(metric) for metric in self.columns]
        columns += [f"params.`{param}`" for param in self.params]
        charts = [
            {
                "uuid": f"pricer-chart-{metric}",
                "type": "BAR",
                "metricKey": metric,
                "displayName": metric,
                "metricSectionId": CHART_SECTION,
                # Every run of the view in every chart; the UI's default is the first 10.
                "runsCountToCompare": 100,
                "deleted": False,
                "isGenerated": False,
            }
            for metric in self.charts
        ]
        section = {
            "uuid": CHART_SECTION,
            "name": self.section,
            "display": True,
            "isReordered": False,
            "deleted": False,
            "isGenerated": False,
        }
        return {
            "searchFilter": self.search_filter,
            "orderByKey": _metric_column(self.order_by),
            "orderByAsc": self.ascending,
            "startTime": "ALL",
            "lifecycleFilter": "Active",
            "modelVersionFilter": "All Runs",
            "datasetsFilter": [],
            "selectedColumns": columns,
            "columnOrder": columns,  # without it the UI sorts the metric columns by name
            "runsHiddenMode": "SHOW_ALL",  # the charts' default hides all but 10 runs
            "compareRunCharts": charts,
            "compareRunSections": [section],
            # This section first, above those the UI adds for the runs' other metrics (system
            # metrics, each trial's own): as the UI keeps a section a person dragged there.
            "isAccordionReordered": True,
        }


def listed_order(run_id: str, start_time: int | None) -> tuple[bool, int, str]:
    """Where a saved view lists a run among runs of equal sort key, as a sort key: the one
    that started later first, then by run id, as MLflow's search orders runs it cannot tell
    apart (the SQL store's order: ``start_time DESC, run_uuid``); one with no start time (no
    run, or one the store does not know) last.

    The one rule for ties: a view holds one sort key (the UI's), so a leaderboard's families
    of equal mae and a sweep's trials of equal objective are listed in this order there, and
    the terminal, the parent run's best-of tags and ``pricer runs`` name and list them in it
    too (the first of them best), not in the order they ran.
    """
    return (start_time is None, -(start_time or 0), run_id)


def started(run_id: str, client: MlflowClient | None = None) -> int | None:
    """When the run started (ms since the epoch); None for no run or one the store does not
    know."""
    if not run_id:
        return None
    try:
        return (client or MlflowClient()).get_run(run_id).info.start_time
    except mlflow.exceptions.MlflowException:
        return None


def first_listed(run_ids: Sequence[str], client: MlflowClient | None = None) -> int:
    """The position in ``run_ids`` (runs of equal sort key) of the run a saved view lists
    first (``listed_order``)."""
    order = [listed_order(run_id, started(run_id, client)) for run_id in run_ids]
    return min(range(len(run_ids)), key=order.__getitem__)


def _metric_column(metric: str) -> str:
    return f"metrics.`{metric}`"


def view_key(*parts: str) -> str:
    """``pricer-<part>-<part>``, in the characters a tag key and a URL both keep as they are."""
    return "-".join(["pricer", *(re.sub(r"[^A-Za-z0-9_.-]+", "_", part) for part in parts)])


def save_view(client: MlflowClient, experiment_id: str, view: RunsView) -> None:
    """Write (or rewrite) the saved view on the experiment; it keeps when it was first saved."""
    key = VIEW_TAG_PREFIX + view.key
    now = int(time.time() * 1000)
    created = now
    earlier = client.get_experiment(experiment_id).tags.get(key)
    if earlier is not None:  # not ours, or damaged: saved anew
        with contextlib.suppress(ValueError, KeyError, TypeError):
            created = int(json.loads(earlier)["createdAt"])
    envelope = {
        "name": view.name,
        "createdAt": created,
        "updatedAt": now,
        "state": json.dumps(view.state(), separators=(",", ":")),
    }
    client.set_experiment_tag(experiment_id, key, json.dumps(envelope, separators=(",", ":")))


def leaderboard_key(data: str) -> str:
    """A leaderboard's view: one per data set, which the next leaderboard on it that finishes
    takes over (the UI keeps at most 40 views an experiment, so not one per leaderboard)."""
    return view_key("leaderboard", data)


def sweep_key(parent_name: str) -> str:
    """A sweep's view: one per sweep name (a family on a data set, or a shared study)."""
    return view_key(parent_name)


def children_filter(parent_run_id: str) -> str:
    """The search filter for a parent run's finished children (a leaderboard's families, a
    sweep's trials), in MLflow's search syntax.

    Finished only: the view sorts by a metric, best first, and the UI cannot sort by status.
    A run that FAILED after logging its figures (an LLM family or trial that left too many
    items unanswered, its mae over the few it priced) sat at the top of "best first", above
    the family the leaderboard named best; one still RUNNING shows its figures so far.
    """
    return f"{_children(parent_run_id)} AND attributes.status = 'FINISHED'"


def _children(parent_run_id: str) -> str:
    return f"tags.`mlflow.parentRunId` = '{parent_run_id}'"


def saved_filter(client: MlflowClient, experiment_id: str, key: str) -> str | None:
    """The search filter of the experiment's saved view ``key``; None without a readable one."""
    saved = client.get_experiment(experiment_id).tags.get(VIEW_TAG_PREFIX + key)
    try:
        search_filter = json.loads(json.loads(saved)["state"])["searchFilter"]
    except (TypeError, ValueError, KeyError):  # none, or not a state this module wrote
        return None
    return search_filter if isinstance(search_filter, str) else None


_SHOWN_PARENT = re.compile(r"tags\.`mlflow\.parentRunId` = '([0-9a-f]+)'")


def shown_parent(client: MlflowClient, experiment_id: str, key: str) -> str | None:
    """The id of the parent run whose children saved view ``key`` shows; None without one."""
    found = _SHOWN_PARENT.match(saved_filter(client, experiment_id, key) or "")
    return found.group(1) if found else None


def unchanged_line(
    client: MlflowClient,
    experiment_id: str,
    key: str,
    *,
    view: str,
    why: str,
    shows: str,
    ui_url: str | None,
    order: Callable[[str], str] = lambda run_id: "best first",
) -> str:
    """The terminal's line for a run that did not take saved view ``key`` over (it did not
    finish), in place of the line that opens it: which run the view still shows, or that
    there is none. ``view`` names the view ("the view of real data"), ``why`` says why it was
    left alone, ``shows`` what it shows of a run ("leaderboard {id}'s families"), ``order``
    how the view orders that run's children, given its id."""
    earlier = shown_parent(client, experiment_id, key)
    said = f"{view} unchanged ({why})"
    if earlier is None:
        return f"{said}: none saved yet, as none finished"
    url = view_url(ui_base(ui_url), experiment_id, key)
    return f"{said}: it shows {shows.format(id=earlier[:8])}, {order(earlier)}: {url}"


def children_view_url(client: MlflowClient, run: Run, key: str, ui_url: str | None) -> str | None:
    """The address of saved view ``key`` while it still shows ``run``'s children; None once a
    later run took the view over (or there is none)."""
    experiment_id = run.info.experiment_id
    # A view saved before the filter kept finished runs only holds the children's alone.
    shown = (children_filter(run.info.run_id), _children(run.info.run_id))
    if saved_filter(client, experiment_id, key) not in shown:
        return None
    return view_url(ui_base(ui_url), experiment_id, key)


def view_url(base: str, experiment_id: str, key: str) -> str:
    """The runs page opened on the saved view (on model training, not the GenAI overview); with
    no ``base``, a link relative to the UI page it is read on."""
    start = f"{base.rstrip('/')}/" if base else ""
    return (
        f"{start}#/experiments/{experiment_id}/runs?"
        f"{VIEW_URL_PARAMETER}={key}&workflowType=machine_learning"
    )


def ui_base(ui_url: str | None = None) -> str:
    """The UI's address without any login in it: a link is printed, and kept in logs.
    ``ui_url``: the one configured (``tracking.ui_url``); None: the tracking server's."""
    uri = ui_url or mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return ui_url or DEFAULT_UI
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
