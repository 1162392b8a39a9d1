"""An OpenAI-compatible HTTP server for tests and key-less demos (standard library only).

It speaks the few endpoints pricer uses, over real HTTP, so the real ``openai`` client (its
retries, timeouts, multipart uploads and pagination) is what gets tested. This module holds
the HTTP side (routing, bearer auth, per-route ``counters``) and the server's lifecycle; the
endpoints live beside it:

- ``stub_chat``: ``POST /v1/chat/completions`` (deterministic answers, scripted faults);
- ``stub_fine_tuning``: files and fine-tuning jobs.

``StubState`` joins their states, so a test scripts everything on ``stub.state``. It binds
127.0.0.1 only.

Run it for a local demo without a key:
``python -m pricer.devtools.stub_server --port 8765`` then point a frontier config at
``base_url=http://127.0.0.1:8765/v1`` with any non-empty key in the configured variable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from pricer.devtools import stub_fine_tuning as fine_tuning
from pricer.devtools.stub_chat import ChatState, chat_completion
from pricer.devtools.stub_common import Reply, error_reply
from pricer.devtools.stub_fine_tuning import FineTuningState
from pricer.devtools.stub_ratelimit import RateLimit

HOST = "127.0.0.1"

# (method, path parts after /v1 with "*" for an id) -> handler(state, parts, query, handler)
Route = Callable[["StubState", list[str], dict[str, str], "_Handler"], Reply]
ROUTES: dict[tuple[str, ...], Route] = {
    ("POST", "chat", "completions"): lambda s, p, q, h: chat_completion(s, h.json_body()),
    ("POST", "files"): lambda s, p, q, h: fine_tuning.upload_file(
        s, h.headers.get("Content-Type", ""), h.body()
    ),
    ("GET", "files", "*"): lambda s, p, q, h: fine_tuning.get_file(s, p[1]),
    ("GET", "files", "*", "content"): lambda s, p, q, h: fine_tuning.get_file(s, p[1], True),
    ("POST", "fine_tuning", "jobs"): lambda s, p, q, h: fine_tuning.create_job(s, h.json_body()),
    ("GET", "fine_tuning", "jobs", "*"): lambda s, p, q, h: fine_tuning.get_job(s, p[2]),
    ("GET", "fine_tuning", "jobs", "*", "events"): lambda s, p, q, h: fine_tuning.job_events(
        s, p[2], q
    ),
    ("POST", "fine_tuning", "jobs", "*", "cancel"): lambda s, p, q, h: fine_tuning.cancel_job(
        s, p[2]
    ),
}


@dataclass
class StubState(ChatState, FineTuningState):
    """What the server does and what it saw; shared by handler threads under ``lock``.

    ``counters`` counts requests by route ("POST /chat/completions"); ``authorizations``
    holds every bearer token seen (tests check the key came from the configured variable).
    """

    counters: Counter[str] = field(default_factory=Counter)
    authorizations: set[str] = field(default_factory=set)


class StubServer:
    """The server in a background thread: ``with StubServer() as stub: stub.base_url``."""

    def __init__(self, port: int = 0, latency: float = 0.0) -> None:
        self.state = StubState(latency=latency)
        self._httpd = _Server((HOST, port), _handler_for(self.state))
        self._httpd.daemon_threads = True  # a stalled fault thread must not block shutdown
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def start(self) -> StubServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the command-line demo)."""
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) drops connection bursts; Linux then retries after 1 s.
    request_queue_size = 128


def _handler_for(state: StubState) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.state = state
    return Handler


class _Handler(BaseHTTPRequestHandler):
    state: StubState
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API
    disable_nagle_algorithm = True  # else headers and body wait out a 40 ms delayed ACK

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read counters, not logs

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def json_body(self) -> dict[str, Any]:
        return json.loads(self.body() or b"{}")

    def _send(self, reply: Reply) -> None:
        raw = isinstance(reply.payload, bytes)
        data = reply.payload if raw else json.dumps(reply.payload).encode()
        try:
            self.send_response(reply.status)
            self.send_header(
                "Content-Type", "application/octet-stream" if raw else "application/json"
            )
            self.send_header("Content-Length", str(len(data)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout fault): nothing to answer

    def _authorised(self) -> bool:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
            self._send(error_reply(401, "missing bearer token"))
            return False
        with self.state.lock:
            self.state.authorizations.add(auth[len("Bearer ") :])
        return True

    def _route(self, method: str) -> None:
        url = urlparse(self.path)
        parts = [part for part in url.path.split("/") if part]
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        if parts[:1] != ["v1"]:
            self._send(error_reply(404, f"no route {url.path}"))
            return
        parts = parts[1:]
        for pattern, handler in ROUTES.items():
            if (
                pattern[0] == method
                and len(pattern) - 1 == len(parts)
                and all(want in ("*", got) for want, got in zip(pattern[1:], parts, strict=True))
            ):
                with self.state.lock:  # counted by route, e.g. "POST /chat/completions"
                    self.state.counters[f"{method} /{'/'.join(pattern[1:])}"] += 1
                if self._authorised():
                    self._send(handler(self.state, parts, query, self))
                return
        self._send(error_reply(404, f"no route {method} {url.path}"))

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each call")
    parser.add_argument("--rpm", type=float, help="enforce requests per minute (429s)")
    parser.add_argument("--tpm", type=float, help="enforce tokens per minute (429s)")
    parser.add_argument(
        "--burst-seconds", type=float, default=60.0, help="seconds' worth of --rpm/--tpm at once"
    )
    parser.add_argument(
        "--answering-model",
        help="the model every reply names (default: the one asked for), as a proxy's substitute",
    )
    parser.add_argument(
        "--polls-to-finish", type=int, default=3, help="job polls until a fine-tuning job succeeds"
    )
    args = parser.parse_args()
    try:
        server = StubServer(port=args.port, latency=args.latency)
    except OSError as error:  # the port is taken (another stub still running?): one line
        message = f"error: cannot listen on {HOST}:{args.port}: {error.strerror}; choose --port"
        print(message, file=sys.stderr)
        sys.exit(2)
    server.state.polls_to_finish = args.polls_to_finish
    server.state.answering_model = args.answering_model
    if args.rpm or args.tpm:
        server.state.rate_limit = RateLimit(args.rpm, args.tpm, args.burst_seconds)
    print(f"stub OpenAI server on {server.base_url} (Ctrl-C stops it)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
