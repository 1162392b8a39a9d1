"""Prompt rendering from the YAML templates, and reading prices out of answers."""

from __future__ import annotations

import pytest

from pricer.models.llm.prompts import Neighbour, PromptTemplate, format_price, parse_price

RAG = {
    "system": "S",
    "user": "Examples:\n{examples}\nItem ({category}): {text}",
    "prefill": "Price is $",
    "example": "{text} costs {price}",
}


@pytest.mark.parametrize(
    ("answer", "price"),
    [
        ("$1,299.99", 1299.99),
        ("about 40 dollars", 40.0),
        ("Price is $12", 12.0),
        ("12.50", 12.5),
        ("Price is $ 7.5.", 7.5),
        ("The 2-pack costs $15.99 at most", 15.99),  # the dollar amount, not the pack size
        ("Roughly 1,050 USD", 1050.0),
        ("$.99", 0.99),
        ("I'd say $0", 0.0),  # a stated zero is an answer; evaluation judges it
    ],
)
def test_parse_price_reads_the_stated_amount(answer: str, price: float) -> None:
    assert parse_price(answer) == pytest.approx(price)


@pytest.mark.parametrize("answer", ["I cannot tell.", "", None, "Price is $", "no idea, sorry"])
def test_an_answer_without_a_number_is_no_price_not_zero(answer: str | None) -> None:
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
