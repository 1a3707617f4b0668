"""The ``openai`` backend's reply cache: completion payloads on disk by request, so a rerun or a
resumed run sends no request it has sent before.

The key is the sha256 of the full request body (model name, messages with the media bytes,
sampling, vLLM extensions). The server's address is not part of it: a restarted server on
another port still hits the cache, and a different model served under the same name would be
answered from it, so name models uniquely. The cache lives in ``response_cache_dir``, else
``$TASKMEM_BENCH_CACHE/openai``, else ``$XDG_CACHE_HOME/taskmem-bench/openai``
(``~/.cache/taskmem-bench/openai``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taskmem_bench.cachedir import cache_home
from taskmem_bench.results import write_atomic


def request_key(body: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a request body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def cache_root(cache_dir: str | None) -> Path:
    """``cache_dir``, else ``<the cache home (cachedir.cache_home)>/openai``."""
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
