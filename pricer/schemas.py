"""The schemas of the config groups: what Hydra checks keys and types against while composing.

``pricer.configs`` registers each as ``schema_<group>`` (``curation``, ``eval``, ``tradeoff``,
``validation``, ``tracking``, ``registry``, promote's ``candidates``) and each data source's as
``schema_data_<option>``, which the group's or source's YAML extends; the library builds the
same classes from the composed config (``Settings.from_config``). They live here, together and
apart from the code they configure, because every app imports them before Hydra composes: this
module needs only the standard library, numpy and ``pricer.settings``, so a typo on the command
line is reported in 0.5-0.8 s rather than after the 3.6-5.8 s that pandas, scikit-learn,
matplotlib and MLflow took to import (``python -m benchmarks.startup``;
``tests/apps/test_startup.py`` keeps it so).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from pricer.settings import ConfigError, Settings, seed_problem

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class CleaningSettings(Settings):
    """How a raw record becomes an item (``curation.items`` in the config)."""

    config_node: ClassVar[str] = "curation.items"

    min_price: float
    max_price: float
    min_chars: int
    max_words: int
    part_number_min_length: int
    drop_detail_keys: list[str]

    def __post_init__(self) -> None:
        if not 0 <= self.min_price < self.max_price:
            raise ValueError(
                f"curation.items: need 0 <= min_price < max_price, got "
                f"{self.min_price} and {self.max_price}"
            )
        if self.max_words < 1 or self.min_chars < 0:
            raise ValueError("curation.items: max_words must be >= 1 and min_chars >= 0")


def _check_seed(seed: int) -> None:
    if problem := seed_problem(seed):
        raise ValueError(f"seed {problem}")


@dataclass(frozen=True)
class SampleSettings(Settings):
    """``curation.sample`` in the config."""

    config_node: ClassVar[str] = "curation.sample"

    enabled: bool
    take_all_from: float
    max_per_slot: int
    category_weights: dict[str, float]
    default_weight: float
    seed: int

    def __post_init__(self) -> None:
        _check_seed(self.seed)
        if self.max_per_slot < 1:
            raise ValueError(f"curation.sample.max_per_slot must be >= 1, got {self.max_per_slot}")
        weights = [self.default_weight, *self.category_weights.values()]
        if any(weight <= 0 for weight in weights):
            raise ValueError(f"curation.sample: category weights must be > 0, got {weights}")


# The smallest training set pricer fits on. The text families drop words seen in fewer than
# ``min_df`` items (up to 5 in conf/model and conf/hparams_search); with fewer than twice that
# many items a word must be in half of them to count, and scikit-learn fails with a message
# about max_df and min_df. Ten items is a floor against mistakes, not a recommendation.
MIN_TRAIN_ITEMS = 10


@dataclass(frozen=True)
class SplitSettings(Settings):
    """``curation.split`` in the config: sizes of the test and train sets and the seed."""

    config_node: ClassVar[str] = "curation.split"

    test_size: int
    train_size: int | None
    seed: int

    def __post_init__(self) -> None:
        _check_seed(self.seed)
        if self.test_size < 1:
            raise ValueError(f"curation.split.test_size must be >= 1, got {self.test_size}")
        # 0 left no training item, and 1 to 9 too few: scikit-learn's traceback once curation
        # was done. One floor, the one item files and a split are held to.
        if self.train_size is not None and self.train_size < MIN_TRAIN_ITEMS:
            raise ValueError(
                f"curation.split.train_size must be >= {MIN_TRAIN_ITEMS} (the fewest training "
                f"items pricer fits on) or null (every other item), got {self.train_size}"
            )


@dataclass(frozen=True)
class CurationConfig(Settings):
    """``curation``: how raw records become the curated split (conf/curation/default.yaml)."""

    config_node: ClassVar[str] = "curation"

    cache_dir: str | None
    items: CleaningSettings
    sample: SampleSettings
    split: SplitSettings


@dataclass(frozen=True)
class HitThresholds:
    """When an estimate counts as a hit (green) or near miss (orange).

    An item is a hit when its absolute error is strictly below `hit_dollars` OR strictly
    below `hit_fraction` of the true price; likewise for near misses. No defaults: the values
    live in conf/eval/default.yaml.
    """

    hit_dollars: float
    hit_fraction: float
    near_dollars: float
    near_fraction: float

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"HitThresholds.{f.name} must be finite and >= 0, got {value!r}")
        # A near miss must be at least as loose as a hit, otherwise colours contradict each other.
        if self.near_dollars < self.hit_dollars or self.near_fraction < self.hit_fraction:
            raise ValueError(f"near thresholds must be >= hit thresholds, got {self}")


@dataclass(frozen=True)
class EvalSettings(Settings):
    """Settings of one evaluation: the schema of conf/eval/default.yaml.

    `size` is for the caller, who predicts only the first `size` test items (None: all);
    `evaluate` scores whatever it is given.
    """

    config_node: ClassVar[str] = "eval"

    size: int | None
    hit_dollars: float
    hit_fraction: float
    near_dollars: float
    near_fraction: float
    confidence: float
    n_resamples: int
    seed: int
    price_bands: list[float]
    max_failure_rate: float

    def __post_init__(self) -> None:
        _check_seed(self.seed)
        if self.size is not None and self.size < 1:
            raise ValueError(f"size must be >= 1 or null, got {self.size}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.n_resamples < 1:
            raise ValueError(f"n_resamples must be >= 1, got {self.n_resamples}")
        # Each tail of the interval needs a resample of its own: n_resamples=1 logged "95% CI
        # 39-51" around a mae of $50.30 (one resample's mean, widened to hold it), and under
        # 20 the paired test's smallest p-value, 1 / (n_resamples + 1), is over 0.05, so promote
        # could crown no candidate however much better it was.
        tail = (1.0 - self.confidence) / 2.0
        needed = math.ceil(1.0 / tail - 1e-9)
        if self.n_resamples < needed:
            raise ValueError(
                f"n_resamples={self.n_resamples} is too few for a {self.confidence:.4g} "
                f"interval: each of its tails needs a resample, so at least {needed}"
            )
        if not 0.0 <= self.max_failure_rate <= 1.0:
            raise ValueError(f"max_failure_rate must be in [0, 1], got {self.max_failure_rate}")
        edges = np.asarray(self.price_bands, dtype=float)
        if edges.size < 2 or not np.isfinite(edges).all() or (np.diff(edges) <= 0).any():
            raise ValueError(
                f"price_bands must be >= 2 strictly increasing finite edges, got {self.price_bands}"
            )
        self.thresholds  # noqa: B018  (checks the hit and near thresholds now, not at first use)

    @property
    def thresholds(self) -> HitThresholds:
        return HitThresholds(
            self.hit_dollars, self.hit_fraction, self.near_dollars, self.near_fraction
        )

    def band_labels(self) -> list[str]:
        """'$0-25', '$25-50', ...: bands are [low, high), the last one also includes high."""
        edges = self.price_bands
        return [f"${lo:g}-{hi:g}" for lo, hi in itertools.pairwise(edges)]


@dataclass(frozen=True)
class ComputePrice(Settings):
    """What an hour of the machine's CPUs costs: ``cpu_hour_usd`` per CPU, ``cpus`` CPUs (a
    run holds the whole machine while it fits and predicts). The schema of
    ``conf/tradeoff/default.yaml``: ``from_config`` rejects unknown, missing or mistyped keys."""

    config_node: ClassVar[str] = "tradeoff"

    cpu_hour_usd: float
    cpus: int

    def __post_init__(self) -> None:
        # Finite too: an infinite price passed, the families ran, and the trade-off table ended
        # the leaderboard in a traceback (OverflowError) while writing its costs.
        if not (self.cpu_hour_usd > 0 and math.isfinite(self.cpu_hour_usd)):
            raise ConfigError(
                "cpu_hour_usd must be a finite number > 0 (no compute is free), "
                f"got {self.cpu_hour_usd}"
            )
        if self.cpus < 1:
            raise ConfigError(f"cpus must be >= 1, got {self.cpus}")

    def usd(self, seconds: ArrayLike) -> np.ndarray:
        return np.asarray(seconds, dtype=float) / SECONDS_PER_HOUR * self.cpus * self.cpu_hour_usd


@dataclass(frozen=True)
class ValidationSettings(Settings):
    """``validation`` in the train config (conf/validation/default.yaml)."""

    config_node: ClassVar[str] = "validation"

    size: int  # items held out of training; 0: none
    seed: int
    # Draw them from the training rows drawn the way the test set was (``drawn_like_test``:
    # data=real flags the canonical rows), so a sweep ranks trials on the test's distribution.
    like_test: bool = False

    def __post_init__(self) -> None:
        _check_seed(self.seed)
        if self.size < 0:
            raise ValueError(f"validation.size must be >= 0 (0: none), got {self.size}")


@dataclass(frozen=True)
class CandidatesConfig(Settings):
    """``candidates`` in conf/promote.yaml: which training runs promote chooses among."""

    config_node: ClassVar[str] = "candidates"

    experiment: str | None
    family: str | None
    eval_digest: str | None


@dataclass(frozen=True)
class RegistryConfig(Settings):
    """``registry`` (conf/registry/default.yaml): the registered model and its two aliases."""

    config_node: ClassVar[str] = "registry"

    prefix: str
    model_name: str
    champion_alias: str
    challenger_alias: str
    lease_seconds: float
    lease_wait_seconds: float

    def __post_init__(self) -> None:
        # Empty, promote registered "-real", which predict --data real never loads.
        if not self.prefix.strip():
            raise ValueError(f"prefix must not be empty, got {self.prefix!r}")
        # The lease's own margin (pricer.tracking.lease) needs a few seconds to act in.
        if self.lease_seconds < 5:
            raise ValueError(f"lease_seconds must be >= 5, got {self.lease_seconds}")
        if self.lease_wait_seconds < 0:
            raise ValueError(f"lease_wait_seconds must be >= 0, got {self.lease_wait_seconds}")


@dataclass(frozen=True)
class SystemMetricsConfig(Settings):
    """``tracking.system_metrics``: MLflow's CPU/memory sampling of every run."""

    config_node: ClassVar[str] = "tracking.system_metrics"

    enabled: bool
    sampling_interval: float
    samples_before_logging: int

    def __post_init__(self) -> None:
        # MLflow's monitor takes them as they come: an interval of -1 logged 3,672 samples
        # in a 5 s run (one store write each), 0 none at all.
        if not self.sampling_interval > 0:
            raise ValueError(f"sampling_interval must be > 0 seconds, got {self.sampling_interval}")
        if self.samples_before_logging < 1:
            raise ValueError(
                f"samples_before_logging must be >= 1, got {self.samples_before_logging}"
            )


@dataclass(frozen=True)
class HttpRetriesConfig(Settings):
    """``tracking.http``: how long MLflow retries a tracking server that does not answer."""

    config_node: ClassVar[str] = "tracking.http"

    max_retries: int
    backoff_factor: int

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_factor < 0:
            raise ValueError(f"backoff_factor must be >= 0 seconds, got {self.backoff_factor}")


@dataclass(frozen=True)
class TrackingConfig(Settings):
    """``tracking``: where runs go and what they log (conf/tracking/default.yaml)."""

    config_node: ClassVar[str] = "tracking"

    uri: str
    experiment: str
    artifact_location: str | None
    tags: dict[str, str]
    ui_url: str | None
    log_model: bool
    system_metrics: SystemMetricsConfig
    http: HttpRetriesConfig
    trace_llm: bool


@dataclass(frozen=True)
class DataSource(Settings):
    """What every ``data`` option has: the source to read and the name runs give the data."""

    config_node: ClassVar[str] = "data"

    source: str
    name: str


@dataclass  # not frozen: OmegaConf makes a frozen class two levels down a read-only node
class SyntheticPriceModel:
    """``data.generator.price_model``: the keys and types of the generator's price model
    (``pricer.data.synthetic.PriceModel`` adds the range checks, where the meaning is)."""

    type_popularity_exponent: float
    tier_probability: list[float]
    tier_effect: list[float]
    spec_tier_slope: float
    brand_offset_sd: float
    kit_extra_in_tools: float
    pack_share: float
    pack_sizes: list[int]
    pack_probability: list[float]
    pack_elasticity: float
    years: list[int]
    newest_year_weight: float
    reference_year: int
    year_effect: float


@dataclass(frozen=True)
class SyntheticGenerator:
    """``data.generator``: the keyword arguments of ``pricer.data.synthetic.iter_raw_batches``,
    typed here so that ``data.generator.price_noise=abc`` fails while composing, naming the key,
    rather than in numpy once records are drawn (ranges are checked there, before any are)."""

    category_weights: dict[str, float]
    price_noise: float
    min_price: float
    max_price: float
    missing_price_share: float
    messy_price_share: float
    dollar_format_share: float
    junk_share: float
    duplicate_share: float
    price_model: SyntheticPriceModel


@dataclass(frozen=True)
class SyntheticSource(DataSource):
    """``data=synthetic`` (conf/data/synthetic.yaml): the embedded generator of raw records."""

    n_records: int
    seed: int
    batch_size: int
    num_proc: int | None
    generator: SyntheticGenerator

    def __post_init__(self) -> None:
        # Checked by the generator only once the run had started: a ValueError traceback,
        # exit 1, and a FAILED run for a setting typed out of range.
        _check_seed(self.seed)
        if self.n_records < 1:
            raise ValueError(f"n_records must be >= 1, got {self.n_records}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        _check_num_proc(self.num_proc)


def _check_num_proc(num_proc: int | None) -> None:
    # 0 or -2 cleaned in one process and the run recorded data.num_proc=0 (Hugging Face's
    # datasets refuses them for data=amazon, once the download is done).
    if num_proc is not None and num_proc < 1:
        raise ValueError(f"num_proc must be >= 1 (null: every core), got {num_proc}")


@dataclass(frozen=True)
class AmazonSource(DataSource):
    """``data=amazon`` (conf/data/amazon.yaml): the Amazon Reviews 2023 metadata files."""

    dataset: str
    data_files: str
    categories: list[str]
    cache_dir: str | None
    num_proc: int | None
    batch_size: int

    def __post_init__(self) -> None:
        _check_num_proc(self.num_proc)


@dataclass(frozen=True)
class ItemsSource(DataSource):
    """``data=items`` (conf/data/items.yaml): item files (JSON Lines or Parquet; not CSV)."""

    train_paths: list[str]
    like_test_paths: list[str]
    test_paths: list[str]
    test_rows: int | None
    exclude_categories: list[str]
    drop_test_duplicates: bool


@dataclass(frozen=True)
class RealSource(ItemsSource):
    """``data=real``: the real benchmark's item files, found under ``shared_dir``."""

    shared_dir: str

    def __post_init__(self) -> None:
        # The files' paths start ${data.shared_dir}/: empty, they were /pricer_extra_items.jsonl
        # ("item file not found: /pricer_extra_items.jsonl", nothing of the empty setting).
        require_folder_named(self.shared_dir, "data.shared_dir", "the real item files")


@dataclass(frozen=True)
class CuratedSource(ItemsSource):
    """``data=curated``: a split written by ``python -m pricer.curate`` to ``curated_dir``."""

    curated_dir: str

    def __post_init__(self) -> None:
        # Empty, the split's paths were /train.parquet: "item file not found: /train.parquet".
        require_folder_named(
            self.curated_dir, "data.curated_dir", "the split pricer curate wrote (its output_dir)"
        )


def require_folder_named(folder: str, key: str, holding: str) -> None:
    """A data option's folder setting names a folder (``ConfigError`` when it is blank)."""
    if not folder.strip():
        raise ConfigError(f"{key} is empty: point it at the folder holding {holding}")


# A curation chart's most bins: one per dollar of the price range.
MAX_HISTOGRAM_BINS = 1000


# The apps' own keys, beside their groups: conf/<app>.yaml lists ``schema_app_<app>`` after its
# groups, so Hydra types them while composing too (``train_size=abc``, ``overwrite=maybe`` fail
# naming the key; ``overwrite=no`` is false, where it was the string "no", which read as true).
# ``from_root`` checks their ranges, before any work.


@dataclass(frozen=True)
class CurateConfig(Settings):
    """conf/curate.yaml's own keys: where the split is saved and the charts' bins."""

    output_dir: str
    histogram_bins: int

    def __post_init__(self) -> None:
        # 0 failed in numpy's histogram, a traceback once the split had been saved.
        if self.histogram_bins < 1:
            raise ConfigError(f"histogram_bins must be >= 1, got {self.histogram_bins}")
        # 100,000 (a typo's zeros) drew each chart for 107 s, once the split had been saved; a
        # bin per whole-dollar slot is the finest curation's $0.50-$999.49 range has.
        if self.histogram_bins > MAX_HISTOGRAM_BINS:
            raise ConfigError(
                f"histogram_bins must be <= {MAX_HISTOGRAM_BINS} (a bin per dollar of the price "
                f"range), got {self.histogram_bins}"
            )


@dataclass(frozen=True)
class PromoteConfig(Settings):
    """conf/promote.yaml's own keys."""

    retire: bool  # retire the champion (delete its alias, record why) instead of promoting


@dataclass(frozen=True)
class HumanExportConfig(Settings):
    """conf/human_export.yaml's own keys."""

    output_path: str
    overwrite: bool


@dataclass  # not frozen: OmegaConf would not merge values into it (read-only)
class FinetuneHyperparameters:
    """``hyperparameters`` in conf/finetune.yaml: "auto" or a number each (OmegaConf has no
    such union: checked by ``FinetuneConfig``)."""

    n_epochs: Any
    batch_size: Any
    learning_rate_multiplier: Any


@dataclass(frozen=True)
class FinetuneConfig(Settings):
    """conf/finetune.yaml's own keys (the client's and the catalogue's are theirs to check)."""

    seed: int
    base_model: str
    train_size: int
    validation_size: int
    hyperparameters: FinetuneHyperparameters
    suffix: str
    job_id: str | None
    confirm: bool
    poll_seconds: float
    progress: bool
    catalogue: Any  # instantiated: pricer.models.llm.catalogue.ModelCatalogue
    client: Any  # pricer.models.llm.client.ClientSettings

    def __post_init__(self) -> None:
        # train_size=0 or validation_size=-1 uploaded an empty file for a job the server
        # refused; "abc" in a hyperparameter was a traceback once the items had loaded.
        if self.train_size < 1:
            raise ConfigError(f"train_size must be >= 1, got {self.train_size}")
        if self.validation_size < 0:
            raise ConfigError(f"validation_size must be >= 0, got {self.validation_size}")
        if not 0 <= self.poll_seconds < float("inf"):
            raise ConfigError(f"poll_seconds must be a number >= 0, got {self.poll_seconds}")
        hyper = self.hyperparameters
        for name, value, whole in (
            ("n_epochs", hyper.n_epochs, True),
            ("batch_size", hyper.batch_size, True),
            ("learning_rate_multiplier", hyper.learning_rate_multiplier, False),
        ):
            if value == "auto":
                continue
            kinds = (int,) if whole else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or not 0 < value < 1e9:
                wanted = "a whole number >= 1" if whole else "a number > 0"
                raise ConfigError(f"hyperparameters.{name} must be auto or {wanted}, got {value!r}")


APP_SCHEMAS: dict[str, type[Settings]] = {
    "curate": CurateConfig,
    "promote": PromoteConfig,
    "human_export": HumanExportConfig,
    "finetune": FinetuneConfig,
}
