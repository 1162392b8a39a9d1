"""What every Hydra app registers before composing: resolvers and the structured configs.

The settings dataclasses (``pricer.schemas``) are stored in Hydra's ConfigStore as the
``schema`` of their config group, and each data option's as ``schema/data/<option>``; each
group's YAML lists its schema first in its defaults, so Hydra checks keys and types while
composing (an unknown key, or ``eval.size=abc``, fails naming the key before any data loads).
Import this module (for its side effect) before ``@hydra.main`` or ``compose``.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from pricer import paths
from pricer.schemas import (
    AmazonSource,
    ComputePrice,
    CuratedSource,
    CurationConfig,
    EvalSettings,
    ItemsSource,
    RealSource,
    SyntheticSource,
    TrackingConfig,
    ValidationSettings,
)
from pricer.settings import Settings

SCHEMAS: dict[str, type[Settings]] = {
    "curation": CurationConfig,
    "eval": EvalSettings,
    "tracking": TrackingConfig,
    "tradeoff": ComputePrice,
    "validation": ValidationSettings,
}
# Each data option's schema, under ``schema/data``: conf/data/<option>.yaml extends it
# (``/schema/data/<option>@_here_`` in its defaults), so a typo in a data key or
# ``data.n_records=abc`` fails while composing, like the groups above.
DATA_SCHEMAS: dict[str, type[Settings]] = {
    "amazon": AmazonSource,
    "curated": CuratedSource,
    "items": ItemsSource,
    "real": RealSource,
    "synthetic": SyntheticSource,
}


def schema_node(schema: type[Settings]) -> DictConfig:
    """The schema as a config node YAML can be merged onto.

    Settings are frozen dataclasses, which OmegaConf makes read-only nodes; the YAML of the
    group and the command line must still set their values while composing.
    """
    node = OmegaConf.structured(schema)
    OmegaConf.set_readonly(node, False)
    _inherit_flags(node)
    return node


def _inherit_flags(parent: DictConfig) -> None:
    """Nested settings nodes carry their own read-only flag: make them inherit the parent's."""
    for key in parent:
        child = parent._get_node(key)
        if isinstance(child, DictConfig):
            OmegaConf.set_readonly(child, None)
            _inherit_flags(child)


def register() -> None:
    """Register the resolvers and every group's schema (idempotent)."""
    paths.register_resolvers()
    store = ConfigStore.instance()
    for group, schema in SCHEMAS.items():
        store.store(group=group, name="schema", node=schema_node(schema))
    for option, schema in DATA_SCHEMAS.items():
        store.store(group="schema/data", name=option, node=schema_node(schema))


register()
