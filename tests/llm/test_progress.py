"""The LLM calls' progress bar: shown when asked, and kept out of a redirected log when the
environment says so (``TQDM_DISABLE=1``), as every other bar of pricer's is."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pricer.devtools.stub_server import StubServer
from pricer.paths import PROJECT_ROOT
from tests.llm.conftest import KEY_ENV, SECRET

# Prices three invented items with the real client and prompt, its bar on (progress=True).
SCRIPT = """
import sys
from omegaconf import OmegaConf
from pricer.models.llm.catalogue import ModelCatalogue
from pricer.models.llm.frontier import FrontierPricer
from pricer.paths import CONFIG_DIR
from tests.llm.conftest import KEY_ENV, synthetic_items

prompt = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "llm/prompt/zero_shot.yaml"))
pricer = FrontierPricer(
    model="gpt-4o-mini", base_url=sys.argv[1], api_key_env=KEY_ENV, prompt=prompt,
    temperature=0.0, max_tokens=16, seed=42, max_concurrency=2, timeout=5.0, max_retries=1,
    cache_dir=None, catalogue=ModelCatalogue(), tier=None, retrieval=None, progress=True,
    pacing={"rpm": None, "tpm": None, "burst_seconds": 10.0, "headroom": 0.9},
)
items = synthetic_items(3, seed=1)
pricer.fit(items, items["price"])
print(len(pricer.predict(items)))
"""


@pytest.mark.parametrize("disabled", [False, True])
def test_the_llm_calls_bar_honours_tqdm_disable(disabled: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    env |= {KEY_ENV: SECRET, **({"TQDM_DISABLE": "1"} if disabled else {})}
    with StubServer() as stub:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, stub.base_url],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "3"
    # With TQDM_DISABLE=1 the explicit disable=False of progress=True overrode it: the bar
    # went on filling the log.
    assert ("llm calls" in done.stderr) is not disabled, done.stderr[-3000:]
