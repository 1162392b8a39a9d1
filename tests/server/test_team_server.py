"""pricer against a team tracking server: ``mlflow server`` on PostgreSQL, artifacts proxied,
users by basic-auth, the client logged in with MLFLOW_TRACKING_USERNAME/PASSWORD.

Over HTTP only: a leaderboard, a parallel sweep (two processes sharing one Optuna study in the
same PostgreSQL), promote, and predict from the champion; then every run, metric, artifact and
model is checked on the server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
import optuna
import pytest
import requests
from mlflow import MlflowClient
from mlflow.entities import FileInfo

from pricer.paths import PROJECT_ROOT
from pricer.tracking.model import FILES_DIGEST_TAG
from tests.conftest import forget_store_ids, project_experiment
from tests.server.servers import TrackingServer, create_users

pytestmark = pytest.mark.server

USER, PASSWORD = "alice", "alice-secret-for-tests"
READER, READER_PASSWORD = "bob", "bob-secret-for-tests"
SMALL = ["data.n_records=3000", "curation.split.test_size=200"]
FAMILIES = ["constant", "linear", "tfidf_ridge"]


@pytest.fixture(scope="module")
def users(tracking_server: TrackingServer) -> TrackingServer:
    """A writer and a reader, created by the admin."""
    create_users(tracking_server, {USER: PASSWORD, READER: READER_PASSWORD})
    return tracking_server


@pytest.fixture
def as_user(users: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """This process and its children talk to the server as alice, the way users set it."""
    env = {
        "MLFLOW_TRACKING_URI": users.uri,
        "MLFLOW_TRACKING_USERNAME": USER,
        "MLFLOW_TRACKING_PASSWORD": PASSWORD,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    forget_store_ids(monkeypatch)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    mlflow.set_tracking_uri(users.uri)
    yield {**os.environ, **env}


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """Every process a test starts; those still running at teardown (a failure) are killed."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def pricer(
    app: str, *args: str, env: dict[str, str], workdir: Path, started: list[subprocess.Popen[str]]
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", f"pricer.{app}", *args]
    if app not in ("predict", "serve", "console"):  # argparse commands: no Hydra overrides
        command.append(f"hydra.run.dir={workdir}/hydra-{app}")
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    started.append(process)
    return process


def finish(process: subprocess.Popen[str], timeout: float = 300) -> str:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    assert process.returncode == 0, f"{process.args}\n{err[-3000:]}"
    return out


def files(client: MlflowClient, run_id: str, path: str | None = None) -> list[FileInfo]:
    """Every artifact file of a run, through the server, folders walked."""
    found = []
    for item in client.list_artifacts(run_id, path):
        found += files(client, run_id, item.path) if item.is_dir else [item]
    return found


def bob_creates_a_run(server: TrackingServer, experiment: str) -> int:
    """The status of a run-create call as bob, the reader, in ``experiment``."""
    answer = requests.post(
        f"{server.uri}/api/2.0/mlflow/runs/create",
        json={"experiment_id": experiment},
        auth=(READER, READER_PASSWORD),
        timeout=60,
    )
    return answer.status_code


def alice_grants_bob_edit(
    server: TrackingServer, resource: str, resource_type: str = "experiment"
) -> requests.Response:
    """The README's grant, as curl sends it: alice (the resource's manager) lets bob edit."""
    return requests.post(
        f"{server.uri}/api/3.0/mlflow/users/permissions/grant",  # MLflow 3.17's permission API
        json={
            "username": READER,
            "resource_type": resource_type,
            "resource_id": resource,
            "permission": "EDIT",
        },
        auth=(USER, PASSWORD),
        timeout=60,
    )


def test_the_server_wants_a_login_and_honours_permissions(
    users: TrackingServer, as_user: dict[str, str]
) -> None:
    api = f"{users.uri}/api/2.0/mlflow"
    search = {"max_results": 1}
    assert requests.post(f"{api}/experiments/search", json=search, timeout=60).status_code == 401
    wrong = requests.post(f"{api}/experiments/search", json=search, auth=(USER, "x"), timeout=60)
    assert wrong.status_code == 401
    experiment = mlflow.create_experiment("alice-only")  # alice manages what she creates
    assert bob_creates_a_run(users, experiment) == 403  # bob may read (default READ), not write
    grant = alice_grants_bob_edit(users, experiment)
    assert grant.status_code == 200, grant.text
    assert bob_creates_a_run(users, experiment) == 200


def test_the_readme_server_serves_the_address_its_clients_use_and_refuses_others(
    users: TrackingServer,
) -> None:
    # The README's --allowed-hosts and --cors-allowed-origins: MLflow 3.17 answers 403 to a
    # Host header or a cross-origin POST it was not given. Requests go to 127.0.0.1 and name
    # the README's address (mlflow-host:<port>) in their headers, as its clients' requests do.
    named = urlsplit(users.readme_uri).netloc
    port = urlsplit(users.uri).port

    def search(host: str, origin: str | None = None, api: str = "api") -> requests.Response:
        return requests.post(
            f"{users.uri}/{api}/2.0/mlflow/experiments/search",
            json={"max_results": 1},
            auth=(USER, PASSWORD),
            headers={"Host": host, **({"Origin": origin} if origin else {})},
            timeout=60,
        )

    assert search(named).status_code == 200
    elsewhere = search(f"elsewhere:{port}")
    assert elsewhere.status_code == 403 and "Invalid Host header" in elsewhere.text
    # As the README says, the list replaces MLflow's defaults (localhost, private addresses).
    assert search(f"localhost:{port}").status_code == 403
    # The UI opened at the README's address: its POSTs carry that origin.
    assert search(named, origin=users.readme_uri, api="ajax-api").status_code == 200
    foreign = search(named, origin="http://elsewhere.example", api="ajax-api")
    assert foreign.status_code == 403 and "Cross-origin request blocked" in foreign.text


def test_a_login_or_an_address_the_server_refuses_is_one_line(
    users: TrackingServer, tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    # train, the leaderboard and promote ended in MLflow's traceback (exit 1) as they looked
    # up the experiment: a wrong password (401), or an address the README's --allowed-hosts
    # does not name (403 Invalid Host header), here localhost, which the list replaced.
    port = urlsplit(users.uri).port
    login = {"MLFLOW_TRACKING_USERNAME": USER, "MLFLOW_TRACKING_PASSWORD": PASSWORD}
    wrong = {**login, "MLFLOW_TRACKING_PASSWORD": "wrong"}
    at_localhost = f"http://localhost:{port}"
    train = ["train", "model=constant", *SMALL, f"curation.cache_dir={tmp_path / 'cache'}"]
    commands = {
        "train, wrong password": (users.uri, wrong, train),
        "train at localhost": (at_localhost, login, train),
        "runs, wrong password": (users.uri, wrong, ["console", "runs"]),
        "predict at localhost": (
            at_localhost,
            login,
            ["predict", "--data", "synthetic", "a drill"],
        ),
    }
    launched = {}
    for name, (uri, credentials, (app, *args)) in commands.items():
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, **credentials}
        launched[name] = pricer(app, *args, env=env, workdir=tmp_path, started=started)
    said = {name: process.communicate(timeout=300) for name, process in launched.items()}
    for name, process in launched.items():
        out, err = said[name]
        assert process.returncode == 2, (name, err[-3000:])
        assert out == "" and len(err.strip().splitlines()) == 1, (name, out, err[-3000:])
    login_refused = (
        f"error: the tracking server at {users.uri} refused the login (401): "
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD must name a user the server's "
        "admin created, and that user's password"
    )
    host_refused = (
        f"error: the tracking server at {at_localhost} refused requests addressed to "
        f"localhost:{port} (403 Invalid Host header): its mlflow server --allowed-hosts must "
        f"name localhost:{port}, or MLFLOW_TRACKING_URI an address it names"
    )
    assert said["train, wrong password"][1].strip() == login_refused
    assert said["runs, wrong password"][1].strip() == login_refused
    assert said["train at localhost"][1].strip() == host_refused
    assert said["predict at localhost"][1].strip() == host_refused


def test_a_reader_starting_runs_in_a_teammates_experiment_is_refused_in_one_line(
    users: TrackingServer,
    as_user: dict[str, str],
    tmp_path: Path,
    started: list[subprocess.Popen[str]],
) -> None:
    # bob may read alice's experiment (the server's default READ), not write to it: his train
    # (and leaderboard, promote) ended in MLflow's 403 traceback, exit 1, as its run was
    # created; his sweep said "cannot open the sweep's parent run: ... 'Permission denied'".
    experiment = mlflow.create_experiment("team-alice-reads")
    as_bob = {
        **as_user,
        "MLFLOW_TRACKING_USERNAME": READER,
        "MLFLOW_TRACKING_PASSWORD": READER_PASSWORD,
    }
    common = [
        *SMALL,
        f"curation.cache_dir={tmp_path / 'cache'}",
        "tracking.experiment=team-alice-reads",
    ]
    sweep = ["-m", "hparams_search=tfidf_ridge", "hydra.sweeper.n_trials=1", "validation.size=200"]
    # His sweep of a shared study created the study in its storage before it was refused, and
    # left it there empty, holding his settings for the next sweep of that name.
    studies = f"sqlite:///{tmp_path / 'optuna.db'}"
    shared = [f"hydra.sweeper.storage={studies}", "hydra.sweeper.study_name=bobs-ridge"]
    launched = {
        name: pricer("train", *args, *common, env=as_bob, workdir=tmp_path, started=started)
        for name, args in {
            "train": ["model=constant"],
            "sweep": [*sweep, f"hydra.sweep.dir={tmp_path}/sweep"],
            "shared sweep": [*sweep, *shared, f"hydra.sweep.dir={tmp_path}/shared"],
        }.items()
    }
    refused = (
        f"error: the tracking server at {users.uri} refused {{what}} in experiment "
        "'team-alice-reads' (403 permission denied): you may read it, not write to it; its "
        "manager must grant you EDIT on it, or send runs to an experiment of your own "
        "(tracking.experiment=NAME)"
    )
    parent = "to open the sweep's parent run"
    whats = {"train": "to start a run", "sweep": parent, "shared sweep": parent}
    for name, process in launched.items():
        _, err = process.communicate(timeout=300)
        assert process.returncode == 2, (name, err[-3000:])
        [line] = [line for line in err.splitlines() if line.startswith("error: ")]
        assert line == refused.format(what=whats[name]), (name, err[-3000:])
        assert "Traceback" not in err, (name, err[-3000:])
    assert mlflow.search_runs([experiment], output_format="list") == []
    assert optuna.get_all_study_names(studies) == []


def test_leaderboard_parallel_sweep_promote_predict_over_http(
    users: TrackingServer,
    as_user: dict[str, str],
    tmp_path: Path,
    started: list[subprocess.Popen[str]],
) -> None:
    # The study's database URL (with its password) from the environment, not the command line.
    env = {**as_user, "OPTUNA_STORAGE": users.postgres.url("optuna")}
    cache = f"curation.cache_dir={tmp_path / 'cache'}"

    def launch(app: str, *args: str) -> subprocess.Popen[str]:
        return pricer(app, *args, env=env, workdir=tmp_path, started=started)

    families = f"families=[{','.join(FAMILIES)}]"
    board = finish(launch("leaderboard", *SMALL, families, "tracking.log_model=true", cache))
    # Two sweep processes at once, one Optuna study in the same PostgreSQL.
    sweep = [
        "-m", "hparams_search=tfidf_ridge", *SMALL, "validation.size=200",
        "tracking.log_model=false", "hydra.sweeper.n_trials=2", cache,
        "hydra.sweeper.storage=${oc.env:OPTUNA_STORAGE}", "hydra.sweeper.study_name=team-ridge",
    ]  # fmt: skip
    workers = [launch("train", *sweep, f"hydra.sweep.dir={tmp_path}/sweep{n}") for n in range(2)]
    outputs = [finish(worker) for worker in workers]
    promoted = finish(launch("promote", "data=synthetic"))
    item = "Cordless drill, 20V, two batteries and a charger"
    predicted = finish(launch("predict", "--data", "synthetic", item))

    client = MlflowClient()
    runs = mlflow.search_runs(experiment_names=[project_experiment()], output_format="list")
    assert runs and all(run.info.status == "FINISHED" for run in runs), [
        (run.info.run_name, run.info.status) for run in runs if run.info.status != "FINISHED"
    ]
    # The leaderboard: one child per family, each with its metrics, artifacts and model.
    family_runs = {
        run.data.tags["pricer.family"]: run
        for run in runs
        if "pricer.family" in run.data.tags
        and "pricer.sweep.trial" not in run.data.tags
        and run.data.tags.get("pricer.kind") != "sweep"
    }
    assert set(family_runs) >= set(FAMILIES)
    for family in FAMILIES:
        run = family_runs[family]
        assert {"mae", "rmsle", "hit_rate"} <= set(run.data.metrics), family
        # Artifacts went through the server (proxied) into its artifacts destination.
        assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
        artifacts = files(client, run.info.run_id)
        assert artifacts, family
        stored = users.artifacts / run.info.artifact_uri.removeprefix("mlflow-artifacts:/")
        for item in artifacts:
            assert (stored / item.path).stat().st_size == item.file_size, item.path
    experiment = mlflow.get_experiment_by_name(project_experiment())
    models = mlflow.search_logged_models([experiment.experiment_id], output_format="list")
    assert {model.source_run_id for model in models} >= {
        family_runs[f].info.run_id for f in FAMILIES
    }
    assert all(str(model.status) == "READY" for model in models), [m.status for m in models]
    # The UI's saved view of the leaderboard's families, an experiment tag written over HTTP.
    view = json.loads(experiment.tags["mlflow.sharedViewState.pricer-leaderboard-synthetic"])
    assert family_runs[FAMILIES[0]].data.tags["mlflow.parentRunId"] in view["state"]
    # Each model's files were digested as the server stores them (read back over HTTP).
    digests = {model.tags.get(FILES_DIGEST_TAG) for model in models}
    assert None not in digests and all(len(digest) == 64 for digest in digests)

    # The parallel sweep: ONE parent for the study, the four trials of both processes under it.
    parents = [run for run in runs if run.data.tags.get("pricer.sweep.study") == "team-ridge"
               and run.data.tags.get("pricer.kind") == "sweep"]  # fmt: skip
    assert len(parents) == 1
    parent = parents[0]
    trials = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(int(run.data.tags["pricer.sweep.trial"]) for run in trials) == [0, 1, 2, 3]
    assert all("validation.mae" in run.data.metrics for run in trials)
    assert parent.data.metrics["trials.finished"] == 4
    assert all(f"parent run {parent.info.run_id}" in output for output in outputs)
    # pricer prints its own link to each run; MLflow's two lines per run (the GenAI view's
    # link, after every trial too) are not repeated after them.
    assert not [output for output in (board, *outputs) if "View run" in output]
    assert {item.path for item in client.list_artifacts(parent.info.run_id, "sweep")} == {
        "sweep/objective.png",
        "sweep/trials.json",
    }
    # The sweeper's settings are logged without the database password.
    sweeper = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/config/sweeper.yaml")
    assert "team-ridge" in sweeper and users.postgres.password not in sweeper

    # Promote crowned the best leaderboard model; predict priced with it.
    champion = client.get_model_version_by_alias("pricer-synthetic", "champion")
    best = min(FAMILIES, key=lambda f: family_runs[f].data.metrics["mae"])
    assert champion.run_id == family_runs[best].info.run_id
    assert "champion" in promoted
    price = re.search(r"\$?(\d+(?:\.\d+)?)", predicted)
    assert price and float(price.group(1)) > 0, predicted

    # As the README goes on: alice's leaderboard created the experiment, so she manages it;
    # bob reads it, and may log runs into it once she grants him EDIT on it, found by name.
    assert bob_creates_a_run(users, experiment.experiment_id) == 403
    grant = alice_grants_bob_edit(users, experiment.experiment_id)
    assert grant.status_code == 200, grant.text
    assert bob_creates_a_run(users, experiment.experiment_id) == 200

    # bob promotes a pick of his: the registered model is alice's (her promote created it), so
    # the server refuses him a version of it (403). That read "the tracking store failed ...:
    # promote again once it answers", which never helps; once she grants him EDIT on the
    # model, as the README says, his promote records the challenger.
    as_bob = {
        **as_user,
        "MLFLOW_TRACKING_USERNAME": READER,
        "MLFLOW_TRACKING_PASSWORD": READER_PASSWORD,
    }
    pick = ["data=synthetic", "candidates.family=constant"]
    refused = pricer("promote", *pick, env=as_bob, workdir=tmp_path, started=started)
    _, err = refused.communicate(timeout=300)
    assert refused.returncode == 2, err[-3000:]
    assert [line for line in err.splitlines() if line.startswith("error: ")] == [
        f"error: the tracking server at {users.uri} refused registering the candidate (403 "
        "permission denied): no alias moved; a promotion reads the candidates' experiments and "
        "writes to the registered model: their managers must grant you READ on those and EDIT "
        "on the model"
    ], err[-3000:]
    versions = client.search_model_versions("name='pricer-synthetic'")
    assert [version.version for version in versions] == [champion.version]
    assert client.get_registered_model("pricer-synthetic").aliases == {"champion": champion.version}
    grant = alice_grants_bob_edit(users, "pricer-synthetic", "registered_model")
    assert grant.status_code == 200, grant.text
    assert "challenger: version" in finish(
        pricer("promote", *pick, env=as_bob, workdir=tmp_path, started=started)
    )


def test_a_password_in_the_tracking_uri_never_reaches_the_terminal(
    users: TrackingServer, tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    # predict, serve, runs and the leaderboard's closing link printed the URI as given:
    # http://alice:<password>@host, in error lines and in the link to the run.
    host = users.uri.removeprefix("http://")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"http://{USER}:{PASSWORD}@{host}"}
    env.pop("MLFLOW_TRACKING_USERNAME", None)
    env.pop("MLFLOW_TRACKING_PASSWORD", None)
    cache = f"curation.cache_dir={tmp_path / 'cache'}"
    commands = {
        "leaderboard": (0, ["leaderboard", *SMALL, "families=[constant]", cache]),
        "predict": (2, ["predict", "--model-uri", "models:/nope/1", "a drill"]),
        "serve": (2, ["serve", "--model-uri", "models:/nope/1"]),
        "runs": (2, ["console", "runs", "ffff0000"]),  # hexadecimal: looked up
        "runs --experiment": (2, ["console", "runs", "--experiment", "nope"]),
    }
    said = {}
    for name, (expected, (app, *args)) in commands.items():
        process = pricer(app, *args, env=env, workdir=tmp_path, started=started)
        out, err = process.communicate(timeout=300)
        said[name] = (process.returncode, out + err)
        assert process.returncode == expected, f"{name}: {err[-2000:]}"
    assert [name for name, (_, text) in said.items() if PASSWORD in text] == []
    assert f"{host}/#/experiments/" in said["leaderboard"][1]  # the link, without the login


def test_a_teammates_run_left_running_on_another_host_is_ended_by_hand(
    as_user: dict[str, str], tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    # On a shared server the reaper of this host never ends another host's run: a teammate's
    # laptop that died mid-run left it in progress in everyone's UI until told otherwise.
    experiment = mlflow.set_experiment("team-hand-ended").experiment_id
    client = MlflowClient()
    run = client.create_run(experiment, tags={"pricer.host": "carols-laptop", "pricer.pid": "77"})
    pending = mlflow.initialize_logged_model(name="pricer", source_run_id=run.info.run_id)
    run_id = run.info.run_id

    def end(*flags: str) -> subprocess.Popen[str]:
        args = ["runs", run_id, "--end", *flags]
        return pricer("console", *args, env=as_user, workdir=tmp_path, started=started)

    refused = end()
    _, err = refused.communicate(timeout=300)
    assert refused.returncode == 2 and "add --force" in err
    assert client.get_run(run_id).info.status == "RUNNING"
    said = finish(end("--force"))
    assert said.startswith(f"ended run {run_id} ") and "KILLED" in said
    assert client.get_run(run_id).info.status == "KILLED"
    assert str(client.get_logged_model(pending.model_id).status) == "FAILED"


def test_a_reader_ending_a_teammates_run_is_refused_in_one_line_and_nothing_written(
    users: TrackingServer,
    as_user: dict[str, str],
    tmp_path: Path,
    started: list[subprocess.Popen[str]],
) -> None:
    # bob may read alice's experiment (the server's default READ), not write to it: his --end
    # of her run left RUNNING on her laptop was the server's 403 as a traceback.
    experiment = mlflow.set_experiment("team-hand-refused").experiment_id
    client = MlflowClient()
    run = client.create_run(experiment, tags={"pricer.host": "carols-laptop", "pricer.pid": "77"})
    pending = mlflow.initialize_logged_model(name="pricer", source_run_id=run.info.run_id)
    run_id = run.info.run_id
    as_bob = {
        **as_user,
        "MLFLOW_TRACKING_USERNAME": READER,
        "MLFLOW_TRACKING_PASSWORD": READER_PASSWORD,
    }

    def end() -> subprocess.Popen[str]:
        args = ["runs", run_id, "--end", "--force"]
        return pricer("console", *args, env=as_bob, workdir=tmp_path, started=started)

    refused = end()
    out, err = refused.communicate(timeout=300)
    assert refused.returncode == 2, err[-3000:]
    assert out == "" and len(err.strip().splitlines()) == 1, err[-3000:]
    assert err.strip() == (
        f"error: run {run_id} ({run.info.run_name}) was not ended: the tracking store refused "
        "it (permission denied): ending a run writes to its experiment, so its manager must "
        "grant you EDIT on it"
    )
    assert client.get_run(run_id).info.status == "RUNNING"
    assert "error" not in client.get_run(run_id).data.tags
    assert str(client.get_logged_model(pending.model_id).status) == "PENDING"

    assert alice_grants_bob_edit(users, experiment).status_code == 200
    said = finish(end())
    assert said.startswith(f"ended run {run_id} ") and "KILLED" in said
    assert str(client.get_logged_model(pending.model_id).status) == "FAILED"
