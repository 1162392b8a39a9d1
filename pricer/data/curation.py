"""Balanced sampling by price slot and the train/test split, as the course curated its data.

Raw Amazon items are dominated by cheap products. The course evened the price distribution:
every whole-dollar price is a slot; slots at or above a price are taken whole; a crowded
slot keeps at most N items, drawn with category weights so that the over-represented
category (Automotive) is thinned out. Then a seeded shuffle and a split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pricer.errors import ConfigError
from pricer.schemas import SampleSettings, SplitSettings


def price_slots(prices: pd.Series) -> np.ndarray:
    """Whole-dollar slot of each price ($0.50-$1.49 is slot 1, and so on)."""
    return np.floor(prices.to_numpy(dtype=float) + 0.5).astype(int)


def balanced_sample(items: pd.DataFrame, settings: SampleSettings) -> pd.DataFrame:
    """Keep every item in expensive slots; cap crowded cheap slots with category weights.

    Weighted sampling without replacement is done for all slots at once with the
    Efraimidis-Spirakis keys (``-log(u) / w``, smallest first): the same distribution as
    drawing slot by slot with probabilities proportional to the weights, in one sort.
    """
    if not settings.enabled or items.empty:
        return items.reset_index(drop=True)
    rng = np.random.default_rng(settings.seed)
    slots = price_slots(items["price"])
    weights = category_weights(items["category"], settings)
    keys = -np.log(rng.random(len(items))) / weights
    order = np.lexsort((keys, slots))
    rank_in_slot = pd.Series(slots[order]).groupby(slots[order]).cumcount().to_numpy()
    keep_sorted = (slots[order] >= settings.take_all_from) | (rank_in_slot < settings.max_per_slot)
    kept = np.sort(order[keep_sorted])  # back to source order, so the sample is order-stable
    return take_sorted_rows(items, kept).reset_index(drop=True)


def category_weights(categories: pd.Series, settings: SampleSettings) -> np.ndarray:
    """Each item's sampling weight: looked up once per distinct category, not per item."""
    codes, uniques = pd.factorize(categories.astype("string").fillna(""))
    table = np.array(
        [settings.category_weights.get(name, settings.default_weight) for name in uniques],
        dtype=float,
    )
    return table[codes]


# Rows per block in ``take_sorted_rows``.
TAKE_BLOCK_ROWS = 100_000


def take_sorted_rows(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """``frame.iloc[rows]`` for ascending ``rows``, with memory bounded by one block.

    Items arrive as many Arrow-backed chunks (one per cleaned batch); a take across a column of
    many chunks first concatenates them all, a full copy of every text. Taking block by block
    copies at most one block's worth, and the pieces are joined without copying.
    """
    rows = np.asarray(rows, dtype=np.intp)
    if len(frame) <= TAKE_BLOCK_ROWS or len(rows) == 0:
        return frame.iloc[rows]
    starts = np.arange(0, len(frame), TAKE_BLOCK_ROWS)
    bounds = np.searchsorted(rows, np.append(starts, len(frame)))
    pieces = [
        frame.iloc[start : start + TAKE_BLOCK_ROWS].iloc[rows[low:high] - start]
        for start, low, high in zip(starts, bounds[:-1], bounds[1:], strict=True)
        if high > low
    ]
    return pd.concat(pieces)


def split_items(items: pd.DataFrame, settings: SplitSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Shuffle once with the seed; the test set comes first, training takes what follows."""
    if len(items) <= settings.test_size:
        raise ConfigError(
            f"only {len(items)} curated items: not enough for a test set of "
            f"{settings.test_size} plus a training set; lower curation.split.test_size "
            "or provide more data"
        )
    order = np.random.default_rng(settings.seed).permutation(len(items))
    test_rows = order[: settings.test_size]
    train_end = None if settings.train_size is None else settings.test_size + settings.train_size
    train_rows = order[settings.test_size : train_end]
    return (
        items.iloc[train_rows].reset_index(drop=True),
        items.iloc[test_rows].reset_index(drop=True),
    )
