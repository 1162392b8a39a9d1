"""Every model family, each configured small: for the tests that run them all alike (model
files, scikit-learn tags, training prices), which ``tests/conftest.py``'s ``family_stub``
serves the LLM families for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pricer.devtools.stub_server import StubServer
from pricer.models.human import item_id
from pricer.paths import CONFIG_DIR

FAMILIES = sorted(path.stem for path in (CONFIG_DIR / "model").glob("*.yaml"))
KEY_ENV = "PRICER_TEST_FAMILIES_KEY"
LLM_FAMILIES = {"frontier", "frontier_rag", "finetuned"}
# Small fits: fewer trees, one thread (a busy machine); everything else is the committed config.
SMALL = {
    "random_forest": ["model.n_estimators=8", "model.n_jobs=1"],
    "xgboost": ["model.n_estimators=20", "model.n_jobs=1"],
    "ensemble": ["model.members.xgboost.n_estimators=20", "model.members.xgboost.n_jobs=1"],
    "finetuned": ["model.model=ft:gpt-4o-mini:pricer-stub:model:abc123"],
}


def family_overrides(family: str, stub: StubServer, folder: Path, test: pd.DataFrame) -> list[str]:
    """``pricer train`` overrides for ``family``: its LLMs on ``stub``, a person's guesses for
    the ``test`` items written under ``folder``."""
    overrides = [f"model={family}", *SMALL.get(family, [])]
    if family in LLM_FAMILIES:
        overrides += [
            f"model.base_url={stub.base_url}",
            f"model.api_key_env={KEY_ENV}",
            "model.cache_dir=null",
            "model.progress=false",
        ]
    if family == "human":
        guesses = folder / "guesses.csv"
        ids = test["text"].map(item_id)
        pd.DataFrame({"id": ids, "price": np.arange(len(test)) + 10.5}).to_csv(guesses, index=False)
        overrides.append(f"model.guesses_path={guesses}")
    return overrides
