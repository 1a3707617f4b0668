"""The HTTP layer under the ``openai`` backend: where requests are sent from, and how long one
attempt may take.

``timeout_s`` must bound each attempt as a whole (connecting, sending, waiting and reading the
full answer), so a server that trickles its answer is cut off too. httpx's own timeouts bound
each read only, so attempts run on the client's asyncio flavour, on one background loop, where a
transport ends each at its deadline, raising httpx's ``ReadTimeout`` so the openai client
retries it as any timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import urllib.request
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx2
import openai

from taskmem_bench.backends.base import BackendSettings

T = TypeVar("T")


class BackgroundLoop:
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


SEND_LOOP = BackgroundLoop()
"""The loop every ``openai`` backend instance sends on."""


def deadline_http_client(base_url: str, settings: BackendSettings) -> httpx2.AsyncClient:
    """The client's defaults over a transport that ends each attempt at ``timeout_s``, with the
    proxy the environment names (a custom transport turns httpx's own lookup off)."""
    limits = httpx2.Limits(
        max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
    )
    inner = httpx2.AsyncHTTPTransport(limits=limits, proxy=environment_proxy(base_url))
    return openai.DefaultAsyncHttpxClient(transport=_AttemptDeadline(inner, settings.timeout_s))


def environment_proxy(url: str) -> str | None:
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
