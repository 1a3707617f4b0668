"""The ``subtitles`` baseline: memory is the side-channel text the task allows, nothing seen.

No model and no frames: it shows what the transcript alone is worth, so a vision policy's gain
over it is what watching adds. Each line is written as it was spoken (``Ann: hello``), as the
README's ``Heard`` example writes it: a label in front (``[speech] Ann: hello``) would hide the
speaker convention from readers that parse it (the ``cpu`` reader reads ``Ann: hello`` as "Ann
says hello"), so the channel goes into the entry's ``kind`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taskmem_bench.memory import MemoryEntry
from taskmem_bench.policy import Policy
from taskmem_bench.schema import Clip, StreamInfo, TextEvent


@dataclass(frozen=True)
class SubtitlesConfig:
    """``channels``: which of the task's allowed side channels to keep; none given keeps all."""

    channels: tuple[str, ...] | None = None


class SubtitlesPolicy(Policy):
    """One entry per non-empty side-channel line: its text as spoken, its own times, its
    channel as the entry's kind."""

    name = "subtitles"
    version = "2"
    Config = SubtitlesConfig

    def start_stream(self, info: StreamInfo) -> None:
        pass

    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        return [[self._entry(line) for line in clip.text if self._keeps(line)] for clip in clips]

    def _keeps(self, line: TextEvent) -> bool:
        channels = self.config.channels
        return (channels is None or line.channel in channels) and bool(line.text.strip())

    @staticmethod
    def _entry(line: TextEvent) -> MemoryEntry:
        return MemoryEntry(line.t_start, line.t_end, line.text.strip(), kind=line.channel)
