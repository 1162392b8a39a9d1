"""Keep secrets out of the store: redact what looks like a credential before it is logged.

A key reaches the store by mistake, e.g. ``model.api_key_env=sk-...`` (the *name* of a
variable was expected): as a param, in the config artifact and in the ``error`` tag of the
failed run. Everything pricer logs about its configuration or an error goes through here.

Two rules:

- Anywhere (params, tags, YAML, error messages): a substring matching one of
  ``SECRET_PATTERNS`` (provider key formats, bearer tokens, ``password=...`` assignments) is
  replaced by ``REDACTED``.
- In a config position that names a credential (a key part such as ``api_key``, ``secret``,
  ``token``, ``password``): a value is replaced whole if the key *ends* with that word
  (``model.api_key: anything``), or if it looks random (``looks_random``) even when the key
  only mentions one (``model.api_key_env: 9fK2...``). A variable name such as
  ``OPENAI_API_KEY`` is kept: it says where the secret lives, not what it is.

Free text is not entropy-checked: commit hashes and data digests are logged on purpose.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pricer.credentials import QUERY_CREDENTIAL
from pricer.files import replaced_atomically

REDACTED = "***"

# (what it is, pattern). Lengths are the shortest real keys of each kind, so ordinary words
# ("sk-learn", "bearer of") do not match.
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # OpenAI (sk-..., sk-proj-..., sk-svcacct-...), Anthropic (sk-ant-...), DeepSeek and others
    ("sk- API key", re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}")),
    ("bearer token", re.compile(r"(?i)(?<=bearer )[A-Za-z0-9._~+/=\-]{12,}")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,})")),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}")),
    ("Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}")),
    ("JSON web token", re.compile(r"\beyJ[\w\-]{8,}\.[\w\-]{8,}\.[\w\-]{8,}")),
    # scheme://user:password@host (a gateway's basic auth in model.base_url): the password
    # only, whatever its length; the user and host say where, not how to get in. The host is
    # after the authority's last "@", as the HTTP client reads it: an "@" left unescaped in
    # the user (an e-mail address) or in the password is theirs.
    (
        "URL password",
        re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^/?#\s:]*:)([^/?#\s]+)(?=@)"),
    ),
    # A URL's query parameter named for a credential (?access_token=..., &key=..., &sig=...,
    # the names the LLM cache hides too: pricer.credentials): its value only, whatever its
    # length; the name stays, as the parameters that choose a deployment (api-version) do.
    # A fragment's too (#access_token=...): no server receives it, but the URL as typed is
    # what gets written. Any parameter matches here; ``_QUERY_NAME`` then reads its name as a
    # server does (API%5FKEY, api+key: see ``_query_names_credential``).
    ("URL query credential", re.compile(r"([?&#]([^=&#\s\"']+)=)([^&#\s\"']+)")),
    # api_key=..., "password": "...", token: ... in messages and URLs: the value only
    (
        "credential assignment",
        re.compile(
            r"(?i)((?:^|[^\w])(?:api[_-]?key|secret|password|passwd|token|access[_-]?key)"
            r"[\"']?\s*[=:]\s*[\"']?)([^\s\"',;&]{8,})"
        ),
    ),
)

# Config key parts that name a credential.
_CREDENTIAL_WORDS = {
    "key",
    "apikey",
    "secret",
    "token",
    "password",
    "passwd",
    "credential",
    "credentials",
    "auth",
    "bearer",
}
# A key that ends with one of these holds the secret itself: redact any non-empty value.
_SECRET_KEY = re.compile(r"(api_?key|secret|password|passwd|token)$", re.IGNORECASE)
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# Bits per character of a value's own character counts. Random base62 strings of 20 characters
# measured 3.44-4.6 (mean 4.03 over 2,000), of 32: 4.05 and up. Only values under a
# credential-naming key are checked, where a variable name is expected (kept by its shape);
# anything else long there is redacted, even a model name ("gpt-4o-mini-2024-07-18": 3.57):
# over-redacting a credential position costs nothing.
MIN_ENTROPY = 3.3
MIN_RANDOM_LENGTH = 20


# A URL parameter's name that marks a credential, once decoded as a server decodes it: the
# LLM cache reads names so (parse_qsl), and API%5FKEY or api+key named no credential as typed.
_QUERY_NAME = re.compile(QUERY_CREDENTIAL, re.IGNORECASE)


def _query_names_credential(match: re.Match[str]) -> bool:
    return bool(_QUERY_NAME.search(unquote_plus(match.group(2))))


# Patterns whose match is a secret only if this says so (the rest always are).
_SECRET_IF = {"URL query credential": _query_names_credential}


def _always(match: re.Match[str]) -> bool:
    return True


def _value_hidden(match: re.Match[str], secret: Callable[[re.Match[str]], bool]) -> str:
    return match.group(1) + REDACTED if secret(match) else match.group(0)


def redact_text(text: str) -> str:
    """``text`` with every substring matching ``SECRET_PATTERNS`` replaced by ``REDACTED``."""
    for what, pattern in SECRET_PATTERNS:
        if pattern.groups >= 2:  # keep the "password=" part, hide the value
            secret = _SECRET_IF.get(what, _always)
            text = pattern.sub(functools.partial(_value_hidden, secret=secret), text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def looks_random(value: str) -> bool:
    """A long, high-entropy token mixing letters and digits, not a name, path or URL."""
    if len(value) < MIN_RANDOM_LENGTH or any(c.isspace() for c in value):
        return False
    if _ENV_NAME.match(value) or "://" in value or value.startswith(("/", ".", "~")):
        return False
    if not (any(c.isalpha() for c in value) and any(c.isdigit() for c in value)):
        return False
    counts = Counter(value)
    entropy = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return entropy >= MIN_ENTROPY


def names_credential(key: str) -> bool:
    """Whether a config key mentions a credential: ``api_key_env``, ``auth.token``, ..."""
    parts = re.split(r"[._\-]", key.lower())
    joined = {a + b for a, b in itertools.pairwise(parts)}  # api + key -> apikey
    return bool(_CREDENTIAL_WORDS & (set(parts) | joined))


def redact_value(key: str, value: Any) -> Any:
    """One config value, redacted as its key and shape call for (see the module docstring)."""
    if value is None or value == "":
        return value
    if _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        if names_credential(key) and looks_random(value):
            return REDACTED
        return redact_text(value)
    return value


def redact_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Run tags as text, each value redacted as its key calls for, as a param's is: a tag is
    named by the user (``+tracking.tags.api_token=...``), and a value that no key format
    gives away is a secret by the name it was put under."""
    return {str(key): redact_value(str(key), str(value)) for key, value in tags.items()}


def redact_tree(node: Any, key: str = "") -> Any:
    """A config tree of plain containers with every secret-looking value redacted."""
    if isinstance(node, Mapping):
        return {name: redact_tree(value, str(name)) for name, value in node.items()}
    if isinstance(node, list | tuple):
        return [redact_tree(value, key) for value in node]
    return redact_value(key, node)


def redact_override(override: str) -> str:
    """A Hydra override (``model.api_key_env=sk-...``) with its value redacted as its key
    calls for."""
    key, sep, value = override.partition("=")
    if not sep:
        return redact_text(override)
    return f"{key}{sep}{redact_value(key.lstrip('+~'), value)}"


def redact_given(text: str, overrides: Sequence[str]) -> str:
    """``text`` (an error about the command line) with the value of each override in
    ``overrides`` that its key or shape makes a secret hidden too, wherever it is quoted:
    Hydra's errors quote an override it cannot read, or the part it stopped at, where the key
    may not be beside it. Runs of 8 or more of the value's letters and digits are hidden as
    well: an error may quote them without the rest. (A secret inside a value, such as a URL's
    password, is found in the text by ``redact_text`` itself.)"""
    for override in overrides:
        _, sep, value = override.partition("=")
        if not sep or not value or redact_override(override) != override[: -len(value)] + REDACTED:
            continue
        pieces = {value, *(piece for piece in re.findall(r"\w+", value) if len(piece) >= 8)}
        for piece in sorted(pieces, key=len, reverse=True):
            text = text.replace(piece, REDACTED)
    return text


def redact_line(text: str) -> str:
    """A line of free text in which each ``key=value`` word is redacted as its key calls for
    (a sweep's overrides as Hydra's launcher echoes them), the rest by ``redact_text``."""
    words = re.split(r"(\s+)", text)
    return "".join(redact_override(word) if "=" in word else redact_text(word) for word in words)


def redact_logging() -> None:
    """Redact every log record's message (``redact_line``) as it is made, in this process.

    Hydra's launchers log each job's overrides as typed ("#0 : model.api_key_env=sk-..."),
    and they do it after reconfiguring logging (a filter on the handlers there is gone), so
    the records themselves are redacted: a record factory wraps whichever one is in place.
    """
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacts", False):
        return

    def redacting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        message = record.getMessage()
        redacted = redact_line(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return record

    redacting.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting)


class RedactedHydraOutputs(Callback):
    """Hydra callback: the job's ``.hydra`` folder (and a sweep's ``multirun.yaml``) and its
    log records (``redact_logging``) redacted.

    Hydra keeps the composed config, its own config and the overrides as typed in the output
    folder, written before any callback runs: ``model.api_key_env=sk-...`` given by mistake was
    redacted in the store and kept whole there. Each file is rewritten at the start of the job,
    before the app's code runs, and only if redacting changes it; in a joblib worker too.
    """

    # Before anything is logged: the launcher echoes the overrides after on_multirun_start.
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        redact_logging()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        redact_logging()  # before the launcher echoes each job's overrides

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        redact_logging()
        hydra_cfg = config.hydra
        paths = [Path(str(hydra_cfg.sweep.dir)) / "multirun.yaml"]
        if hydra_cfg.output_subdir is not None:
            folder = Path(str(hydra_cfg.runtime.output_dir)) / str(hydra_cfg.output_subdir)
            paths += [folder / name for name in ("config.yaml", "hydra.yaml", "overrides.yaml")]
        for path in paths:
            if path.is_file():
                _redact_yaml(path)


def _redact_yaml(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    tree = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    if isinstance(tree, list):  # overrides.yaml: the overrides as typed
        tree = [redact_override(str(item)) for item in tree]
    else:
        tree = redact_tree(tree)
        hydra = tree.get("hydra", {}) if isinstance(tree, dict) else {}
        overrides = hydra.get("overrides", {})
        for group, items in overrides.items():
            overrides[group] = [redact_override(str(item)) for item in items or []]
        job = hydra.get("job") or {}
        if isinstance(job.get("override_dirname"), str):  # the overrides joined in one value
            job["override_dirname"] = _redacted_dirname(job)
    redacted = OmegaConf.to_yaml(OmegaConf.create(tree))
    if redacted != text:
        with replaced_atomically(path) as temporary:
            temporary.write_text(redacted, encoding="utf-8")


def _redacted_dirname(job: dict[str, Any]) -> str:
    """Hydra's ``job.override_dirname`` (``a=1,+tracking.tags.api_token=...``: the overrides,
    joined with the job's separators) with each override redacted by its key."""
    separators = (job.get("config") or {}).get("override_dirname") or {}
    item_sep, kv_sep = separators.get("item_sep") or ",", separators.get("kv_sep") or "="
    items = []
    for item in str(job["override_dirname"]).split(item_sep):
        key, sep, value = item.partition(kv_sep)
        items.append(f"{key}{sep}{redact_value(key.lstrip('+~'), value)}" if sep else item)
    return item_sep.join(items)
