"""What ``--help`` offers: every option of every config group is a real choice."""

from __future__ import annotations

from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import pricer.configs  # noqa: F401 (registers the schemas, as every app does)
from pricer.paths import CONFIG_DIR


def offered_options() -> dict[str, list[str]]:
    """Each app config group and its options, as Hydra's ``--help`` lists them."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        assert hydra is not None
        groups = [g for g in hydra.list_all_config_groups() if not g.startswith("hydra")]
        return {group: hydra.config_loader.get_group_options(group) for group in groups}


def test_help_offers_no_schema_as_an_option() -> None:
    offered = offered_options()
    # The groups whose YAML extends a registered schema are still there, with their options.
    assert {"curation", "data", "eval", "tracking", "tradeoff", "validation"} <= set(offered)
    assert "real" in offered["data"]
    schemas = {
        group: [option for option in options if "schema" in option]
        for group, options in offered.items()
        if "schema" in group or any("schema" in option for option in options)
    }
    assert schemas == {}


def test_help_offers_no_shared_base_as_an_option() -> None:
    # A base other configs extend (every search's sweeper and validation settings) cannot run
    # on its own: `hparams_search=<base>` would be a sweep over nothing, so --help must not
    # offer it.
    offered = offered_options()
    assert "xgboost" in offered["hparams_search"]
    bases = {
        group: [option for option in options if option.startswith("_")]
        for group, options in offered.items()
    }
    assert {group: options for group, options in bases.items() if options} == {}
