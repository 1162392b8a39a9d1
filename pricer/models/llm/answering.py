"""Which model answered: the names a server's replies give, against the one asked for.

Every chat completion names the model that produced it (its ``model`` field), and it need not
be the one asked for: OpenAI answers "gpt-4o-mini" as "gpt-4o-mini-2024-07-18" (the same
model), but a proxy or an OpenAI-compatible server may answer with another model altogether,
and the run would record that model's answers under the requested name and catalogue entry.
The names seen are a run tag (``ANSWERED_BY``); ``same_model`` tells a snapshot from another
model, and so which catalogue rate an answer is billed at (``pricer.models.llm.accounting``:
the answering model's; NaN costs when the catalogue has none). Kept apart from the client so
that the ensemble imports no SDK.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from pricer.models.llm.catalogue import UNKNOWN

ANSWERED_BY = "llm.answered_by"  # run tag: the models the replies said answered
# Run metric: replies that named another model than the one asked for.
OTHER_MODEL_ANSWERS = "llm.answers_from_other_model"
# Run metric: answers whose model has no price in the catalogue (the batch's costs are NaN).
ANSWERS_NOT_IN_CATALOGUE = "llm.answers_not_in_catalogue"
# A run's validation pass (pricer.validation.PREFIX, written out: that module is not the
# LLM families' to import): a sweep ranks its trials by the figures of the items it prices.
VALIDATION_PASS = "validation."
# An ensemble's answers from another model at fit, which each pass's count includes.
FIT_OTHER_MODEL_ANSWERS = "llm.fit_answers_from_other_model"
# The longest model name kept from a reply: it goes into cache entries, a run tag and a
# terminal line, and no real model name comes near it.
MAX_MODEL_NAME = 200
# The tag's longest value: a proxy that names a different model in every reply must not make
# a tag MLflow refuses, or one nobody reads (names beyond it are counted, not listed).
MAX_ANSWERED_BY = 500
# A snapshot an alias resolves to, as a server names it in its reply: a date
# ("gpt-4o-mini-2024-07-18", "claude-sonnet-4-20250514", as the catalogue's lookup strips),
# or OpenAI's older month-day ("gpt-3.5-turbo" is answered by "gpt-3.5-turbo-0125").
_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-?\d{2}-?\d{2}|\d{4})$")
_LATEST = ":latest"  # Ollama's name for a model asked for without a tag ("llama3.1")


def same_model(requested: str, answered: str) -> bool:
    """Whether a reply's ``model`` names the model asked for: the same name (case aside, and
    Ollama's ":latest" tag aside), or a dated snapshot of an undated name ("gpt-4o-mini" is
    answered by "gpt-4o-mini-2024-07-18"). A name asked for with its snapshot must be
    answered by that snapshot: pinning one is asking not to get another. Any other name is
    another model ("gpt-4o" answering for "gpt-4o-mini", a proxy's substitute)."""
    asked, got = (name.strip().lower().removesuffix(_LATEST) for name in (requested, answered))
    if got == asked:
        return True
    return not _SNAPSHOT_SUFFIX.search(asked) and _SNAPSHOT_SUFFIX.sub("", got) == asked


def answered_by(names: Iterable[str]) -> str:
    """Distinct model names, sorted and comma-joined, at most ``MAX_ANSWERED_BY`` characters:
    the names that do not fit are counted ("a, b (+3 more)"); "unknown" when there is none."""
    distinct = sorted({name[:MAX_MODEL_NAME] for name in names})
    if len(text := ", ".join(distinct)) <= MAX_ANSWERED_BY:
        return text or UNKNOWN
    shown: list[str] = []
    room = MAX_ANSWERED_BY - len(" (+999999 more)")  # a name is shorter: the first always fits
    for name in distinct:
        if len(", ".join([*shown, name])) > room:
            break
        shown.append(name)
    return f"{', '.join(shown)} (+{len(distinct) - len(shown)} more)"


def other_model_answers(metrics: Mapping[str, float]) -> int:
    """A run's answers from another model than asked for, in every pass it made: the test
    items' (``llm.answers_from_other_model``) and the validation items' (``validation.llm.``
    ..., the pass a sweep ranks its trials by: a trial whose validation pass alone a
    substitute answered was ranked with no word of it). An ensemble's calls at fit, which each
    pass's count includes (``llm.fit_answers_from_other_model``), count once."""
    validation = metrics.get(f"{VALIDATION_PASS}{OTHER_MODEL_ANSWERS}", 0.0)
    repeated = metrics.get(f"{VALIDATION_PASS}{FIT_OTHER_MODEL_ANSWERS}", 0.0)
    return int(metrics.get(OTHER_MODEL_ANSWERS, 0.0) + validation - repeated)


def answered_in_every_pass(tags: Mapping[str, str]) -> str | None:
    """The models a run's replies named, in every pass it made (``llm.answered_by`` and
    ``validation.llm.answered_by``), as one tag; None for a run that names none (no LLM)."""
    passes = [tags.get(ANSWERED_BY), tags.get(f"{VALIDATION_PASS}{ANSWERED_BY}")]
    found = [tag for tag in passes if tag is not None]
    if not found:
        return None
    # A tag is its names joined; a bounded one's "b (+3 more)" stays one name.
    return answered_by(name for tag in found if tag != UNKNOWN for name in tag.split(", "))
