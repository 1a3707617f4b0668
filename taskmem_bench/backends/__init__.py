"""Model backends: one batched chat-generation interface over transformers, vLLM, an
OpenAI-compatible HTTP server, or any lm-eval model.

Backends register under the entry-point group ``taskmem_bench.backends`` and are imported only
when used, so a machine without vLLM can run everything else.
"""

from __future__ import annotations

import threading

from taskmem_bench.backends.base import (
    ENTRY_POINT_GROUP,
    Backend,
    BackendSettings,
    BackendUnavailable,
    ChatRequest,
    Generation,
    ImagePart,
    Message,
    Part,
    Sampling,
    TextPart,
    VideoPart,
    split_thinking,
)
from taskmem_bench.plugins import load, registered

__all__ = [
    "Backend",
    "BackendSettings",
    "BackendUnavailable",
    "ChatRequest",
    "Generation",
    "ImagePart",
    "Message",
    "Part",
    "Sampling",
    "TextPart",
    "VideoPart",
    "available_backends",
    "get_backend",
    "loaded_backend",
    "release_backend",
    "load_backend",
    "split_thinking",
]

_LOADED: dict[BackendSettings, Backend] = {}
_LOCK = threading.Lock()


def available_backends() -> dict[str, str]:
    return registered(ENTRY_POINT_GROUP)


def load_backend(name: str) -> type[Backend]:
    return load(ENTRY_POINT_GROUP, "backend", name, Backend)


def get_backend(settings: BackendSettings) -> Backend:
    """The backend for these settings, loaded once per process: a policy and a reader that name
    the same model share one copy of its weights."""
    key = settings.backend_settings()
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = load_backend(key.backend)(key)
        return _LOADED[key]


def release_backend(settings: BackendSettings) -> None:
    """Forget the backend loaded for these settings, so its model can be freed (a policy that
    replaced its adapter no longer needs the copy with the old one)."""
    with _LOCK:
        _LOADED.pop(settings.backend_settings(), None)


def loaded_backend(settings: BackendSettings) -> Backend | None:
    """The backend already loaded for these settings, if any; never loads one."""
    with _LOCK:
        return _LOADED.get(settings.backend_settings())
