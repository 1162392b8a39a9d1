"""Prompt rendering from the YAML templates, and reading prices out of answers."""

from __future__ import annotations

import time

import pytest

from pricer.models.llm.prompts import Neighbour, PromptTemplate, format_price, parse_price

RAG = {
    "system": "S",
    "user": "Examples:\n{examples}\nItem ({category}): {text}",
    "prefill": "Price is $",
    "example": "{text} costs {price}",
}


# Answers as models write them. With the "Price is $" prefill, servers that continue the
# assistant turn (Ollama, vLLM) answer with the number alone; OpenAI writes a sentence.
STATED = [
    ("129.99", 129.99),  # the prefill continued
    ("129.99\n\nThis estimate reflects similar blenders.", 129.99),
    ("1,299.99.", 1299.99),
    (" 45 ", 45.0),
    ("**89.50**", 89.5),
    ("34.99 (based on similar items)", 34.99),
    ("$1,299.99", 1299.99),
    ("Price is $12", 12.0),
    ("Price is $ 7.5.", 7.5),
    ("about 40 dollars", 40.0),
    ("USD 45", 45.0),
    ("Roughly 1,050 USD", 1050.0),
    ("$.99", 0.99),
    ("The price is 23.50", 23.5),
    ("The 2-pack costs $15.99", 15.99),  # the dollar amount, not the pack size
    ("Model 3000 kit: $45", 45.0),  # a model number beside a real price
    ("$29.99 (was $39.99)", 29.99),  # the first amount decides
    ("Similar kits sell for $10-$20; I'd say $15.", 15.0),  # a range passed over for a price
    ("I can't be certain, but I'd estimate around $40.", 40.0),  # a hedge that names a price
    # A stated amount beats a number the answer opens with: a list's "1." or a year was read
    # as the price ($1, $2023) while the answer named $387.06 and $45.
    ("1. Identify the product.\n2. Compare.\nEstimated price: $387.06", 387.06),
    ("2023. Given the model year, I estimate $45", 45.0),
    ("40.\nA small part.", 40.0),  # an opening number still counts when nothing else does
    ("Not $40 - I would say $60", 60.0),  # an amount the answer rejects is not its price
    ("It is not $40; the price is $55", 55.0),
    ("Price is $45 (or \u20ac40)", 45.0),  # the dollar amount decides, another currency aside
    # Dollars and cents in words: the dollars alone were read ($45).
    ("45 dollars and 99 cents", 45.99),
    ("About $45 and 9 cents.", 45.09),
    ("Price is $45 & 99\u00a2", 45.99),
    ("$45 and 50 cents shipping", 45.0),  # cents that open a charge are not the price's
    # A JSON answer is read by its price field (it was no price, or a range's low end).
    ('{"price": 45.99}', 45.99),
    ('```json\n{"price": "$45.99", "confidence": 0.7}\n```', 45.99),
    ('{"estimated_price_usd": 120, "currency": "USD"}', 120.0),
    ('{"price": 45, "priceCurrency": "USD"}', 45.0),  # schema.org's key, naming dollars
    ("[Estimate] $45.99", 45.99),  # a bracket that opens no JSON is text
    # A reasoning model's thoughts (open weights served without a reasoning parser put them
    # in the answer) are not its answer: these read $30, None and $40.
    ("<think>Similar kits cost $30; I guess $40</think>\n\n$45", 45.0),
    ("<think></think>45.99", 45.99),
    ("<thinking>it is $40</thinking> Price is $45", 45.0),
    # A bound is passed over for the amount the answer settles on.
    ("Under $50; I'd say $45", 45.0),
    ("At least $100+, probably $120", 120.0),
    ("Almost $45", 45.0),  # near an amount is an estimate of it, not a bound
    ("About $45 or so", 45.0),
    # The second review's cases (2026-12-06): each was read as the first amount named.
    ("It isn't worth $40; I'd price it at $25.", 25.0),  # a rejected amount, a word between
    ("I wouldn't pay $40 for it; more like $25.", 25.0),
    ("Was $39.99, now $29.99", 29.99),  # a former price is not the answer
    ("Similar ones cost $30, so maybe $35.\n</think>\n\nPrice is $120.00", 120.0),  # no <think>
    # The third review's cases: a conversion beside the dollar price is not its currency
    # (was $60, the Canadian amount).
    ("Price is $45 (CAD $60)", 45.0),
    # "in" names another currency only before one: a place is still dollars.
    ("$45 in USA", 45.0),
    ("Price is $45 in Canada", 45.0),
    ("$45 won\u2019t hurt", 45.0),  # "won" the verb, not the currency
    # A word opening the next line is not the amount's currency: these were no price.
    ("$45\n\nLED lamps like this sell for that.", 45.0),
    ("45.99\nUSB cable, mid-range.", 45.99),
    ("Price is $45 for the RM-200 kit", 45.0),
    # "+" before another amount is a sum or a tolerance, not an open bound: these were $5.
    ("$45 +/- $5", 45.0),
    ("$45 + $5 shipping", 45.0),
    # A rate (per month, per pound, each) is passed over for the item's price it leads to.
    ("$3.99/lb, so $15.96 for the 4 lb bag", 15.96),
    ("$12 per pack, so the 6-pack is $72", 72.0),
    ("$45 / \u20ac40", 45.0),  # a slash before no word opens no rate
    # Former prices, however worded, are passed over as "was $39.99" is: these were $45.
    ("Previously $45, now $60", 60.0),
    ("It used to cost $45, now $60", 60.0),
    ("Last year $45. Now $60.", 60.0),
    ("Launched at $45; today about $60", 60.0),
    ("$20 off the list price, so $79.99", 79.99),  # a difference passed over for the price
    # Shipping or tax beside the price is not the price: these read $5 and $3.
    ("$5 shipping, $45 for the item", 45.0),
    ("Shipping is $5; the item is $45", 45.0),
    ("Taxes $3, total $48", 48.0),
    # Thoughts as other model families mark them: these read the thought's $30.
    ("[THINK]Similar drills cost $30[/THINK]$120", 120.0),  # Magistral
    ("\u25c1think\u25b7Similar drills cost $30\u25c1/think\u25b7$120", 120.0),  # Kimi
    ("<seed:think>Similar drills cost $30</seed:think>$120", 120.0),  # Seed-OSS
    (  # gpt-oss's harmony format, served raw: thoughts in "analysis", the answer in "final"
        "<|channel|>analysis<|message|>Similar drills cost $30.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>$120<|return|>",
        120.0,
    ),
    # An answer that reasons from other amounts to its own: each was read as the first
    # amount named (an example's, a part's), not the one the answer gives as its estimate.
    ("Similar products cost $30. My estimate: $45", 45.0),
    ("Based on similar items priced at $20 and $30, I'd estimate $25.", 25.0),
    ("It retails for $60, but my best guess is $45.", 45.0),
    ("Each is $15, so 3 x $15 = $45", 45.0),
    ("**Comparable:** $30\n**Price:** $45", 45.0),
    ("Price is $45. Yes, $45.", 45.0),  # one amount named twice
    ("$45 \u00b1 $5", 45.0),  # a tolerance beside the price
    ("$45.99\n\nNote: you may find it for $40 on sale.", 45.99),  # the amount it opens with
    ("Not sure, but I would estimate $45", 45.0),  # a hedge that still names its price
    ("The average price is $30, so I'd estimate $45", 45.0),
    ("N/A, but roughly $45", 45.0),
]
NO_PRICE = [
    "I can't price the model 3000X kit",  # issue 10 repro: was $3000
    "-5",  # issue 10 repro: was 5
    "I'm sorry, I cannot determine a price for the Acme 500 series drill.",
    "I cannot price the $5 gift card bundle without more details.",  # amount in a refusal
    "$-12.00",
    "-$5",
    "0.00",
    "I'd say $0",
    "$10 - $20",
    "10-20 dollars",
    "between $10 and $20",
    "Somewhere from 15 to 25 USD.",
    "12 pack",  # a count, not a price
    "3000X",  # a model name continuing the prefill
    "5 inches wide",
    "$1.2k",  # a number with a unit glued on is not read in part
    "$1 299",  # nor one with a space-separated thousands group (not $1)
    "50% off",
    "I cannot tell.",
    "no idea, sorry",
    "Price is $",
    "Price is $" + "9" * 400,  # beyond a float: was inf, which crashed the evaluation
    "Not $40.",
    # A list cut short (max_tokens) before the amount it would have named: "1." is a marker.
    "1. Identify the product type and brand",
    "2) Look at similar",
    # Another currency, or cents, is not dollars: these were read as $45, $4500, $4599, $99.
    "Price is 45 euros",
    "The price is 45 EUR",
    "costs 45 GBP",
    "Price is 4500 JPY",
    "Price is 45 Canadian dollars",
    "$45 CAD",
    "$45 AUD",
    "Price is 4599 cents",
    "Price is 99\u00a2",
    "45.99 cents",
    "$1'299.00",  # an apostrophe thousands separator (Swiss): was $1
    "$1\u2019299.00",
    # Ranges written with a slash, a tilde or "up to": were their first amount.
    "$10/$20",
    "$10~$20",
    "from $10 up to $20",
    # Bounds bound the price without naming it: these were read as $45 (or $15.99).
    "under $45",
    "Price is less than $45.",
    "It costs over $45",
    "at least $45",
    "no more than 45 dollars",
    "I'd put it above $45",
    "upwards of $45",
    "$45+",
    "$45 or more",
    "$45 and up",
    "$15.99 at most",
    "from $45",
    # JSON that names no single dollar price: was the first amount, or is ambiguous.
    '{"min_price": "$10", "max_price": "$20"}',
    '{"price": {"min": 10, "max": 20}}',
    '{"price": [10, 20]}',
    '{"price": 45, "currency": "EUR"}',
    # ... however the currency's key is written: were $45.
    '{"price": 45, "Currency": "EUR"}',
    '{"price": 45, "currency_code": "EUR"}',
    '{"price": 45, "priceCurrency": "CAD"}',
    '{"price": "$45", "price": "$90"}',  # two prices under one key: was the last, $90
    '{"price": 45, "currency": "USD", "currency": "EUR"}',
    '{"price_cents": 4599}',
    '{"price": -5}',
    '{"price": true}',
    '{"price": 4',  # JSON cut short
    "[45, 50]",
    "<think>\nOkay, a drill. Maybe $120",  # cut by max_tokens while thinking: no answer yet
    "<think>It is $40</think>",  # thoughts and no answer
    # Alternatives are no choice, however they are joined: these were read as $5 or $10.
    "Maybe $5, or $50.",
    "I can't be certain, but I'd say $5, or maybe $50.",
    "I'm not sure: it could be $5 or it could be $50.",
    "$10 through $20",
    # An amount with a multiplier word is not read in part (was $1.2 and $1.5).
    "Price is $1.2 thousand",
    "About $1.5 million",
    # Multipliers the list missed, plural or short: were $1.5, 45, $2 and $45.
    "Price is $1.5 hundred",
    "Price is 45 hundred",
    "About $2 millions",
    "$45 mil",
    # Other currencies, by code or by name: were 45, 450, 45, 45.
    "Price is 45 PLN",
    "Price is $450 rubles",  # as the "Price is $" prefill continues
    "Price is $45 kr",
    "Price is 45 zloty",
    "$45 (CAD)",
    # Another currency after the amount, as an adjective or after "in": were $45.
    "Price is $45 Canadian",
    "45 dollars Canadian",
    "Price is $45 Cdn",
    "Price is 45 in euros",
    "Price is $45 in Australian dollars",
    # Currencies by names, signs and abbreviations the list missed, and a percentage: were 45.
    "Price is 45 z\u0142",
    "Price is 45 Rs.",
    "Price is 45 R$",
    "Price is 45 RM",
    "Price is 45 lei",
    "Price is 45 reais",
    "Price is 45 quid",
    "Price is 45 bitcoin",
    "Price is 45 %",
    "Price is $1.299",  # a European thousands group (1,299) or a price to a tenth of a cent
    "Similar kits cost $30, so maybe $35.\n</think>",  # thoughts only, the opening tag cut
    "The shipping cost is $5",  # a charge alone is no price (was $5)
    # Cut by max_tokens while thinking, in the other families' marks: were $30.
    "[THINK]Similar drills cost $30",
    "<|channel|>analysis<|message|>Similar drills cost $30. Maybe",
    # Another currency named before the amount: were $60, $60 and $45.
    "CAD $60",
    "Price is CAD 60",
    "Approximately AUD $45",
    # A rate prices a period or a unit, not the item as sold: these were $45, $45, $2.50,
    # $3.99 and $0.50 ("$45/month" was read as $45 on purpose, as no range: it is no price).
    "$45/month",
    "Price is 45 per month",
    "$2.50 each",
    "$3.99 per pound",
    "Price per ounce: $0.50",
    "$45 a month",
    "$19.99 monthly",
    # A difference from another price is no price: these were $45.
    "$45 off",
    "Save $45",
    "a $45 discount",
    "It is $45 cheaper than the Pro model",
    "About $45 more than the base model",
    # Several amounts, none given as the answer's own: each was read as its first amount.
    "Example 1 is $30 and example 2 is $60, so this one is about $45.",
    "Each is $15, so the 3-pack is $45",
    "MSRP $60. Street price $45.",
    "45.99\n\nSimilar items cost around $50",  # the prefill's number, then another
    "$10 and $20",
    "$45 (or $60)",
    "Price is $45.\nPrice is $60.",
    "The average price is $30. This one: $45",  # another price named as a price
    # A refusal in other words, beside an amount it does not give as its own: were $30.
    "Price: unknown (similar items ~$30)",
    "N/A - comparable items cost $30",
    "Not enough information; comparable products cost $30.",
    "I have no idea, but similar items cost $30",
    "Hard to say; similar items are $30.",
    "",
    None,
]


@pytest.mark.parametrize(("answer", "price"), STATED)
def test_an_answer_that_states_a_price_is_read(answer: str, price: float) -> None:
    assert parse_price(answer) == pytest.approx(price)


@pytest.mark.parametrize("answer", NO_PRICE)
def test_refusals_names_ranges_negatives_and_zero_are_no_price(answer: str | None) -> None:
    assert parse_price(answer) is None


def test_messages_have_system_user_and_prefill_in_order() -> None:
    template = PromptTemplate.from_config(
        {"system": "sys", "user": "How much? {text}", "prefill": "Price is $", "example": None}
    )
    messages = template.messages({"text": "A red mug {with braces}"})
    assert messages == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "How much? A red mug {with braces}"},
        {"role": "assistant", "content": "Price is $"},
    ]


def test_examples_are_rendered_with_formatted_prices_in_order() -> None:
    template = PromptTemplate.from_config(RAG)
    neighbours = [Neighbour("blue mug", 12.5, 0.9), Neighbour("green mug", 1234.0, 0.5)]
    user = template.user_message({"text": "red mug", "category": None}, neighbours)
    assert user == (
        "Examples:\nblue mug costs $12.50\n\ngreen mug costs $1234.00\nItem (): red mug"
    )


def test_validation_catches_template_mistakes() -> None:
    with pytest.raises(ValueError, match="unknown field"):
        PromptTemplate.from_config({**RAG, "user": "{text} {colour}"}).validate(False)
    with pytest.raises(ValueError, match="must contain \\{text\\}"):
        PromptTemplate.from_config({**RAG, "user": "{title}"}).validate(False)
    with pytest.raises(ValueError, match="exactly when retrieval"):
        PromptTemplate.from_config(RAG).validate(with_examples=False)
    with pytest.raises(ValueError, match="exactly when retrieval"):
        PromptTemplate.from_config({**RAG, "user": "{text}"}).validate(with_examples=True)
    with pytest.raises(ValueError, match="missing"):
        PromptTemplate.from_config({"user": "{text}"})
    PromptTemplate.from_config(RAG).validate(with_examples=True)


def test_format_price_matches_the_fine_tuning_answer_format() -> None:
    assert format_price(3) == "$3.00"
    assert parse_price(f"Price is {format_price(1234.5)}") == 1234.5


def test_a_long_answer_full_of_amounts_is_read_in_linear_time() -> None:
    # Each amount searched all the text before it: 24,000 characters took 13 s, holding
    # the event loop (and so the timeouts of every call in flight).
    answer = "$1.5 or " * 3000 + "I'd say $45"
    started = time.perf_counter()
    assert parse_price(answer) == 45.0
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("opening", ["[", "{"])
def test_a_reply_nested_past_the_json_readers_depth_is_no_price(opening: str) -> None:
    # json.loads raised RecursionError for a reply a thousand brackets deep (a server's
    # garbage; nothing caps a reply when max_tokens is null), which no except caught: the
    # batch's traceback instead of one item without a price.
    assert parse_price(opening * 1000) is None
    assert parse_price(f"{'[' * 1000}$45{']' * 1000}") == 45.0  # read as the text it is
