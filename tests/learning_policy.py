"""A test double: a policy that learns across streams, built to expose any nondeterminism.

``WaveLearner`` learns only in ``end_wave``: from the task notices each stream of the wave got
(question text, options, category) and from the order of the clips it saw on it, folded into
one lesson digest in the order the runner names the streams. Each clip's entry carries a digest
of the clip's pixels and of that lesson, and says how many waves it had learned from. So if the
runner started a stream before the previous wave's ``end_wave``, called it at another moment or
with the streams in another order, or if batching changed what a stream saw, the memory would
differ. ``log`` records each start, end and adaptation with the waves learned at that moment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskmem_bench.memory import MemoryEntry
from taskmem_bench.policy import Policy
from taskmem_bench.schema import Clip, StreamInfo, TaskNotice


@dataclass(frozen=True)
class WaveLearnerConfig:
    fail_on_wave: int | None = None
    """``end_wave`` raises on this call (0-based: its wave), before it changes anything."""


class WaveLearner(Policy):
    name = "wave-learner"
    version = "1"
    Config = WaveLearnerConfig
    learns_across_streams = True

    def __init__(self, config: WaveLearnerConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self.lesson = "nothing learned"
        self.waves_learned = 0
        self.end_wave_calls = 0
        self.questions_learned = 0
        self.seen: dict[str, list[str]] = {}  # per stream, in order: its clips and notices
        self.log: list[tuple[str, str, int]] = []  # (event, stream ids, waves learned then)

    def start_stream(self, info: StreamInfo) -> None:
        self.seen[info.stream_id] = []
        self.log.append(("start", info.stream_id, self.waves_learned))

    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        written = []
        for clip in clips:
            digest = hashlib.sha256(clip.frames.tobytes() + self.lesson.encode()).hexdigest()
            text = (f"clip {clip.index} after {self.waves_learned} waves, "
                    f"{self.questions_learned} questions: {digest[:12]}")
            written.append([MemoryEntry(clip.t_start, clip.t_end, text)])
        for clip in clips:
            seen = f"clip {clip.index} {clip.t_start:.3f}-{clip.t_end:.3f}"
            self.seen[clip.stream_id].append(seen)
        return written

    def notice(self, notice: TaskNotice) -> None:
        options = "/".join(notice.options)
        self.seen[notice.stream_id].append(f"{notice.category}|{notice.text}|{options}")

    def end_stream(self, stream_id: str) -> None:
        self.log.append(("end", stream_id, self.waves_learned))

    def end_wave(self, stream_ids: Sequence[str], workspace: Path) -> dict[str, Any]:
        wave, self.end_wave_calls = self.end_wave_calls, self.end_wave_calls + 1
        if self.config.fail_on_wave == wave:
            raise RuntimeError(f"end_wave broke on wave {wave}\nsecond line")
        lesson = hashlib.sha256(self.lesson.encode())
        categories: set[str] = set()
        for stream_id in stream_ids:
            for seen in self.seen.pop(stream_id, []):
                lesson.update(seen.encode())
                if "|" in seen:
                    categories.add(seen.partition("|")[0])
                    self.questions_learned += 1
        self.lesson = lesson.hexdigest()
        self.waves_learned += 1
        self.log.append(("end_wave", ",".join(stream_ids), self.waves_learned))
        return {"lesson": self.lesson[:12], "categories": sorted(categories)}
