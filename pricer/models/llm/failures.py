"""Why items got no price, in one line, for error messages.

``batch_stats`` logs a count per reason (``llm.failures.<reason>``); a run that fails for
too many missing prices names the leading reasons with their counts, so the user reads
"no_price 80, timeout 20, rate_limited 5" in the error instead of digging through metrics.
Kept apart from the client so that callers outside the LLM families import no SDK.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

FAILURES_PREFIX = "llm.failures."
# Calls the server refused, by HTTP status (``llm.refused.http_404``): an "api_error" is a
# wrong model name (404), a key refused (401, 403) or a request not taken (400).
REFUSED_STATUS = "refused.http_"
API_ERROR = "api_error"
# The human baseline's (pricer.models.human): an item the guesses file has no price for.
HUMAN_FAILURES_PREFIX = "human.failures."
# The figures of an LLM batch cut short by SIGTERM or Ctrl-C: what its calls had cost by then.
INTERRUPTED_PASS = "interrupted."
INTERRUPTED_PREFIX = f"{INTERRUPTED_PASS}llm."
_INTERRUPTED_ATTRIBUTE = "pricer_interrupted_llm_stats"
# The figures of an interrupted record that cover every LLM batch the run made before the
# signal, not only the one it cut: what was called, paid and answered by another model. A
# killed ensemble had priced the stacker's validation split at fit, and its earlier members
# the same items, and its record showed a substitute in llm.answered_by beside 0 answers from
# another model, and a fraction of its spend. The others (items, failures, rates, latencies,
# calls in flight) stay the cut batch's: they describe how far it got. Each is in a
# finished batch's report and in an ensemble's record of its calls at fit (its FIT_FIGURES).
RUN_TOTALS = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "spent_usd",
    "answers_from_other_model",
    # Why a cost above is NaN: answers from a model with no price in the catalogue, and
    # replies that came without usage (their tokens were billed, but not counted).
    "answers_not_in_catalogue",
    "answers_without_usage",
)
_INTERRUPTED_ANSWERS_ATTRIBUTE = "pricer_interrupted_llm_answered_by"
NO_REASON = "no reason reported"  # failure_summary's, for a pricer that reports none


def attach_interrupted_stats(interrupt: BaseException, stats: Mapping[str, float]) -> None:
    """Carry a cut-short batch's figures on the interrupt up to the run that records them;
    the innermost batch's only (an ensemble's member is the one that was calling): the
    batches that finished before it are added to its totals by ``add_interrupted_stats``."""
    if not hasattr(interrupt, _INTERRUPTED_ATTRIBUTE):
        setattr(interrupt, _INTERRUPTED_ATTRIBUTE, dict(stats))


def add_interrupted_stats(
    interrupt: BaseException, finished: Iterable[Mapping[str, float]]
) -> None:
    """Add the ``RUN_TOTALS`` of batches that finished before the signal (each a report's
    figures, ``llm.<figure>``) to those on the interrupt, under ``interrupted.llm.``: the
    record then counts what the whole run did. Nothing is put on an interrupt when no batch
    called an LLM. A sum with an unknown (NaN) cost stays unknown, never a lower figure."""
    stats = interrupted_stats(interrupt)
    for batch in finished:
        for figure in RUN_TOTALS:
            if (value := batch.get(f"llm.{figure}")) is not None:
                key = f"{INTERRUPTED_PREFIX}{figure}"
                stats[key] = stats.get(key, 0.0) + float(value)
    if stats:
        setattr(interrupt, _INTERRUPTED_ATTRIBUTE, stats)


def interrupted_stats(interrupt: BaseException) -> dict[str, float]:
    """The figures ``attach_interrupted_stats`` put on an interrupt; none when no batch ran."""
    return dict(getattr(interrupt, _INTERRUPTED_ATTRIBUTE, {}))


def attach_interrupted_answers(interrupt: BaseException, names: Iterable[str]) -> None:
    """Carry the models that answered so far (the names replies gave) on the interrupt up to
    the run that records them. Every batch's, unlike the figures: the run is one record, and
    the members of an ensemble that had answered before the one cut short (at fit, whose
    answers the stacker's weights came from, or on the same items) answered it too."""
    known = getattr(interrupt, _INTERRUPTED_ANSWERS_ATTRIBUTE, [])
    setattr(interrupt, _INTERRUPTED_ANSWERS_ATTRIBUTE, [*known, *names])


def interrupted_answers(interrupt: BaseException) -> list[str] | None:
    """The names ``attach_interrupted_answers`` put on an interrupt (repeats included); None
    when no batch ran, empty when its replies named no model."""
    names = getattr(interrupt, _INTERRUPTED_ANSWERS_ATTRIBUTE, None)
    return None if names is None else list(names)


def failure_summary(
    stats: Mapping[str, float], prefixes: tuple[str, ...] = (FAILURES_PREFIX, HUMAN_FAILURES_PREFIX)
) -> str:
    """Failure reasons with their counts, most frequent first ("no_price 80, timeout 20");
    "no reason reported" for a pricer that reports none (a classical family's NaN). An
    ensemble's are its members' ("frontier no_price 12")."""
    counts: dict[str, int] = {}
    refused: dict[str, list[str]] = {}  # an api_error's label: its statuses, "HTTP 404 250"
    for key, value in stats.items():
        if not (value == value and value > 0):  # skips NaN and zeros
            continue
        owner, found, code = key.partition(f"llm.{REFUSED_STATUS}")
        if found and code.isdigit() and 400 <= int(code) < 500 and code != "429":
            member = owner.removeprefix("ensemble.").rstrip(".")
            label = f"{member} {API_ERROR}" if member else API_ERROR
            refused.setdefault(label, []).append(f"HTTP {code} {int(value)}")
        for prefix in prefixes:
            # An ensemble reports each member's under its name: ensemble.<member>.llm.failures.*
            owner, found, reason = key.partition(prefix)
            if found and reason:
                member = owner.removeprefix("ensemble.").rstrip(".")
                counts[f"{member} {reason}" if member else reason] = int(value)
    if not counts:
        return NO_REASON
    ranked = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
    return ", ".join(
        f"{label} {count}" + (f" ({', '.join(sorted(refused[label]))})" if label in refused else "")
        for label, count in ranked
    )
