"""The API key goes from the named environment variable to the request header, and nowhere
else: not the pickle, not the params, not the repr, not the cache, not the logs."""

from __future__ import annotations

import logging
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest

from pricer.credentials import QUERY_CREDENTIAL_WORDS
from pricer.models.llm.client import MissingApiKeyError, ServerUnreachable
from pricer.tracking.redaction import redact_text
from tests.llm.conftest import KEY_ENV, SECRET


def test_key_reaches_the_server_from_the_named_variable(make_pricer, make_items, stub, api_key):
    items = make_items(3, seed=0)
    make_pricer().fit(items, items["price"]).predict(items)
    assert stub.state.authorizations == {api_key}


def test_key_is_absent_from_pickle_params_repr_cache_and_logs(
    make_pricer, make_items, api_key, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items = make_items(6, seed=0)
    with caplog.at_level(logging.DEBUG):
        pricer = make_pricer(cache_dir=str(tmp_path / "cache"), model="unpriced-model")
        pricer.fit(items, items["price"])
        prices = pricer.predict(items)
    secret = api_key.encode()
    assert secret not in pickle.dumps(pricer, protocol=5)  # how the tracking layer stores it
    assert api_key not in repr(pricer.get_params(deep=True))
    assert api_key not in repr(pricer)
    assert all(secret not in path.read_bytes() for path in (tmp_path / "cache").rglob("*.json"))
    assert api_key not in caplog.text
    assert pricer.get_params()["api_key_env"] == "PRICER_TEST_LLM_KEY"  # only the name

    # The unpickled pricer builds its client again from the environment.
    restored = pickle.loads(pickle.dumps(pricer))
    np.testing.assert_allclose(restored.predict(items), prices)


def test_the_server_tag_keeps_no_credentials_from_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pricer.models.llm.client import ClientSettings

    def server(base_url: str | None) -> str:
        return ClientSettings(base_url, "KEY", 5.0, 0).server()

    assert (
        server("https://alice:s3cret@llm.example.com:8443/v1") == "https://llm.example.com:8443/v1"
    )
    monkeypatch.setenv("OPENAI_BASE_URL", "http://bob:pw@127.0.0.1:8765/v1?token=t")
    assert server(None) == "http://127.0.0.1:8765/v1"
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert server(None) == "https://api.openai.com/v1"


def test_an_unreachable_server_is_named_without_the_credentials_in_its_url(
    make_pricer, make_items
) -> None:
    # The one-line error (console, the FAILED run's error tag) quoted the URL whole.
    with socket.socket() as probe:  # a port nothing listens on once this socket closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    items = make_items(3, seed=5)
    url = f"http://alice:pw-9f8e7d@127.0.0.1:{port}/v1?api-key=Zq9x7Lm2Np4Rt6Wy"
    pricer = make_pricer(base_url=url, max_retries=0).fit(items, items["price"])
    with pytest.raises(ServerUnreachable) as error:
        pricer.predict_report(items)
    assert str(error.value) == f"cannot connect to http://127.0.0.1:{port}/v1"


def test_a_password_in_the_base_url_is_not_written_into_the_cache(
    make_pricer, make_items, stub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A gateway with basic auth in its URL: the SDK sends the URL's user and password, so the
    # stub is told to take any caller. Each cache entry kept the URL whole beside its answer.
    monkeypatch.setattr(stub._httpd.RequestHandlerClass, "_authorised", lambda self: True)
    items = make_items(4, seed=2)
    url = stub.base_url.replace("http://", "http://alice:pw-9f8e7d6c@")
    cache = tmp_path / "cache"
    pricer = make_pricer(base_url=url, cache_dir=str(cache)).fit(items, items["price"])
    first = pricer.predict_report(items)
    entries = list(cache.rglob("*.json"))
    assert len(entries) == len(items) and first.stats["llm.failures"] == 0
    assert all(b"pw-9f8e7d6c" not in entry.read_bytes() for entry in entries)
    again = pricer.predict_report(items)  # the entries still answer their requests
    assert again.stats["llm.cache_hits"] == len(items)
    np.testing.assert_allclose(again.prices, first.prices)


def test_a_key_in_the_base_urls_query_is_not_written_into_the_cache() -> None:
    # The cache's server kept the query (it may choose a deployment) with any key in it, and
    # wrote it into every entry beside the answer.
    from pricer.models.llm.client import ClientSettings

    settings = ClientSettings(
        "https://gw.example/v1?api-version=2024-06-01&api_key=Zq9x7Lm2Np4Rt6Wy&sig=abc", "K", 5, 0
    )
    assert settings.cache_server() == (
        "https://gw.example/v1?api-version=2024-06-01&api_key=%2A%2A%2A&sig=%2A%2A%2A"
    )


def test_a_key_with_a_stray_newline_or_spaces_still_works(
    make_pricer, make_items, stub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pasted from a file with its line end: every call failed to send, reported as
    # "cannot connect to <the URL>" though the server was up.
    monkeypatch.setenv(KEY_ENV, f"  {SECRET}\r\n")
    items = make_items(3, seed=0)
    report = make_pricer().fit(items, items["price"]).predict_report(items)
    assert report.stats["llm.failures"] == 0
    assert stub.state.authorizations == {SECRET}


@pytest.mark.parametrize(
    "key", ["sk-pricer-t\u00e9st-9f8e7d6c5b4a", "sk-pricer-test\n9f8e7d6c5b4a"]
)
def test_a_key_no_server_can_take_fails_at_fit_in_one_line_without_showing_it(
    make_pricer, make_items, stub, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    # A non-ASCII character raised UnicodeEncodeError mid-predict; a line break inside was
    # "cannot connect to <the URL>".
    monkeypatch.setenv(KEY_ENV, key)
    items = make_items(3, seed=0)
    with pytest.raises(MissingApiKeyError) as error:
        make_pricer().fit(items, items["price"])
    message = str(error.value)
    assert message.startswith(f"environment variable {KEY_ENV} (named by api_key_env) holds ")
    assert "\n" not in message and "9f8e7d6c5b4a" not in message
    assert stub.state.counters["POST /chat/completions"] == 0


@pytest.mark.parametrize(
    "name",
    [
        *(f"x-{word.upper()}-y" for word in QUERY_CREDENTIAL_WORDS),  # each word, anywhere
        "api-version",  # chooses a deployment: no credential, shown by both
        "deployment",
    ],
)
def test_the_cache_and_the_redaction_hide_the_same_query_parameters(name: str) -> None:
    # Each kept its own list of the names that mark a credential: a word added to one would
    # have left the other writing that credential into a cache entry or the store. In the
    # fragment too: no server receives it, but the URL is written as typed.
    from pricer.models.llm.client import ClientSettings

    value = "Zq9x7Lm2Np4Rt6Wy"
    for url in (f"https://gw.example/v1?{name}={value}", f"https://gw.example/v1#{name}={value}"):
        hidden_by_cache = value not in ClientSettings(url, "K", 5, 0).cache_server()
        hidden_by_redaction = value not in redact_text(url)
        assert hidden_by_cache == hidden_by_redaction == (name not in ("api-version", "deployment"))


@pytest.mark.parametrize("name", ["API%5FKEY", "api%2Dk%65y", "api+key", "key[0]", "x%2Dtoken"])
def test_a_query_credential_named_with_escapes_is_hidden_by_both(name: str) -> None:
    # The cache read the name decoded (api_key, api-key) and hid its value; the redaction
    # read it as typed, found no credential word, and logged the value whole.
    from pricer.models.llm.client import ClientSettings

    url = f"https://gw.example/v1?api-version=2024-06-01&{name}=Zq9x7Lm2Np4Rt6Wy"
    assert "Zq9x7Lm2Np4Rt6Wy" not in ClientSettings(url, "K", 5, 0).cache_server()
    assert redact_text(url) == f"https://gw.example/v1?api-version=2024-06-01&{name}=***"


def test_a_key_in_the_base_urls_fragment_is_not_saved_with_the_model(
    make_pricer, make_items, tmp_path: Path
) -> None:
    # No server receives a fragment, so the logged model has no use for one; it saved the URL
    # as typed (a compressed file: a search of the store's bytes did not find it).
    from pricer.tracking.model_files import load_pricer, save_pricer
    from tests.e2e.conftest import files_holding

    items = make_items(4, seed=3)
    pricer = make_pricer(cache_dir=str(tmp_path / "cache"))
    pricer.set_params(base_url=f"{pricer.base_url}#access_token=Zq9x7Lm2Np4Rt6Wy&state=2")
    first = pricer.fit(items, items["price"]).predict_report(items)
    saved = tmp_path / "saved"
    saved.mkdir()
    save_pricer(pricer, saved / "pricer.skops")
    (saved / "pricer.pkl").write_bytes(pickle.dumps(pricer, protocol=5))
    assert not files_holding("Zq9x7Lm2Np4Rt6Wy", saved)
    assert "Zq9x7Lm2Np4Rt6Wy" in pricer.base_url  # the fitted pricer itself is left as it was
    for loaded in (load_pricer(saved / "pricer.skops"), pickle.loads(pickle.dumps(pricer))):
        again = loaded.predict_report(items)  # the same server, the same cache entries
        assert again.stats["llm.cache_hits"] == len(items)
        np.testing.assert_allclose(again.prices, first.prices)
        assert loaded.base_url.endswith("#access_token=%2A%2A%2A&state=2")  # as the cache has it
