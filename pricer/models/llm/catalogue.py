"""The model catalogue (``conf/llm/catalogue.yaml``): what pricer knows about each chat model.

The YAML is checked against the dataclasses below with OmegaConf's structured configs: an
unknown key (``trainig``), a missing one or a value of the wrong type fails at load with
OmegaConf's own one-line message naming the key. ``Catalogue.lookup`` finds a model's entry
by name, alias or date-less name; fine-tuned models (``ft:<base>:...``) get their base's facts
and the fine-tuned price. ``ModelEntry.flat`` is the entry as flat strings for run tags, with
"unknown" for every fact not known.

The frontier config builds a ``ModelCatalogue`` from a path (``_target_`` + ``path``), so a
run's params record where the facts came from rather than the ~400 facts themselves.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional  # noqa: UP035  (OmegaConf reads typing generics)

from omegaconf import OmegaConf

from pricer.paths import CONFIG_DIR
from pricer.settings import ConfigError, Settings

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
NO_TIER = "none"  # model.tier=null: no tier asked for, so its limits are not unknown
DEFAULT_PATH = "llm/catalogue.yaml"  # relative to conf/
TAG_PREFIX = "llm.model."
# "gpt-4o-mini-2024-07-18", "claude-sonnet-4-20250514"
_DATE_SUFFIX = re.compile(r"-\d{4}-?\d{2}-?\d{2}$")
_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")
WEIGHTS = ("open", "closed")
# The tags of every LLM run, in order (ModelEntry.flat): what a person compares models on.
FACT_KEYS = (
    "catalogue_name",
    "provider",
    "weights",
    "licence",
    "released",
    "knowledge_cutoff",
    "parameters_b",
    "context_window",
    "price_input_usd_per_m",
    "price_output_usd_per_m",
    "price_training_usd_per_m",
    "tier",
    "tier_rpm",
    "tier_tpm",
    "source",
    "checked",
)


@dataclass
class Price:
    """USD per million tokens."""

    input: float
    output: float
    training: Optional[float] = None  # noqa: UP045  (fine-tunable models only)


@dataclass
class RateLimit:
    """One tier's limits: requests and tokens per minute (None: no limit of that kind)."""

    rpm: Optional[int] = None  # noqa: UP045
    tpm: Optional[int] = None  # noqa: UP045


def parse_date(value: str | None, *, end_of_month: bool = True) -> dt.date | None:
    """'2024-06-01' -> that day; '2024-06' -> its last day (a cut-off month includes all of it)."""
    if value is None:
        return None
    if not _DATE.match(value):
        raise ValueError(f"expected a date YYYY-MM or YYYY-MM-DD, got {value!r}")
    parts = [int(part) for part in value.split("-")]
    if len(parts) == 3:
        return dt.date(*parts)
    year, month = parts
    day = calendar.monthrange(year, month)[1] if end_of_month else 1
    return dt.date(year, month, day)


@dataclass
class ModelEntry:
    provider: str
    weights: str  # "open" | "closed"
    licence: str
    released: Optional[str]  # noqa: UP045
    knowledge_cutoff: Optional[str]  # noqa: UP045
    parameters_b: Optional[float]  # noqa: UP045  (billions; None where not published)
    context_window: Optional[int]  # noqa: UP045
    price: Price
    source: str
    checked: str
    rate_limits: Dict[str, RateLimit] = field(default_factory=dict)  # noqa: UP006
    aliases: List[str] = field(default_factory=list)  # noqa: UP006

    def __post_init__(self) -> None:
        if self.weights not in WEIGHTS:
            raise ConfigError(f"weights must be one of {WEIGHTS}, got {self.weights!r}")
        for name in ("released", "knowledge_cutoff", "checked"):
            parse_date(getattr(self, name))  # raises on a malformed date

    @property
    def cutoff_date(self) -> dt.date | None:
        """The last day the model may know about (end of the cut-off month)."""
        return parse_date(self.knowledge_cutoff)

    def limits(self, tier: str | None) -> RateLimit | None:
        return None if tier is None else self.rate_limits.get(tier)

    def flat(self, name: str, tier: str | None) -> dict[str, str]:
        """The entry as run tags (``llm.model.*``); absent facts read "unknown"."""
        limits = self.limits(tier) or RateLimit()
        values = (
            name,
            self.provider,
            self.weights,
            self.licence,
            self.released,
            self.knowledge_cutoff,
            self.parameters_b,
            self.context_window,
            self.price.input,
            self.price.output,
            self.price.training,
            tier,
            limits.rpm,
            limits.tpm,
            self.source,
            self.checked,
        )
        tags = {f"{TAG_PREFIX}{k}": _text(v) for k, v in zip(FACT_KEYS, values, strict=True)}
        return tags | _no_tier(tier)


@dataclass
class FineTunedPrice:
    price: Price
    source: str
    checked: str


@dataclass
class Catalogue(Settings):
    models: Dict[str, ModelEntry]  # noqa: UP006
    fine_tuned: Dict[str, FineTunedPrice] = field(default_factory=dict)  # noqa: UP006

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any]) -> Catalogue:
        """Validate a mapping (the YAML's content) against the schema: a one-line
        ``ConfigError`` naming the key."""
        try:
            catalogue = super().from_config(mapping)
        except ValueError as error:  # a __post_init__ check (weights, a date)
            if isinstance(error, ConfigError):
                raise
            raise ConfigError(f"Catalogue: {error}") from None
        missing = sorted(set(catalogue.fine_tuned) - set(catalogue.models))
        if missing:
            raise ConfigError(f"fine_tuned lists base models not in the catalogue: {missing}")
        return catalogue

    def _names(self) -> dict[str, str]:
        """Lower-cased name or alias -> catalogue name."""
        names = {name.lower(): name for name in self.models}
        for name, entry in self.models.items():
            names |= {alias.lower(): name for alias in entry.aliases}
        return names

    def lookup(self, model: str) -> tuple[str, ModelEntry] | None:
        """(catalogue name, entry) for a model name as sent to the server, or None."""
        names = self._names()
        if model.startswith("ft:"):
            base = _DATE_SUFFIX.sub("", model.split(":")[1]).lower()
            if base not in names or names[base] not in self.fine_tuned:
                return None
            base_name = names[base]
            tuned = self.fine_tuned[base_name]
            base_entry = self.models[base_name]
            price = dataclasses.replace(tuned.price, training=base_entry.price.training)
            entry = dataclasses.replace(
                base_entry, price=price, source=tuned.source, checked=tuned.checked
            )
            return f"ft:{base_name}", entry
        for candidate in (model.lower(), _DATE_SUFFIX.sub("", model).lower()):
            if candidate in names:
                return names[candidate], self.models[names[candidate]]
        return None


class CatalogueNotFound(ConfigError, FileNotFoundError):
    """The catalogue path names no file."""


def load_catalogue(path: str | Path = DEFAULT_PATH) -> Catalogue:
    """The catalogue YAML at ``path`` (relative paths: under conf/), validated."""
    full = Path(path)
    if not full.is_absolute():
        full = CONFIG_DIR / full
    if not full.is_file():
        raise CatalogueNotFound(f"model catalogue not found: {full}")
    return Catalogue.from_config(OmegaConf.load(full))


class ModelCatalogue:
    """The catalogue file, loaded and validated: what ``model.catalogue`` instantiates.

    A plain class around ``Catalogue`` rather than the dataclass itself: the config node holds
    a path, not the schema's fields, so the family's constructor check must not read it as one.
    """

    def __init__(self, path: str = DEFAULT_PATH) -> None:
        self.path = str(path)
        self.entries = load_catalogue(path)

    def lookup(self, model: str) -> tuple[str, ModelEntry] | None:
        return self.entries.lookup(model)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelCatalogue) and self.entries == other.entries

    def __repr__(self) -> str:
        return f"ModelCatalogue({self.path!r})"


def unknown_entry(model: str, tier: str | None) -> dict[str, str]:
    """The tags of a model missing from the catalogue: every fact "unknown"."""
    tags = {f"{TAG_PREFIX}{key}": UNKNOWN for key in FACT_KEYS}
    tags[f"{TAG_PREFIX}tier"] = _text(tier)
    return tags | _no_tier(tier)


def _no_tier(tier: str | None) -> dict[str, str]:
    """With no tier chosen (``model.tier=null``) its tags read "none": nothing was asked, so
    nothing is unknown."""
    keys = ("tier", "tier_rpm", "tier_tpm")
    return {} if tier is not None else {f"{TAG_PREFIX}{key}": NO_TIER for key in keys}


def _text(value: Any) -> str:
    if value is None or value == "":
        return UNKNOWN
    return f"{value:g}" if isinstance(value, float) else str(value)
