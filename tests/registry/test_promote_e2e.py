"""Promotion through the real CLI (python -m pricer.promote and mlflow run . -e promote)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from pricer.paths import PROJECT_ROOT
from tests.e2e.conftest import pricer_app, run_cli

pytestmark = pytest.mark.e2e

SMALL = ["data.n_records=4000", "curation.split.test_size=200"]
MODEL = "pricer-synthetic"  # the leaderboard below runs on the default data, synthetic


def champion_run_id(client: MlflowClient) -> str:
    return client.get_model_version_by_alias(MODEL, "champion").run_id


def test_promote_crowns_the_first_model_then_refuses_worse_ones(
    tracking_uri: str, tmp_path: Path
) -> None:
    trained = run_cli(
        pricer_app(
            "leaderboard",
            *SMALL,
            "families=[constant,tfidf_ridge]",
            "tracking.log_model=true",
            f"curation.cache_dir={tmp_path}/cache",
            workdir=tmp_path,
        ),
        tracking_uri,
        tmp_path,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    families = {
        run.data.tags["pricer.family"]: run.info.run_id
        for run in mlflow.search_runs(search_all_experiments=True, output_format="list")
        if "pricer.family" in run.data.tags
    }
    client = MlflowClient()

    # Without a data choice: one line that lists the choices, no traceback, nothing registered.
    unchosen = run_cli(pricer_app("promote", workdir=tmp_path), tracking_uri, tmp_path)
    assert unchosen.returncode == 2
    assert unchosen.stderr.strip().splitlines()[-1].startswith("error: say which data")
    assert "synthetic (2 runs)" in unchosen.stderr and "Traceback" not in unchosen.stderr
    assert client.search_registered_models() == []

    # The first model becomes champion directly: the best of the comparable runs.
    first = run_cli(
        [
            "mlflow",
            "run",
            ".",
            "-e",
            "promote",
            "--env-manager",
            "local",
            "--experiment-name",
            "pricer",
            "-P",
            f"overrides=data=synthetic hydra.run.dir={tmp_path}/hydra",
        ],
        tracking_uri,
        tmp_path,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"champion: first champion of '{MODEL}'" in first.stdout
    # It recommended mlflow models serve, which runs the model's code unchecked.
    assert (
        'use it: pricer predict --data synthetic "<text>", or pricer serve --data synthetic\n'
        in first.stdout
    )
    assert champion_run_id(client) == families["tfidf_ridge"]
    promotion = mlflow.search_runs(
        search_all_experiments=True,
        filter_string="tags.`mlflow.project.entryPoint` = 'promote'",
        output_format="list",
    )[0]
    assert promotion.info.status == "FINISHED"
    assert promotion.data.tags["pricer.kind"] == "promotion"

    # A worse family is refused: the champion stays, the candidate waits as challenger.
    worse = run_cli(
        pricer_app("promote", "data=synthetic", "candidates.family=constant", workdir=tmp_path),
        tracking_uri,
        tmp_path,
    )
    assert worse.returncode == 0, worse.stderr[-3000:]
    assert "challenger: version 2 (constant run" in worse.stdout
    assert "is worse than champion version 1" in worse.stdout
    assert champion_run_id(client) == families["tfidf_ridge"]
    assert client.get_model_version_by_alias(MODEL, "challenger").run_id == families["constant"]


def test_a_champion_whose_model_is_gone_is_retired_with_the_command_promote_names(
    tracking_uri: str, tmp_path: Path
) -> None:
    # promote said "delete the champion alias": only the MLflow UI or MlflowClient could, and
    # neither recorded the decision.
    import numpy as np

    from tests.registry.test_registry import BASE, training_run

    mlflow.set_experiment("pricer")
    best = training_run(BASE)
    other = training_run(BASE * 2, family="constant")
    client = MlflowClient()

    def promote(*overrides: str) -> tuple[int, str, str]:
        done = run_cli(pricer_app("promote", *overrides, workdir=tmp_path), tracking_uri, tmp_path)
        return done.returncode, done.stdout, done.stderr

    code, out, err = promote("data=synthetic")
    assert code == 0, err[-3000:]
    assert champion_run_id(client) == best
    model_id = client.get_model_version(MODEL, "1").source.removeprefix("models:/")
    client.delete_logged_model(model_id)  # the champion's model is gone
    code, out, err = promote("data=synthetic")
    said = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err
    assert said.startswith(f"error: {MODEL}@champion (version 1) cannot be loaded")
    command = "pricer promote data=synthetic retire=true"
    assert said.endswith(f"(retire it with {command}, then promote to crown a new one)")

    # A candidate's or comparison's setting beside retire=true is refused, named, before any
    # write: it retired the champion whatever the setting said, and said nothing of it.
    history = client.get_registered_model(MODEL).description
    runs = len(mlflow.search_runs(search_all_experiments=True, output_format="list"))
    for given in (["candidates.family=constant"], ["eval.confidence=0.99", "++eval.size=50"]):
        code, out, err = promote(*command.split()[2:], *given)
        assert code == 2 and err.strip() == (
            f"error: {', '.join(given)}: retire=true retires the champion and chooses or "
            "compares no candidate, so candidates.* and eval.* settings do nothing there: drop "
            f"{'it' if len(given) == 1 else 'them'}"
        ), err
    assert champion_run_id(client) == best
    assert client.get_registered_model(MODEL).description == history
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == runs

    # The command it names, as typed (pricer <app> is python -m pricer.<app>).
    code, out, err = promote(*command.split()[2:])
    assert code == 0, err[-3000:]
    assert out.startswith(f"{MODEL}: retired: version 1 (tfidf_ridge run {best}, mae $")
    assert "champion" not in client.get_registered_model(MODEL).aliases
    run = mlflow.search_runs(
        search_all_experiments=True,
        filter_string="tags.`pricer.decision` = 'retired'",
        output_format="list",
    )
    assert [(r.info.status, r.info.run_name) for r in run] == [("FINISHED", "retire · synthetic")]
    version = client.get_model_version(MODEL, "1")
    assert version.tags["pricer.retired_by_run_id"] == run[0].info.run_id
    assert "(retired by promotion run" in version.description
    history = client.get_registered_model(MODEL).description.splitlines()
    assert " retired: version 1 " in history[1] and "first champion" in history[2]

    # Nothing left to retire, or no such model: one line, exit 2, no run.
    runs = len(mlflow.search_runs(search_all_experiments=True, output_format="list"))
    for data, why in [
        ("synthetic", f"error: {MODEL} has no champion to retire"),
        ("real", "error: pricer-real is not registered"),
    ]:
        code, out, err = promote(f"data={data}", "retire=true")
        assert code == 2 and err.strip().splitlines()[-1].startswith(why), err
        assert len(err.strip().splitlines()) == 1
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == runs

    # promote crowns a new one: the next best, the retired run's model being gone.
    code, out, err = promote("data=synthetic")
    assert code == 0, err[-3000:]
    assert f"champion: first champion of '{MODEL}': version 2" in out
    assert champion_run_id(client) == other
    assert np.isfinite(float(client.get_model_version(MODEL, "2").tags["pricer.mae"]))


# Run as ``python <this> data=... ...``: ``pricer.promote`` itself, every step the real one,
# with waits at two points of the real code path so that two promotions meet where they raced
# (tests only). ``MEET_DIR``: a folder both mark their steps in; ``MEET_AS``: this one's name;
# ``MEET_MODE=hang``: stop for good inside the window instead (to be SIGKILLed there).
MEETING = """
import os, runpy, sys, time
from pathlib import Path

from pricer.tracking import registry, retire

meet, me = Path(os.environ["MEET_DIR"]), os.environ["MEET_AS"]


def mark(step):
    (meet / f"{step}.{me}").touch()


def others(step):
    return [path for path in meet.glob(f"{step}.*") if path.name != f"{step}.{me}"]


recording, retiring, appending = registry._record, retire._retire, registry.append_history


def record(*args, **kwargs):
    mark("compared")  # compared with the champion; its check and writes come next
    return recording(*args, **kwargs)


def retire_it(*args, **kwargs):
    mark("compared")  # read the champion to retire; its check and writes come next
    return retiring(*args, **kwargs)


def append(*args, **kwargs):
    # Past every check of the champion, before the alias moves: wait here for the other
    # promotion, or, once it has compared, for as long as it needs to get here unless
    # something stops it.
    mark("window")
    if os.environ.get("MEET_MODE") == "hang":
        time.sleep(600)
    deadline, seen = time.monotonic() + 120, None
    while time.monotonic() < deadline and not others("window"):
        if seen is None and others("compared"):
            seen = time.monotonic()
        if seen is not None and time.monotonic() - seen > 8:
            break
        time.sleep(0.05)
    return appending(*args, **kwargs)


registry._record, registry.append_history = record, append
retire._retire, retire.append_history = retire_it, append
sys.argv[0] = "pricer.promote"
runpy.run_module("pricer.promote", run_name="__main__", alter_sys=True)
"""


def meeting_promote(tmp_path: Path, name: str, *overrides: str) -> list[str]:
    script = tmp_path / "meeting_promote.py"
    script.write_text(MEETING)
    return [
        sys.executable, str(script), "data=synthetic", "eval.n_resamples=1000", *overrides,
        f"hydra.run.dir={tmp_path}/hydra-{name}",
    ]  # fmt: skip


def meeting_env(tmp_path: Path, name: str, **more: str) -> dict[str, str]:
    (tmp_path / "meet").mkdir(exist_ok=True)
    return {
        "PYTHONPATH": str(PROJECT_ROOT),
        "MEET_DIR": str(tmp_path / "meet"),
        "MEET_AS": name,
        **more,
    }


def test_two_promotions_that_meet_before_the_alias_moves_move_it_once(
    tracking_uri: str, tmp_path: Path
) -> None:
    # Each beat the champion and checked it was still there; both then moved the alias, the
    # later won, and the earlier's record (its version "champion", its history line, the old
    # champion "replaced by" it) claimed a move from a champion its model never faced.
    from concurrent.futures import ThreadPoolExecutor

    from tests.registry.test_registry import BASE, promote_with, training_run

    mlflow.set_experiment("pricer")
    training_run(BASE)
    promote_with()
    better = {"linear": training_run(BASE * 0.5, family="linear")}
    better["xgboost"] = training_run(BASE * 0.55, family="xgboost")
    client = MlflowClient()

    def promote(family: str) -> subprocess.CompletedProcess[str]:
        command = meeting_promote(tmp_path, family, f"candidates.family={family}")
        return run_cli(command, tracking_uri, tmp_path, env=meeting_env(tmp_path, family))

    with ThreadPoolExecutor(2) as pool:
        done = dict(zip(better, pool.map(promote, better), strict=True))
    assert {path.name for path in (tmp_path / "meet").glob("compared.*")} == {
        "compared.linear",
        "compared.xgboost",
    }  # both compared with version 1 before either recorded anything
    won = [family for family, result in done.items() if result.returncode == 0]
    assert len(won) == 1, {family: result.stderr[-2000:] for family, result in done.items()}
    [winner] = won
    [loser] = set(better) - {winner}
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.run_id == better[winner]
    said = done[loser].stderr.strip().splitlines()
    assert done[loser].returncode == 2 and "Traceback" not in done[loser].stderr
    assert said[-1] == (
        f"error: champion moved to version {champion.version} while this promotion compared "
        "against version 1 (another promotion at once): no alias moved; promote again to "
        "compare with the new champion"
    )
    # The loser's record says it was not applied; only the winner's claims the move.
    [lost] = client.search_model_versions(f"name='{MODEL}' and run_id='{better[loser]}'")
    lost = client.get_model_version(MODEL, lost.version)
    assert lost.tags["pricer.decision"] == "not applied"
    assert lost.description.startswith(f"Not applied: champion moved to version {champion.version}")
    assert "pricer.compared_with_version" not in lost.tags
    assert champion.tags["pricer.compared_with_version"] == "1"
    assert client.get_model_version(MODEL, "1").tags["pricer.replaced_by_version"] == str(
        champion.version
    )
    history = client.get_registered_model(MODEL).description.splitlines()
    assert [line for line in history if "beats version 1 " in line] == [
        line for line in history if f"champion: version {champion.version} " in line
    ]
    assert len(history) == 3  # the title, the first champion, the one that replaced it
    assert "pricer.lease" not in client.get_registered_model(MODEL).tags  # released


def test_a_promotion_killed_holding_the_lease_holds_up_the_next_only_until_it_expires(
    tracking_uri: str, tmp_path: Path
) -> None:
    import signal
    import time

    from tests.registry.test_registry import BASE, promote_with, training_run

    mlflow.set_experiment("pricer")
    training_run(BASE)
    promote_with()
    linear = training_run(BASE * 0.5, family="linear")
    nextone = training_run(BASE * 0.55, family="xgboost")
    client = MlflowClient()
    command = meeting_promote(
        tmp_path, "killed", "candidates.family=linear", "registry.lease_seconds=25"
    )
    env = {
        **os.environ,
        **meeting_env(tmp_path, "killed", MEET_MODE="hang"),
        "MLFLOW_TRACKING_URI": tracking_uri,
    }
    held = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "meet" / "window.killed").exists():
            assert held.poll() is None, held.stderr.read() if held.stderr else ""
            assert time.monotonic() < deadline, "the promotion never reached the alias move"
            time.sleep(0.1)
    finally:
        held.send_signal(signal.SIGKILL)  # no finally of its own runs: its lease stays
        held.wait(60)
    lease = client.get_registered_model(MODEL).tags["pricer.lease"]
    expiry = float(lease.rpartition(":")[2])
    assert expiry > time.time() + 5  # the next promotion is started well before it expires
    nexts = run_cli(
        pricer_app("promote", "data=synthetic", "candidates.family=xgboost", workdir=tmp_path),
        tracking_uri,
        tmp_path,
    )
    assert nexts.returncode == 0, nexts.stderr[-3000:]
    assert "champion: version" in nexts.stdout and "beats version 1 " in nexts.stdout
    assert client.get_model_version_by_alias(MODEL, "champion").run_id == nextone
    run = mlflow.search_runs(
        search_all_experiments=True,
        filter_string="tags.`pricer.decision` = 'champion'",
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )[0]
    # It waited for the lease to expire, and not much longer (its record and run end after).
    assert run.info.start_time / 1000 < expiry <= run.info.end_time / 1000 < expiry + 15
    model = client.get_registered_model(MODEL)
    assert "pricer.lease" not in model.tags and "pricer.pending" not in model.tags
    # The killed one's record, cut short between its writes, said for good that its version
    # was champion since then ("Champion since ...", pricer.decision=champion), though the
    # alias never moved to it: the next promotion took it back, and said so.
    [killed] = client.search_model_versions(f"name='{MODEL}' and run_id='{linear}'")
    killed = client.get_model_version(MODEL, killed.version)
    assert killed.tags["pricer.decision"] == "not applied", killed.description
    assert killed.description.startswith(
        "Not applied: the promotion stopped before its alias moved (promotion run "
        f"{killed.tags['pricer.promotion_run_id']} stopped while it recorded this decision"
    )
    assert (
        f"stopped before champion moved to version {killed.version}: its half-written record "
        f"was taken back (version {killed.version} is marked not applied)\n"
    ) in nexts.stdout
    history = model.description.splitlines()
    assert len(history) == 3 and not [line for line in history if "linear run" in line]


def test_a_retirement_and_a_promotion_that_meet_before_the_alias_moves_do_not_both_apply(
    tracking_uri: str, tmp_path: Path
) -> None:
    # retire=true checks the champion and deletes its alias as a promotion checks and moves
    # it: met in that window, the promotion crowned a new champion "replacing" version 1 while
    # the retirement said version 1 was retired (or deleted the new champion's alias).
    from concurrent.futures import ThreadPoolExecutor

    from tests.registry.test_registry import BASE, promote_with, training_run

    mlflow.set_experiment("pricer")
    training_run(BASE)
    promote_with()
    better = training_run(BASE * 0.5, family="linear")
    client = MlflowClient()
    overrides = {"promote": ["candidates.family=linear"], "retire": ["retire=true"]}

    def run(name: str) -> subprocess.CompletedProcess[str]:
        command = meeting_promote(tmp_path, name, *overrides[name])
        if name == "retire":  # retire=true refuses eval.* settings
            command.remove("eval.n_resamples=1000")
        return run_cli(command, tracking_uri, tmp_path, env=meeting_env(tmp_path, name))

    with ThreadPoolExecutor(2) as pool:
        done = dict(zip(overrides, pool.map(run, overrides), strict=True))
    won = [name for name, result in done.items() if result.returncode == 0]
    assert len(won) == 1, {name: result.stderr[-2000:] for name, result in done.items()}
    [loser] = set(overrides) - set(won)
    assert done[loser].returncode == 2 and "Traceback" not in done[loser].stderr
    said = done[loser].stderr.strip().splitlines()[-1]
    first = client.get_model_version(MODEL, "1")
    [candidate] = client.search_model_versions(f"name='{MODEL}' and run_id='{better}'")
    candidate = client.get_model_version(MODEL, candidate.version)
    history = client.get_registered_model(MODEL).description.splitlines()
    if won == ["promote"]:  # the retirement found another champion: nothing retired
        assert said.startswith(f"error: champion moved to version {candidate.version} while ")
        assert "nothing was retired" in said
        assert client.get_model_version_by_alias(MODEL, "champion").run_id == better
        assert "pricer.retired_at" not in first.tags
        assert first.tags["pricer.replaced_by_version"] == str(candidate.version)
        assert not [line for line in history if " retired: " in line]
    else:  # the promotion found no champion where it compared with version 1
        assert said.startswith("error: champion moved to version none while this promotion")
        assert "champion" not in client.get_registered_model(MODEL).aliases
        assert "pricer.retired_at" in first.tags
        assert "pricer.replaced_by_version" not in first.tags
        assert candidate.tags["pricer.decision"] == "not applied"
        assert not [line for line in history if "beats version 1 " in line]
    assert len(history) == 3  # the title, the first champion, the one decision applied
    assert "pricer.lease" not in client.get_registered_model(MODEL).tags
