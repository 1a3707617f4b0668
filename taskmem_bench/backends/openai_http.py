"""The ``openai`` backend: any OpenAI-compatible chat-completions server (``vllm serve``, a
hosted API, or :mod:`taskmem_bench.testing.server`).

Requests are encoded by :mod:`taskmem_bench.backends.wire` (images as PNG data URLs, video as
vLLM frame lists with their true fps and frame indices) and sent with the official ``openai``
client, whose built-in retries are used as they are: connection errors, timeouts, 408, 409,
429 and 5xx are retried up to ``max_retries`` times with exponential backoff (0.5 s doubling,
at most 8 s, up to 25 % jitter; a ``Retry-After`` of at most two minutes is obeyed instead);
other 4xx answers fail at once. ``timeout_s`` bounds each attempt as a whole (connecting,
sending, waiting and reading the full answer), so a server that trickles its answer is cut off
too: httpx's own timeouts bound each read only, so attempts run on the client's asyncio
flavour, where one can be cancelled at its deadline.

A request that used up its retries on connection errors, timeouts or 502, 503 and 504 answers
raises :class:`OpenAIServerUnavailable` (a :class:`BackendUnavailable`): the server itself is
down, so the rest of the batch is not sent. For ``SERVER_DOWN_COOL_DOWN_S`` (60 s) after that
the backend sends nothing: each batch that needs a request fails at once with the same error
type, saying when the server was found down; then requests are sent again as usual. Without
the cool-down every later batch against a dead server would wait out the whole retry budget
again (about 12 min with the defaults against a server that never answers). Any other error
answer (a 4xx, or a 500: the server is up and failed on this request) or an unusable reply (not
JSON, or no completion in it, e.g. a non-string ``content``) is that request's own failure,
:class:`OpenAIBackendError`, with a one-line message naming the problem.

Each request sets ``temperature``, ``top_p``, ``max_completion_tokens`` and ``seed``. A
``vllm serve`` fills the fields a request leaves out from the checkpoint's
``generation_config.json`` (``top_k``, penalties); start it with ``--generation-config vllm``
so it decodes as the transformers and vllm backends do.

A batch is sent ``concurrency`` requests at a time (a limit shared by all callers of one
backend instance) and the results come back in request order. Replies that decode as a usable
generation are cached on disk by the sha256 of the full request body (model name, messages with
the media bytes, sampling, vLLM extensions), so a rerun or a resumed run costs no requests; a
cached reply that does not decode is asked again. The server's address is not part of the key:
a restarted server on another port still hits the cache, and a different model served under
the same name would be answered from it, so name models uniquely. The cache lives in
``response_cache_dir``, else ``$TASKMEM_BENCH_CACHE/openai``, else
``$XDG_CACHE_HOME/taskmem-bench/openai`` (``~/.cache/taskmem-bench/openai``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx2
import openai

from taskmem_bench.backends.base import (
    Backend,
    BackendSettings,
    BackendUnavailable,
    ChatRequest,
    Generation,
)
from taskmem_bench.backends.wire import (
    EXTENSION_KEYS,
    UnusableCompletion,
    decode_completion,
    encode_request,
)
from taskmem_bench.cachedir import cache_home
from taskmem_bench.results import write_atomic

DEFAULT_BASE_URL = "https://api.openai.com/v1"
SERVER_DOWN_STATUSES = (502, 503, 504)
SERVER_DOWN_COOL_DOWN_S = 60.0
"""Seconds after a request found the server down during which the backend sends nothing (see
the module's docstring)."""
log = logging.getLogger(__name__)
T = TypeVar("T")


class OpenAIBackendError(RuntimeError):
    """A request that failed for good: an error answer, an unusable reply, or (as
    :class:`OpenAIServerUnavailable`) a server that cannot be reached."""


class OpenAIServerUnavailable(OpenAIBackendError, BackendUnavailable):
    """Every attempt at a request ended in a connection error, a timeout or an answer saying
    the server (or the gateway before it) cannot serve: 502, 503, 504."""


@dataclass(frozen=True)
class _FoundDown:
    """When a backend last found its server down, and how."""

    monotonic: float
    clock: str  # wall-clock time, for the message
    error: str


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        if settings.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {settings.concurrency}")
        self.settings = settings
        self.base_url = settings.base_url or DEFAULT_BASE_URL
        self.where = f"the OpenAI-compatible server at {self.base_url}"
        self.client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=_api_key(settings.api_key_env, self.base_url),
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,
            http_client=_http_client(self.base_url, settings),
        )
        self.cache = ResponseCache(cache_root(settings.response_cache_dir))
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._found_down: _FoundDown | None = None

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "base_url": self.base_url,
            "frame_codec": self.settings.frame_codec,
        }

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        bodies = [
            encode_request(r, self.settings.model, self.settings.frame_codec) for r in requests
        ]
        keys = [request_key(body) for body in bodies]
        found = {key: self._cached(key) for key in keys}
        todo = {key: body for key, body in zip(keys, bodies) if found[key] is None}
        if todo:
            self._check_cool_down()
        outcomes = _LOOP.run(self._send_all(list(todo.values())))
        failures: list[OpenAIBackendError] = []
        for key, outcome in zip(todo, outcomes):
            try:
                found[key] = self._keep(key, outcome)
            except OpenAIBackendError as err:
                failures.append(err)
        down = next((f for f in failures if isinstance(f, OpenAIServerUnavailable)), None)
        if down is not None:
            clock = datetime.now().astimezone().isoformat(timespec="seconds")
            self._found_down = _FoundDown(time.monotonic(), clock, str(down))
        if failures:
            raise down or failures[0]
        return [found[key] for key in keys]

    def _check_cool_down(self) -> None:
        """Raise, sending nothing, within ``SERVER_DOWN_COOL_DOWN_S`` of finding the server
        down."""
        last = self._found_down
        if last is not None and time.monotonic() - last.monotonic < SERVER_DOWN_COOL_DOWN_S:
            raise OpenAIServerUnavailable(
                f"not sent: within the {SERVER_DOWN_COOL_DOWN_S:g} s cool-down after {self.where} "
                f"was found down at {last.clock} ({last.error})"
            )

    def _cached(self, key: str) -> Generation | None:
        """The cached generation; an entry that does not decode (one an older version cached) is
        a miss, so the request is sent again and the entry replaced."""
        try:
            payload = self.cache.get(key)
            return None if payload is None else decode_completion(payload)
        except ValueError as err:  # not JSON, or UnusableCompletion
            log.warning("sending again: the cached reply %s is unusable: %s", key, err)
            return None

    def _keep(self, key: str, outcome: Any) -> Generation:
        """The generation in a reply, cached only when it decodes; a failure is raised."""
        if isinstance(outcome, OpenAIBackendError):
            raise outcome
        try:
            generation = decode_completion(outcome)
        except UnusableCompletion as err:
            raise OpenAIBackendError(f"{self.where} sent an unusable completion: {err}") from err
        self.cache.put(key, outcome)
        return generation

    async def _send_all(self, bodies: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Each body's reply (parsed JSON) or failure, ``concurrency`` at a time. Once one request
        finds the server down, those not yet sent fail with it instead of each waiting out the
        same retry budget."""
        down: list[OpenAIServerUnavailable] = []

        async def one(body: Mapping[str, Any]) -> Any:
            async with self._slots:
                if down:
                    return down[0]
                outcome = await self._send(body)
                if isinstance(outcome, OpenAIServerUnavailable):
                    down.append(outcome)
                return outcome

        return await asyncio.gather(*(one(body) for body in bodies))

    async def _send(self, body: Mapping[str, Any]) -> Any:
        """One request sent (with the client's retries): its reply as parsed JSON, or why
        there is none."""
        standard = {k: v for k, v in body.items() if k not in EXTENSION_KEYS}
        extensions = {k: v for k, v in body.items() if k in EXTENSION_KEYS}
        try:
            reply = await self.client.chat.completions.with_raw_response.create(
                **standard, extra_body=extensions or None
            )
        except openai.APIError as err:
            return self._failure(err)
        try:
            return json.loads(reply.content)
        except ValueError as err:  # not JSON, or not UTF-8
            return OpenAIBackendError(
                f"{self.where} sent a reply that is not JSON ({err}): "
                f"{_one_line(reply.content.decode(errors='replace'), 200)}"
            )

    def _failure(self, err: openai.APIError) -> OpenAIBackendError:
        """What a failure from the client means: the server down, or this request refused."""
        retries = f"after {self.settings.max_retries} retries"
        if isinstance(err, openai.APITimeoutError):
            return OpenAIServerUnavailable(
                f"{self.where} did not answer within timeout_s={self.settings.timeout_s} s "
                f"({retries})"
            )
        if isinstance(err, openai.APIConnectionError):
            return OpenAIServerUnavailable(
                f"cannot reach {self.where} ({retries}): {_root_cause(err)}"
            )
        if isinstance(err, openai.APIStatusError):
            code = err.status_code
            retried = code in (408, 409, 429) or code >= 500
            kind = OpenAIServerUnavailable if code in SERVER_DOWN_STATUSES else OpenAIBackendError
            return kind(
                f"{self.where} answered HTTP {code} ({retries if retried else 'not retried'})"
                f": {_one_line(err.response.text)}"
            )
        return OpenAIBackendError(f"{self.where} failed: {_one_line(str(err))}")


def _one_line(text: str, limit: int = 2000) -> str:
    return " ".join(text.split())[:limit]


def _root_cause(err: BaseException) -> str:
    """The innermost cause, e.g. ``ConnectionRefusedError: [Errno 111] ...``: the layers above
    it (httpx, httpcore, anyio) only say that connecting failed."""
    while err.__cause__ or err.__context__:
        err = err.__cause__ or err.__context__
    return _one_line(f"{type(err).__name__}: {err}")


class _EventLoop:
    """The one asyncio loop, on a daemon thread, that every backend instance sends on; started
    on first use. Callers block on their own batch only."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(
                    target=self._loop.run_forever, name="openai-http", daemon=True
                ).start()
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()  # each attempt has a deadline, so this wait ends
        except BaseException:
            future.cancel()  # e.g. Ctrl-C: stop sending this batch
            raise


_LOOP = _EventLoop()


def _http_client(base_url: str, settings: BackendSettings) -> httpx2.AsyncClient:
    """The client's defaults over a transport that ends each attempt at ``timeout_s``, with the
    proxy the environment names (a custom transport turns httpx's own lookup off)."""
    limits = httpx2.Limits(
        max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
    )
    inner = httpx2.AsyncHTTPTransport(limits=limits, proxy=_environment_proxy(base_url))
    return openai.DefaultAsyncHttpxClient(transport=_AttemptDeadline(inner, settings.timeout_s))


def _environment_proxy(url: str) -> str | None:
    """``HTTPS_PROXY``/``HTTP_PROXY`` (by the URL's scheme) or ``ALL_PROXY``, unless
    ``NO_PROXY`` exempts the host."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


class _AttemptDeadline(httpx2.AsyncBaseTransport):
    """Ends an attempt ``seconds`` after it starts, whatever stage it is at: httpx's timeouts
    bound each network read, which a server sending a byte at a time always beats. The end is
    raised as httpx's ``ReadTimeout``, so the openai client retries it as any timeout."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        deadline = asyncio.get_running_loop().time() + self.seconds
        async with self._by(deadline, request):
            response = await self.inner.handle_async_request(request)
        return httpx2.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_DeadlineStream(self, response.stream, deadline, request),
            extensions=response.extensions,
        )

    @contextlib.asynccontextmanager
    async def _by(self, deadline: float, request: httpx2.Request) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout_at(deadline):
                yield
        except TimeoutError as err:
            raise httpx2.ReadTimeout(
                f"no complete answer within {self.seconds} s", request=request
            ) from err

    async def aclose(self) -> None:
        await self.inner.aclose()


class _DeadlineStream(httpx2.AsyncByteStream):
    """A response body whose every chunk must arrive by the attempt's deadline."""

    def __init__(
        self,
        transport: _AttemptDeadline,
        inner: Any,
        deadline: float,
        request: httpx2.Request,
    ) -> None:
        self.transport, self.inner = transport, inner
        self.deadline, self.request = deadline, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = aiter(self.inner)
        while True:
            async with self.transport._by(self.deadline, self.request):
                chunk = await anext(chunks, None)
            if chunk is None:
                return
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


def request_key(body: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a request body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def cache_root(cache_dir: str | None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    return cache_home() / "openai"


class ResponseCache:
    """Completion payloads by request key, one JSON file each, written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._path(key).read_text())
        except FileNotFoundError:
            return None

    def put(self, key: str, payload: Mapping[str, Any]) -> None:
        write_atomic(self._path(key), lambda tmp: tmp.write_text(json.dumps(payload)))


def _api_key(env: str, base_url: str) -> str:
    """The key from ``$env``; a server on this machine needs none."""
    key = os.environ.get(env)
    if key:
        return key
    if _is_loopback(base_url):
        return "EMPTY"
    raise ValueError(
        f"backend 'openai' needs an API key for {base_url}: set the environment variable "
        f"{env} (or name another with --set api_key_env=NAME); for a server without "
        "authentication any value works, e.g. EMPTY"
    )


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
