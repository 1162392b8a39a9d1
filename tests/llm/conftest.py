"""Fixtures for the LLM families: the stub OpenAI server, a key in the environment, items.

Everything runs over real HTTP on 127.0.0.1 with the real ``openai`` client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from pricer.devtools.stub_server import StubServer
from pricer.models.llm.catalogue import ModelCatalogue
from pricer.models.llm.client import ClientSettings
from pricer.models.llm.frontier import FrontierPricer
from pricer.paths import CONFIG_DIR

KEY_ENV = "PRICER_TEST_LLM_KEY"
SECRET = "sk-pricer-test-9f8e7d6c5b4a-never-store-me"

# Invented products: a noun sets the price level, the rest is filler.
NOUNS = {"cable": 9.0, "mug": 14.0, "lamp": 45.0, "drill": 120.0, "guitar": 380.0, "tv": 750.0}
ADJECTIVES = ["red", "compact", "deluxe", "classic", "portable", "heavy", "quiet", "smart"]


def synthetic_items(n: int, seed: int, start: int = 0) -> pd.DataFrame:
    """Items whose price follows the noun in their text, with lognormal noise."""
    rng = np.random.default_rng(seed)
    nouns = rng.choice(list(NOUNS), size=n)
    rows = []
    for i, noun in enumerate(nouns, start=start):
        adjective = ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]
        title = f"Acme {adjective} {noun} model Z{i}"
        text = f"{title}\nA {adjective} {noun} for every home. Item Z{i} of the Acme range."
        price = round(float(NOUNS[noun] * rng.lognormal(0.0, 0.15)), 2)
        rows.append(
            {"title": title, "text": text, "price": price, "category": "Testing", "details": "{}"}
        )
    return pd.DataFrame(rows)


def load_conf(path: str) -> dict[str, Any]:
    """A YAML file of conf/, as plain containers (the real prompts)."""
    return OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / path), resolve=True)


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The secret in the variable the config names; the SDK's own variables cleared, so a
    test passes only if the key really comes from ``api_key_env``."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    return SECRET


@pytest.fixture
def make_pricer(stub: StubServer, api_key: str) -> Callable[..., FrontierPricer]:
    """A zero-shot frontier pricer on the stub, with the real prompt; settings overridable."""

    def make(**overrides: Any) -> FrontierPricer:
        settings: dict[str, Any] = {
            "model": "gpt-4o-mini",
            "base_url": stub.base_url,
            "api_key_env": KEY_ENV,
            "prompt": load_conf("llm/prompt/zero_shot.yaml"),
            "temperature": 0.0,
            "max_tokens": 16,
            "seed": 42,
            "max_concurrency": 8,
            "timeout": 5.0,
            "max_retries": 3,
            "cache_dir": None,
            "catalogue": ModelCatalogue(),
            "tier": None,  # unpaced unless a test asks (the stub enforces no limit)
            "pacing": {"rpm": None, "tpm": None, "burst_seconds": 10.0, "headroom": 0.9},
            "retrieval": None,
            "progress": False,
        }
        return FrontierPricer(**{**settings, **overrides})

    return make


@pytest.fixture
def compose_conf() -> Callable[..., DictConfig]:
    def compose_config(config_name: str | None, overrides: list[str] | None = None) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides or [])

    return compose_config


@pytest.fixture
def make_items() -> Callable[..., pd.DataFrame]:
    return synthetic_items


@pytest.fixture
def load_prompt() -> Callable[[str], dict[str, Any]]:
    return lambda name: load_conf(f"llm/prompt/{name}.yaml")


@pytest.fixture
def client_settings(stub: StubServer, api_key: str) -> ClientSettings:
    return ClientSettings(base_url=stub.base_url, api_key_env=KEY_ENV, timeout=5.0, max_retries=2)


@pytest.fixture
def item_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Train and test JSONL item files of invented products (for data=items)."""
    folder = tmp_path_factory.mktemp("items")
    train, test = folder / "train.jsonl", folder / "test.jsonl"
    synthetic_items(60, seed=10).to_json(train, orient="records", lines=True)
    synthetic_items(12, seed=11, start=5000).to_json(test, orient="records", lines=True)
    return str(train), str(test)


def frontier_config(
    compose_conf: Callable[..., DictConfig],
    item_files: tuple[str, str],
    stub: StubServer,
    *overrides: str,
) -> DictConfig:
    """A frontier run's config on the item files, against the stub, no cache (each answer is
    the stub's), no logged model."""
    train, test = item_files
    return compose_conf(
        "train",
        [
            "model=frontier",
            "family=frontier",  # not ${hydra:...}: no Hydra app runs here
            "data=items",
            f"data.train_paths=[{train}]",
            f"data.test_paths=[{test}]",
            f"model.base_url={stub.base_url}",
            f"model.api_key_env={KEY_ENV}",
            "model.cache_dir=null",
            "model.progress=false",
            "tracking.log_model=false",
            *overrides,
        ],
    )


def ensemble_config(
    compose_conf: Callable[..., DictConfig],
    item_files: tuple[str, str],
    stub: StubServer,
    *overrides: str,
) -> DictConfig:
    """An ensemble run's config whose LLM member ("llm", a frontier) calls the stub, beside
    the default's other classical members, no cache, no logged model."""
    train, test = item_files
    return compose_conf(
        "train",
        [
            "model=ensemble",
            "~model.members.xgboost",
            "~model.members.tfidf_ridge",
            "+model@model.members.llm=frontier",
            "family=ensemble",  # not ${hydra:...}: no Hydra app runs here
            "data=items",
            f"data.train_paths=[{train}]",
            f"data.test_paths=[{test}]",
            f"model.members.llm.base_url={stub.base_url}",
            f"model.members.llm.api_key_env={KEY_ENV}",
            "model.members.llm.tier=null",
            "model.members.llm.cache_dir=null",
            "model.members.llm.progress=false",
            "tracking.log_model=false",
            *overrides,
        ],
    )
