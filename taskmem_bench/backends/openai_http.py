"""The ``openai`` backend: any OpenAI-compatible chat-completions server (``vllm serve``, a
hosted API, or :mod:`taskmem_bench.testing.server`).

Requests are encoded by :mod:`taskmem_bench.backends.wire` (images as PNG data URLs, video as
vLLM frame lists with their true fps and frame indices) and sent with the official ``openai``
client, whose built-in retries are used as they are: connection errors, timeouts, 408, 409,
429 and 5xx are retried up to ``max_retries`` times with exponential backoff (0.5 s doubling,
at most 8 s, up to 25 % jitter; a ``Retry-After`` of at most two minutes is obeyed instead);
other 4xx answers fail at once. ``timeout_s`` bounds each attempt as a whole, a server that
trickles its answer included (:mod:`~taskmem_bench.backends.http_transport`).

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

Each request sets ``temperature``, ``top_p``, ``max_completion_tokens`` and ``seed``, and
``top_k`` (in ``extra_body``) when its sampling sets one. A ``vllm serve`` fills the fields a
request leaves out from the checkpoint's ``generation_config.json`` (``top_k``, penalties); start it with ``--generation-config vllm``
so it decodes as the transformers and vllm backends do.

A batch is sent ``concurrency`` requests at a time (a limit shared by all callers of one
backend instance) and the results come back in request order. Replies that decode as a usable
generation are cached on disk by request (:mod:`~taskmem_bench.backends.response_cache`: the
key, and where the cache lives), so a rerun or a resumed run costs no requests; a cached reply
that does not decode is asked again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import openai

from taskmem_bench.backends.base import (
    Backend,
    BackendSettings,
    BackendUnavailable,
    ChatRequest,
    Generation,
)
from taskmem_bench.backends.http_transport import SEND_LOOP, deadline_http_client
from taskmem_bench.backends.response_cache import ResponseCache, cache_root, request_key
from taskmem_bench.backends.wire import (
    EXTENSION_KEYS,
    UnusableCompletion,
    decode_completion,
    encode_request,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
SERVER_DOWN_STATUSES = (502, 503, 504)
SERVER_DOWN_COOL_DOWN_S = 60.0
"""Seconds after a request found the server down during which the backend sends nothing (see
the module's docstring)."""
log = logging.getLogger(__name__)


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
            http_client=deadline_http_client(self.base_url, settings),
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
        outcomes: list[Any] = []
        if todo:
            self._check_cool_down()
            outcomes = SEND_LOOP.run(self._send_all(list(todo.values())))
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
