"""Secret-looking values never reach params, tags, the config YAML or the error tag."""

from __future__ import annotations

import mlflow
import pytest
from omegaconf import OmegaConf

from pricer.tracking.redaction import (
    REDACTED,
    looks_random,
    names_credential,
    redact_line,
    redact_text,
)
from pricer.tracking.run import flatten_config, log_config, redacted_config, tracked_run
from pricer.tracking.sweep import open_parent_run
from tests.conftest import compose_config
from tests.sweep.test_sweep_configs import compose_train

# Made-up keys in the real formats (none of them is valid anywhere).
OPENAI = "sk-proj-Zq3vX9kLm2Np4Rt6Wy8Ab1Cd3Ef5Gh7Jk9Lm0Pq2St4Uv6Wx8"
LEGACY = "sk-4fT9qLzW2mXc8VbN1rKp6YhJ3sDg7aQe0uIo5"
ANTHROPIC = "sk-ant-api03-Xy7Zq2Wv9Ut4Sr6Qp1On3Ml5Kj8Ih0Gf"
RANDOM = "9fK2xQ7mLp4ZsW1vBn8R"  # 20 random characters, no known prefix


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"environment variable {OPENAI} (named by api_key_env) is not set", OPENAI),
        (f"'{LEGACY}'", LEGACY),
        (f"key={ANTHROPIC}", ANTHROPIC),
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3j",
            "eyJ",
        ),
        ("Authorization: Bearer abcdef0123456789abcdef", "abcdef0123456789"),
        ("https://host/v1?api_key=Qm9vZ2llV29vZ2ll&x=1", "Qm9vZ2llV29vZ2ll"),
        ('{"password": "correct-horse-battery"}', "correct-horse-battery"),
        ("token: 8c1f2e3d4b5a69788796a5b4", "8c1f2e3d4b5a69788796a5b4"),
        ("ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "ghp_A1b2"),
        ("hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567", "hf_AbCd"),
        ("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("AIzaSyA-1234567890abcdefghijklmnopqrstu", "AIzaSy"),
        # A password in a URL (a proxy or gateway in front of the model): any length
        ("http://alice:hunter2@127.0.0.1:8765/v1", "hunter2"),
        ("base_url: https://u:p4ss%40word@llm.example.com/v1 failed", "p4ss"),
        ("see HTTPS://bob:Zq9-x@host:8443/v1", "Zq9-x"),
        # an "@" inside the user or the password: the host is after the last one, as the
        # HTTP client reads it
        ("https://alice:Zq9@x7Lm2@gw.example/v1", "x7Lm2"),
        ("https://me@corp.example:Zq9x7pw@gw.example/v1", "Zq9x7pw"),
        # A credential in a URL's query, by the names the LLM cache hides: any length
        ("https://gw.example/v1?access_token=Zq9x7Lm2", "Zq9x7Lm2"),
        ("https://gw.example/v1?api-version=2024-06-01&key=Zq9x7", "Zq9x7"),
        ("http://127.0.0.1:8765/v1?sig=Zq9x7Lm2#top", "Zq9x7Lm2"),
        # ... and in its fragment: never sent to a server, but kept in the URL as typed
        ("https://gw.example/v1#access_token=Zq9x7Lm2&token_type=bearer", "Zq9x7Lm2"),
        ("https://gw.example/v1?api-version=2024-06-01#key=Zq9x7", "Zq9x7"),
        ("https://gw.example/v1#state=1&SIG=Zq9x7Lm2", "Zq9x7Lm2"),
        # ... named as a server reads the name: percent-escapes and "+" decoded
        ("https://gw.example/v1?API%5FKEY=Zq9x7Lm2", "Zq9x7Lm2"),
        ("https://gw.example/v1?x=1&api%2Dk%65y=Zq9x7Lm2", "Zq9x7Lm2"),
        ("https://gw.example/v1?api+key=Zq9x7Lm2", "Zq9x7Lm2"),
        ("https://gw.example/v1?key[0]=Zq9x7Lm2", "Zq9x7Lm2"),
    ],
)
def test_keys_in_free_text_are_redacted(text: str, secret: str) -> None:
    redacted = redact_text(text)
    assert secret not in redacted and REDACTED in redacted


@pytest.mark.parametrize(
    "text",
    [
        "sk-learn style names stay",  # too short to be a key
        "model gpt-4o-mini at https://api.openai.com/v1",
        "git_commit 273489c0e1d2f3a4b5c6d7e8f9a0b1c2d3e4f5a6",  # logged on purpose
        "max_tokens: 16, token budget",
        "OPENAI_API_KEY is not set",
        "http://127.0.0.1:8765/v1 and https://alice@llm.example.com/v1",  # no password
        "mailto:someone@example.com, time 12:30@home",
        "https://gw.example/v1?api-version=2024-06-01&deployment=gpt-4o-mini",  # no credential
        "https://gw.example/v1#section=2",  # a fragment naming no credential
        "unknown key=value pairs: model.n_estimator",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact_text(text) == text


def test_credential_positions_redact_random_values_but_keep_variable_names() -> None:
    assert names_credential("model.api_key_env") and names_credential("auth.token")
    assert not names_credential("model.max_tokens") and not names_credential("keywords")
    assert looks_random(RANDOM) and looks_random("a1b2c3d4e5f6a7b8c9d0e1f2")
    for name in ("OPENAI_API_KEY", "/home/u/keys/key.txt", "a-short-value-with-no-digits"):
        assert not looks_random(name), name
    cfg = {
        "model": {"api_key_env": RANDOM, "base_url": "http://localhost:8000/v1", "seed": 3},
        "llm": {"api_key_env": "OPENAI_API_KEY", "api_key": "anything", "token": None},
        "tracking": {"tags": {"note": f"tried {OPENAI}"}},
    }
    redacted = redacted_config(cfg)
    assert redacted["model"] == {**cfg["model"], "api_key_env": REDACTED}
    assert redacted["llm"] == {"api_key_env": "OPENAI_API_KEY", "api_key": REDACTED, "token": None}
    assert redacted["tracking"]["tags"]["note"] == f"tried {REDACTED}"


def test_real_frontier_config_with_a_key_for_a_name_is_redacted_everywhere(
    tracking_uri: str,
) -> None:
    cfg = compose_config(
        "train", ["model=frontier", "family=frontier", f"model.api_key_env={OPENAI}"]
    )
    flat = flatten_config(cfg)
    assert flat["model.api_key_env"] == REDACTED
    assert OPENAI not in repr(flat)
    with (
        pytest.raises(RuntimeError),
        tracked_run(cfg.tracking, run_name="frontier", tags={"note": OPENAI}) as run,
    ):
        log_config(cfg)
        raise RuntimeError(f"environment variable {OPENAI} is not set")
    logged = mlflow.get_run(run.info.run_id)
    assert logged.data.tags["error"] == f"RuntimeError: environment variable {REDACTED} is not set"
    assert logged.data.tags["note"] == REDACTED
    yaml = mlflow.artifacts.load_text(f"{logged.info.artifact_uri}/config/config.yaml")
    assert OPENAI not in yaml and OmegaConf.create(yaml).model.api_key_env == REDACTED


def test_a_tag_named_for_a_credential_is_redacted_by_its_key_as_a_param_is(
    tracking_uri: str,
) -> None:
    # +tracking.tags.api_token=<a plain random value>: the param tracking.tags.api_token was
    # ***, the run's tag (and a sweep parent's) kept the value, only key formats (sk-...)
    # being looked for in tags.
    overrides = [f"+tracking.tags.api_token={RANDOM}", "+tracking.tags.key_owner=alice"]
    cfg = compose_config("train", [*overrides, "family=constant"])
    with tracked_run(cfg.tracking, run_name="constant", tags={}) as run:
        log_config(cfg)
    parent = open_parent_run(dict(compose_train(*overrides).tracking), "study", {})
    mlflow.MlflowClient().set_terminated(parent)
    for run_id in (run.info.run_id, parent):
        tags = mlflow.get_run(run_id).data.tags
        assert tags["api_token"] == REDACTED, run_id
        assert tags["key_owner"] == "alice"  # a key that only mentions one: by its shape
    assert mlflow.get_run(run.info.run_id).data.params["tracking.tags.api_token"] == REDACTED


def test_a_log_line_redacts_each_override_by_its_key_and_keeps_its_spacing() -> None:
    line = "\t#0 : model=constant +model.api_key_env=9fK2xQ7bLm4Np8Rt3Wy6Zc1V  note sk-" + "a" * 20
    assert redact_line(line) == "\t#0 : model=constant +model.api_key_env=***  note ***"
    assert redact_line("eval.size=250, but the test split holds 200") == (
        "eval.size=250, but the test split holds 200"
    )


def logged_with_base_url(url: str) -> tuple[str, str, str]:
    """A frontier train config with ``model.base_url=url``, logged as a run logs it: the
    flattened param's value, every logged param's text and the config artifact's."""
    cfg = compose_config("train", ["model=frontier", "family=frontier", f"model.base_url='{url}'"])
    param = flatten_config(cfg)["model.base_url"]
    with tracked_run(cfg.tracking, run_name="frontier", tags={}) as run:
        log_config(cfg)
    logged = mlflow.get_run(run.info.run_id)
    yaml = mlflow.artifacts.load_text(f"{logged.info.artifact_uri}/config/config.yaml")
    return param, repr(logged.data.params), yaml


@pytest.mark.parametrize("password", ["hunter2pw", "hunter2@Zq9x7Lm"])
def test_a_password_in_the_base_url_reaches_no_param_or_config_artifact(
    tracking_uri: str, password: str
) -> None:
    # The llm.server tag already dropped it; the model.base_url param and the config
    # artifact kept it whole. One with an "@" (the client reads the host after the last one)
    # kept what followed its first.
    param, params, yaml = logged_with_base_url(f"http://alice:{password}@127.0.0.1:8765/v1")
    assert param == f"http://alice:{REDACTED}@127.0.0.1:8765/v1"
    tail = password.rpartition("@")[2]  # all of it, or what followed its "@"
    assert tail not in params
    assert tail not in yaml


@pytest.mark.parametrize("name", ["access_token", "key", "sig", "auth", "API%5FKEY"])
def test_a_key_in_the_base_urls_query_reaches_no_param_or_config_artifact(
    tracking_uri: str, name: str
) -> None:
    # The LLM cache hid it (pricer.models.llm.client), and the llm.server tag dropped the
    # query; the model.base_url param and the config artifact kept it whole.
    url = f"http://127.0.0.1:8765/v1?api-version=2024-06-01&{name}=Zq9x7Lm2Np4Rt6Wy"
    param, params, yaml = logged_with_base_url(url)
    assert param == f"http://127.0.0.1:8765/v1?api-version=2024-06-01&{name}={REDACTED}"
    assert "Zq9x7Lm2Np4Rt6Wy" not in params
    assert "Zq9x7Lm2Np4Rt6Wy" not in yaml


@pytest.mark.parametrize("fragment", ["access_token=Zq9x7Lm2Np4Rt6Wy", "key=Zq9x7Lm2Np4Rt6Wy"])
def test_a_key_in_the_base_urls_fragment_reaches_no_param_or_config_artifact(
    tracking_uri: str, fragment: str
) -> None:
    # No server receives a fragment, so it was left as typed: the param and the config
    # artifact kept the key whole.
    param, params, yaml = logged_with_base_url(f"http://127.0.0.1:8765/v1#{fragment}")
    assert param == "http://127.0.0.1:8765/v1#" + fragment.replace("Zq9x7Lm2Np4Rt6Wy", REDACTED)
    assert "Zq9x7Lm2Np4Rt6Wy" not in params
    assert "Zq9x7Lm2Np4Rt6Wy" not in yaml
