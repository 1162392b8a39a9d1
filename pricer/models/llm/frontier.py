"""The frontier family: a chat model prices each item, optionally shown similar training items.

Any OpenAI-compatible server works (OpenAI, Ollama, vLLM, LM Studio): ``base_url``, ``model``
and ``api_key_env`` come from ``conf/model/frontier*.yaml``. ``fit`` only checks the config
and, with ``retrieval``, indexes the training items; ``predict_report`` renders one prompt per
item, answers what it can from the on-disk cache, calls the model for the rest concurrently
(a request another run is asking at that moment is waited for and read from the cache, not
paid twice: ``ResponseCache.claim``), parses each answer, and reports tokens, cost,
latency and failures by reason, and which models the replies said answered (a proxy may
answer with another than the one asked for).
Each answer's tokens are billed at the catalogue rate of the model that answered it (see
``pricer.models.llm.accounting``): the retrieval family (``retrieval``) and fine-tuned models
(``ft:...``, the fine-tuned rate) go through this same pricer, and so do an ensemble's LLM
members.

The pricer is pickled into the logged MLflow model. It holds no client and no key: a client
is built from the environment for each predict call and closed after it (an async client
belongs to one event loop anyway).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from pricer.errors import ConfigError
from pricer.files import folder_problem
from pricer.models.base import Pricer, PriceReport, as_items, plausible_ceiling, training_prices
from pricer.models.llm.accounting import ItemOutcome, PriceOf, batch_stats, other_models
from pricer.models.llm.answering import ANSWERED_BY, answered_by
from pricer.models.llm.cache import CachedAnswer, ResponseCache, request_key
from pricer.models.llm.catalogue import ModelCatalogue, ModelEntry, Price, unknown_entry
from pricer.models.llm.client import (
    IMPLAUSIBLE,
    NO_PRICE,
    CallOutcome,
    ClientSettings,
    Pacing,
    RetryCounter,
    chat_calls,
    longest_call,
    read_api_key,
    run_async,
    saved_base_url,
)
from pricer.models.llm.failures import (
    INTERRUPTED_PREFIX,
    attach_interrupted_answers,
    attach_interrupted_stats,
)
from pricer.models.llm.prompts import PROMPT_KEYS, PromptTemplate, parse_price
from pricer.models.llm.retrieval import NeighbourIndex

log = logging.getLogger(__name__)


class FrontierPricer(Pricer):
    """Prices items with a chat-completions model.

    ``prompt`` is a prompt config (see ``pricer.models.llm.prompts``); ``temperature``,
    ``max_tokens`` (sent as ``max_completion_tokens``) and ``seed`` are sampling settings,
    each omitted from the request when null (some models accept only their defaults);
    ``timeout`` (seconds per attempt) and ``max_retries`` go to the SDK, which backs off and
    honours Retry-After; ``max_concurrency`` bounds calls in flight; ``cache_dir`` null
    disables the cache; ``catalogue`` is the model catalogue (``conf/llm/catalogue.yaml``:
    prices, rate limits, facts); ``tier`` names the rate-limit tier of the model's entry to
    pace to, and ``pacing`` holds the pacing knobs (``burst_seconds``, ``headroom``, and
    ``rpm``/``tpm`` overriding the tier's limits); null ``tier`` and no overrides: no pacing;
    ``retrieval`` is a ``NeighbourIndex`` (or null for zero-shot).
    """

    # The keys its mapping settings may hold, checked before any run
    # (``pricer.settings.check_arguments``): a typo added with + (``+model.prompt.sytem=...``,
    # ``+model.pacing.rmp=60``) was refused only as the run fitted, a FAILED run, and the prompt's
    # line listed every key rather than the one meant.
    _mapping_keys: ClassVar[dict[str, tuple[str, ...]]] = {
        "prompt": PROMPT_KEYS,
        "pacing": tuple(field.name for field in fields(Pacing)),
    }

    def __init__(
        self,
        model: str,
        base_url: str | None,
        api_key_env: str,
        prompt: Mapping[str, str | None],
        temperature: float | None,
        max_tokens: int | None,
        seed: int | None,
        max_concurrency: int,
        timeout: float,
        max_retries: int,
        cache_dir: str | None,
        catalogue: ModelCatalogue,
        tier: str | None,
        pacing: Mapping[str, float | None],
        retrieval: NeighbourIndex | None,
        progress: bool,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.prompt = prompt
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.cache_dir = cache_dir
        self.catalogue = catalogue
        self.tier = tier
        self.pacing = pacing
        self.retrieval = retrieval
        self.progress = progress

    # -- configuration ----------------------------------------------------------------------
    def _template(self) -> PromptTemplate:
        return PromptTemplate.from_config(self.prompt)

    def _settings(self) -> ClientSettings:
        return ClientSettings(self.base_url, self.api_key_env, self.timeout, self.max_retries)

    def _entry(self) -> tuple[str, ModelEntry] | None:
        return self.catalogue.lookup(self.model)

    def _price_of(self, model: str) -> Price | None:
        """A model's price in the catalogue, by the name a request or a reply gives."""
        found = self.catalogue.lookup(model)
        return found[1].price if found is not None else None

    def catalogue_entry(self) -> dict[str, str]:
        """The model's catalogue entry as flat run tags (``llm.model.*``): provider, weights,
        licence, dates, size, context, prices, the tier's limits, source and check date;
        every fact "unknown" for a model missing from the catalogue."""
        found = self._entry()
        if found is None:
            return unknown_entry(self.model, self.tier)
        name, entry = found
        return entry.flat(name, self.tier)

    def server(self) -> str:
        """The OpenAI-compatible server this pricer calls (its base URL, credentials dropped)."""
        return self._settings().server()

    def knowledge_cutoff(self) -> dt.date | None:
        """The last day the model may know about (catalogue), None when unknown: split the
        evaluation at it with ``pricer.evaluation.cutoff.cutoff_split``."""
        found = self._entry()
        return found[1].cutoff_date if found is not None else None

    def pacing_limits(self) -> Pacing:
        """The limits calls are paced to: ``pacing.rpm``/``tpm`` when set, else the tier's."""
        knobs = dict(self.pacing)
        found = self._entry()
        limits = found[1].limits(self.tier) if found is not None else None
        # Only an unset knob falls back to the tier: a 0 or false given is Pacing's to refuse,
        # not a reason to pace to the catalogue's limit instead.
        rpm = knobs.pop("rpm", None)
        tpm = knobs.pop("tpm", None)
        if rpm is None:
            rpm = limits.rpm if limits else None
        if tpm is None:
            tpm = limits.tpm if limits else None
        return Pacing.from_knobs(rpm, tpm, knobs)

    def _validate(self) -> None:
        if not self.model:
            raise ConfigError(
                "model is empty: name a chat model (for model=finetuned, set "
                "PRICER_FINETUNED_MODEL or model.model=ft:...)"
            )
        self._template().validate(with_examples=self.retrieval is not None)
        if self.max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        tokens = self.max_tokens
        if tokens is not None and (
            isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1
        ):
            # Caught here rather than by the server: a 400 for every item (or answers cut to
            # nothing) is a batch of calls to learn what one line says.
            raise ConfigError(f"max_tokens must be a whole number >= 1 or null, got {tokens!r}")
        # NaN passes "> 0" either way round: it reached the SDK (a traceback at the first
        # call) and made the wait for another run's claim on a request endless (``turn``);
        # so did inf, a run waiting for ever on another that hangs.
        if not self.timeout or not (0 < self.timeout < math.inf):
            raise ConfigError(f"timeout must be a finite number > 0 seconds, got {self.timeout}")
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            # null compared with 0 raised a TypeError traceback here.
            raise ConfigError(f"max_retries must be a whole number >= 0, got {retries!r}")
        if self.cache_dir and (why := folder_problem(Path(self.cache_dir))) is not None:
            # Else every read and every write fails, each with its own warning.
            raise ConfigError(
                f"cache_dir {self.cache_dir}: {why}: point model.cache_dir at a folder, or "
                "null to turn the cache off"
            )
        self._settings().check_url()
        read_api_key(self.api_key_env)  # fail before indexing, not at the first call
        pacing = self.pacing_limits()  # bad knobs fail here, not mid-batch
        found = self._entry()
        if found is None:
            log.warning(
                "model %r is not in the model catalogue (conf/llm/catalogue.yaml): its facts "
                "are logged as unknown, costs as NaN, and calls are not paced",
                self.model,
            )
        elif self.tier is not None and found[1].limits(self.tier) is None:
            tiers = sorted(found[1].rate_limits)
            if tiers and not pacing.active:
                # A mistyped tier (tier9) would otherwise turn the pacing off with a warning
                # that scrolls away: the batch then leans on 429s and retries alone.
                raise ConfigError(
                    f"catalogue entry {found[0]!r} has no rate-limit tier {self.tier!r}: "
                    f"name one of {tiers}, or model.tier=null to send calls unpaced"
                )
            log.warning(
                "catalogue entry %r has no rate-limit tier %r (it has %s): %s",
                found[0],
                self.tier,
                sorted(found[1].rate_limits) or "none",
                "pacing to model.pacing's rpm/tpm" if pacing.active else "calls are not paced",
            )

    # -- estimator --------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> FrontierPricer:
        self._validate()
        items = as_items(X)
        prices = training_prices(items, y)
        self.index_ = None if self.retrieval is None else clone(self.retrieval).fit(items, prices)
        self.n_train_items_ = len(items)
        self.price_ceiling_ = plausible_ceiling(prices)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_report(X).prices

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        # A chat model may answer the same request differently (temperature 0 and a seed
        # included); only the cache repeats an answer.
        tags.non_deterministic = True
        return tags

    def requests(self, X: pd.DataFrame) -> list[dict[str, Any]]:
        """The chat request for each item, exactly as sent (and as keyed in the cache)."""
        check_is_fitted(self, "n_train_items_")
        items = as_items(X)
        template = self._template()
        neighbours = self.index_.neighbours(items) if self.index_ is not None else None
        sampling = {
            "temperature": self.temperature,
            "max_completion_tokens": self.max_tokens,
            "seed": self.seed,
        }
        sampling = {key: value for key, value in sampling.items() if value is not None}
        return [
            {
                "model": self.model,
                "messages": template.messages(item, neighbours[i] if neighbours else None),
                **sampling,
            }
            for i, item in enumerate(items.to_dict("records"))
        ]

    def predict_report(self, X: pd.DataFrame) -> PriceReport:
        start = time.perf_counter()
        requests = self.requests(X)
        settings = self._settings()
        cache = ResponseCache(self.cache_dir)
        server = settings.cache_server()
        keys = [request_key({"base_url": server, **request}) for request in requests]

        # Fitted before the ceiling existed: no answer is too dear.
        ceiling = getattr(self, "price_ceiling_", math.inf)
        outcomes: list[ItemOutcome | None] = [_from_cache(cache.get(key), ceiling) for key in keys]
        todo = [i for i, outcome in enumerate(outcomes) if outcome is None]

        patience = longest_call(settings)

        @contextlib.asynccontextmanager
        async def turn(position: int) -> AsyncIterator[bool]:
            """Claim the request just before it is sent (waiting while another asks it), then
            read the cache again: a run started beside this one (or a thread, or this batch's
            twin of the request) may have answered it meanwhile. No answer there (its asker
            failed, died or hangs): sent, under the claim if held."""
            i = todo[position]
            async with cache.claim(keys[i], patience):
                outcomes[i] = _from_cache(cache.get(keys[i]), ceiling)
                yield outcomes[i] is None

        def keep(position: int, call: CallOutcome) -> None:
            """Parse and cache each answer as it arrives: a run interrupted at item 32 of 50
            keeps 32 answers, and its rerun pays only for the rest (issue 10)."""
            i = todo[position]
            outcomes[i] = _from_call(call, ceiling)
            if outcomes[i].failure is None:  # only priced answers are worth keeping
                cache.put(
                    keys[i],
                    CachedAnswer(
                        call.answer or "",
                        call.input_tokens,
                        call.output_tokens,
                        call.model,
                        call.latency,
                    ),
                    {"base_url": server, **requests[i]},
                )
            elif call.detail:
                log.debug("item %d failed: %s (%s)", i, call.failure, call.detail)

        counter = RetryCounter()
        if todo:
            cache.prepare_to_write()  # before the calls: a one-time scan of an old cache
            try:
                run_async(
                    chat_calls(
                        settings,
                        [requests[i] for i in todo],
                        self.max_concurrency,
                        self.progress,
                        on_outcome=keep,
                        pacing=self.pacing_limits(),
                        counter=counter,
                        turn=turn if cache.enabled else None,
                    )
                )
            except KeyboardInterrupt as interrupt:  # SIGTERM or Ctrl-C (pricer.interrupt)
                # The calls answered so far were paid for, and those in flight may be: the
                # run that ends KILLED records them rather than nothing.
                done = [outcome for outcome in outcomes if outcome is not None]
                answered = sum(not outcome.cached for outcome in done)
                stats = self._stats(done, counter, start, prefix=INTERRUPTED_PREFIX)
                stats[f"{INTERRUPTED_PREFIX}calls_in_flight"] = float(
                    max(0, counter.sent - answered)
                )
                attach_interrupted_stats(interrupt, stats)
                # ... and which models answered them, as a finished batch says: the count of
                # answers from another model (in the figures) without their names told the
                # record's reader that a substitute answered, not which.
                _warn_other_models(done, self.model)
                _warn_unpriced_models(done, self.model, self._price_of)
                attach_interrupted_answers(interrupt, (o.model for o in done if o.model))
                raise
        done = [outcome for outcome in outcomes if outcome is not None]
        _warn_failures(done)
        _warn_other_models(done, self.model)
        _warn_unpriced_models(done, self.model, self._price_of)
        stats = self._stats(done, counter, start)
        facts = {ANSWERED_BY: answered_by(o.model for o in done if o.model is not None)}
        return PriceReport(np.array([o.price for o in done], dtype=float), stats, facts)

    def _stats(
        self, done: list[ItemOutcome], counter: RetryCounter, start: float, prefix: str = "llm."
    ) -> dict[str, float]:
        return batch_stats(
            done,
            requested=self.model,
            price_of=self._price_of,
            retries=counter.retries,
            rate_limited=counter.throttled,
            wall_seconds=time.perf_counter() - start,
            prefix=prefix,
        )

    def __getstate__(self) -> dict[str, Any]:
        """Pickle parameters and fitted state only. Runtime attributes (leading underscore:
        clients, loops) never travel; none is kept today, this keeps it so."""
        state = super().__getstate__()
        state = {k: v for k, v in state.items() if not k.startswith("_") or k == "_sklearn_version"}
        if "base_url" in state:  # a key in its fragment goes nowhere, the store included
            state["base_url"] = saved_base_url(state["base_url"])
        return state


def _read_answer(answer: str | None, ceiling: float) -> tuple[float | None, str | None]:
    """The price an answer states, or why it gives none: no price, or one above ``ceiling``."""
    price = parse_price(answer)
    if price is None:
        return None, NO_PRICE
    return (None, IMPLAUSIBLE) if price > ceiling else (price, None)


def _from_cache(entry: CachedAnswer | None, ceiling: float) -> ItemOutcome | None:
    if entry is None:
        return None
    price, _ = _read_answer(entry.answer, ceiling)
    # An entry the parser no longer reads (or no longer believes) is a miss: asked again.
    if price is None:
        return None
    # An answer cached from a reply without usage holds 0 prompt tokens, which no prompt is,
    # or 0 answer tokens, which no answer that states a price is.
    unmetered = entry.input_tokens == 0 or entry.output_tokens == 0
    return ItemOutcome(
        price,
        None,
        entry.input_tokens,
        entry.output_tokens,
        entry.latency,  # the call's that answered it, as its tokens and model are
        True,
        unmetered,
        entry.model,
    )


def _from_call(call: CallOutcome, ceiling: float) -> ItemOutcome:
    price, failure = (None, call.failure) if call.failure else _read_answer(call.answer, ceiling)
    return ItemOutcome(
        price=math.nan if price is None else price,
        failure=failure,
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        latency=call.latency,
        cached=False,
        unmetered=call.unmetered,
        model=call.model,
        status=call.status,
    )


def _warn_failures(outcomes: list[ItemOutcome]) -> None:
    reasons = Counter(o.failure for o in outcomes if o.failure is not None)
    if reasons:
        log.warning(
            "%d of %d items got no price (%s); they are NaN, not guessed",
            sum(reasons.values()),
            len(outcomes),
            ", ".join(f"{reason}: {n}" for reason, n in sorted(reasons.items())),
        )


def _warn_other_models(outcomes: list[ItemOutcome], requested: str) -> None:
    """Say when replies name another model than the one asked for (beyond a dated snapshot of
    it): the run's name and catalogue entry say ``requested``, and its figures would be
    another model's answers under its name (their costs are at the answering model's rate)."""
    others = other_models(outcomes, requested)
    if others:
        count = sum(o.model in others for o in outcomes)
        log.warning(
            "%d of %d answers came from %s, not the model asked for (%s): the server or a "
            "proxy answered with another model; the run records it as llm.answered_by",
            count,
            len(outcomes),
            answered_by(others),
            requested,
        )


def _warn_unpriced_models(outcomes: list[ItemOutcome], requested: str, price_of: PriceOf) -> None:
    """Say when replies name another model than the one asked for that the catalogue has no
    price for: the batch's costs are then NaN, not the requested model's rate, which would be
    a made-up figure. (A requested model missing from the catalogue is warned about at fit.)"""
    unpriced = [model for model in other_models(outcomes, requested) if price_of(model) is None]
    if unpriced:
        count = sum(o.model in unpriced for o in outcomes)
        log.warning(
            "%d of %d answers came from %s, which the model catalogue (conf/llm/catalogue.yaml) "
            "has no price for: the batch's costs are NaN (unknown), not priced as %s; the run "
            "counts them as llm.answers_not_in_catalogue",
            count,
            len(outcomes),
            answered_by(unpriced),
            requested,
        )
