"""The ``openai`` backend: any OpenAI-compatible chat-completions server (``vllm serve``, a
hosted API, or :mod:`taskmem_bench.testing.server`).

Requests are encoded by :mod:`taskmem_bench.backends.wire` (images as PNG data URLs, video as
vLLM frame lists with their true fps and frame indices) and sent with the official ``openai``
client, whose built-in retries are used as they are: connection errors, timeouts, 408, 409,
429 and 5xx are retried up to ``max_retries`` times with exponential backoff (0.5 s doubling,
at most 8 s, up to 25 % jitter; a ``Retry-After`` of at most two minutes is obeyed instead);
other 4xx answers fail at once. ``timeout_s`` bounds each attempt.

Each request sets ``temperature``, ``top_p``, ``max_completion_tokens`` and ``seed``. A
``vllm serve`` fills the fields a request leaves out from the checkpoint's
``generation_config.json`` (``top_k``, penalties); start it with ``--generation-config vllm``
so it decodes as the transformers and vllm backends do.

A batch is sent ``concurrency`` requests at a time (a limit shared by all callers of one
backend instance) and the results come back in request order. Successful responses are cached
on disk by the sha256 of the full request body (model name, messages with the media bytes,
sampling, vLLM extensions), so a rerun or a resumed run costs no requests. The server's address
is not part of the key: a restarted server on another port still hits the cache, and a
different model served under the same name would be answered from it, so name models
uniquely. The cache lives in ``response_cache_dir``, else ``$TASKMEM_BENCH_CACHE/openai``, else
``$XDG_CACHE_HOME/taskmem-bench/openai`` (``~/.cache/taskmem-bench/openai``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openai

from taskmem_bench.backends.base import (
    Backend,
    BackendSettings,
    ChatRequest,
    Generation,
)
from taskmem_bench.backends.wire import (
    EXTENSION_KEYS,
    decode_completion,
    encode_request,
)
from taskmem_bench.cachedir import cache_home
from taskmem_bench.results import write_atomic

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIBackendError(RuntimeError):
    """A request that failed for good: unreachable server, timeout, or an error answer."""


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        if settings.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {settings.concurrency}")
        self.settings = settings
        self.base_url = settings.base_url or DEFAULT_BASE_URL
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=_api_key(settings.api_key_env, self.base_url),
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,
        )
        self.cache = ResponseCache(cache_root(settings.response_cache_dir))
        self._pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="openai")

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
        found = {key: self.cache.get(key) for key in keys}
        todo = {key: body for key, body in zip(keys, bodies) if found[key] is None}
        for key, payload in zip(todo, self._pool.map(self._complete, todo.values(), todo)):
            found[key] = payload
        return [decode_completion(found[key]) for key in keys]

    def _complete(self, body: Mapping[str, Any], key: str) -> dict[str, Any]:
        """One request sent (with the client's retries) and, when it succeeds, cached."""
        standard = {k: v for k, v in body.items() if k not in EXTENSION_KEYS}
        extensions = {k: v for k, v in body.items() if k in EXTENSION_KEYS}
        where = f"the OpenAI-compatible server at {self.base_url}"
        retries = f"after {self.settings.max_retries} retries"
        try:
            completion = self.client.chat.completions.create(
                **standard, extra_body=extensions or None
            )
        except openai.APITimeoutError as err:
            raise OpenAIBackendError(
                f"{where} did not answer within timeout_s={self.settings.timeout_s} s ({retries})"
            ) from err
        except openai.APIConnectionError as err:
            raise OpenAIBackendError(
                f"cannot reach {where} ({retries}): {err.__cause__ or err}"
            ) from err
        except openai.APIStatusError as err:
            retried = err.status_code in (408, 409, 429) or err.status_code >= 500
            raise OpenAIBackendError(
                f"{where} answered HTTP {err.status_code} ({retries if retried else 'not retried'})"
                f": {err.response.text[:2000]}"
            ) from err
        payload = completion.to_dict(mode="json")
        try:
            decode_completion(payload)
        except (KeyError, IndexError, TypeError) as err:
            raise OpenAIBackendError(
                f"{where} sent a malformed completion: {payload!r:.500}"
            ) from err
        self.cache.put(key, payload)
        return payload


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
