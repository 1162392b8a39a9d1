"""The human baseline: a person prices the evaluation items in a CSV; this family reads it back.

``python -m pricer.human_export`` writes the items (an ``id`` and the ``text``, no price);
the person adds a ``price`` column. Ids are a hash of the item text, so export and import
agree without any extra file, and a guesses file with ``text`` + ``price`` works as well.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from pricer.errors import ConfigError, UserError
from pricer.files import replaced_atomically
from pricer.models.base import Pricer, PriceReport, as_items, plausible_ceiling, training_prices
from pricer.prices import parse_price
from pricer.wording import counted

ID_LENGTH = 16  # hex digits: collisions among a few thousand items are out of the question


class GuessesError(UserError, ValueError):
    """No guesses file where the config says, or one without the columns it needs."""


class ExportError(UserError, OSError):
    """The export cannot be written where ``output_path`` says."""


def item_id(text: str) -> str:
    """A stable id for an item: the start of the SHA-256 of its text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:ID_LENGTH]


def export_items(items: pd.DataFrame, path: str | Path, overwrite: bool = False) -> Path:
    """Write the items a person should price: ``id``, ``text`` and an empty ``price``.

    A file there that is anything but an untouched export (prices typed in, columns added or
    renamed, not a table at all) is someone's work: it is kept unless ``overwrite``. The file
    is replaced whole or not at all."""
    frame = as_items(items)
    table = pd.DataFrame({"id": frame["text"].map(item_id), "text": frame["text"], "price": ""})
    path = Path(path)
    work = None if overwrite else _someones_work(path, list(table.columns))
    if work:
        raise UserError(f"{path} {work}; move it, or export again with overwrite=true")
    try:
        with replaced_atomically(path) as temporary:
            table.to_csv(temporary, index=False)
    except OSError as error:  # a full disk, a read-only folder: the old file is left as it was
        raise ExportError(f"cannot write {path}: {error.strerror or error}") from None
    return path


def _someones_work(path: Path, columns: list[str]) -> str | None:
    """What makes an existing file more than an untouched export with ``columns``; None if
    nothing does (or there is no file, or an empty one)."""
    try:
        existing = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return None
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError):
        return "is not an export pricer wrote"
    added = [str(column) for column in existing.columns if column not in columns]
    if added:
        return f"has columns pricer did not write: {', '.join(added)}"
    if list(existing.columns) != columns:
        return f"has not the columns pricer wrote ({', '.join(columns)})"
    typed = int((existing["price"].str.strip() != "").sum())
    return f"holds {counted(typed, 'price')} a person typed" if typed else None


# Why an item got no guess (``human.failures.<reason>``, as an LLM family's ``llm.failures.``):
# a run that fails for too many says which, where it said "no reason reported".
NOT_IN_SHEET = "not_in_sheet"  # no row of the sheet names it (a sheet for other items)
BLANK = "blank"  # its row's price was left empty
UNREADABLE = "unreadable"  # its price is no single amount in range, or it has two
FAILURE_REASONS = (NOT_IN_SHEET, BLANK, UNREADABLE)


# "1.299": a thousands group written the European way (1,299, as "12,99" is 12.99) or a price
# to a tenth of a cent, which no one types; read as $1.30, it was an error of $1,297 on the
# person's record. The LLM answers' reading passes it over too (pricer.models.llm.prompts).
_THOUSANDS_OR_MILLS = re.compile(r"\$?\s*\d{1,3}\.\d{3}")


@dataclass(frozen=True)
class Sheet:
    """What a guesses file says: the guesses by item id, how many written prices were no
    price (``read_guesses``), the ids those were written for, and every id it names."""

    guesses: dict[str, float]
    unreadable: int
    slipped: frozenset[str]
    listed: frozenset[str]


def read_guesses(path: str | Path, ceiling: float = math.inf) -> Sheet:
    """Guesses by item id from a CSV with ``id`` or ``text``, and ``price``, and which written
    prices were no price. A blank price is no guess; one that is not a single amount
    above zero and at most ``ceiling`` ("12,99", "-5", "0", "1e9", "inf") is unreadable, and
    is no guess either: a slip is not averaged in as a price. So are the prices of an item
    written twice with different prices (the same price twice is one guess).

    A row with both names its item by each: its id, and the id of its text. In the sheet
    pricer wrote they are the same; a spreadsheet that turned an all-digit id into a number
    ("1.23457E+15") or padded it with spaces left the item without its guess, while its text
    still named it. A row whose id and text name two items gives both its price, so a sheet
    whose columns were sorted apart has its items priced twice differently: no guess."""
    # Each a pandas traceback: an empty file, another encoding, a quote left open.
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise GuessesError(f"{path}: no guesses, it is empty") from None
    except UnicodeDecodeError:
        raise GuessesError(f"{path}: it is not UTF-8 text; save it as CSV (UTF-8)") from None
    except pd.errors.ParserError as error:
        reason = str(error).splitlines()[0]
        raise GuessesError(f"{path}: it is not a CSV table ({reason})") from None
    if "price" not in table.columns or not {"id", "text"} & set(table.columns):
        raise GuessesError(
            f"{path}: a guesses file needs a price column and an id or text column, "
            f"got {list(table.columns)}"
        )
    # A text left blank (the long column cleared to keep the sheet small) names no item: its
    # id alone does, and all such rows must not read as one item priced many ways.
    names = [
        table[column].str.strip()
        if column == "id"
        else table[column].map(lambda text: item_id(text) if text.strip() else "")
        for column in ("id", "text")
        if column in table.columns
    ]
    keys = [frozenset(key for key in row if key) for row in zip(*names, strict=True)]
    written_for: dict[str, list[tuple[int, float]]] = {}
    slipped: set[str] = set()
    unreadable_rows: set[int] = set()
    for row, (named, written) in enumerate(zip(keys, table["price"], strict=True)):
        if not written.strip():
            continue
        price, _ = parse_price(written)  # the item files' reading: "$1,299.99", not "12,99"
        if _THOUSANDS_OR_MILLS.fullmatch(written.strip()):
            price = None
        if price is None or not 0 < price <= ceiling:
            unreadable_rows.add(row)
            slipped |= named
        else:
            for key in named:
                written_for.setdefault(key, []).append((row, price))
    # An item priced twice differently (two people's files joined, a row pasted twice and
    # edited once) has no one guess: the last row read was taken, silently, as the person's.
    guesses: dict[str, float] = {}
    for key, entries in written_for.items():
        if len({price for _, price in entries}) == 1:
            guesses[key] = entries[0][1]
        else:
            slipped.add(key)
            unreadable_rows |= {row for row, _ in entries}
    return Sheet(guesses, len(unreadable_rows), frozenset(slipped), frozenset().union(*keys))


class HumanPricer(Pricer):
    """Prices items from a person's guesses; an item without a guess is a failure (NaN)."""

    def __init__(
        self,
        guesses_path: str,
        seconds_per_item: float | None = None,
        hourly_usd: float | None = None,
    ) -> None:
        self.guesses_path = guesses_path
        # The person's time, if someone noted it: the family's cost and latency. Unknown
        # otherwise, never the milliseconds it takes to read the file back.
        self.seconds_per_item = seconds_per_item
        self.hourly_usd = hourly_usd

    def _check_time(self) -> None:
        for name in ("seconds_per_item", "hourly_usd"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number of its unit, got {value}")

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> HumanPricer:
        self._check_time()
        path = Path(self.guesses_path)
        if not path.is_file():
            raise GuessesError(
                f"no guesses at {path}: export the items with pricer human_export (the same "
                "data= as this run), add prices, save it there (or set model.guesses_path)"
            )
        # Kept in the model: the logged model stands alone.
        ceiling = plausible_ceiling(training_prices(X, y))
        sheet = read_guesses(path, ceiling)
        self.guesses_, self.unreadable_ = sheet.guesses, sheet.unreadable
        # Sorted lists, not sets: a logged model's file holds only types its loader trusts.
        self.slipped_, self.listed_ = sorted(sheet.slipped), sorted(sheet.listed)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_report(X).prices

    def predict_report(self, X: pd.DataFrame) -> PriceReport:
        check_is_fitted(self, "guesses_")
        ids = as_items(X)["text"].map(item_id)
        prices = np.array([self.guesses_.get(i, np.nan) for i in ids], dtype=float)
        missing = int(np.isnan(prices).sum())
        stats = {
            "human.guesses": float(len(prices) - missing),
            "human.missing": float(missing),
            # In the whole file, not only these items: a person sees it as slips to correct.
            "human.unreadable": float(getattr(self, "unreadable_", 0)),
            **self._failures(ids[np.isnan(prices)]),
            **self._time_figures(),
        }
        return PriceReport(prices, stats)

    def _failures(self, unguessed: pd.Series) -> dict[str, float]:
        """Why each item without a guess has none, by reason (``FAILURE_REASONS``); none for
        a model logged before the sheet's ids were kept."""
        if not hasattr(self, "listed_") or not hasattr(self, "slipped_"):
            return {}
        listed, slipped = set(self.listed_), set(self.slipped_)
        counts = dict.fromkeys(FAILURE_REASONS, 0)
        for key in unguessed:
            reason = UNREADABLE if key in slipped else BLANK if key in listed else NOT_IN_SHEET
            counts[reason] += 1
        return {f"human.failures.{reason}": float(n) for reason, n in counts.items()}

    def _time_figures(self) -> dict[str, float]:
        seconds = getattr(self, "seconds_per_item", None)  # absent from models logged before
        hourly = getattr(self, "hourly_usd", None)
        per_1k = seconds * hourly / 3.6 if seconds is not None and hourly is not None else math.nan
        return {
            "human.seconds_per_item": math.nan if seconds is None else float(seconds),
            "human.cost_per_1k_items_usd": per_1k,  # 1,000 items x seconds x hourly / 3,600
        }
