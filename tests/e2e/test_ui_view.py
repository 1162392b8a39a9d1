"""The saved view as a person sees it: the MLflow UI, served from the store, in a headless
browser.

The view's state is the UI's own format, not a documented API (pricer/tracking/views.py), so
the check that it still shows the families best first is the UI itself: an MLflow upgrade that
reads it otherwise fails here. Needs Debian's ``chromium`` (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import pytest

from pricer.tracking.leaderboard import run_url
from pricer.tracking.views import view_url
from tests.server.servers import free_port, stop_group, wait_until_up
from tests.tracking.test_views import leaderboard

pytestmark = pytest.mark.e2e

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def rendered(url: str) -> str:
    """The page's DOM once its scripts have run (what a person would see)."""
    assert BROWSER is not None
    result = subprocess.run(
        [
            BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000",
            "--virtual-time-budget=15000", "--dump-dom", url,
        ],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


# The run page's description, collapsed as the UI shows it (MLflow 3.17: the box "Show more"
# expands, 100 pixels high, its lower part under a fading gradient): the text whose every line
# ends above the fade, which a person reads without clicking. The test ids are the UI's own.
PLAIN_TEXT = """(() => {
  const toggle = document.querySelector('[data-testid="show-comment-toggle"]');
  const box = toggle && toggle.previousElementSibling;
  const fade = box && box.querySelector('[data-testid="truncation-gradient"]');
  if (!fade) return null;
  const limit = fade.getBoundingClientRect().top;
  const read = [];
  const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const range = document.createRange();
    range.selectNodeContents(walker.currentNode);
    const lines = [...range.getClientRects()];
    if (lines.length && lines.every((line) => line.bottom <= limit)) {
      read.push(walker.currentNode.textContent);
    }
  }
  return read.join("");
})()"""


def read_without_clicking(url: str, timeout: float = 120) -> str:
    """What the run page at ``url`` shows of its description before "Show more" is clicked, in
    a headless browser driven over the DevTools protocol on a pipe (file descriptors 3 and 4:
    no port, no extra package), asked again until the page has drawn it."""
    assert BROWSER is not None
    to_browser, commands = os.pipe()
    answers, from_browser = os.pipe()
    browser = subprocess.Popen(
        [
            "bash", "-c", f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser}', BROWSER,
            "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000",
            "--remote-debugging-pipe", "about:blank",
        ],
        pass_fds=(to_browser, from_browser), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    os.close(to_browser)
    os.close(from_browser)
    deadline, pending, sent = time.monotonic() + timeout, b"", 0

    def call(method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        nonlocal pending, sent
        sent += 1
        message = {"id": sent, "method": method, "params": params}
        os.write(
            commands,
            json.dumps({**message, **({"sessionId": session} if session else {})}).encode() + b"\0",
        )
        while True:  # events come in between: the answer is the message with our id
            while b"\0" not in pending:
                left = deadline - time.monotonic()
                assert left > 0 and select.select([answers], [], [], left)[0], "browser: no answer"
                chunk = os.read(answers, 1 << 16)
                assert chunk, "the browser closed its pipe"
                pending += chunk
            raw, _, pending = pending.partition(b"\0")
            answer = json.loads(raw)
            if answer.get("id") == sent:
                assert "error" not in answer, answer
                return answer["result"]

    try:
        target = call("Target.createTarget", url=url)["targetId"]
        session = call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        while True:
            shown = call("Runtime.evaluate", session, expression=PLAIN_TEXT, returnByValue=True)
            text = shown["result"].get("value")
            if text:
                return text
            assert time.monotonic() < deadline, f"no collapsed description at {url}"
            time.sleep(0.5)
    finally:
        os.close(commands)
        os.close(answers)
        stop_group(browser)


@pytest.mark.skipif(BROWSER is None, reason="no chromium (.ci/run installs Debian's chromium)")
def test_the_ui_opens_a_leaderboard_s_view_on_its_families_best_first(
    tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # xgboost and linear tie: the UI lists them as the terminal did (the later run first).
    # frontier left 2 of 50 items unpriced: its mae, the lowest, is over fewer items, so it is
    # not ranked, and listed last (it sorted first, by mae).
    maes = {"svr": 97.9, "frontier": 40.0, "xgboost": 92.8, "linear": 92.8, "constant": 146.0}
    parent, _, _ = leaderboard("real", maes, incomplete={"frontier": 2})
    printed = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(printed) if line.startswith("family"))
    in_terminal = [line.split()[0] for line in printed[header + 1 : header + 1 + len(maes)]]
    experiment = mlflow.get_run(parent).info.experiment_id
    port, log = free_port(), tmp_path / "ui.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no GenAI job runner
    with log.open("wb") as output:
        ui = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mlflow"), "ui",
                "--backend-store-uri", tracking_uri, "--host", "127.0.0.1", "--port", str(port),
            ],
            cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base, ui, log, timeout=120)
        page = rendered(view_url(base, experiment, "pricer-leaderboard-real"))
        collapsed = read_without_clicking(run_url(mlflow.get_run(parent), base))
    finally:
        stop_group(ui)
    # The view chosen (its name above the table), its family runs and only they, best mae
    # first, sorted by mae, its columns shown.
    assert "pricer · real: latest finished leaderboard, best mae first" in page
    families = re.findall(r"([a-z_]+) · real", page.replace("pricer · real", ""))
    assert list(dict.fromkeys(families)) == in_terminal, (families, in_terminal)
    assert in_terminal == ["linear", "xgboost", "svr", "constant", "frontier"]
    assert "best: linear, xgboost (tied, mae $92.80) on real data" in printed
    assert "Sort: ranked_mae" in page and "hit_rate" in page and "mae_ci_high" in page
    # The leaderboard run's page, its description collapsed: who won and by how much read
    # without clicking "Show more" (it showed the best line, then the wide table's header).
    assert "Best: linear, xgboost (tied), mae $92.80" in collapsed, collapsed
    # Three with their intervals wrapped into the fade: the maes alone fit one line.
    assert "$5.10 less than svr" in collapsed, collapsed
    assert "By mae: linear $92.80 · xgboost $92.80 · svr $97.90" in collapsed, collapsed
