"""Chat prompts rendered from YAML templates, and prices parsed back out of the answers.

A prompt config (``conf/llm/prompt/*.yaml``) has four keys:

- ``system``: the system message (null: none);
- ``user``: the user message, a ``str.format`` template over ``FIELDS``;
- ``prefill``: an assistant message appended after the user turn ("Price is $"), or null.
  Servers that continue a trailing assistant turn (Ollama, vLLM) answer with the number only;
  OpenAI treats it as context. Either way the answer is parsed alone;
- ``example``: how one retrieved neighbour is written into ``{examples}`` (RAG only).

Templates use ``{field}`` rather than ``${field}``: the latter is OmegaConf interpolation.
Prices reach templates already formatted ("$12.50"), so no template writes a dollar sign.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pricer.errors import ConfigError

FIELDS = ("text", "title", "category", "examples")
EXAMPLE_FIELDS = ("text", "price")
PROMPT_KEYS = ("system", "user", "prefill", "example")
EXAMPLE_SEPARATOR = "\n\n"
CONTEXT_CHARS = 80  # text before an amount read for "not", "about", a range's first half

# What counts as an answer (issue 10: a refusal quoting "model 3000X" was read as $3000).
# A price is a number marked as money or as the price, or the number an answer opens with
# (the continuation of the "Price is $" prefill). A number with a letter or another digit
# group glued on ("3000X", "$1.2k", "$1 299") is not read in part. Anything else is no price.
_NUMBER = (
    r"(?P<number>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
    # nothing glued on, no further digit group ("1'299" is Swiss for 1,299, not $1)
    r"(?![\w%]|[.,'\u2019]\d|[ \u00a0\u202f]\d{3}\b)"
)
_SIGN = r"(?P<sign>[-\u2212])?"  # a minus glued to the amount: "-5", "-$5", "$-5"
_CURRENCY = r"(?:US\s?\$|USD\s?\$?|\$)"
# What may stand between a word that qualifies an amount and the amount ("not $40", "was
# USD 40"): every pattern read before an amount ends with it, so that a currency mark added to
# _CURRENCY is one a "not", a bound or a charge also sees through.
_TO_AMOUNT = rf"{_CURRENCY}?\s*$"
_CURRENCY_WORD = r"(?:\$|USD\b|US dollars?\b|dollars?\b|bucks\b)"
_MENTIONS = [
    # "$1,299.99", "USD 45", "US$45", "$ 7.5", "$-5"
    re.compile(rf"(?<![\w.,]){_SIGN}{_CURRENCY}\s*(?P<sign2>[-\u2212])?{_NUMBER}"),
    # "40 dollars", "1,050 USD", "45$"
    re.compile(rf"(?<![\w.,$]){_SIGN}{_NUMBER}\s*{_CURRENCY_WORD}", re.IGNORECASE),
    # "Price is 12", "price: 12", "priced at 12", "costs 12"
    re.compile(
        r"\b(?:price\s*(?:is|:|=|would be)|priced at|costs?(?: is|:)?)\s*"
        r"(?:about|around|approximately|roughly|~)?\s*" + rf"{_SIGN}{_NUMBER}",
        re.IGNORECASE,
    ),
    # Last, and only when none of the above names an amount: the number the answer opens
    # with, followed by nothing, a new line, punctuation or a bracket ("129.99",
    # "129.99\n\nBecause...", "**40**."), not by a word ("12 pack"). A list's "1." or a year
    # opening a sentence reads the same way, so a stated amount anywhere else wins.
    re.compile(
        rf"^\s*[*_\"'`]*{_SIGN}{_NUMBER}"
        r"(?=[*_\"'`]*(?:\s*$|\s*\n|[.;:!?,](?:\s|$)|\s+[-\u2013\u2014(]|\s*\())"
    ),
]
# A range is not a price ("$10-$20", "10 to 20 dollars", "between $10 and $20"): the model
# did not choose, and the midpoint would be our guess, not its answer.
# "$10/$20" and "$10~$20" too; a slash before a word ("$45/month") opens no second amount.
_RANGE_SEPARATOR = r"(?:-|\u2013|\u2014|/|~|up to|to|or)"
# Alternatives joined by words: "$5, or $50", "$5 or maybe $50", "it could be $5 or it could
# be $50", "$10 through $20" (all read as the first amount before).
_ALTERNATIVE = (
    r"(?:,?\s*\b(?:or|through|thru|to)\b"
    r"(?:\s+(?:maybe|perhaps|possibly|even|it\s+(?:could|might|may)\s+be))*)"
)
_AMOUNT = r"(?:\$\s*)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?\s*(?:dollars|USD)?"
_RANGE_BEFORE = re.compile(
    rf"(?:{_AMOUNT}\s*(?:{_RANGE_SEPARATOR}|{_ALTERNATIVE})|between\s+{_AMOUNT}\s*and)"
    r"\s*(?:\$\s*)?$",
    re.IGNORECASE,
)
_RANGE_AFTER = re.compile(
    rf"^\s*(?:{_RANGE_SEPARATOR}|{_ALTERNATIVE})\s*(?:\$\s*)?\d", re.IGNORECASE
)
_BETWEEN = re.compile(r"between\s+(?:\$\s*)?$", re.IGNORECASE)
# A pair of amounts ("$10 and $20", "$45 (or $60)") is no choice either; "45 dollars and 99
# cents" is one amount.
_PAIR_AFTER = re.compile(
    r"^\s*(?:dollars|USD)?\s*(?:and|\(\s*or)\s+(?:\$\s*)?\d+(?:[.,]\d+)*(?![\d.,]|\s*(?:cents?\b|\u00a2))",
    re.IGNORECASE,
)
_PAIR_BEFORE = re.compile(rf"{_AMOUNT}\s*(?:and|\(\s*or)\s*(?:\$\s*)?$", re.IGNORECASE)
# What may come before an amount the answer opens with: markup and a currency mark ("**$45**").
_OPENING = re.compile(rf"\s*[*_\"'`]*\s*{_CURRENCY}?\s*[-\u2212]?")
# An amount followed by another currency, or by cents, is not a dollar price: "Price is 45
# euros" and "$45 CAD" are no price, "Price is 4599 cents" is not $4599. Words that may be a
# unit too ("45 pounds") are passed over all the same: a weight is no price either.
_NOT_DOLLARS = re.compile(
    # On the amount's line: a word opening the next ("$45\n\nLED lamps sell for that",
    # "$45\n\nTL;DR") names no currency of it, and the answer was no price.
    r"^[ \t\u00a0]*\(?[ \t\u00a0]*(?:[\u20ac\u00a3\u00a5\u20b9\u20a9\u00a2]"
    # Any currency code but the dollar's (ISO 4217: three capitals), "(CAD)" too; not one
    # that opens an amount of its own ("$45 (CAD $60)": a conversion beside the price).
    r"|(?-i:(?!USD\b)[A-Z]{3})\b(?!\s*\$?\s*\d)|RMB\b"
    # "in" too ("Price is 45 in euros"), which a code does not get: "$45 in USA" is dollars.
    r"|(?:in\s+)?(?:euros?|pounds?|sterling|yen|yuan|rupees?|francs?|pesos?|cents?|pence|"
    r"rubles?|roubles?|kr|krona|kronor|krone|kroner|zlot(?:y|ys|ych)|lira|lire|baht|ringgit|"
    r"shekels?|dirhams?|riyals?|forint|koruna|lei|leu|rand|naira|dong|rupiah|reais|"
    r"hryvnias?|dinars?|quid|bitcoins?|btc|sats|satoshis?|percent|per cent"
    r"|won(?!['\u2019]))\b"  # "$45 won't break the bank" is dollars
    # Signs and abbreviations written after the amount ("45 z\u0142", "45 Rs", "45 R$"): the
    # capitals as written, so that "rm" or "tl" in a sentence is not taken for one.
    r"|%|z\u0142|K\u010d|(?-i:Ft|Rs\.?|RM|TL|R\$|kn)(?![\w;])"  # not "TL;DR"
    # A multiplier makes it another amount: "$1.2 thousand" is not $1.2, nor "$1.5 hundred",
    # "$2 millions" or "$45 mil" their first number.
    r"|(?:hundreds?|thousands?|millions?|billions?|trillions?|grand|k|m|mil|mn|bn|tn)\b"
    # Another country's dollars, the adjective before or after the word or alone: "$45
    # Canadian", "45 dollars Canadian", "$45 Cdn", "45 in Australian dollars" were $45.
    r"|(?:in\s+|(?:dollars?|bucks)\s+)?(?:(?:canadian|australian|aussie|hong kong|hk|"
    r"singapore|mexican|new zealand|nz|taiwan)(?:\s+dollars?)?|cdn)\b)",
    re.IGNORECASE,
)
# Another currency named before the amount: "CAD $60", "EUR 45", "(AUD $60)" are not dollars.
_NOT_DOLLARS_BEFORE = re.compile(
    r"(?:(?-i:\b(?!USD\b|US\b)[A-Z]{3})|\bRMB|[\u20ac\u00a3\u00a5\u20b9\u20a9])"
    r"\s*\(?\s*(?:\$\s*)?$"
)
# In a refusal ("I can't price the $5 gift card") an amount counts only when the answer
# asserts it ("..., but I'd estimate around $40").
_REFUSAL = re.compile(
    r"\b(?:can'?t|cannot|can not|unable|not able|sorry|don'?t know|do not know|no way|"
    r"impossible|not possible|won'?t|"
    # ... in other words: "Price: unknown (similar items ~$30)" and "N/A - comparable items
    # cost $30" were read as $30, a price the answer declined to give.
    r"unknown|n/a|not enough|insufficient|no idea|not sure|unsure|hard to say|unclear|"
    r"difficult to (?:say|tell|estimate|determine))(?![\w/])",
    re.IGNORECASE,
)
# "1. Identify the item": an opening whole number, a full stop and words on the same line is a
# list's marker, not an answer (a list cut short by max_tokens before the amount it would name).
_LIST_MARKER = re.compile(r"^\d+\.[ \t]+[^\W\d_]")
# "not $40", "isn't $40": an amount the answer rejects is passed over.
_NEGATED = re.compile(
    r"(?:\b(?:not|isn'?t|never)|n't)\s*"
    # "isn't worth $40", "wouldn't pay $40", "would not spend even $40"
    r"(?:(?:worth|pay|paying|spend|spending|cost|costs|be|even|really|quite)\s+){0,3}"
    rf"{_TO_AMOUNT}",
    re.IGNORECASE,
)
# "was $39.99, now $29.99": a former price is passed over for the one the answer gives now.
_FORMER = re.compile(
    r"\b(?:was|were|used to (?:be|cost|sell for|go for)|formerly|originally|previously|"
    rf"last year|at launch|launched at)\s*{_TO_AMOUNT}",
    re.IGNORECASE,
)
# "$1.299": a European thousands group ($1,299) or a price to a tenth of a cent; not read.
_THREE_DECIMALS = re.compile(r"^\d{1,3}\.\d{3}$")
# A bound is not a price either ("under $45", "$45+", "$45 or more"): like a range, it says
# where the price is not, and reading it as $45 would score a guess the model did not make.
# It is passed over, so "Under $50; I'd say $45" is 45.
_BOUND_BEFORE = re.compile(
    r"\b(?:under|below|over|above|less than|lower than|cheaper than|more than|greater than|"
    r"higher than|at most|at least|no more than|no less than|not more than|not less than|"
    r"up to|upwards of|in excess of|max(?:imum)?(?: of)?|min(?:imum)?(?: of)?|"
    rf"starting (?:at|from)|from)\s*{_TO_AMOUNT}",
    re.IGNORECASE,
)
_BOUND_AFTER = re.compile(
    # "+" opens no bound when an amount follows: "$45 + $5 shipping", "$45 +/- $5" (was $5).
    r"^\s*(?:dollars?\b|USD\b)?\s*"
    rf"(?:\+(?!\s*(?:/\s*-\s*)?{_CURRENCY}?\s*\.?\d)"
    r"|(?:or|and) (?:more|less|up|above|below|over|under|higher|lower)\b"
    r"|at (?:most|least)\b|max(?:imum)?\b|min(?:imum)?\b|plus\b)",
    re.IGNORECASE,
)
# A rate is not the item's price: "$45/month", "$45 a month", "$3.99 per pound", "$2.50 each",
# "price per ounce: $0.50" price a period or a unit, not the item as sold (a subscription's
# month, one can of a 12-pack). Passed over like a bound, so "$3.99/lb, so $15.96 for the
# 4 lb bag" is 15.96; a rate alone is no price.
_PERIODS_AND_UNITS = (
    r"(?:month|year|week|day|hour|night|minute|piece|unit|item|pound|lb|ounce|oz|foot|"
    r"yard|meter|metre|gallon|liter|litre|person|user|seat)s?"
)
_RATE_AFTER = re.compile(
    r"^\s*(?:dollars?\b|USD\b|bucks\b)?\s*"
    rf"(?:/\s*[^\W\d_]|per\b|each\b|apiece\b|ea\b|an?\s+{_PERIODS_AND_UNITS}\b"
    r"|(?:monthly|yearly|annually|weekly|daily|hourly|nightly)\b)",
    re.IGNORECASE,
)
_RATE_BEFORE = re.compile(
    rf"\bper\s+[^\W\d_]+(?:\s+[^\W\d_]+)?\s*(?:is|:|=)?\s*{_TO_AMOUNT}",
    re.IGNORECASE,
)
# A difference is not a price: "$45 off", "save $45", "$45 cheaper than the Pro" say how far
# the price is from another, not what it is. Passed over like a bound.
_DIFFERENCE_AFTER = re.compile(
    r"^\s*(?:dollars?\b|USD\b|bucks\b)?\s*(?:off\b|discount|cheaper|in savings|"
    r"(?:more|less|lower|higher)\s+than\b|more expensive|less expensive)",
    re.IGNORECASE,
)
_DIFFERENCE_BEFORE = re.compile(
    # A tolerance too: the "$5" of "$45 +/- $5" is how far off the price may be.
    r"(?:\b(?:save|saves|saving|savings of|discount of|extra|additional|plus or minus|"
    r"give or take)|\+\s*/\s*-|\u00b1)\s*"
    rf"{_TO_AMOUNT}",
    re.IGNORECASE,
)
# Shipping, tax or a deposit is a charge beside the item's price, not it: "$5 shipping, $45
# for the item" is 45, "The shipping cost is $5" no price. Passed over like a bound.
_CHARGE = r"(?:shipping|delivery|postage|handling|s&h|sales tax|tax(?:es)?|deposit)"
_CHARGE_AFTER = re.compile(rf"^\s*(?:dollars?\b|USD\b)?\s*(?:for\s+|in\s+)?{_CHARGE}\b", re.I)
_CHARGE_BEFORE = re.compile(
    rf"\b{_CHARGE}(?:\s+(?:cost|costs|fee|fees|charge|is|are|of|would be|at|about|around))*"
    rf"\s*[:=]?\s*{_TO_AMOUNT}",
    re.IGNORECASE,
)
# Whole dollars and then cents: "45 dollars and 99 cents", "$45 & 99\u00a2" is $45.99 (the
# dollars alone were read, $45). Only where the amount ends: "$45 and 50 cents shipping" adds
# a charge, and is read as the dollars, as it was.
_AND_CENTS = re.compile(
    r"^\s*(?:dollars?\b|bucks\b|USD\b)?\s*(?:and\b|&)?\s*(?P<cents>\d{1,2})\s*"
    r"(?:cents?\b|\u00a2)(?=\s*(?:$|[.,;:!?)\n]))",
    re.IGNORECASE,
)
# In a refusal, an amount the answer still gives as its estimate ("..., but I'd estimate
# around $40", "probably $45"); not one it only states ("similar items cost $30", "is $30").
_ASSERTED = re.compile(
    r"\b(?:estimate[ds]?|about|around|approximately|roughly|likely|probably|say|guess)"
    rf"\s*{_TO_AMOUNT}",
    re.IGNORECASE,
)


# What gives an amount as the answer's own, among several it names: "I'd estimate $45",
# "my best guess is $45", "Price: $45", "I'd say around $45", "3 x $15 = $45"; not another
# item's or another kind of price ("the average price is $30", "similar items' price: $30").
_OTHERS_PRICE = "".join(
    rf"(?<!{word}\s)"
    for word in (
        "average", "typical", "usual", "median", "similar", "comparable", "list", "retail",
        "original", "regular", "market", "msrp", "items'", "items", "products'", "products",
    )
)  # fmt: skip
_ANSWER_CUE = re.compile(
    r"(?:\b(?:estimated?|estimates|estimating|estimation|guess|answer|say|final|"
    rf"{_OTHERS_PRICE}price\s*[*_]*\s*(?:is|:|=|would be|should be|will be)|"
    r"put it at|value it at|go with)"
    r"(?:\s+(?:the|its|this|it'?s|one'?s|item'?s|product'?s))?(?:\s+price)?"
    r"\s*[*_]*\s*(?:of|at|is|to be|would be|should be|will be|:|=)?"
    rf"|=)\s*[*_]*\s*(?:about|around|approximately|roughly|~)?\s*{_TO_AMOUNT}",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Mention:
    start: int  # where the number starts
    end: int
    value: float
    negative: bool
    stated: bool  # named as an amount (currency, "price is"), not only a number opening the answer


def _mentions(answer: str) -> list[_Mention]:
    """Every amount, stated ones first, each in the order the answer gives them."""
    found: dict[int, _Mention] = {}
    for index, pattern in enumerate(_MENTIONS):
        stated = index < len(_MENTIONS) - 1
        for match in pattern.finditer(answer):
            groups = match.groupdict()
            negative = bool(groups.get("sign") or groups.get("sign2"))
            start = match.start("number")
            value = float(match.group("number").replace(",", ""))
            if start not in found or negative:
                seen = found.get(start)
                stated_here = stated or (seen is not None and seen.stated)
                found[start] = _Mention(start, match.end("number"), value, negative, stated_here)
    return sorted(found.values(), key=lambda mention: (not mention.stated, mention.start))


def _before(answer: str, mention: _Mention) -> str:
    """The text just before a mention, where what qualifies it is ("not", "between $10 and",
    "about"). Only that much: searching all of it for each amount took 13 s for an answer of
    24,000 characters and 3,000 amounts, with the event loop, and every call in flight, held."""
    return answer[max(0, mention.start - CONTEXT_CHARS) : mention.start]


def _in_range(before: str, after: str) -> bool:
    """Whether the amount between ``before`` and ``after`` is one end of a range."""
    if _RANGE_BEFORE.search(before) or _PAIR_BEFORE.search(before):
        return True
    opens_range = (
        _RANGE_AFTER.match(after)
        or _PAIR_AFTER.match(after)
        or (_BETWEEN.search(before) and re.match(r"^\s*(?:dollars|USD)?\s*and\b", after, re.I))
    )
    return bool(opens_range)


def parse_price(answer: str | None) -> float | None:
    """The price an answer states, or None when it states none (the ``no_price`` failure).

    Every amount is weighed that is not part of a range, a bound ("under $45") or a rate
    ("$45/month"), and not rejected ("not $40") or former ("was $39.99"): stated ones
    ("$45", "Price is 45") and a bare number opening the answer ("129.99", the "Price is $"
    prefill continued; "1. Look it up" is a list's marker, not 1). When they all name one
    amount, that is the price ("2-pack for $15" is 15). When they name several, the one the
    answer gives as its own ("I'd estimate $45", "Price: $45", "= $45") is; with none or
    more than one so given, there is no price: "Similar items cost $30; I'd estimate $45"
    is 45, and "Each is $15, so the 3-pack is $45" or "$10 and $20" no price, where the first
    amount ($30, $15, $10) was read. A negative, zero or overflowing amount chosen is no
    price, not a clipped one.
    """
    if not answer:
        return None
    answer = _without_thoughts(answer)
    if not answer:
        return None
    is_json, price = _json_price(answer)
    if is_json:
        return price
    refusal = _REFUSAL.search(answer) is not None
    # (its price, None if it is no price; whether the answer gives it as its own)
    candidates: list[tuple[float | None, bool]] = []
    for mention in _mentions(answer):
        before, after = _before(answer, mention), answer[mention.end :]
        if _in_range(before, after) or _NEGATED.search(before) or _FORMER.search(before):
            continue
        # Given as the answer's own: named so ("I'd estimate $45"), or the amount the answer
        # opens with ("$45.99\n\nYou may find it for $40"; a bare number only when alone).
        own = bool(_ANSWER_CUE.search(before)) or (
            mention.stated and _OPENING.fullmatch(answer[: mention.start]) is not None
        )
        if _THREE_DECIMALS.match(answer[mention.start : mention.end]):
            candidates.append((None, own))
            continue
        if _BOUND_BEFORE.search(before) or _BOUND_AFTER.match(after):
            continue
        if _RATE_AFTER.match(after) or _RATE_BEFORE.search(before):
            continue
        if _DIFFERENCE_AFTER.match(after) or _DIFFERENCE_BEFORE.search(before):
            continue
        if _CHARGE_AFTER.match(after) or _CHARGE_BEFORE.search(before):
            continue
        if _NOT_DOLLARS.match(after) or _NOT_DOLLARS_BEFORE.search(before):
            continue
        if not mention.stated and _LIST_MARKER.match(answer[mention.start :]):
            continue
        # A negative or overflowing amount ("9" x 400 is inf), or one a refusal only quotes,
        # is no price: weighed as such, not clipped or passed over.
        unsure = refusal and not (_ASSERTED.search(before) or _ANSWER_CUE.search(before))
        value: float | None = None
        if not (mention.negative or unsure or not 0 < mention.value < math.inf):
            cents = _AND_CENTS.match(after)
            whole = "." not in answer[mention.start : mention.end]
            value = (
                mention.value + int(cents.group("cents")) / 100
                if cents and whole
                else mention.value
            )
        candidates.append((value, own))
    if len({value for value, _ in candidates}) > 1:
        # Several amounts: an example's or a part's price beside the answer ("similar items
        # cost $30"), or alternatives. Only the one the answer gives as its own decides.
        candidates = [pair for pair in candidates if pair[1]]
        if len({value for value, _ in candidates}) != 1:
            return None
    return candidates[0][0] if candidates else None


# A reasoning model's thoughts, in the answer when a server has no reasoning parser (open
# weights on vLLM or an older Ollama): amounts it weighed there are not the one it answers.
# Each model family marks them its own way: <think> (DeepSeek-R1, Qwen3), <seed:think>
# (Seed-OSS), [THINK] (Magistral), \u25c1think\u25b7 (Kimi), and gpt-oss's harmony format, whose
# "analysis" channel holds the thoughts and whose "final" channel the answer.
_THOUGHTS = re.compile(
    r"<(think|thinking|reasoning|seed:think)>.*?(?:</\1>|\Z)"
    r"|\[THINK\].*?(?:\[/THINK\]|\Z)"
    r"|\u25c1think\u25b7.*?(?:\u25c1/think\u25b7|\Z)"
    r"|<\|channel\|>\s*analysis\s*<\|message\|>.*?(?:<\|end\|>|\Z)",
    re.DOTALL | re.IGNORECASE,
)
# What is left of harmony's framing around the final answer, and its end.
_HARMONY_FRAME = re.compile(
    r"(?:<\|start\|>\s*assistant\s*)?<\|channel\|>\s*final\s*<\|message\|>|<\|(?:return|end)\|>"
)


# A server whose chat template opens the block itself (DeepSeek-R1's) sends only its end.
_THOUGHTS_END = re.compile(
    r"</(?:think|thinking|reasoning|seed:think)>|\[/THINK\]|\u25c1/think\u25b7", re.IGNORECASE
)


def _without_thoughts(answer: str) -> str:
    """The answer after any thought blocks; nothing when it was cut while still thinking."""
    answer = _HARMONY_FRAME.sub("", _THOUGHTS.sub("", answer))
    ends = list(_THOUGHTS_END.finditer(answer))
    return answer[ends[-1].end() :].strip() if ends else answer.strip()


# A JSON answer (bare or in a ``` fence) is read by its fields, not scanned as text: the text
# rules would take '{"min_price": "$10", "max_price": "$20"}' for $10.
_FENCE = re.compile(r"^\s*```(?:json)?\s*(?P<body>.*?)\s*```\s*$", re.DOTALL | re.IGNORECASE)
_JSON_PRICE_KEYS = {"price", "price_usd", "estimated_price", "estimated_price_usd", "estimate"}
_JSON_CURRENCY_KEYS = {
    "currency",
    "currency_code",
    "currencycode",
    "price_currency",
    "pricecurrency",
}
_JSON_DOLLARS = {"usd", "$", "us$", "dollars", "us dollars"}


class _Fields(dict[str, Any]):
    """A JSON object that keeps every field as written: a key given twice ('{"price": 45,
    "price": 90}') is two prices, where a dict keeps the last alone (it was read as $90)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs


def _json_price(answer: str) -> tuple[bool, float | None]:
    """(whether the answer is JSON-ish, its price): one price field holding a positive number
    or a price string, in dollars when a ``currency`` is named. An object with no such field,
    or several, a range, a list, or JSON cut short is no price."""
    fenced = _FENCE.match(answer)
    body = (fenced.group("body") if fenced else answer).strip()
    if not body.startswith(("{", "[")):
        return False, None
    try:
        value = json.loads(body, object_pairs_hook=_Fields)
    except (ValueError, RecursionError):  # nested past the reader's depth: a server's garbage
        # An object cut short is JSON without its price; "[Estimate] $45" is text.
        return body.startswith("{"), None
    if not isinstance(value, dict):
        return True, None
    # Any field naming the currency, its key in any case: "Currency", "currency_code" and
    # schema.org's "priceCurrency" naming "EUR" were passed over, the amount read as dollars.
    pairs = value.pairs if isinstance(value, _Fields) else list(value.items())
    currencies = [field for key, field in pairs if str(key).lower() in _JSON_CURRENCY_KEYS]
    if any(str(currency).strip().lower() not in _JSON_DOLLARS for currency in currencies):
        return True, None
    fields = [field for key, field in pairs if str(key).lower() in _JSON_PRICE_KEYS]
    if len(fields) != 1:
        return True, None
    (field,) = fields
    if isinstance(field, str) and not field.lstrip().startswith(("{", "[")):
        return True, parse_price(field)
    if isinstance(field, int | float) and not isinstance(field, bool) and 0 < field < math.inf:
        return True, float(field)
    return True, None


def format_price(price: float) -> str:
    """How prices are written in prompts and fine-tuning answers: "$1234.50"."""
    return f"${price:.2f}"


def template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


@dataclass(frozen=True)
class Neighbour:
    """A training item shown to the model as an example."""

    text: str
    price: float
    similarity: float


@dataclass(frozen=True)
class PromptTemplate:
    system: str | None
    user: str
    prefill: str | None
    example: str | None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PromptTemplate:
        values = dict(cfg)
        unknown = sorted(set(values) - set(PROMPT_KEYS))
        missing = sorted(set(PROMPT_KEYS) - set(values))
        if unknown or missing:
            raise ConfigError(
                f"prompt keys must be {list(PROMPT_KEYS)}; unknown {unknown}, missing {missing}"
            )
        return cls(**values)

    def validate(self, with_examples: bool) -> None:
        """Fail at fit time, not item by item: unknown fields, or examples that go nowhere."""
        fields = template_fields(self.user)
        unknown = sorted(fields - set(FIELDS))
        if unknown:
            raise ConfigError(f"prompt.user uses unknown field(s) {unknown}; allowed: {FIELDS}")
        if "text" not in fields:
            raise ConfigError("prompt.user must contain {text}: the item to price")
        if with_examples != ("examples" in fields):
            raise ConfigError(
                "prompt.user must contain {examples} exactly when retrieval is configured "
                f"(retrieval {'on' if with_examples else 'off'})"
            )
        if with_examples:
            if not self.example:
                raise ConfigError(
                    "retrieval needs prompt.example, e.g. '{text}\\nPrice is {price}'"
                )
            unknown = sorted(template_fields(self.example) - set(EXAMPLE_FIELDS))
            if unknown:
                raise ConfigError(
                    f"prompt.example uses unknown field(s) {unknown}; allowed: {EXAMPLE_FIELDS}"
                )

    def user_message(
        self, item: Mapping[str, Any], neighbours: Sequence[Neighbour] | None = None
    ) -> str:
        examples = ""
        if neighbours and self.example:
            examples = EXAMPLE_SEPARATOR.join(
                self.example.format(text=n.text, price=format_price(n.price)) for n in neighbours
            )
        return self.user.format(
            text=item["text"],
            title=_or_empty(item.get("title")),
            category=_or_empty(item.get("category")),
            examples=examples,
        )

    def messages(
        self, item: Mapping[str, Any], neighbours: Sequence[Neighbour] | None = None
    ) -> list[dict[str, str]]:
        """The chat messages for one item, prefill included."""
        messages = [{"role": "user", "content": self.user_message(item, neighbours)}]
        if self.system:
            messages.insert(0, {"role": "system", "content": self.system})
        if self.prefill:
            messages.append({"role": "assistant", "content": self.prefill})
        return messages


def _or_empty(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):  # None or NaN
        return ""
    return str(value)
