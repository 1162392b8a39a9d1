"""The LLM, human and ensemble model configs compose and instantiate from the real conf/."""

from __future__ import annotations

import pandas as pd
import pytest
from hydra.utils import instantiate

from pricer.devtools.stub_server import StubServer
from pricer.models.base import Pricer
from pricer.models.ensemble import EnsemblePricer
from pricer.models.human import HumanPricer
from pricer.models.llm.catalogue import ModelCatalogue
from pricer.models.llm.frontier import FrontierPricer
from pricer.models.llm.retrieval import NeighbourIndex
from pricer.paths import CONFIG_DIR, PROJECT_ROOT

CATALOGUE = ModelCatalogue(str(CONFIG_DIR / "llm/catalogue.yaml"))


@pytest.mark.parametrize("family", ["frontier", "frontier_rag", "finetuned"])
def test_llm_configs_share_one_catalogue_and_stay_secret_free(compose_conf, family) -> None:
    cfg = compose_conf("train", [f"model={family}"])
    pricer = instantiate(cfg.model)
    assert isinstance(pricer, FrontierPricer)
    assert pricer.catalogue == CATALOGUE  # the one catalogue, loaded, not copied
    assert pricer.tier == "tier1"
    assert isinstance(pricer.prompt, dict)  # plain containers in the pickled model
    assert pricer.api_key_env == "OPENAI_API_KEY"
    assert pricer.cache_dir == str(PROJECT_ROOT / "llm_cache")
    assert (pricer.retrieval is not None) == (family == "frontier_rag")
    assert not any("key" in name and name != "api_key_env" for name in pricer.get_params())


def test_rag_config_builds_a_neighbour_index(compose_conf) -> None:
    cfg = compose_conf("train", ["model=frontier_rag", "model.retrieval.k=7"])
    pricer = instantiate(cfg.model)
    assert isinstance(pricer.retrieval, NeighbourIndex) and pricer.retrieval.k == 7
    assert "{examples}" in pricer.prompt["user"]


def test_finetuned_model_is_named_by_the_environment(compose_conf, monkeypatch) -> None:
    monkeypatch.setenv("PRICER_FINETUNED_MODEL", "ft:gpt-4o-mini-2024-07-18:org:pricer:x1")
    pricer = instantiate(compose_conf("train", ["model=finetuned"]).model)
    assert pricer.model == "ft:gpt-4o-mini-2024-07-18:org:pricer:x1"
    monkeypatch.delenv("PRICER_FINETUNED_MODEL")
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    unnamed = instantiate(compose_conf("train", ["model=finetuned"]).model)
    with pytest.raises(ValueError, match="PRICER_FINETUNED_MODEL"):
        unnamed.fit(pd.DataFrame({"text": ["x"]}), [1.0])


def test_fine_tuning_and_finetuned_evaluation_use_the_same_prompt(compose_conf) -> None:
    trained = compose_conf("finetune").prompt
    evaluated = compose_conf("train", ["model=finetuned"]).model.prompt
    assert trained == evaluated and evaluated.prefill is None


def test_frontier_config_prices_through_the_stub(compose_conf, api_key, make_items) -> None:
    items = make_items(4, seed=0)
    with StubServer() as stub:
        cfg = compose_conf(
            "train",
            [
                "model=frontier",
                f"model.base_url={stub.base_url}",
                "model.api_key_env=PRICER_TEST_LLM_KEY",
                "model.cache_dir=null",
                "model.progress=false",
            ],
        )
        report = instantiate(cfg.model).fit(items, items["price"]).predict_report(items)
        assert stub.state.counters["POST /chat/completions"] == 4
    assert report.stats["llm.failures"] == 0 and report.stats["llm.cost_usd"] > 0


def test_human_and_ensemble_configs_instantiate(compose_conf) -> None:
    assert isinstance(instantiate(compose_conf("train", ["model=human"]).model), HumanPricer)
    cfg = compose_conf("train", ["model=ensemble", "seed=5"])
    ensemble = instantiate(cfg.model)
    assert isinstance(ensemble, EnsemblePricer) and isinstance(ensemble.members, dict)
    assert set(ensemble.members) == {"tfidf_ridge", "xgboost", "linear"}
    assert all(isinstance(member, Pricer) for member in ensemble.members.values())
    assert ensemble.members["xgboost"].random_state == ensemble.random_state == 5
