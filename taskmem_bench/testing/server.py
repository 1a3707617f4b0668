"""A loopback OpenAI-compatible chat server over any :class:`Backend`.

It lets the ``openai`` backend be tested over real HTTP against a real model (the tiny
transformers ones in tests), and lets a user check the HTTP path locally before pointing it at
``vllm serve``::

    python -m taskmem_bench.testing.server --model DIR --port 8000
    taskmem-bench run ... --set backend=openai --set model=DIR --set base_url=http://127.0.0.1:8000/v1

It implements ``POST /v1/chat/completions`` and ``GET /v1/models``, decoding requests with
:mod:`taskmem_bench.backends.wire` (the exact inverse of the client) and answering with
OpenAI-shaped JSON. Errors use vLLM's status codes and an ``{"error": {...}}`` body: 400 for
a malformed request, 404 for another model name, 500 when the backend raises.

The standard library's ``ThreadingHTTPServer`` is enough: two routes, one thread per
connection, nothing to install; the installed ``aiohttp`` would add an event loop around
backends that are synchronous anyway. Connections close after each answer (HTTP/1.0), so
stopping the server leaves no live connection behind. Backend calls are serialized, because
model backends are not thread-safe; ``parallel=True`` lifts that for thread-safe backends
(test doubles) so client concurrency can be measured. ``faults`` makes the first requests
fail with the given HTTP statuses, to test retries over real HTTP. Two more misbehaviours test
what a client does with a bad server: ``rewrite`` replaces each successful answer's body (a
malformed completion, or raw bytes that are not JSON), and ``trickle`` sends every answer one
byte per ``trickle`` seconds, status line included, so each byte beats a per-read timeout; a
trickling answer stops when its client hangs up or the server stops.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from taskmem_bench.backends.base import Backend
from taskmem_bench.backends.wire import completion_body, decode_request

log = logging.getLogger(__name__)


@dataclass
class ServerStats:
    """What the server saw: chat requests received (faults included), when, and the most
    that were being answered at once."""

    requests: int = 0
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() of each request
    in_flight: int = 0
    max_in_flight: int = 0


class ChatServer:
    """Serves ``backend`` on 127.0.0.1; a context manager that starts it on a free port (or
    ``port``) in a background thread and stops it on exit."""

    def __init__(
        self,
        backend: Backend,
        *,
        model: str | None = None,
        port: int = 0,
        faults: Sequence[int] = (),
        parallel: bool = False,
        rewrite: Callable[[int, dict[str, Any]], Any] | None = None,
        trickle: float | None = None,
    ) -> None:
        self.backend = backend
        self.model = model or backend.settings.model
        self.port = port
        self.faults = tuple(faults)
        self.rewrite = rewrite  # (request number, completion body) -> JSON value or raw bytes
        self.trickle = trickle
        self.stopping = threading.Event()
        self.stats = ServerStats()
        self._lock = threading.Lock()
        self._engine = contextlib.nullcontext() if parallel else threading.Lock()
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:8000/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ChatServer:
        self._http = _HTTPServer(("127.0.0.1", self.port), _Handler)
        self._http.chat = self
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._http is not None and self._thread is not None
        self.stopping.set()
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    def models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": self.model, "object": "model", "created": 0, "owned_by": "taskmem-bench"}
            ],
        }

    def complete(self, raw: bytes) -> tuple[int, Any]:
        """``(status, body)`` for one chat-completions request body."""
        with self._lock:
            self.stats.requests += 1
            number = self.stats.requests
            self.stats.arrivals.append(time.monotonic())
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        try:
            return self._complete(raw, number)
        finally:
            # Counted out before the answer is written, so a client cannot have its next
            # request counted while this one still is.
            with self._lock:
                self.stats.in_flight -= 1

    def _complete(self, raw: bytes, number: int) -> tuple[int, Any]:
        if number <= len(self.faults):
            status = self.faults[number - 1]
            return status, _error(f"injected fault: HTTP {status} for request {number}", status)
        try:
            model, request = decode_request(json.loads(raw))
        except (ValueError, KeyError, TypeError) as err:
            return 400, _error(f"invalid request: {err}", 400)
        if model != self.model:
            return 404, _error(f"The model `{model}` does not exist.", 404)
        try:
            with self._engine:
                (generation,) = self.backend.generate([request])
        except Exception as err:  # the client sees the failure, the server keeps serving
            log.exception("backend failed on request %d", number)
            return 500, _error(f"{type(err).__name__}: {err}", 500)
        body = completion_body(generation, model, f"chatcmpl-{number}")
        return 200, body if self.rewrite is None else self.rewrite(number, body)


class _HTTPServer(ThreadingHTTPServer):
    request_queue_size = 64
    chat: ChatServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up (timeout)
            log.debug("client %s went away before its answer", client_address)
        else:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, self.server.chat.models())
        else:
            self._send(404, _error(f"no route GET {self.path}", 404))

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") == "/v1/chat/completions":
            self._send(*self.server.chat.complete(raw))
        else:
            self._send(404, _error(f"no route POST {self.path}", 404))

    def _send(self, status: int, payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.log_request(status)
        self._write(_head(status, len(data)) + data)

    def _write(self, data: bytes) -> None:
        """All at once, or when trickling one byte per ``trickle`` seconds, until all are
        sent, the client hangs up (the write raises) or the server stops."""
        chat = self.server.chat
        if chat.trickle is None:
            self.wfile.write(data)
            return
        for byte in data:
            self.wfile.write(bytes([byte]))
            if chat.stopping.wait(chat.trickle):
                return

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s " + format, self.address_string(), *args)


def _head(status: int, length: int) -> bytes:
    """The status line and headers of an answer (HTTP/1.0: the connection closes after it)."""
    return (
        f"HTTP/1.0 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _error(message: str, status: int) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "Error")
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


_ERROR_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


def main(argv: Sequence[str] | None = None) -> None:
    from taskmem_bench.backends import BackendSettings, get_backend

    parser = argparse.ArgumentParser(
        prog="python -m taskmem_bench.testing.server",
        description="Serve a local model directory through the transformers backend as an "
        "OpenAI-compatible chat server on 127.0.0.1.",
    )
    parser.add_argument("--model", required=True, help="model directory (also the served name)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    backend = get_backend(BackendSettings(backend="transformers", model=args.model))
    with ChatServer(backend, port=args.port) as server:
        print(f"serving {args.model} at {server.url} (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
