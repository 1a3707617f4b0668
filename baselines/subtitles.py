"""The ``subtitles`` baseline: memory is the side-channel text the task allows, nothing seen.

No model and no frames: it shows what the transcript alone is worth, so a vision policy's gain
over it is what watching adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taskmem_bench.memory import MemoryEntry
from taskmem_bench.policy import Policy
from taskmem_bench.schema import Clip, StreamInfo

from baselines.prompting import channel_lines, clip_entries


@dataclass(frozen=True)
class SubtitlesConfig:
    """``channels``: which of the task's allowed side channels to keep; none given keeps all.
    Each entry's lines are prefixed by their channel, ``[speech] Ann: hello``."""

    channels: tuple[str, ...] | None = None


class SubtitlesPolicy(Policy):
    """One entry per clip that carries side-channel text: its lines, in order."""

    name = "subtitles"
    version = "1"
    Config = SubtitlesConfig

    def start_stream(self, info: StreamInfo) -> None:
        pass

    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        channels = self.config.channels
        return [
            clip_entries(clip, "\n".join(channel_lines(clip.text, channels)), "subtitles")
            for clip in clips
        ]
