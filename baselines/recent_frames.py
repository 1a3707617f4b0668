"""The recent-frames control: no memory at all, the reader sees the last frames before the ask.

Feeding a strong VLM only the few most recent frames beats many published memory systems on
streaming benchmarks (SimpleStream), so a memory policy's gain is readable only next to this
control. It is not memory-only (``memory_only = False``): the runner hands the kept frames to the
reader (``Policy.recall``), the manifest records it, and the leaderboard lists it as a control.
Use it with a reader whose backend takes video (``--reader paper`` with a VLM). The ``cpu`` reader
ignores frames and answers as the blind control does; the ``paper`` and ``retrieval`` readers on
a text-only model fail those questions with a ``reader_error`` (the backend refuses video).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from taskmem_bench.backends.base import VideoPart
from taskmem_bench.memory import MemoryEntry
from taskmem_bench.policy import Policy
from taskmem_bench.schema import Clip, StreamInfo


@dataclass(frozen=True)
class RecentFramesConfig:
    """``frames``: how many of the most recent sampled frames the reader gets (SimpleStream: 4)."""

    frames: int = 4

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError("frames must be at least 1")


class RecentFramesPolicy(Policy):
    name = "recent-frames"
    version = "1"
    Config = RecentFramesConfig
    memory_only = False

    def __init__(self, config: RecentFramesConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self._fps: dict[str, float] = {}
        self._recent: dict[str, deque[tuple[float, np.ndarray]]] = {}

    def start_stream(self, info: StreamInfo) -> None:
        self._fps[info.stream_id] = info.fps or info.sample_fps
        self._recent[info.stream_id] = deque(maxlen=self.config.frames)

    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        for clip in clips:
            self._recent[clip.stream_id].extend(zip(clip.timestamps.tolist(), clip.frames))
        return [[] for _ in clips]

    def recall(self, stream_id: str, t: float) -> VideoPart | None:
        kept = [(ts, frame) for ts, frame in self._recent[stream_id] if ts <= t]
        if not kept:
            return None
        return VideoPart(
            frames=np.stack([frame for _, frame in kept]),
            timestamps=np.array([ts for ts, _ in kept]),
            source_fps=self._fps[stream_id],
        )

    def end_stream(self, stream_id: str) -> None:
        self._recent.pop(stream_id, None)
        self._fps.pop(stream_id, None)
