"""Reading a written price ("$1,299.99", "12.99", "None"): one reading for the item files
curation cleans and for the guesses a person types (pricer.models.human).

Here, not in pricer.data, because a logged model ships its own code without the data package
(pricer.tracking.model), and the human family reads guesses with it.
"""

from __future__ import annotations

import re

MISSING_PRICE = "missing_price"
INVALID_PRICE = "invalid_price"
MISSING_PRICE_STRINGS = frozenset({"", "none", "nan", "null", "n/a", "na", "-"})
# One amount: optional currency sign, digits with optional thousands commas, optional cents.
PRICE = re.compile(r"^(?:US\s?)?\$?\s*((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)$")


def parse_price(value: object) -> tuple[float | None, str | None]:
    """Parse an Amazon price string ("$1,299.99", "12.99", "None").

    Returns ``(price, None)`` or ``(None, reason)``; a range such as "$5 - $9" or any text
    that is not a single amount is invalid rather than guessed.
    """
    if value is None:
        return None, MISSING_PRICE
    # A JSON true or false is no amount, though Python counts it as the integer 1 or 0.
    if isinstance(value, bool):
        return None, INVALID_PRICE
    if isinstance(value, (int, float)):
        if value != value:  # NaN
            return None, MISSING_PRICE
        return (float(value), None) if value >= 0 else (None, INVALID_PRICE)
    text = str(value).strip()
    if text.lower() in MISSING_PRICE_STRINGS:
        return None, MISSING_PRICE
    match = PRICE.match(text)
    if match is None:
        return None, INVALID_PRICE
    return float(match.group(1).replace(",", "")), None
