"""The OpenAI client built from config and the environment, and concurrent chat calls.

Retries, backoff, Retry-After and per-attempt timeouts are the SDK's own (``max_retries``,
``timeout``); this module adds what the SDK leaves to callers: a concurrency limit
(``asyncio.Semaphore``), pacing to the provider's requests- and tokens-per-minute limits of
the configured tier (``Pacer``, aiolimiter's leaky buckets), counts of the requests the SDK
re-sent and of the 429s it met, and turning every call into an answer or a failure with a
reason, so no item is ever lost.

Retrying 429s is not enough on its own: at 32 calls in flight against a 500 RPM tier, a
full evaluation spends most of its time being refused and backing off (benchmarks/llm.py
measures it against the stub's enforced limit). Pacing sends no faster than the tier allows.

The API key is read from the environment variable *named* in config at the moment a client
is built; it is handed to the client and kept nowhere else.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import math
import os
import re
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from dataclasses import dataclass, fields
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx2
import openai
from aiolimiter import AsyncLimiter
from tqdm.auto import tqdm

from pricer.credentials import QUERY_CREDENTIAL
from pricer.errors import ConfigError, UserError, unknown_name
from pricer.models.llm.answering import MAX_MODEL_NAME
from pricer.models.llm.cache import MAX_TOKEN_COUNT
from pricer.settings import resolved_children

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_HEADER = "x-stainless-retry-count"  # the SDK numbers each attempt of one call
MAX_RETRY_AFTER = 120.0  # the longest Retry-After the SDK waits out (openai MAX_RETRY_AFTER_DELAY)
CHARS_PER_TOKEN = 4  # OpenAI's rule of thumb for English; tiktoken would need a download

# Why an item got no price. Metrics are logged for every reason, zeros included, so runs
# compare reason by reason.
NO_PRICE = "no_price"  # an answer that states no price (prompts.parse_price)
IMPLAUSIBLE = "implausible"  # a price far above any training price (models.base.plausible_ceiling)
FAILURE_REASONS = (
    NO_PRICE,
    IMPLAUSIBLE,
    "timeout",  # every attempt timed out
    "rate_limited",  # still 429 after the retries
    "server_error",  # still 5xx after the retries, or a generation that failed (UNFINISHED)
    "connection",  # the server could not be reached
    "api_error",  # another 4xx (bad request, authentication, unknown model...)
    "truncated",  # finish_reason "length" (UNFINISHED): cut by max_tokens, maybe mid-number
    "content_filter",  # finish_reason "content_filter" (UNFINISHED): the answer was withheld
    "unexpected",  # anything else (a malformed response, say)
)
# A choice's finish_reason that makes its text no answer, whatever it holds: a number cut
# short reads as a smaller price ("1299.99" cut to "12"), and a range as its first amount
# ("$10 to" of "$10 to $20"); a filtered answer is what the provider chose to let through.
# OpenAI's names, and the native ones a proxy or another provider's compatible endpoint passes
# through (Anthropic's "max_tokens" and "refusal", Gemini's "MAX_TOKENS" and "SAFETY",
# OpenRouter's "error", vLLM's "abort"), any case: these read as finished, their "$12" of
# "$1299" recorded as the price. A tool call in place of an answer holds no answer either.
UNFINISHED = {
    **dict.fromkeys(("length", "max_tokens", "max_output_tokens", "model_length"), "truncated"),
    **dict.fromkeys(
        (
            "content_filter",
            "safety",
            "recitation",
            "blocklist",
            "prohibited_content",
            "spii",
            "refusal",
            "guardrail_intervened",
        ),
        "content_filter",
    ),
    **dict.fromkeys(("error", "abort", "aborted", "cancelled", "canceled"), "server_error"),
    **dict.fromkeys(("tool_calls", "function_call", "tool_use"), "unexpected"),
}

T = TypeVar("T")


class MissingApiKeyError(UserError, RuntimeError):
    """The environment variable that should hold the API key is unset or empty."""


class ServerUnreachable(UserError, ConnectionError):
    """Nothing answers at the configured base URL (connection refused, unknown host)."""


_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # what a shell can export


def read_api_key(api_key_env: str) -> str:
    """The key in the variable ``api_key_env`` names (a name no shell could export, such as
    a key, is refused), without the spaces or line end a paste or a file leaves around it
    (no key has any). A key that cannot go in an HTTP header (a character beyond
    printable ASCII inside it) fails here: sent, it failed every call as "cannot connect",
    or raised mid-batch. The message never shows the key."""
    if not _VARIABLE_NAME.fullmatch(api_key_env):
        # A key pasted where the name goes: a variable of that name (only a program can set
        # one) would have made it work, and the logged model keeps the name to read its key
        # by, so the key itself would be stored with it.
        raise MissingApiKeyError(
            "api_key_env must name the environment variable that holds your API key "
            "(letters, digits and _, such as OPENAI_API_KEY), not hold the key itself"
        )
    key = (os.environ.get(api_key_env) or "").strip()
    if not key:
        raise MissingApiKeyError(
            f"environment variable {api_key_env} (named by api_key_env) is not set; export "
            "your API key there (local OpenAI-compatible servers accept any non-empty value)"
        )
    if not all(" " <= character < "\x7f" for character in key):  # a header's characters
        raise MissingApiKeyError(
            f"environment variable {api_key_env} (named by api_key_env) holds a line break, "
            "a control or a non-ASCII character inside its value, which no API key has; set "
            "it again from the key itself"
        )
    return key


# The settings of a model logged earlier that a config node loads (an ensemble's logged member):
# given the node, None if it loads no logged model, else the model (its URI, for messages) and
# each ``api_key_env`` of the config it was fitted from, by the path of its node there (() for
# the family itself). The tracking layer reads them (``pricer.tracking.model.logged_keys``):
# this module cannot import it.
LoggedKeys = Callable[[object], "tuple[str, list[tuple[tuple[str, ...], str]]] | None"]


def check_api_keys(models: Mapping[str, Any], logged: LoggedKeys | None = None) -> None:
    """Refuse, before anything runs, families that could not build their client: ``models``
    maps each family a command will fit to its composed model config. Every node in it that
    names an ``api_key_env`` (a chat-model client: frontier, frontier_rag, finetuned, an
    ensemble's LLM member) is read by ``read_api_key``, the rule the client itself is built by.
    With ``logged``, so is every one a logged model that a node loads was fitted with (an
    ensemble's logged LLM member calls its server with the key its own config named): without
    it, the ensemble fitted its other members first and failed at predict for want of the key.

    A family checked only when it fits opened its run first and ended it FAILED, and a
    leaderboard fitted every family before it (minutes on real data) to learn what this says
    in a second. Only the key is checked: a server that is not up yet may be by the time the
    family runs, and one that is not stays that family's FAILED run. One ``MissingApiKeyError``
    names every family refused, on one line, those refused for the same reason together.
    """
    refused: dict[str, list[str]] = {}  # the reason -> the families (or members) it refuses
    for family, node in models.items():
        for path, api_key_env, source in _key_settings(node, (), logged):
            try:
                read_api_key(str(api_key_env))
            except MissingApiKeyError as error:
                places = [".".join(path)] if path else []
                if source is not None:  # the member's own setting, not one of this config
                    places.append(f"logged {source}")
                where = f"{family} ({', '.join(places)})" if places else family
                refused.setdefault(str(error), []).append(where)
    if refused:
        raise MissingApiKeyError(
            "; ".join(f"{', '.join(where)}: {reason}" for reason, where in refused.items())
        )


def _key_settings(
    node: object, path: tuple[str, ...], logged: LoggedKeys | None
) -> Iterator[tuple[tuple[str, ...], object, str | None]]:
    """Each ``api_key_env`` in a config (plain or OmegaConf), the path of the node holding it
    and, for one a logged model was fitted with (``logged``), that model's URI, each value
    resolved as it is read (``${seed}``, a member given as an interpolation).

    Value by value (``resolved_children``): a sweep checks its family's key as the multirun
    starts, where a value only a trial resolves is skipped, for the trial's own run to check.
    """
    if logged is not None and (found := logged(node)) is not None:
        source, settings = found
        for inner, api_key_env in settings:
            yield (*path, *inner), api_key_env, source
        return
    for key, value in resolved_children(node):
        if key == "api_key_env" and value is not None:
            yield path, value, None
        else:
            yield from _key_settings(value, (*path, key), logged)


@dataclass(frozen=True)
class ClientSettings:
    """Where and how to call: the config's ``base_url``, ``api_key_env``, ``timeout``,
    ``max_retries``."""

    base_url: str | None
    api_key_env: str
    timeout: float
    max_retries: int

    def resolved_base_url(self) -> str:
        """The server actually called: config, else OPENAI_BASE_URL, else OpenAI."""
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL

    def check_url(self) -> None:
        """Fail in one line on a base URL that is no http(s) URL ("localhost:11434/v1",
        "htp://..."): the SDK reported it as "cannot connect", as if the server were down.
        The URL is quoted without credentials."""
        url = urlsplit(self.resolved_base_url())
        if url.scheme.lower() not in ("http", "https") or not url.hostname:
            source = "base_url" if self.base_url else "OPENAI_BASE_URL (base_url is null)"
            raise ConfigError(
                f"base_url must be an http:// or https:// URL with a host, but {source} is "
                f"{self.server()!r}; e.g. http://localhost:11434/v1"
            )

    def cache_server(self) -> str:
        """The server as answers are cached under it: the URL called without its user and
        password, which a cache entry would otherwise keep in plain text beside its answer.
        A URL without them is keyed as it always was; the query stays, as it may choose a
        deployment, with the values of its credential parameters hidden (the fragment's too)."""
        return self._without_credentials(keep_query=True)

    def server(self) -> str:
        """The server called, fit for a run tag: a user and password in the URL are dropped."""
        return self._without_credentials(keep_query=False)

    def _without_credentials(self, *, keep_query: bool) -> str:
        url = urlsplit(self.resolved_base_url())
        host = url.netloc.rpartition("@")[2]
        # The fragment reaches no server, yet a cache entry would keep it as typed.
        query, fragment = (
            (_hidden_secrets(url.query), _hidden_secrets(url.fragment)) if keep_query else ("", "")
        )
        return urlunsplit((url.scheme, host, url.path, query, fragment))


def saved_base_url(base_url: str | None) -> str | None:
    """``base_url`` as a saved model keeps it: the values of credential parameters in its
    fragment hidden. No server receives a fragment, and the cache keys it hidden already
    (``cache_server``), so the saved model calls and caches as the fitted one does. The rest
    is kept: the server needs its user, password and query."""
    if not base_url or "#" not in base_url:
        return base_url
    url = urlsplit(base_url)
    fragment = _hidden_secrets(url.fragment)
    return base_url if fragment == url.fragment else urlunsplit(url._replace(fragment=fragment))


# Query parameters that carry a credential ("?api_key=...", "&sig=..."): kept by name, so a
# deployment stays told apart, their values hidden (the names redaction hides too).
_SECRET_PARAMETER = re.compile(QUERY_CREDENTIAL, re.IGNORECASE)


def _hidden_secrets(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_SECRET_PARAMETER.search(key) for key, _ in pairs):
        return query  # as written: the cache's keys of such a server stay what they were
    return urlencode([(k, "***" if _SECRET_PARAMETER.search(k) else v) for k, v in pairs])


class RetryCounter:
    """httpx hooks counting the calls sent (first attempts), the attempts the SDK re-sends
    after a failure, and the HTTP 429 (rate limited) responses it met on the way."""

    def __init__(self, on_throttle: Callable[[float], None] | None = None) -> None:
        self.sent = 0
        self.retries = 0
        self.throttled = 0
        self.on_throttle = on_throttle  # told each 429's Retry-After (seconds; 0 if absent)

    def reset(self) -> None:
        self.sent = self.retries = self.throttled = 0

    async def __call__(self, request: httpx2.Request) -> None:
        if int(request.headers.get(RETRY_HEADER, "0") or 0) > 0:
            self.retries += 1
        else:
            self.sent += 1

    async def on_response(self, response: httpx2.Response) -> None:
        if response.status_code == 429:
            self.throttled += 1
            if self.on_throttle is not None:
                self.on_throttle(_retry_after(response.headers))


def _retry_after(headers: httpx2.Headers) -> float:
    """Seconds a 429 asks to wait: ``retry-after-ms`` or ``retry-after`` (seconds), else 0.

    A wait the SDK itself would not honour (over ``MAX_RETRY_AFTER``, or not finite) is 0
    too: the SDK then fails that call or backs off as usual, and the pacer must not hold
    every other request for it (a "Retry-After: 86400" stalled the batch for a day)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            seconds = float(headers.get(name, "")) * scale
        except ValueError:
            continue
        return seconds if 0.0 < seconds <= MAX_RETRY_AFTER else 0.0  # NaN and inf fail too
    return 0.0


@dataclass(frozen=True)
class Pacing:
    """Limits to pace to: ``rpm`` requests and ``tpm`` tokens per minute (None: unlimited),
    times ``headroom`` (< 1 leaves a margin for clock skew and other clients of the same key),
    with bursts of at most ``burst_seconds`` worth."""

    rpm: float | None
    tpm: float | None
    burst_seconds: float = 10.0
    headroom: float = 0.9

    def __post_init__(self) -> None:
        # The knobs come untyped from config (model.pacing is a mapping): "abc" compared with
        # 0 was a TypeError traceback, and true was taken for 1 request a minute.
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and value > 0):
                raise ConfigError(f"pacing {name} must be a number > 0 or null, got {value!r}")
        if not (_is_number(self.burst_seconds) and self.burst_seconds > 0):
            raise ConfigError(
                f"pacing burst_seconds must be a number > 0, got {self.burst_seconds!r}"
            )
        if not (_is_number(self.headroom) and 0 < self.headroom <= 1):
            raise ConfigError(f"pacing headroom must be in (0, 1], got {self.headroom!r}")

    @classmethod
    def from_knobs(cls, rpm: float | None, tpm: float | None, knobs: Mapping[str, Any]) -> Pacing:
        """Limits from ``model.pacing``'s other knobs: a key that is none of them (a typo
        given with +) is one line naming those there are, not a TypeError traceback."""
        known = {field.name for field in fields(cls)} - {"rpm", "tpm"}
        unknown = sorted(set(knobs) - known)
        if unknown:
            raise ConfigError(unknown_name("key", unknown[0], ["rpm", "tpm", *known], "pacing"))
        return cls(rpm=rpm, tpm=tpm, **knobs)

    @property
    def active(self) -> bool:
        return bool(self.rpm or self.tpm)


def _is_number(value: object) -> bool:
    """A finite int or float (not a bool): what a limit or a duration can be."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def estimate_tokens(request: dict[str, Any]) -> int:
    """What a chat request counts against a TPM limit, estimated before sending: prompt
    characters / 4, plus the completion allowance (providers count ``max_completion_tokens``
    up front)."""
    chars = sum(len(str(message.get("content") or "")) for message in request["messages"])
    allowance = request.get("max_completion_tokens") or request.get("max_tokens") or 0
    return max(1, math.ceil(chars / CHARS_PER_TOKEN)) + int(allowance)


class Pacer:
    """Waits until a request fits the per-minute limits (one leaky bucket per kind).

    Built inside the event loop that uses it (one per batch, like the client).
    """

    def __init__(self, pacing: Pacing) -> None:
        self.pacing = pacing

        def bucket(per_minute: float | None) -> AsyncLimiter | None:
            if not per_minute:
                return None
            rate = per_minute * pacing.headroom / 60.0  # per second
            return AsyncLimiter(rate * pacing.burst_seconds, pacing.burst_seconds)

        self.requests = bucket(pacing.rpm)
        self.tokens = bucket(pacing.tpm)
        self.paused_until = 0.0  # event-loop time

    def back_off(self, seconds: float) -> None:
        """A 429 arrived anyway (another client on the key, a stricter window): send nothing
        new until its Retry-After has passed, so the SDK's retries are not joined by a queue
        of fresh requests that would be refused in turn."""
        until = asyncio.get_running_loop().time() + seconds
        self.paused_until = max(self.paused_until, until)

    async def wait(self, tokens: int) -> None:
        loop = asyncio.get_running_loop()
        while (pause := self.paused_until - loop.time()) > 0:
            await asyncio.sleep(pause)
        if self.requests is not None:
            await self.requests.acquire()
        if self.tokens is not None:
            # A request bigger than the bucket waits for a full bucket, not forever.
            await self.tokens.acquire(min(float(tokens), self.tokens.max_rate))


def make_async_client(
    settings: ClientSettings, counter: RetryCounter | None = None
) -> openai.AsyncOpenAI:
    hooks = {"request": [counter], "response": [counter.on_response]} if counter is not None else {}
    return openai.AsyncOpenAI(
        api_key=read_api_key(settings.api_key_env),
        base_url=settings.base_url,  # None: the SDK reads OPENAI_BASE_URL, then its default
        timeout=settings.timeout,
        max_retries=settings.max_retries,
        # The SDK's default client (its connection limits, redirects) plus the hook.
        http_client=openai.DefaultAsyncHttpxClient(event_hooks=hooks),
    )


def make_client(settings: ClientSettings) -> openai.OpenAI:
    """A synchronous client, for sequential workflows (fine-tuning)."""
    return openai.OpenAI(
        api_key=read_api_key(settings.api_key_env),
        base_url=settings.base_url,
        timeout=settings.timeout,
        max_retries=settings.max_retries,
    )


@dataclass(frozen=True)
class CallOutcome:
    """One chat call: the answer text, or the reason there is none."""

    answer: str | None
    input_tokens: int
    output_tokens: int
    latency: float  # seconds, retries and backoff included
    failure: str | None  # one of FAILURE_REASONS except NO_PRICE (that is the caller's call)
    detail: str | None = None  # exception type and status: never the server's message
    # A reply arrived without a usable usage (none, or counts that are no counts): its tokens
    # were billed but are unknown, counted as 0 above.
    unmetered: bool = False
    # The model the reply says answered (its ``model`` field), which a proxy or a server may
    # set to another than the one asked for; None without a reply, or a reply naming none.
    model: str | None = None
    status: int | None = None  # the HTTP status of a call the server refused


def classify(error: BaseException) -> tuple[str, str]:
    """Failure reason and a safe detail. Server messages are left out on purpose: a 401 from
    OpenAI quotes part of the key it refused."""
    if isinstance(error, openai.APITimeoutError):
        return "timeout", type(error).__name__
    if isinstance(error, openai.APIConnectionError):
        return "connection", type(error).__name__
    if isinstance(error, openai.APIStatusError):
        detail = f"{type(error).__name__} (HTTP {error.status_code})"
        if isinstance(error, openai.RateLimitError):
            return "rate_limited", detail
        if error.status_code >= 500:
            return "server_error", detail
        return "api_error", detail
    return "unexpected", type(error).__name__


async def chat_call(
    client: openai.AsyncOpenAI,
    request: dict[str, Any],
    limit: asyncio.Semaphore,
    pacer: Pacer | None = None,
    turn: AbstractAsyncContextManager[bool] | None = None,
    keep: Callable[[CallOutcome], None] | None = None,
) -> CallOutcome | None:
    """One chat completion under the concurrency limit, paced when a pacer is given; never
    raises for a failed call. Latency counts from the send, not from the wait for a slot.

    ``turn``, entered inside the slot once paced, says whether to send: False when the
    answer came another way (another run's, from the cache), and then no outcome is returned.
    It is left only after ``keep(outcome)`` has stored the answer, so a claim it holds on the
    request lasts until its answer can be read."""
    async with limit:
        # Paced inside the slot: a request cleared to go is sent at once, so requests never
        # bunch up behind the semaphore and leave together faster than the limit.
        if pacer is not None:
            await pacer.wait(estimate_tokens(request))
        async with turn if turn is not None else nullcontext(True) as send:
            if not send:
                return None
            outcome = await _send(client, request)
            if keep is not None:
                keep(outcome)
            return outcome


async def _send(client: openai.AsyncOpenAI, request: dict[str, Any]) -> CallOutcome:
    start = time.perf_counter()
    try:
        completion = await client.chat.completions.create(**request)
        return _outcome(completion, time.perf_counter() - start)
    except Exception as error:  # every failure becomes a counted outcome
        reason, detail = classify(error)
        status = error.status_code if isinstance(error, openai.APIStatusError) else None
        return CallOutcome(None, 0, 0, time.perf_counter() - start, reason, detail, status=status)


def longest_call(settings: ClientSettings) -> float:
    """Seconds one call can take with ``settings`` before the SDK gives up: every attempt
    timing out, and the longest Retry-After it honours between them. Another run's claim on
    a request held longer than this is a hung run's, not a slow answer's."""
    attempts = settings.max_retries + 1
    return attempts * settings.timeout + settings.max_retries * MAX_RETRY_AFTER


def _outcome(completion: Any, latency: float) -> CallOutcome:
    """A completion as an answer, or as the failure it is. The SDK does not validate what a
    server sends (it builds its models without checks), so every field is checked here: a
    number or a list where the text should be, or no choices, is ``unexpected`` rather than
    a crash that loses the batch; an unfinished answer is a failure however it reads."""
    usage = getattr(completion, "usage", None)
    prompt_count = getattr(usage, "prompt_tokens", None)
    completion_count = getattr(usage, "completion_tokens", None)
    tokens, output = _token_count(prompt_count), _token_count(completion_count)
    # No prompt is 0 tokens: a reply without a count for it was billed an unknown amount.
    unmetered = not (_is_count(prompt_count) and prompt_count > 0 and _is_count(completion_count))
    model = _model_name(getattr(completion, "model", None))

    def failed(reason: str, detail: str) -> CallOutcome:
        return CallOutcome(None, tokens, output, latency, reason, detail, unmetered, model)

    choices = getattr(completion, "choices", None)
    if not choices or not isinstance(choices, list):
        return failed("unexpected", "no choices")
    first = choices[0]
    finish = getattr(first, "finish_reason", None)
    unfinished = UNFINISHED.get(finish.strip().lower()) if isinstance(finish, str) else None
    if unfinished is not None:
        return failed(unfinished, f"finish {finish}")
    message = getattr(first, "message", None)
    if message is None:
        return failed("unexpected", "no message")
    answer = getattr(message, "content", None)
    if answer is None:  # a refusal in its own field is an answer without a price; else nothing
        answer = getattr(message, "refusal", None)
        if not isinstance(answer, str):
            return failed("unexpected", "no content")
    if not isinstance(answer, str):
        return failed("unexpected", f"content is {type(answer).__name__}")
    # Half a character (a lone surrogate, from a gateway that cut an emoji) cannot be written
    # as UTF-8: the cache write raised, and the batch was lost. It is not part of a price.
    answer = answer.encode("utf-8", "replace").decode("utf-8")
    # Nor is any text 0 tokens: a server that counts none for its answer was billed for
    # them all the same, and its cost was recorded without the output (the dearer side).
    unmetered = unmetered or (bool(answer) and output == 0)
    return CallOutcome(answer, tokens, output, latency, None, None, unmetered, model)


def _model_name(value: Any) -> str | None:
    """A reply's ``model`` as a name fit for a tag, a cache entry and a terminal line, or None
    when it names none. What a server sends is not checked by the SDK: a character that is
    not printable (a line break, a terminal escape, half a character that UTF-8 cannot write)
    becomes "?", and a name is cut at ``MAX_MODEL_NAME`` characters, so a hostile or broken
    server cannot garble the warning, fail the cache write or bloat the record."""
    if not isinstance(value, str) or not value.strip():
        return None
    return "".join(c if c.isprintable() else "?" for c in value.strip()[:MAX_MODEL_NAME])


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_COUNT


def _token_count(value: Any) -> int:
    """A usage count as sent, or 0 (as for a server that sends no usage) when it is not a
    count: a string, a float, a negative number would crash the sums or make costs negative.
    Such a reply is ``unmetered``, so the batch's cost is unknown rather than too low."""
    return value if _is_count(value) else 0


async def check_reachable(client: openai.AsyncOpenAI, base_url: str) -> None:
    """Fail at once when nothing listens at ``base_url``.

    Without it, every item of a batch against a closed port went through the SDK's retries
    before failing as ``connection``: 300 attempts and 54 s for 50 items (issue 10). One
    ``GET /models`` with a single retry (free on OpenAI) tells: any HTTP answer, even a 404
    from a server without that route or a 401, means something listens; only a failure to
    connect at all stops the batch. A timeout does not: a slow server is not a missing one.
    """
    with _unreachable_if_nothing_listens(base_url):
        await client.with_options(max_retries=1).models.list()


def check_reachable_now(client: openai.OpenAI, base_url: str) -> None:
    """``check_reachable`` for a synchronous client (fine-tuning), before a cost is shown or
    a job is asked for: against a closed port, the SDK's retries ran first, and then an
    ``APIConnectionError`` traceback followed the confirmed cost."""
    with _unreachable_if_nothing_listens(base_url):
        client.with_options(max_retries=1).models.list()


@contextmanager
def _unreachable_if_nothing_listens(base_url: str) -> Iterator[None]:
    """Around one request: ``ServerUnreachable`` if it could not connect at all; any HTTP
    answer (a 404, a 401) or a timeout (a slow server is not a missing one) passes."""
    try:
        yield
    except openai.APITimeoutError:  # an APIConnectionError too: let it pass first
        pass
    except openai.APIConnectionError as error:
        raise ServerUnreachable(f"cannot connect to {base_url}") from error
    except openai.APIError:
        pass


async def chat_calls(
    settings: ClientSettings,
    requests: Sequence[dict[str, Any]],
    max_concurrency: int,
    progress: bool,
    on_outcome: Callable[[int, CallOutcome], None] | None = None,
    pacing: Pacing | None = None,
    counter: RetryCounter | None = None,
    turn: Callable[[int], AbstractAsyncContextManager[bool]] | None = None,
) -> tuple[list[CallOutcome | None], RetryCounter]:
    """All requests, at most ``max_concurrency`` in flight and paced to ``pacing``'s limits;
    outcomes in request order, and the counter of calls sent, retries and 429s the SDK met
    (``counter`` when given: a caller reads it even when the batch is interrupted).
    ``on_outcome(index, outcome)`` is called as each call finishes, so a caller can keep
    answers before the batch ends (an interrupted batch keeps what it got). ``turn(index)``
    is the request's ``chat_call`` turn (a claim on it, say): an index it sends no call for
    gets no ``on_outcome`` and a None outcome. Raises ``ServerUnreachable`` before any call
    when nothing listens."""
    if max_concurrency < 1:
        raise ConfigError(f"max_concurrency must be >= 1, got {max_concurrency}")
    pacer = Pacer(pacing) if pacing is not None and pacing.active else None
    counter = counter if counter is not None else RetryCounter()
    counter.on_throttle = pacer.back_off if pacer is not None else None
    limit = asyncio.Semaphore(max_concurrency)
    # A client per batch: its connection pool belongs to this event loop.
    async with make_async_client(settings, counter) as client:
        await check_reachable(client, settings.server())  # named without credentials
        counter.reset()  # the probe's are not a chat call's
        # Not disable=not progress: an explicit False overrode TQDM_DISABLE=1 (tqdm reads its
        # environment only for arguments not given), so the bar still filled redirected logs.
        quiet = {} if progress else {"disable": True}
        with tqdm(total=len(requests), desc="llm calls", unit="call", **quiet) as bar:

            async def tracked(index: int, request: dict[str, Any]) -> CallOutcome | None:
                keep = None if on_outcome is None else functools.partial(on_outcome, index)
                own_turn = None if turn is None else turn(index)
                outcome = await chat_call(client, request, limit, pacer, own_turn, keep)
                bar.update(1)
                return outcome

            calls = [
                asyncio.ensure_future(tracked(index, request))
                for index, request in enumerate(requests)
            ]
            try:
                outcomes = await asyncio.gather(*calls)
            except BaseException as error:
                await _unwind(calls, error)
                raise
    return list(outcomes), counter


async def _unwind(
    calls: Sequence[asyncio.Future[CallOutcome | None]], error: BaseException
) -> None:
    """End a batch that stops early (an interrupt, a failing ``on_outcome``): cancel the calls
    still running and wait for each to end, so none is left running nor its end unread.

    A signal the handler raises while a call's own task runs (``pricer.interrupt``) leaves the
    event loop from that task: asyncio re-raises ``KeyboardInterrupt`` out of a task's step.
    ``asyncio.run`` then cancels the tasks left and runs them to their end, this batch's own
    among them, which ``gather`` hands the same interrupt. Raised again, it left the loop a
    second time and cut that clean-up short: this task's exception was never read ("Task
    exception was never retrieved ... Interrupted" on stderr) and the cancelled calls never
    ran to their end. The interrupt is on its way up already, so this task ends cancelled,
    which is what ``asyncio.run`` asked of it.
    """
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)  # reads every call's end
    escaped = any(
        call.done() and not call.cancelled() and call.exception() is error for call in calls
    )
    if escaped and isinstance(error, (KeyboardInterrupt, SystemExit)):
        raise asyncio.CancelledError from error


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop
    (a notebook, an async server): then it runs on a fresh loop in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
