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

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FIELDS = ("text", "title", "category", "examples")
EXAMPLE_FIELDS = ("text", "price")
PROMPT_KEYS = ("system", "user", "prefill", "example")
EXAMPLE_SEPARATOR = "\n\n"

# A dollar amount ("$1,299.99", "$ 12", "$.99"), else any number ("about 40 dollars").
_AMOUNT = r"((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
_DOLLARS = re.compile(r"\$\s*" + _AMOUNT)
_NUMBER = re.compile(_AMOUNT)


def parse_price(answer: str | None) -> float | None:
    """The price an answer states, or None when it states none.

    The first dollar amount wins ("2 pack for $15" is 15); without a dollar sign the first
    number counts ("about 40 dollars"). Thousands commas are read as such.
    """
    if not answer:
        return None
    match = _DOLLARS.search(answer) or _NUMBER.search(answer)
    if match is None:
        return None
    return float(match.group(1).replace(",", ""))


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
            raise ValueError(
                f"prompt keys must be {list(PROMPT_KEYS)}; unknown {unknown}, missing {missing}"
            )
        return cls(**values)

    def validate(self, with_examples: bool) -> None:
        """Fail at fit time, not item by item: unknown fields, or examples that go nowhere."""
        fields = template_fields(self.user)
        unknown = sorted(fields - set(FIELDS))
        if unknown:
            raise ValueError(f"prompt.user uses unknown field(s) {unknown}; allowed: {FIELDS}")
        if "text" not in fields:
            raise ValueError("prompt.user must contain {text}: the item to price")
        if with_examples != ("examples" in fields):
            raise ValueError(
                "prompt.user must contain {examples} exactly when retrieval is configured "
                f"(retrieval {'on' if with_examples else 'off'})"
            )
        if with_examples:
            if not self.example:
                raise ValueError("retrieval needs prompt.example, e.g. '{text}\\nPrice is {price}'")
            unknown = sorted(template_fields(self.example) - set(EXAMPLE_FIELDS))
            if unknown:
                raise ValueError(
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
