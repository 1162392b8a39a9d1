"""Small pieces of the wording every message shares."""

from __future__ import annotations

import math
import unicodedata


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """'1 family', '3 families', '0 runs': the count with its noun in the right number."""
    if n == 1:
        return f"{n} {noun}"
    if plural is None:
        plural = (
            noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"
        )
    return f"{n} {plural}"


def columns_wide(text: str) -> int:
    """How many terminal columns ``text`` takes: East Asian wide characters (日本語, most
    emoji) take two, combining marks none."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def left_aligned(rows: list[list[str]]) -> list[str]:
    """Rows of words as lines, each column left-aligned (pandas right-aligns), two spaces
    between columns, nothing trailing.

    Padded to the columns a cell takes on a terminal, not its characters: a run named in
    Japanese took twice the columns it was padded for, and its status and result stood under
    the next column's header.
    """
    widths = [max(map(columns_wide, column)) for column in zip(*rows, strict=True)]
    return [
        "  ".join(
            cell + " " * (width - columns_wide(cell))
            for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]


def interval(low: float, high: float, around: float) -> str:
    """An interval in whole dollars that holds the figure it is shown around: each end to the
    nearest dollar, widened to the figure's own dollars when rounding left it out ("815-816"
    around $815.50, where rounding each end of [815.50, 815.50] gave "816-816")."""
    lo = min(round(low), math.floor(around))
    hi = max(round(high), math.ceil(around))
    return f"{lo:,}-{hi:,}"
