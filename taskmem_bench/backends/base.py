"""The backend contract: batched chat generation over text, images and video frames.

Policies and readers build :class:`ChatRequest` objects from plain parts and hand a whole batch
to one backend call, so a backend with batching (transformers, vLLM) or concurrency (HTTP) can
keep the model busy. Every backend returns one :class:`Generation` per request, in order.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from taskmem_bench.backends.packaged import resolve

ENTRY_POINT_GROUP = "taskmem_bench.backends"


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True, eq=False)
class ImagePart:
    image: np.ndarray  # (height, width, 3) uint8 RGB


@dataclass(frozen=True, eq=False)
class VideoPart:
    """Frames sampled from a stream, with where they lie on the stream's timeline.

    ``source_fps`` is the video's native frame rate; each frame's absolute index on the stream
    timeline is ``round(timestamp * source_fps)``. Backends pass these as the video's metadata
    so models that print timestamps (Qwen3-VL) print the true stream times, and they never
    resample: the frames given are the frames the model sees.
    """

    frames: np.ndarray  # (n, height, width, 3) uint8 RGB
    timestamps: np.ndarray  # (n,) seconds on the stream timeline, increasing
    source_fps: float

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or len(self.frames) == 0:
            raise ValueError(f"video frames must be (n>0, h, w, 3), got {self.frames.shape}")
        if len(self.timestamps) != len(self.frames):
            raise ValueError("a video part needs one timestamp per frame")
        if not self.source_fps > 0:
            raise ValueError(f"source_fps must be positive, got {self.source_fps}")

    @property
    def frame_indices(self) -> list[int]:
        return [int(round(float(t) * self.source_fps)) for t in self.timestamps]


Part = TextPart | ImagePart | VideoPart


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: tuple[Part, ...]

    @classmethod
    def text(cls, role: Literal["system", "user", "assistant"], text: str) -> Message:
        return cls(role, (TextPart(text),))


@dataclass(frozen=True)
class Sampling:
    """Decoding settings of one request. ``temperature`` 0 is greedy decoding; ``top_k`` None
    keeps every token (and leaves the field out of an HTTP request)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    top_k: int | None = None

    def __post_init__(self) -> None:
        if (self.max_new_tokens < 1 or self.temperature < 0 or not 0 < self.top_p <= 1
                or (self.top_k is not None and self.top_k < 1)):
            raise ValueError(f"invalid sampling settings: {self}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[Message, ...]
    sampling: Sampling = Sampling()


@dataclass(frozen=True)
class Generation:
    """One completion: ``text`` exactly as the model produced it, and the answer part of it."""

    text: str
    finish_reason: str | None = None
    usage: Mapping[str, int] = field(default_factory=dict)

    @property
    def thinking(self) -> str:
        return split_thinking(self.text)[0]

    @property
    def answer(self) -> str:
        return split_thinking(self.text)[1]


_THINK_OPEN = re.compile(r"^\s*<think>", re.IGNORECASE)


def split_thinking(text: str) -> tuple[str, str]:
    """``(thinking, answer)``: everything up to the last ``</think>`` is thinking.

    Thinking models' chat templates often open the ``<think>`` block in the prompt, so the
    completion holds only the closing tag; both forms are handled. An unclosed ``<think>`` is
    all thinking and no answer.
    """
    head, closed, tail = text.rpartition("</think>")
    if closed:
        return _THINK_OPEN.sub("", head).strip(), tail.strip()
    if _THINK_OPEN.match(text):
        return _THINK_OPEN.sub("", text).strip(), ""
    return "", text.strip()


class BackendUnavailable(RuntimeError):
    """The backend itself cannot serve any request right now (server unreachable, every retry
    used up on connection errors, timeouts or 502/503/504 replies), as opposed to a request it
    refused or failed on (a 4xx or 500 answer, an unusable reply).

    The runner does not retry such a failure item by item: the next item would only wait out the
    same retry budget against the same dead server."""


@dataclass(frozen=True)
class BackendSettings:
    """Which backend serves which model, and how; shared by every model-using policy and reader.

    Policy and reader configs inherit these fields, so ``--set backend=openai`` or
    ``--set model=...`` reaches both, and ``--set policy.model=...`` one of them.
    """

    backend: str = "transformers"
    model: str = ""
    # transformers / vllm
    dtype: str = "auto"
    device: str = "auto"
    attn_implementation: str | None = None
    max_model_len: int | None = None
    # a PEFT adapter folder applied to every request: a LoRA (transformers, vllm) or a BEFT
    # steering vector (transformers); vllm: an EngineAdapter (registered name or module:Class)
    # for changes that are not LoRA; engine sizing
    lora_path: str | None = None
    adapter: str | None = None
    gpu_memory_utilization: float = 0.9
    tensor_parallel_size: int = 1
    max_images_per_prompt: int = 8
    max_videos_per_prompt: int = 1
    # openai-compatible HTTP; frame_codec "png" is lossless, "jpeg" (quality 95) about a
    # quarter of the size for a remote server
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 5
    response_cache_dir: str | None = None
    frame_codec: Literal["png", "jpeg"] = "png"
    # lm-eval bridge: an lm-eval model name and its model_args (``pretrained=`` gets ``model``)
    lm_eval_model: str = "hf"
    lm_eval_args: str = ""

    @property
    def adapter_folder(self) -> Path | None:
        """``lora_path`` as a local folder (a ``package:`` name resolved to one), the one place
        every backend and the model identity take it from; None without an adapter."""
        return Path(resolve(self.lora_path)).expanduser() if self.lora_path else None

    def backend_settings(self) -> BackendSettings:
        """Just these fields, from a policy's or reader's config that extends them; equal
        values share one loaded backend."""
        return BackendSettings(**{f: getattr(self, f) for f in BackendSettings.__dataclass_fields__})


class Backend(ABC):
    """Base class of backends; ``generate`` keeps the order of its requests."""

    name: ClassVar[str]

    def __init__(self, settings: BackendSettings) -> None:
        if not settings.model:
            raise ValueError(
                f"backend '{self.name}' needs a model: --set model=<name or local path>"
            )
        self.settings = settings

    @abstractmethod
    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]: ...

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the served model."""
        return {"backend": self.name, "model": self.settings.model}
