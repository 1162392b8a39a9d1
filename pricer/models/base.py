"""The interface every model family shares, in the scikit-learn estimator habit.

A pricer is constructed from its ``conf/model/<family>.yaml`` (Hydra ``instantiate``), learns
in ``fit(X, y)`` and prices in ``predict(X)``. ``X`` is a DataFrame of items with a ``text``
column and, optionally, ``title``, ``category`` and ``details``; ``y`` and predictions are
dollars. Nothing else is assumed, so evaluation, tracking and the registry work the same for
every family.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

REQUIRED_COLUMN = "text"
OPTIONAL_COLUMNS = ("title", "category", "details")
INPUT_COLUMNS = (REQUIRED_COLUMN, *OPTIONAL_COLUMNS)


@dataclass
class PriceReport:
    """Prices for a batch of items plus the family's own figures about producing them.

    ``prices`` holds NaN where the pricer gave no answer (an LLM reply without a number, say):
    a failure is counted, never guessed. ``stats`` are logged as run metrics as they are
    (tokens, cost, latency...).
    """

    prices: np.ndarray
    stats: dict[str, float] = field(default_factory=dict)


class Pricer(RegressorMixin, BaseEstimator):
    """Base class: subclasses implement ``fit`` and ``predict``; ``predict_report`` is optional."""

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> Pricer:
        raise NotImplementedError

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def predict_report(self, X: pd.DataFrame) -> PriceReport:
        """Prices plus run figures; families with figures worth logging override this."""
        return PriceReport(prices=np.asarray(self.predict(X), dtype=float))


def as_items(X: pd.DataFrame | pd.Series | list[str]) -> pd.DataFrame:
    """Accept what users naturally pass (a frame, a text column, a list of texts)."""
    if isinstance(X, pd.DataFrame):
        if REQUIRED_COLUMN not in X.columns:
            raise ValueError(f"items need a {REQUIRED_COLUMN!r} column, got {list(X.columns)}")
        frame = X
    else:
        frame = pd.DataFrame({REQUIRED_COLUMN: list(X)})
    frame = frame.copy()
    for column in OPTIONAL_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    frame[REQUIRED_COLUMN] = frame[REQUIRED_COLUMN].fillna("").astype(str)
    return frame
