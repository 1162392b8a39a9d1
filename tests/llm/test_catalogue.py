"""The model catalogue: schema validation of the real file, lookups, and the tags of a run."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
import yaml
from hydra.utils import instantiate

from pricer.models.llm.catalogue import (
    FACT_KEYS,
    TAG_PREFIX,
    UNKNOWN,
    ModelCatalogue,
    load_catalogue,
    parse_date,
)
from pricer.paths import CONFIG_DIR
from pricer.settings import ConfigError, check_arguments

REAL = CONFIG_DIR / "llm/catalogue.yaml"


def raw() -> dict:
    return yaml.safe_load(REAL.read_text())


def write(tmp_path: Path, content: dict) -> Path:
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


def test_the_real_catalogue_is_valid_and_complete() -> None:
    catalogue = load_catalogue()
    assert len(catalogue.models) >= 20
    weights = {entry.weights for entry in catalogue.models.values()}
    assert weights == {"open", "closed"}
    for name, entry in catalogue.models.items():
        assert parse_date(entry.checked) is not None and entry.source.startswith("https://")
        if entry.weights == "closed":  # a hosted API: priced per token, rate limited
            assert entry.price.input > 0 and entry.price.output > 0, name
            assert "tier1" in entry.rate_limits, name
        else:  # self-hosted open weights: a public parameter count, no per-token price
            assert entry.parameters_b is not None and entry.price.input == 0, name
    # Every model the old price table knew is still priced, fine-tuned ones included.
    for name in ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5"):
        assert catalogue.lookup(name) is not None
    for base in ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano"):
        assert catalogue.lookup(f"ft:{base}-2025-01-01:org:x:id") is not None


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda c: c["models"]["gpt-4o"]["price"].update(trainig=1.0), ConfigError, "trainig"),
        (lambda c: c["models"]["gpt-4o"].update(licence_=1), ConfigError, "licence_"),
        (lambda c: c["models"]["gpt-4o"].pop("licence"), ConfigError, "licence"),
        (lambda c: c["models"]["gpt-4o"]["price"].update(input="cheap"), ConfigError, "cheap"),
        (lambda c: c["models"]["gpt-4o"].update(weights="ajar"), ConfigError, "weights"),
        (lambda c: c["models"]["gpt-4o"].update(released="May 2024"), ConfigError, "May 2024"),
        (lambda c: c["fine_tuned"].update(nope=c["fine_tuned"]["gpt-4o"]), ConfigError, "nope"),
    ],
)
def test_a_bad_entry_fails_at_load_naming_the_problem(tmp_path, edit, error, message) -> None:
    content = raw()
    edit(content)
    with pytest.raises(error, match=message):
        load_catalogue(write(tmp_path, content))


def test_missing_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="model catalogue not found"):
        load_catalogue(tmp_path / "nope.yaml")


def test_lookup_by_name_date_suffix_alias_and_fine_tune() -> None:
    catalogue = load_catalogue()
    assert catalogue.lookup("gpt-4o-mini-2024-07-18")[0] == "gpt-4o-mini"
    assert catalogue.lookup("claude-sonnet-4-20250514")[0] == "claude-sonnet-4"
    assert catalogue.lookup("llama3.1:8b")[0] == "llama-3.1-8b-instruct"  # Ollama's tag
    assert catalogue.lookup("Qwen/Qwen2.5-7B-Instruct")[0] == "qwen2.5-7b-instruct"  # vLLM's
    name, tuned = catalogue.lookup("ft:gpt-4o-mini-2024-07-18:org:pricer:abc123")
    base = catalogue.models["gpt-4o-mini"]
    assert name == "ft:gpt-4o-mini"
    assert (tuned.price.input, tuned.price.output) == (0.30, 1.20)  # fine-tuned inference
    assert tuned.price.training == base.price.training == 3.0  # training is the base's
    assert tuned.knowledge_cutoff == base.knowledge_cutoff and tuned.licence == base.licence
    assert catalogue.lookup("my-local-model") is None
    assert catalogue.lookup("ft:unknown-base:org:x:id") is None


def test_a_cutoff_month_means_its_last_day() -> None:
    assert parse_date("2023-10") == dt.date(2023, 10, 31)
    assert parse_date("2024-02") == dt.date(2024, 2, 29)
    assert parse_date("2024-09-30") == dt.date(2024, 9, 30)
    assert load_catalogue().models["gpt-4o-mini"].cutoff_date == dt.date(2023, 10, 31)


def test_a_pricer_knows_its_models_cutoff(make_pricer) -> None:
    assert make_pricer().knowledge_cutoff() == dt.date(2023, 10, 31)
    assert make_pricer(model="gpt-4.1-mini-2025-04-14").knowledge_cutoff() == dt.date(2024, 6, 30)
    assert make_pricer(model="qwen2.5:7b").knowledge_cutoff() is None  # not published
    assert make_pricer(model="my-local-model").knowledge_cutoff() is None


def test_every_run_gets_the_entry_as_tags(compose_conf) -> None:
    cfg = compose_conf("train", ["model=frontier"])
    check_arguments(cfg.model, "model")  # the catalogue node passes the constructor check
    pricer = instantiate(cfg.model)
    assert isinstance(pricer.catalogue, ModelCatalogue)
    assert pricer.catalogue.path == "llm/catalogue.yaml"  # logged as a path, not 400 params
    tags = pricer.catalogue_entry()
    assert list(tags) == [f"{TAG_PREFIX}{key}" for key in FACT_KEYS]
    assert tags["llm.model.catalogue_name"] == "gpt-4o-mini"
    assert tags["llm.model.weights"] == "closed"
    assert tags["llm.model.knowledge_cutoff"] == "2023-10"
    assert tags["llm.model.price_input_usd_per_m"] == "0.15"
    assert (tags["llm.model.tier"], tags["llm.model.tier_rpm"]) == ("tier1", "500")
    assert tags["llm.model.parameters_b"] == UNKNOWN  # not published
    assert all(isinstance(value, str) and value for value in tags.values())


def test_a_model_missing_from_the_catalogue_runs_with_a_warning(
    compose_conf, api_key, make_items, caplog
) -> None:
    cfg = compose_conf(
        "train",
        ["model=frontier", "model.model=my-local-model", "model.api_key_env=PRICER_TEST_LLM_KEY"],
    )
    pricer = instantiate(cfg.model)
    items = make_items(3, seed=0)
    with caplog.at_level(logging.WARNING):
        pricer.fit(items, items["price"])
    assert "my-local-model" in caplog.text and "not in the model catalogue" in caplog.text
    tags = pricer.catalogue_entry()
    assert tags["llm.model.tier"] == "tier1"
    assert {value for key, value in tags.items() if key != "llm.model.tier"} == {UNKNOWN}
    assert not pricer.pacing_limits().active  # no known limits: not paced


def test_a_tier_the_entry_lacks_is_refused_unless_pacing_is_set(
    compose_conf, api_key, make_items, caplog
):
    # A typo (tier9) used to warn and send every call unpaced.
    settings = ["model=frontier", "model.tier=tier9", "model.api_key_env=PRICER_TEST_LLM_KEY"]
    pricer = instantiate(compose_conf("train", settings).model)
    items = make_items(3, seed=0)
    with pytest.raises(ConfigError, match=r"no rate-limit tier 'tier9': name one of \['tier1'"):
        pricer.fit(items, items["price"])
    # With its own limits the run is still paced: the missing tier is only worth a warning.
    paced = instantiate(compose_conf("train", [*settings, "model.pacing.rpm=100"]).model)
    with caplog.at_level(logging.WARNING):
        paced.fit(items, items["price"])
    assert "tier9" in caplog.text and "pacing to model.pacing" in caplog.text
    assert paced.pacing_limits().active


def test_no_tier_reads_none_not_unknown(compose_conf) -> None:
    # "unknown" means the catalogue does not know; with tier=null nothing was asked.
    pricer = instantiate(compose_conf("train", ["model=frontier", "model.tier=null"]).model)
    tags = pricer.catalogue_entry()
    assert [tags[f"llm.model.{key}"] for key in ("tier", "tier_rpm", "tier_tpm")] == ["none"] * 3
    missing = instantiate(
        compose_conf("train", ["model=frontier", "model.model=my-own", "model.tier=null"]).model
    ).catalogue_entry()
    assert missing["llm.model.tier"] == "none" and missing["llm.model.provider"] == UNKNOWN
