"""The interface every model family shares, in the scikit-learn estimator habit.

A pricer is constructed from its ``conf/model/<family>.yaml`` (Hydra ``instantiate``), learns
in ``fit(X, y)`` and prices in ``predict(X)``. ``X`` is a DataFrame of items with a ``text``
column and, optionally, ``title``, ``category`` and ``details`` (and in ``fit`` the
``drawn_like_test`` flag, ``LIKE_TEST_COLUMN``); ``y`` and predictions are dollars. Nothing
else is assumed, so evaluation, tracking and the registry work the same for every family.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import Tags

from pricer.errors import UserError

REQUIRED_COLUMN = "text"
OPTIONAL_COLUMNS = ("title", "category", "details")
INPUT_COLUMNS = (REQUIRED_COLUMN, *OPTIONAL_COLUMNS)
# A training-only column: True for an item drawn the way the test set was (the same sampling
# design; ``data=real`` marks them, see conf/data/real.yaml). ``fit`` may read it where the
# data has it; ``predict`` never sees it. Without it all count alike. pricer.data.items names
# it too: a logged model's code ships without pricer.data.
LIKE_TEST_COLUMN = "drawn_like_test"
TRAINING_COLUMNS = (*INPUT_COLUMNS, LIKE_TEST_COLUMN)


# An answer from outside the model (an LLM's reply, a person's guess) above this many times
# the dearest training price is not a price of this market: a slip ("$49,999,999", "1e9"),
# counted a failure rather than averaged in. 10x leaves room for a real outlier ($9,990 over
# the course's $999 ceiling) while one such slip would otherwise outweigh every other error.
PLAUSIBLE_FACTOR = 10.0


def plausible_ceiling(y: np.ndarray | pd.Series) -> float:
    """The highest answer taken as a price, from the training prices (inf without any)."""
    return PLAUSIBLE_FACTOR * price_range(y)[1]  # inf without any


def price_range(y: np.ndarray | pd.Series) -> tuple[float, float]:
    """The lowest and the highest training price: what a fitted classical pricer answers within.

    A model that learned from $1-999 has no ground to price beyond: a linear family priced a
    listing of "50000 pounds" at $1,454 and one of ten billion at $32,812, and an ensemble
    fitted on 40 items priced a hammer at $53,060.
    """
    prices = np.asarray(y, dtype=float)
    prices = prices[np.isfinite(prices)]
    return (float(prices.min()), float(prices.max())) if prices.size else (0.0, np.inf)


def within(prices: np.ndarray, bounds: tuple[float, float] | None) -> np.ndarray:
    """``prices`` clipped to ``bounds`` (``price_range``); to 0 and above without (a model
    saved before its fit kept the range)."""
    low, high = bounds if bounds is not None else (0.0, np.inf)
    return np.clip(np.asarray(prices, dtype=float), low, high)


@dataclass
class PriceReport:
    """Prices for a batch of items plus the family's own figures about producing them.

    ``prices`` holds NaN where the pricer gave no answer (an LLM reply without a number, say):
    a failure is counted, never guessed. ``stats`` are logged as run metrics as they are
    (tokens, cost, latency...); ``facts`` as run tags (an LLM's ``llm.answered_by``: the
    models its replies said answered).
    """

    prices: np.ndarray
    stats: dict[str, float] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)


class Pricer(RegressorMixin, BaseEstimator):
    """Base class: subclasses implement ``fit`` and ``predict``; ``predict_report`` is optional."""

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> Pricer:
        raise NotImplementedError

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def predict_report(self, X: pd.DataFrame) -> PriceReport:
        """Prices plus run figures; families with figures worth logging override this."""
        return PriceReport(prices=np.asarray(self.predict(X), dtype=float))

    def __sklearn_tags__(self) -> Tags:
        """What every family takes and learns, as scikit-learn reads it (``get_tags``).

        The defaults said numeric 2-D arrays. A pricer takes items: a DataFrame of text
        columns, or a list (a Series) of texts (``as_items``); a bare 2-D array is refused,
        since its columns have no names to say which is the text. The optional columns may
        be missing (NaN, None). It learns from one price per item, each $0 or more
        (``training_prices``). Families override what differs.
        """
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.one_d_array = True
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        tags.target_tags.required = True
        tags.target_tags.positive_only = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False
        return tags


MEMBERS = "members"


class MembersParams:
    """``get_params``/``set_params`` that reach into a ``members`` dict of estimators, as
    scikit-learn's own composites (Pipeline, a ColumnTransformer) reach into their list:
    ``members__xgboost__n_estimators``. A dict is no estimator, so scikit-learn's deep params
    stopped at it, and ``set_params(members__xgboost__n_estimators=7)`` raised AttributeError.
    """

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params = super().get_params(deep=deep)  # type: ignore[misc]
        if deep:
            for name, member in (params.get(MEMBERS) or {}).items():
                if hasattr(member, "get_params"):
                    params[f"{MEMBERS}__{name}"] = member
                    for key, value in member.get_params(deep=True).items():
                        params[f"{MEMBERS}__{name}__{key}"] = value
        return params

    def set_params(self, **params: Any) -> Any:
        nested = {key: params.pop(key) for key in list(params) if key.startswith(f"{MEMBERS}__")}
        super().set_params(**params)  # type: ignore[misc]
        for key, value in nested.items():
            name, _, setting = key.removeprefix(f"{MEMBERS}__").partition("__")
            if name not in self.members:  # type: ignore[attr-defined]
                known = ", ".join(self.members)  # type: ignore[attr-defined]
                raise ValueError(f"no member {name!r} to set {key} on (members: {known})")
            if setting:
                self.members[name].set_params(**{setting: value})  # type: ignore[attr-defined]
            else:
                self.members[name] = value  # type: ignore[attr-defined]
        return self


def as_items(X: pd.DataFrame | pd.Series | list[str]) -> pd.DataFrame:
    """Accept what users naturally pass (a frame, a text column, a list of texts)."""
    if isinstance(X, pd.DataFrame):
        if REQUIRED_COLUMN not in X.columns:
            raise ValueError(f"items need a {REQUIRED_COLUMN!r} column, got {list(X.columns)}")
        frame = X
    elif isinstance(X, np.ndarray) and X.ndim != 1:
        # Each row would have become one "text", its cells printed as a list, and priced.
        raise ValueError(
            f"items are a DataFrame with a {REQUIRED_COLUMN!r} column or a list of texts, "
            f"not a {X.ndim}-D array of shape {X.shape}"
        )
    else:
        frame = pd.DataFrame({REQUIRED_COLUMN: list(X)})
    frame = frame.copy()
    for column in OPTIONAL_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
        else:
            frame[column] = _json_as_text(frame[column])
    frame[REQUIRED_COLUMN] = frame[REQUIRED_COLUMN].fillna("").astype(str)
    return frame


def _json_as_text(values: pd.Series) -> pd.Series:
    """A column's JSON objects and lists as their JSON text, the form the data files hold.

    A request to the served model (``{"details": {"Item Weight": "12 pounds"}}``) reaches the
    pricer with the dict itself, and the families read a column as ``str``: Python's repr, in
    single quotes, which no details pattern matches: the item was priced, silently, as if it
    had no details (tests/serving/test_serve.py). ``pricer predict`` sent JSON text already,
    and curation writes the details with ``json.dumps``, as here.
    """
    if values.dtype != object:
        return values
    nested = values.map(lambda value: isinstance(value, dict | list))
    if not nested.any():
        return values
    return values.where(~nested, values[nested].map(json.dumps))


def training_items(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of curated training items that ``fit`` receives: ``TRAINING_COLUMNS``."""
    return frame[[column for column in TRAINING_COLUMNS if column in frame.columns]]


# -- items a pricer cannot price -----------------------------------------------------------------
SHOWN_PROBLEMS = 10  # rows named in an error message; the rest are counted


class UnusableItems(UserError, ValueError):
    """Items without usable text: every family would answer them with a confident guess.

    ``problems`` names each bad row (its 0-based position in the batch), ``rows`` holds the
    positions. For a person's file the numbering can start at 1 with another noun
    (``first=1, noun="item"``: "item 3: empty text").
    """

    def __init__(
        self, problems: list[tuple[int, str]], total: int, *, first: int = 0, noun: str = "row"
    ) -> None:
        self.rows = [row for row, _ in problems]
        self.problems = [f"{noun} {row + first}: {reason}" for row, reason in problems]
        shown = "; ".join(self.problems[:SHOWN_PROBLEMS])
        more = len(problems) - SHOWN_PROBLEMS
        super().__init__(
            f"{len(problems)} of {total} items have no usable text ({shown}"
            + (f"; and {more} more" if more > 0 else "")
            + "): every item needs a description with words in its text column"
        )


def _text_problem(value: Any) -> str | None:
    """Why a text value cannot be priced, or None when it can."""
    # is_scalar first: pd.isna of a list or a dict (a JSON Lines field) is an array, whose
    # truth value raised ValueError (a traceback instead of the item named).
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return "no text (null)"
    if not isinstance(value, str):
        return f"text is a {type(value).__name__} ({value!r:.30}), not words"
    if not value.strip():
        return "empty text"
    if not any(character.isalpha() for character in value):
        return f"text {value.strip()!r:.30} has no words (only numbers or symbols)"
    return None


def unusable_text(X: pd.DataFrame | pd.Series | list[Any]) -> list[tuple[int, str]]:
    """(row position, reason) for every item whose text no family can price.

    Usable text is a string with at least one letter: a null, an empty or blank string, or
    a number ("12.5", 42) describes no product, yet every family would price it with
    confidence (the training mean, in effect: $382.59 for ``""`` from a TF-IDF ridge).
    """
    if isinstance(X, pd.DataFrame):
        if REQUIRED_COLUMN not in X.columns:
            raise ValueError(f"items need a {REQUIRED_COLUMN!r} column, got {list(X.columns)}")
        texts = X[REQUIRED_COLUMN].tolist()
    else:
        texts = list(X)
    problems = ((row, _text_problem(text)) for row, text in enumerate(texts))
    return [(row, reason) for row, reason in problems if reason is not None]


def usable_text_problems(X: pd.DataFrame | pd.Series | list[Any]) -> list[str]:
    """One line per item without usable text ("row 3: empty text"); empty when all are fine."""
    return [f"row {row}: {reason}" for row, reason in unusable_text(X)]


def require_usable_text(X: pd.DataFrame | pd.Series | list[Any]) -> None:
    """Raise ``UnusableItems`` naming every item without usable text."""
    problems = unusable_text(X)
    if problems:
        raise UnusableItems(problems, total=len(X))


# -- training prices a pricer cannot learn from --------------------------------------------------
class UnusablePrices(UserError, ValueError):
    """Training prices that are no prices (NaN, infinite, negative), or not one per item.

    A ValueError too, as scikit-learn's own check of ``y`` raises, which the pipeline families
    met only after ``log1p`` had turned a negative price into NaN ("Input y contains NaN"); the
    constant family learned a NaN or infinite price and priced every item with it, and the LLM
    families showed such a price to the model as a similar item's.
    """


def _price_problem(price: float) -> str | None:
    """Why a training price cannot be learned from, or None when it can."""
    if np.isnan(price):
        return "no price (NaN)"
    if np.isinf(price):
        return f"price {price}"
    return f"price {price:g} below 0" if price < 0 else None


def training_prices(X: pd.DataFrame | pd.Series | list[Any], y: Any) -> np.ndarray:
    """``y`` as float dollars, one per item of ``X``; ``UnusablePrices`` names what is wrong.

    Every family's ``fit`` starts here, so each refuses the same prices with the same line.
    """
    try:
        prices = np.asarray(y, dtype=float)
    except (TypeError, ValueError) as error:
        raise UnusablePrices(f"training prices must be numbers of dollars ({error})") from None
    if prices.ndim != 1:
        raise UnusablePrices(f"training prices must be one number per item, got {prices.shape}")
    if len(prices) != len(X):
        raise UnusablePrices(
            f"{len(X)} training items but {len(prices)} prices: fit needs one price per item"
        )
    # NaN compares False: it is among the rows that are not finite and >= 0.
    bad = np.flatnonzero(~(np.isfinite(prices) & (prices >= 0)))
    problems = [(int(row), _price_problem(float(prices[row]))) for row in bad]
    if problems:
        shown = "; ".join(f"row {row}: {reason}" for row, reason in problems[:SHOWN_PROBLEMS])
        more = len(problems) - SHOWN_PROBLEMS
        raise UnusablePrices(
            f"{len(problems)} of {len(prices)} training prices are unusable ({shown}"
            + (f"; and {more} more" if more > 0 else "")
            + "): every training item needs a finite price of $0 or more"
        )
    return prices
