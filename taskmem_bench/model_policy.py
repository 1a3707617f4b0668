"""The base of policies that call a model, so that their authors write only a ``step``.

A model policy's ``step`` gets a batch of clips (at most one per stream) with each stream's
state, sends all its requests in one ``generate`` call (so the runner's cross-stream batches
reach the model whole) and returns, per clip, the clip's memory entries and its stream's next
state. :class:`ModelPolicy` keeps the states and commits the new ones only once the whole step
returned: a batch that raises leaves every stream as it was, as the runner's clip-by-clip retry
needs (:class:`~taskmem_bench.policy.Policy`). It also keeps each stream's
:class:`StreamInfo`, loads the backend on first use (plans are built and hashed before anything
loads), and seeds every request.
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast, final

import numpy as np

from taskmem_bench.backends import (
    BackendSettings,
    ChatRequest,
    Generation,
    Sampling,
    VideoPart,
    get_backend,
)
from taskmem_bench.memory import MemoryEntry
from taskmem_bench.policy import Policy
from taskmem_bench.schema import Clip, StreamInfo

State = TypeVar("State")


@dataclass(frozen=True)
class GenerationConfig(BackendSettings):
    """The backend fields (``backend``, ``model``, ...) plus decoding settings.

    ``temperature`` 0 is greedy decoding; above 0 each request is sampled with a seed derived
    from the run's seed, the stream and the clip, so a rerun samples the same text.
    """

    max_new_tokens: int = 256
    temperature: float = 0.0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.temperature < 0:
            raise ValueError("max_new_tokens must be at least 1 and temperature at least 0")


@dataclass(frozen=True)
class Step(Generic[State]):
    """What a step made of one clip: its memory entries and its stream's state after it."""

    entries: list[MemoryEntry]
    state: State


class ModelPolicy(Policy, Generic[State]):
    """Base of the policies that call a model; see the module docstring.

    Subclasses write :meth:`step`, and :meth:`initial_state` when they keep per-stream state
    (it should be immutable, or replaced rather than changed, so that an uncommitted step
    cannot alter it).
    """

    Config = GenerationConfig

    def __init__(self, config: GenerationConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self.info: dict[str, StreamInfo] = {}
        self.states: dict[str, State] = {}
        """Each stream's state as of its last batch that succeeded."""

    def initial_state(self, info: StreamInfo) -> State:
        """A new stream's state; ``None`` for a policy that keeps none."""
        return cast(State, None)

    @abstractmethod
    def step(self, clips: Sequence[Clip], states: Sequence[State]) -> Sequence[Step[State]]:
        """One :class:`Step` per clip, in order; ``states[i]`` is the committed state of
        ``clips[i]``'s stream."""

    def start_stream(self, info: StreamInfo) -> None:
        self.info[info.stream_id] = info
        self.states[info.stream_id] = self.initial_state(info)

    def end_stream(self, stream_id: str) -> None:
        self.info.pop(stream_id, None)
        self.states.pop(stream_id, None)

    @final
    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        steps = self.step(clips, [self.states[clip.stream_id] for clip in clips])
        if len(steps) != len(clips):
            raise RuntimeError(f"step returned {len(steps)} results for {len(clips)} clips")
        for clip, done in zip(clips, steps):  # the commit: the whole batch succeeded
            self.states[clip.stream_id] = done.state
        return [done.entries for done in steps]

    def generate(self, requests: Sequence[ChatRequest]) -> list[str]:
        """The answers (text after ``</think>``) to all requests, from one backend call."""
        return [g.answer for g in self.generations(requests)]

    def generations(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        """The whole completions (thinking included) of all requests, from one backend call."""
        return generate_all(self.config, requests)

    def sampling(self, clip: Clip, purpose: str) -> Sampling:
        return Sampling(
            max_new_tokens=self.config.max_new_tokens,
            temperature=self.config.temperature,
            seed=request_seed(self.seed, clip.stream_id, clip.index, purpose),
        )

    def video(self, clip: Clip) -> VideoPart | None:
        """The clip's frames as a video at their true stream times (None for a text-only clip)."""
        return window_video(self.info[clip.stream_id], [clip])


def generate_all(settings: BackendSettings, requests: Sequence[ChatRequest]) -> list[Generation]:
    """One generation per request, from one call to the backend ``settings`` name; a backend
    that answers a different number of requests raises rather than misaligning the answers."""
    if not requests:
        return []
    generations = get_backend(settings).generate(list(requests))
    if len(generations) != len(requests):
        raise RuntimeError(
            f"backend returned {len(generations)} generations for {len(requests)} requests"
        )
    return generations


def request_seed(seed: int, stream_id: str, clip_index: int, purpose: str) -> int:
    """A 31-bit seed fixed by the run's seed, the stream, the clip and the request's purpose:
    reproducible across runs and independent of how streams were batched."""
    key = f"{seed}\x00{stream_id}\x00{clip_index}\x00{purpose}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") & 0x7FFFFFFF


def window_video(
    info: StreamInfo, clips: Sequence[Clip], since: float = float("-inf")
) -> VideoPart | None:
    """The frames of ``clips`` at or after ``since`` as one video, or None when there are none."""
    kept = [(c.frames[c.timestamps >= since], c.timestamps[c.timestamps >= since]) for c in clips]
    kept = [(frames, times) for frames, times in kept if len(frames)]
    if not kept:
        return None
    return VideoPart(
        frames=np.concatenate([frames for frames, _ in kept]),
        timestamps=np.concatenate([times for _, times in kept]),
        source_fps=info.fps or info.sample_fps,
    )
