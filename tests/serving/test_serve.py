"""mlflow models serve on the champion answers /invocations with the champion's prices, and a
batch with items it cannot price with a 400 that names them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pricer.paths import PROJECT_ROOT
from tests.serving.conftest import CHAMPION_URI

pytestmark = pytest.mark.e2e

STARTUP_SECONDS = 120  # the server imports MLflow and loads the model first
DETAILS = {"Item Weight": "12 pounds", "Brand": "DeWalt", "Date First Available": "May 3, 2019"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(url: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"no answer from {url}/ping within {STARTUP_SECONDS}s")


def post(url: str, records: list[dict[str, object]]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps({"dataframe_records": records}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_served_champion_answers_with_its_prices(champion_store: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": champion_store,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            "mlflow",
            "models",
            "serve",
            "-m",
            CHAMPION_URI,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopping it stops its workers
    )
    try:
        wait_until_up(url, server)
        records = [
            {"text": "Cordless drill driver, 20V, two batteries, charger and case"},
            {"text": "Replacement cap for a water bottle", "category": "Appliances"},
        ]
        status, answer = post(url, records)
        assert status == 200, answer
        served = answer["predictions"]
        # The details as a JSON object, as a client naturally sends them, price as their JSON
        # text does (the data files' form): they were read as Python's repr, which no details
        # pattern matches, and the item was priced as if it had none.
        status_details, with_details = post(
            url,
            [
                {**records[0], "details": DETAILS},
                {**records[0], "details": json.dumps(DETAILS)},
                records[0],
            ],
        )
        # Items without usable text: the whole batch is refused, naming every bad row.
        bad = [records[0], {"text": ""}, {"text": "12.5"}, {"text": None}, {"text": "  "}]
        status, refused = post(url, bad)
        status_no_text, no_text = post(url, [{"title": "Hammer"}])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()
    expected = mlflow.pyfunc.load_model(CHAMPION_URI).predict(pd.DataFrame(records).fillna(""))
    assert np.asarray(served, dtype=float) == pytest.approx(np.asarray(expected, dtype=float))
    assert status_details == 200, with_details
    as_object, as_text, without = with_details["predictions"]
    assert as_object == pytest.approx(as_text)
    assert as_text != pytest.approx(without)  # the details count in this champion's price
    assert status == 400, refused
    assert refused["error_code"] == "INVALID_PARAMETER_VALUE"
    assert (
        "4 of 5 items have no usable text (row 1: empty text; row 2: text '12.5' has no words "
        "(only numbers or symbols); row 3: no text (null); row 4: empty text)"
    ) in refused["message"]
    assert status_no_text == 400, no_text  # no text column at all: MLflow's schema check


def test_an_unpriced_item_is_null_in_the_servers_json_and_nan_in_python(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.pyfunc import scoring_server

    from tests.serving.conftest import constant_champion

    constant_champion(20.0)
    model = mlflow.pyfunc.load_model(CHAMPION_URI)
    # An LLM that could not price the second item (a refusal, a reply with no amount).
    pricer = model.unwrap_python_model().pricer
    monkeypatch.setattr(pricer, "predict", lambda items: np.array([20.0, np.nan, np.inf]))
    items = [{"text": "Cordless drill"}, {"text": "Replacement cap"}, {"text": "Garden hose"}]
    in_python = model.predict(pd.DataFrame(items))
    assert in_python.dtype == float and np.isnan(in_python[1]) and np.isinf(in_python[2])
    # The server's own request handling, in this process: init() marks it a server, as
    # mlflow models serve's does before its first request.
    monkeypatch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "false")
    scoring_server.init(model)
    answer = scoring_server.invocations(
        json.dumps({"dataframe_records": items}),
        "application/json",
        model,
        model.metadata.get_input_schema(),
    )

    def no_json(constant: str) -> None:
        raise AssertionError(f"{constant} is no JSON: {answer.response}")

    assert answer.status == 200
    assert json.loads(answer.response, parse_constant=no_json) == {
        "predictions": [20.0, None, None]
    }


def test_a_pricer_s_own_error_is_the_servers_one_line_not_a_bad_request(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    from pricer.models.llm.client import ServerUnreachable
    from tests.serving.conftest import constant_champion

    constant_champion(20.0)
    model = mlflow.pyfunc.load_model(CHAMPION_URI)

    def unreachable(items: object) -> None:  # an LLM whose server went down meanwhile
        raise ServerUnreachable("cannot connect to http://127.0.0.1:9/v1")

    monkeypatch.setattr(model.unwrap_python_model().pricer, "predict", unreachable)
    items = [{"text": "Cordless drill"}]
    with pytest.raises(ServerUnreachable):  # Python callers keep the error's own type
        model.predict(pd.DataFrame(items))
    monkeypatch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "false")
    scoring_server.init(model)
    with pytest.raises(MlflowException) as answered:
        scoring_server.invocations(
            json.dumps({"dataframe_records": items}),
            "application/json",
            model,
            model.metadata.get_input_schema(),
        )
    # What the server answers: MlflowException's own JSON and status.
    body = json.loads(answered.value.serialize_as_json())
    assert answered.value.get_http_status_code() == 503, body
    assert body["message"].endswith("cannot connect to http://127.0.0.1:9/v1")
    assert "stack_trace" not in body and "Verify that the serialized input" not in body["message"]
