"""The saved view as a person sees it: the MLflow UI, served from the store, in a headless
browser.

The view's state is the UI's own format, not a documented API (pricer/tracking/views.py), so
the check that it still shows the families best first is the UI itself: an MLflow upgrade that
reads it otherwise fails here. Needs Debian's ``chromium`` (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

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
