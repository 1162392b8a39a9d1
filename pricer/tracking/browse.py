"""Stored runs from the terminal, without retraining: recent runs, one leaderboard, a comparison.

Run ids may be shortened to a unique prefix (the first 8 characters, as ``pricer runs``
prints them). Everything here reads the store; nothing is logged.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime

import mlflow
import pandas as pd
from mlflow.entities import LifecycleStage, Run, ViewType
from sqlalchemy.exc import SQLAlchemyError

from pricer.errors import UserError
from pricer.evaluation.tradeoff import TABLE_COLUMNS
from pricer.tracking import tags
from pricer.tracking.leaderboard import (
    NOTES_FILE,
    TRADEOFF_FILE,
    best_families,
    best_family,
    best_line,
    families_line,
    run_line,
    terminal_notes,
    tradeoff_lines,
)
from pricer.tracking.liveness import stale_reason
from pricer.tracking.store import (
    STORE_ERRORS,
    StoreNotFound,
    StoreUnreachable,
    check_reachable,
    quiet_run_links,
    refusal,
    require_existing,
    safe_uri,
)
from pricer.tracking.views import TRIALS_LINE, children_view_url, sweep_key
from pricer.wording import counted, left_aligned

SHORT_ID = 8
# The most runs one search reads (MLflow's own cap on a search's max_results).
RUNS_READ = 50000
TABLE_FILE = "leaderboard/leaderboard.csv"  # a leaderboard's unrounded table
PARENT_TAG = "mlflow.parentRunId"
TEST_BEST = "best.test_mae"  # a sweep's best trial's test mae, beside its objective
# Figures shown side by side by `compare`, in this order, when a run has them.
COMPARED_METRICS = [
    "mae",
    "mae_ci_low",
    "mae_ci_high",
    "hit_rate",
    "rmsle",
    "r2",
    "failure_rate",
    "validation.mae",
    "time.fit_seconds",
    "time.predict_seconds",
    "llm.cost_per_1k_items_usd",
    "llm.latency_p50_s",
    "best_mae",
    # A sweep's parent: its best trial's figures and how its trials went.
    "best.validation.mae",
    "best.test_mae",
    "trials.total",
    "trials.finished",
    "trials.failed",
    # A curation's run (and a lone run): what became of the records.
    "data.raw_records",
    "data.items",
    "data.sampled",
    "data.train_items",
    "data.test_items",
    # A promotion's: the candidate, the champion it was compared with, and the paired test.
    "candidate.mae",
    "champion.mae",
    "p_value",
]


def connect(tracking_uri: str) -> str:
    """Read from this store; returns it, for messages.

    A SQLite file that does not exist is refused rather than created: these commands only
    read, and a mistyped path would otherwise leave an empty store behind and list nothing.
    """
    require_existing(tracking_uri)
    check_reachable(tracking_uri)  # seconds, not MLflow's minutes of retries
    quiet_run_links()  # ``pricer runs --end`` ends runs
    mlflow.set_tracking_uri(tracking_uri)
    try:  # a server down or a mistyped URI: one line here, not a traceback from the first read
        mlflow.search_experiments(max_results=1)
    except (mlflow.exceptions.MlflowException, SQLAlchemyError) as error:
        if (line := refusal(error, tracking_uri)) is not None:
            raise StoreNotFound(line) from None
        first = str(error).splitlines()[0]
        raise StoreNotFound(f"cannot read {safe_uri(tracking_uri)}: {first}") from error
    return safe_uri(tracking_uri)


@contextlib.contextmanager
def read_failures_as_one_line(where: str) -> Iterator[None]:
    """The store at ``where`` (as ``connect`` returned it) failing while ``pricer runs`` or
    ``compare`` read it: one line (``StoreUnreachable``), saying nothing was changed. A
    ``UserError`` keeps its own words; an error that is not the store's, its traceback."""
    try:
        yield
    except (UserError, BrokenPipeError):  # the reader of ``pricer runs | head`` went away
        raise
    except STORE_ERRORS as error:
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        raise StoreUnreachable(
            f"the tracking store at {where} failed while it was read ({type(error).__name__}: "
            f"{first or 'no message'}); try again once it answers"
        ) from None


class RunNotFound(UserError):
    """No run, or more than one, matches the id given."""


def _experiment_ids(experiment: str | None) -> list[str]:
    if experiment is None:
        return [e.experiment_id for e in mlflow.search_experiments()]
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        raise RunNotFound(
            f"experiment {experiment!r} does not exist in {safe_uri(mlflow.get_tracking_uri())}"
        )
    if found.lifecycle_stage == LifecycleStage.DELETED:
        # Its runs are deleted with it: "no leaderboard, sweep, curation or run", exit 0, as
        # if it had never held any.
        raise RunNotFound(
            f"experiment {experiment!r} was deleted, its runs with it: restore it (mlflow "
            f"experiments restore --experiment-id {found.experiment_id}) to see them"
        )
    return [found.experiment_id]


def _started(run: Run) -> str:
    return datetime.fromtimestamp(run.info.start_time / 1000).strftime("%Y-%m-%d %H:%M")


NAME_WIDTH = 40  # a run's name in a row of the list, a family run's line, a compare column


def run_name(run: Run, width: int | None = None) -> str:
    """The run's name on one line, cut to ``width`` characters if given.

    A name is anything MLflow took (set in the UI, by ``MlflowClient.update_run``, from a long
    ``data.name``): a line end in it split a row of ``pricer runs`` in two, the second reading
    as a row of its own ("FINISHED  best ... $1.00"), and a 250-character one pushed every
    row's status and result 250 columns to the right.
    """
    name = " ".join("".join(c if c.isprintable() else " " for c in run.info.run_name or "").split())
    return name if width is None else _shorten(name, width)


def _dollars(value: float | None) -> str:
    undefined = _undefined(value)
    return f"${value:,.2f}" if undefined is None else undefined


def _count(value: float) -> str:
    """A count the run logged: a NaN one (logged by hand, or by a broken run) ended `pricer
    runs` in a traceback ("cannot convert float NaN to integer")."""
    undefined = _undefined(value)
    return f"{value:.0f}" if undefined is None else undefined


def _undefined(value: float | None) -> str | None:
    """What to show for a figure that is no number, None when it is one.

    A logged NaN showed as nothing ("mae" alone, a blank cell, a row left out of
    ``pricer runs RUN``), as if never logged; an infinity, which a SQL store keeps as the
    largest float, as a 309-digit number.
    """
    if value is None:
        return ""
    if math.isnan(value):
        return "NaN"
    if abs(value) >= sys.float_info.max:
        return "inf" if value > 0 else "-inf"
    return None


# What `pricer runs` lists: every run a person started (not a leaderboard's families or a
# sweep's trials, which their parent sums up).
LISTED_KINDS = ("leaderboard", "sweep", "family", "curation", "promotion", "finetune")
ERROR_WIDTH = 48  # the row still fits 100 columns with a run name of 20 characters
# Shown instead of RUNNING for a run whose process is gone (liveness.stale_reason): a SIGKILL
# leaves the run RUNNING in the store (until the next pricer run on its host ends it KILLED,
# pricer.tracking.reaper; one of another host, for good), and "RUNNING" would say work goes on.
STALE = "STALE"


def recent_runs(experiment: str | None, limit: int) -> pd.DataFrame:
    """Newest first: leaderboards, sweeps, curations, promotions, fine-tunings and lone family
    runs (not the families of a leaderboard or the trials of a sweep: their parent sums them
    up)."""
    rows: list[dict[str, str]] = []
    for run in _top_level_runs(_experiment_ids(experiment)):
        t = run.data.tags
        kind = t.get(tags.KIND) or ("family" if tags.FAMILY in t else "")
        if t.get(tags.ENTRY_POINT) == "finetune":
            kind = "finetune"
        if PARENT_TAG in t or kind not in LISTED_KINDS:
            continue
        rows.append(
            {
                "started": _started(run),
                "run": run.info.run_id[:SHORT_ID],
                "name": run_name(run, NAME_WIDTH),
                "status": status(run),
                "result": _outcome(kind, run),
            }
        )
        if len(rows) == limit:
            break
    return pd.DataFrame(rows, columns=["started", "run", "name", "status", "result"])


PAGE = 200  # runs read at a time: the newest few fill a listing of 15


def _top_level_runs(experiment_ids: list[str]) -> Iterator[Run]:
    """Runs without a parent, newest first, read a page at a time until the caller has enough.

    The store is asked for top-level runs only: a listing read as the newest 300 runs of any
    kind found nothing older than a sweep of 300 trials (its own parent included, which starts
    before them) and said "no leaderboard, sweep, curation or run" in a store that held them.
    """
    client = mlflow.MlflowClient()
    token: str | None = None
    while True:
        page = client.search_runs(
            experiment_ids,
            filter_string=f"tags.`{PARENT_TAG}` IS NULL",
            order_by=["attributes.start_time DESC"],
            max_results=PAGE,
            page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


def status(run: Run) -> str:
    """The run's status, or ``STALE`` for a RUNNING run whose process is gone."""
    return STALE if stale_reason(run) else run.info.status


def _outcome(kind: str, run: Run) -> str:
    """What ``pricer runs`` shows for a run: its result, or, for a run that did not finish,
    why (its ``error`` tag, or why it is stale) in one line.

    A run that failed or was stopped has no result: the figures it logged before are partial
    (a KILLED sweep's best of the trials that ran, a FAILED LLM run's mae over the answers it
    got) and, beside the others' results, would read as one. So its reason leads; its figures
    are in ``pricer runs RUN``, marked partial. Only a run without an ``error`` tag (ended by
    hand, or by an older version) shows them here, prefixed "partial:".
    """
    result = _result(kind, run.data.metrics, run.data.tags)
    if run.info.status == "FINISHED":
        return result
    stale = stale_reason(run)
    if stale:
        return _shorten(stale, ERROR_WIDTH)
    if run.info.status == "RUNNING":  # live: the status says its figures are so far
        return result
    error = run.data.tags.get(tags.ERROR, "").strip()
    if error:
        return _shorten(" ".join(error.split()), ERROR_WIDTH)  # one line
    return _shorten(f"partial: {result}", ERROR_WIDTH) if result else ""


def _result(kind: str, m: dict[str, float], t: dict[str, str]) -> str:
    """A run's outcome in a few words, for its row in ``pricer runs``."""
    if kind == "leaderboard":
        families = sum(key.startswith("mae.") for key in m)
        if not families:  # none scored yet: "best  , 0 families" said nothing
            return ""
        if "best_mae" not in m:  # every family left items unpriced: none is ranked
            return f"none ranked (incomplete), {counted(families, 'family')}"
        # The families whose mae.<family> is best_mae. Tied ones are counted, not named, to
        # keep the row short (`pricer runs RUN` names them, in the saved view's order). One
        # without its best_family tag (deleted, or never written) is named from them: the row
        # read "best  $25.05", naming no family ("mae" when none or several are).
        tied = [
            key.removeprefix("mae.")
            for key, v in m.items()
            if key.startswith("mae.") and v == m.get("best_mae")
        ]
        best = t.get(tags.BEST_FAMILY) or (tied[0] if len(tied) == 1 else "mae")
        also = f" (+{len(tied) - 1} tied)" if len(tied) > 1 and best in tied else ""
        dollars = _dollars(m.get("best_mae"))
        return f"best {best}{also} {dollars}, {counted(families, 'family')}"
    if kind == "sweep":
        # The parent's summary (pricer.tracking.sweep): best.<objective>, trials.* counts.
        total, finished = _count(m.get("trials.total", 0)), _count(m.get("trials.finished", 0))
        objective = next((k for k in sorted(m) if k.startswith("best.") and k != TEST_BEST), None)
        if objective is None:
            failed = _count(m.get("trials.failed", 0))
            return f"no trial finished, {failed} failed" if total != "0" else ""
        test = f" (test {_dollars(m[TEST_BEST])})" if TEST_BEST in m else ""
        # Short, so a row fits 100 columns: "val mae $21.53 (test $25.07), 12/12 trials".
        name = objective.removeprefix("best.").replace("validation.", "val ").replace(".", " ")
        return f"{name} {_format(objective, m[objective])}{test}, {finished}/{total} trials"
    if kind == "promotion":  # "champion, candidate mae $92.78"
        decision = t.get("pricer.decision", "")
        mae = f"candidate mae {_dollars(m['candidate.mae'])}" if "candidate.mae" in m else ""
        return ", ".join(part for part in (decision, mae) if part)
    if kind == "finetune":
        return t.get(tags.FT_FINE_TUNED_MODEL) or t.get(tags.FT_JOB_ID, "")
    if kind == "curation":
        if "data.train_items" not in m:
            return ""
        return f"train {m['data.train_items']:,.0f} / test {m.get('data.test_items', 0):,.0f} items"
    if "mae" not in m:
        return ""
    mae = f"mae {_dollars(m['mae'])}"
    # Over the items it priced, as the run's own line said: an LLM that left some unanswered
    # (within eval.max_failure_rate) read as scored on all of them, perhaps on easier ones.
    priced, failed = m.get("n", math.nan), m.get("n_failed", 0.0)
    if failed > 0 and not math.isnan(priced):
        return f"{mae} over {priced:,.0f} of {priced + failed:,.0f} items"
    return mae


def find_run(run_id: str, experiment: str | None = None) -> Run:
    """The run with this id or unique id prefix, among the live runs of ``experiment`` (all
    experiments when None), as `pricer runs` lists them."""
    if not _HEX.fullmatch(run_id.lower()):
        raise RunNotFound(
            f"{run_id!r} is no run id or id prefix: run ids are hexadecimal (0-9, a-f), as "
            "`pricer runs` lists them"
        )
    run_id = run_id.lower()  # as MLflow writes them
    if len(run_id) == 32:
        try:
            run = mlflow.get_run(run_id)
        except mlflow.exceptions.MlflowException as error:
            where = safe_uri(mlflow.get_tracking_uri())
            raise RunNotFound(f"no run {run_id} in {where}") from error
        # get_run finds deleted runs too (their experiment's as well): shown FINISHED with
        # their figures, and compared with live ones, while their prefix was "no run".
        if run.info.lifecycle_stage == "deleted":
            raise RunNotFound(f"run {run_id} was deleted, or its experiment was: not shown")
        if experiment is not None and run.info.experiment_id not in _experiment_ids(experiment):
            raise RunNotFound(f"run {run_id} is not in experiment {experiment!r}")
        return run
    found = _starting_with(run_id, experiment, ViewType.ACTIVE_ONLY)
    where = safe_uri(mlflow.get_tracking_uri())
    if not found:
        # A leaderboard names its family runs, a sweep its best trial: one deleted since was
        # "no run starts with", as if the id were mistyped.
        deleted = _starting_with(run_id, experiment, ViewType.DELETED_ONLY)
        if len(deleted) == 1:
            raise RunNotFound(f"run {deleted[0].info.run_id} was deleted: not shown")
        raise RunNotFound(f"no run starts with {run_id!r} in {where}: `pricer runs` lists them")
    if len(found) > 1:
        many = f"{len(found)} runs start with {run_id!r}"
        raise RunNotFound(f"{many} in {where}: give more of the id")
    return found[0]


_HEX = re.compile(r"[0-9a-f]+")


def _starting_with(prefix: str, experiment: str | None, view: int) -> list[Run]:
    """The runs whose id starts with ``prefix`` (hexadecimal: checked by the caller).

    The store picks them (``LIKE``): reading every run of the store to compare their ids here
    stopped at RUNS_READ runs, so a run older than the newest RUNS_READ was "no run starts
    with", and took 1.9 s on 510 runs against 0.54 s. A hexadecimal prefix holds no ``%``,
    ``_`` or quote for LIKE or the filter's parser to read as anything but itself.
    """
    return mlflow.search_runs(
        experiment_ids=_experiment_ids(experiment),
        filter_string=f"attributes.run_id LIKE '{prefix}%'",
        run_view_type=view,
        max_results=RUNS_READ,  # of the runs that start with it: the count says how many
        output_format="list",
    )


def leaderboard_notes(run: Run, table: pd.DataFrame) -> list[str]:
    """The lines the terminal printed under a leaderboard's table, and its families' runs.

    The course's note (the ``reference_note`` param) when its figures are in the table; the
    trade-off table; the best family; each family's run id, for ``pricer compare``.
    """
    notes = _stored_notes(run)
    if notes is None:  # a leaderboard logged before its notes were: the course's, rebuilt
        notes = []
        note = run.data.params.get("reference_note")
        if note and "reference_mae" in table and table["reference_mae"].notna().any():
            notes.append(note)
    lines = terminal_notes(notes)  # within the table's width, as the leaderboard printed them
    tradeoff = _stored_tradeoff(run)
    if tradeoff is not None:
        lines += ["", *tradeoff_lines(tradeoff)]
    # A family run deleted since (a leak found, a bad setting): the table is what was measured
    # then, but its best line and run id read as a result that still stands.
    deleted = _deleted_children(run)
    best = run.data.tags.get(tags.BEST_FAMILY)
    if not best:  # no tag (deleted, or never written): chosen again, as the leaderboard chose
        chosen = best_family(table)
        best = chosen[0] if chosen else None
    if best and best in table.index:
        # Every family tied with it, in the stored table's order (the view's, once ranked).
        tied = best_families(table)
        named = tied[0] if tied and best in tied[0] else [best]
        line = best_line(named, table.loc[best, "mae"], run.data.tags.get(tags.DATA))
        if "run_id" in table and str(table.loc[best, "run_id"]) in deleted:
            line += f" (its run {str(table.loc[best, 'run_id'])[:SHORT_ID]} was deleted since)"
        lines.append(line)
    # As the leaderboard printed them: the comparison first while the view still shows it.
    families = families_line(run, table, None)
    if families is not None:  # this leaderboard is still the one its data's view shows
        lines.append(families)
    lines.append(run_line(run, None))
    if "run_id" in table:
        line = "family runs:"
        for family, run_id in table["run_id"].items():
            gone = " (deleted)" if str(run_id) in deleted else ""
            entry = f" {family} {str(run_id)[:SHORT_ID]}{gone},"
            if len(line) + len(entry) > 100:  # a family and its id stay on one line
                lines.append(line)
                line = " "
            line += entry
        lines.append(line.rstrip(","))
    return lines


def _deleted(run_id: str) -> bool:
    """Whether the run was deleted (its experiment too); one the store does not know is left
    unmarked (an id written by hand, or a run removed by `mlflow gc`: not known which)."""
    try:
        return mlflow.get_run(run_id).info.lifecycle_stage == "deleted"
    except mlflow.exceptions.MlflowException:
        return False


def _deleted_children(run: Run) -> set[str]:
    """The ids of ``run``'s child runs that were deleted."""
    children = mlflow.search_runs(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{run.info.run_id}'",
        run_view_type=ViewType.DELETED_ONLY,
        output_format="list",
    )
    return {child.info.run_id for child in children}


def _stored_notes(run: Run) -> list[str] | None:
    """The lines the leaderboard printed under its table (None: it stored none)."""
    try:
        text = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/{NOTES_FILE}")
    except (mlflow.exceptions.MlflowException, OSError):
        return None
    return text.splitlines()


_NUMERIC_TRADEOFF_COLUMNS = [
    column
    for column in TABLE_COLUMNS
    if column not in ("latency_source", "pareto_cost", "pareto_latency", "ranked")
]


def _stored_tradeoff(run: Run) -> pd.DataFrame | None:
    """The leaderboard's trade-off table (None: it logged none, or it cannot be read: the
    leaderboard above it is what was asked for)."""
    try:
        text = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/{TRADEOFF_FILE}")
        stored = json.loads(text)  # mlflow.log_table's form: columns, then rows
        table = pd.DataFrame(stored["data"], columns=stored["columns"]).set_index("family")
        table.index = table.index.astype(str)
        table[TABLE_COLUMNS]  # every column the display reads, or KeyError
        # NaN is logged as JSON null and read back as None, which the display took for a
        # figure: a table without intervals (a leaderboard that showed columns=[mae]) ended
        # `pricer runs RUN` in a TypeError traceback. Back to NaN, as logged; not a number
        # at all, a ValueError (damaged).
        for column in _NUMERIC_TRADEOFF_COLUMNS:
            table[column] = pd.to_numeric(table[column]).astype(float)
    except (mlflow.exceptions.MlflowException, OSError, ValueError, KeyError, TypeError):
        return None
    return table


def is_leaderboard(run: Run) -> bool:
    return run.data.tags.get(tags.KIND) == "leaderboard"


def stored_leaderboard(run: Run) -> pd.DataFrame:
    """A leaderboard parent's unrounded table (leaderboard.csv), one row per family."""
    if not is_leaderboard(run):
        raise RunNotFound(f"run {run.info.run_id[:SHORT_ID]} ({run_name(run)}) is no leaderboard")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # stdout: the table
    try:
        text = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/{TABLE_FILE}")
    except mlflow.exceptions.MlflowException as error:
        raise RunNotFound(_missing_table(run)) from error
    # A file cut short or replaced was a pandas traceback (EmptyDataError, "Index family
    # invalid", a TypeError formatting text as dollars).
    damaged = f"leaderboard {run.info.run_id[:SHORT_ID]}'s {TABLE_FILE} is damaged"
    try:
        table = pd.read_csv(io.StringIO(text), index_col="family")
    except ValueError as error:  # EmptyDataError and ParserError are ValueErrors
        raise RunNotFound(f"{damaged}: {str(error).splitlines()[0]}") from error
    except TypeError as error:  # pandas, for a header without "family" and no rows
        raise RunNotFound(f"{damaged}: no family column") from error
    if "mae" not in table or not pd.api.types.is_numeric_dtype(table["mae"]):
        raise RunNotFound(f"{damaged}: no numeric mae column")
    table.index = table.index.astype(str)
    return table


def _missing_table(run: Run) -> str:
    """Why a leaderboard's table could not be read, in one whole line.

    MLflow's own message spans lines ("The following failures occurred while downloading one
    or more artifacts from <folder>:", then one per file): its first line, cut at that colon,
    named neither the file nor the run. Its artifacts are listed to tell a missing file from
    an artifact store that does not answer.
    """
    which = f"run {run.info.run_id} ({run_name(run, NAME_WIDTH)})"
    folder, _, file = TABLE_FILE.rpartition("/")
    try:
        listed = mlflow.artifacts.list_artifacts(artifact_uri=f"{run.info.artifact_uri}/{folder}")
    except (mlflow.exceptions.MlflowException, OSError) as error:
        cause = " ".join(str(error).split())
        return _shorten(
            f"cannot read {TABLE_FILE} of {which}: its artifact store at "
            f"{safe_uri(run.info.artifact_uri)} answered {type(error).__name__}: {cause}",
            300,
        )
    if any(artifact.path.rpartition("/")[2] == file for artifact in listed):  # there, unreadable
        return f"cannot read {TABLE_FILE} of {which} from {safe_uri(run.info.artifact_uri)}"
    return (
        f"{which} has no artifact {TABLE_FILE}, which `pricer runs RUN` shows: its artifacts "
        "were deleted, or it ended before logging its table"
    )


def run_summary(run: Run) -> list[str]:
    """Any run, for ``pricer runs RUN`` (a finished leaderboard prints its table instead):
    what it is, its figures (as ``pricer compare`` shows them, said to be partial when the run
    did not finish) and, for a FAILED or KILLED run, its whole error."""
    column = compare_runs([run]).iloc[:, 0]
    error = run.data.tags.get(tags.ERROR, "")
    shown: dict[str, str] = {}
    for key, value in column.drop("error", errors="ignore").items():
        if key in COMPARED_METRICS and "figures" not in shown and run.info.status != "FINISHED":
            shown["figures"] = _partial(run)  # before the first figure it qualifies
        shown[str(key)] = value
    best_run = run.data.tags.get(tags.SWEEP_BEST_RUN)
    if best_run and _deleted(best_run):  # its best trial discarded since: not a result that stands
        shown["best run"] += " (deleted)"
    if error:  # whole: the list and compare cut it to 40 characters
        shown["error"] = error
    ended_by = run.data.tags.get(tags.ENDED_BY)
    if ended_by:  # not its own process: who ended it, where and when (a teammate, a reaper)
        shown["ended by"] = ended_by
    replay = run.data.tags.get(tags.SWEEP_REPLAY) or run.data.tags.get(tags.SWEEP_BEST_REPLAY)
    if replay:  # a sweep trial's, or a sweep's best: the command that runs it alone
        shown["replay"] = replay
    if run.data.tags.get(tags.KIND) == "sweep":  # while its view is still this sweep's
        url = children_view_url(mlflow.MlflowClient(), run, sweep_key(run.info.run_name), None)
        if url is not None:
            shown[TRIALS_LINE.rstrip(": ")] = url
    stale = stale_reason(run)
    if stale:  # whole, what the store says (left alone: only reading) and how to end it
        end = f"pricer runs {run.info.run_id[:SHORT_ID]} --end"
        if tags.SWEEP_STUDY in run.data.tags and PARENT_TAG in run.data.tags:  # its study's
            end = f"its study's next sweep process ends it, or {end} --force"
        shown["stale"] = f"{stale} (the store says RUNNING; {end} ends it KILLED)"
    shown = {key: value for key, value in shown.items() if value != ""}
    width = max(len(key) for key in shown)  # of the rows shown: an empty one is left out
    return [f"{key:<{width}}  {value}" for key, value in shown.items()]


def _partial(run: Run) -> str:
    if stale_reason(run):
        return "partial: logged before its process died"
    if run.info.status == "RUNNING":
        return "so far: the run is still running"
    return f"partial: logged before the run ended {run.info.status}"


def child_runs(run: Run) -> list[str]:
    """A parent's runs (a leaderboard's families), oldest first: id, name, status, outcome.

    For a leaderboard that has no table (KILLED, FAILED or still running): which families
    finished, and why the others did not.
    """
    children = mlflow.search_runs(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{run.info.run_id}'",
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )
    if not children:
        return ["no family run"]
    rows = [
        [
            child.info.run_id[:SHORT_ID],
            run_name(child, NAME_WIDTH),
            status(child),
            _outcome(child.data.tags.get(tags.KIND) or "family", child),
        ]
        for child in children
    ]
    return ["family runs:", *(f"  {line}" for line in left_aligned(rows))]


def compare_runs(runs: Sequence[Run]) -> pd.DataFrame:
    """Runs side by side (one column each): what they are, their figures, and the params all
    of them have that differ (a leaderboard's per-family settings would drown the rest)."""
    columns = [f"{run.info.run_id[:SHORT_ID]}" for run in runs]
    rows: dict[str, list[str]] = {
        "name": [run_name(run, NAME_WIDTH) for run in runs],
        "status": [status(run) for run in runs],
        "data": [run.data.tags.get(tags.DATA, "") for run in runs],
        "eval items": [run.data.tags.get(tags.EVAL_SIZE, "") for run in runs],
        "started": [_started(run) for run in runs],
    }
    # Scored on other items (equal in number), their maes read side by side as comparable.
    digests = [run.data.tags.get(tags.EVAL_DIGEST, "") for run in runs]
    if len(set(digests)) > 1:
        rows["eval digest"] = [_shorten(digest, SHORT_ID + 1) for digest in digests]
    # Same code and data, other figures: the machine's BLAS kernel, or the SIMD extensions
    # numpy's own kernels use, moves them by dollars; the thread count by fractions of a cent
    # (a sweep trial in joblib's workers against the same settings run alone).
    for label, tag in (
        ("cpu", tags.CPU),
        ("blas", tags.BLAS),
        ("simd", tags.SIMD),
        ("threads", tags.THREADS),
    ):
        machines = [run.data.tags.get(tag, "") for run in runs]
        if len(set(machines)) > 1:
            rows[label] = [_shorten(machine) for machine in machines]
    servers = [run.data.tags.get(tags.LLM_SERVER, "") for run in runs]
    if any(servers):  # an LLM family's: OpenAI's API, or the server that stood in for it
        rows["llm server"] = [_shorten(server) for server in servers]
    # The models the replies named: the snapshot that priced (gpt-4o-mini-2024-07-18), or a
    # substitute that a run named after the model asked for would hide.
    answered = [run.data.tags.get(tags.LLM_ANSWERED_BY, "") for run in runs]
    if any(answered):
        rows["llm answered by"] = [_shorten(models) for models in answered]
    stale = [stale_reason(run) or "" for run in runs]
    if any(stale):  # why STALE (run_summary adds that the store still says RUNNING)
        rows["stale"] = [_shorten(reason) for reason in stale]
    errors = [run.data.tags.get(tags.ERROR, "") for run in runs]
    if any(errors):  # why a run FAILED or was KILLED
        rows["error"] = [_shorten(error) for error in errors]
    best_trials = [
        run.data.params.get(tags.SWEEP_BEST_TRIAL) or run.data.tags.get(tags.SWEEP_BEST_TRIAL_TAG)
        for run in runs
    ]
    if any(best_trials):  # a sweep's: which trial, and its run for `pricer runs`
        rows["best trial"] = [trial or "" for trial in best_trials]
        rows["best run"] = [run.data.tags.get(tags.SWEEP_BEST_RUN, "")[:SHORT_ID] for run in runs]
    decisions = [run.data.tags.get("pricer.decision", "") for run in runs]
    if any(decisions):  # a promotion's: what it did, and to which version
        rows["decision"] = decisions
        rows["registered version"] = [
            run.data.tags.get("pricer.registered_version", "") for run in runs
        ]
    # A sweep's objective is a setting (hydra.callbacks.mlflow_sweep.objective): its best.*
    # figure was left out when it was not validation.mae, so its result was not shown at all.
    objectives = {key for run in runs for key in run.data.metrics if key.startswith("best.")}
    for key in [*COMPARED_METRICS, *sorted(objectives - set(COMPARED_METRICS))]:
        values = [run.data.metrics.get(key) for run in runs]
        if any(v is not None for v in values):
            rows[key] = [_format(key, v) for v in values]
    shared = set.intersection(*(set(run.data.params) for run in runs))
    differ = {key for key in shared if len({run.data.params[key] for run in runs}) > 1}
    if "family" in differ:  # each family's class path says it again, 40 characters a column
        differ -= {key for key in differ if key.endswith("._target_")}
    for key in sorted(differ):
        rows[f"param {key}"] = [_shorten(run.data.params[key]) for run in runs]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns)


# Prefixes saying whose figure a metric is: a sweep's best trial's, the validation items', ...
_OF = ("best.", "validation.", "candidate.", "champion.")


def _format(key: str, value: float | None) -> str:
    undefined = _undefined(value)
    if undefined is not None:
        return undefined
    # What the figure is, whatever it is the figure of: best.validation.hit_rate is a rate, as
    # hit_rate is (a sweep ranked by it showed "val hit_rate $0.82" for 82.5%).
    base = key
    while base.startswith(_OF):
        base = base.split(".", 1)[1]
    if base.startswith(("mae", "test_mae")) or key == "best_mae":
        return _dollars(value)
    if key == "p_value":
        return f"{value:.4f}"
    if base in ("hit_rate", "failure_rate"):
        return f"{value:.1%}"
    if key.startswith(("trials.", "data.")):  # counts
        return f"{value:,.0f}"
    if key.startswith("llm.cost"):
        return f"${value:,.3f}"
    return f"{value:,.2f}"


def _shorten(value: str, width: int = 40) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"
