"""Policies and readers used by the tests, loadable as ``plugins:Name`` with ``tests`` on the path.

They are real plugins (subclasses of the public base classes, run by the real runner), not
doubles: they make what the runner hands them observable.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskmem_bench.memory import MemoryEntry
from taskmem_bench.policy import Policy
from taskmem_bench.readers import Reader, ReaderInput, ReaderOutput
from taskmem_bench.schema import Clip, StreamInfo, TaskNotice


@dataclass(frozen=True)
class DigestConfig:
    delay: float = 0.0
    fail_on: str = ""
    words: int = 0


class FrameDigestPolicy(Policy):
    """Writes one entry per clip that depends on the clip's pixels, its text and the stream's
    history, so any change in what the policy was shown changes the memory."""

    name = "frame-digest"
    version = "1"
    Config = DigestConfig

    def __init__(self, config: DigestConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self.history: dict[str, str] = {}

    def start_stream(self, info: StreamInfo) -> None:
        self.history[info.stream_id] = info.stream_id

    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        if self.config.delay:
            time.sleep(self.config.delay)
        written, history = [], {}
        for clip in clips:
            if self.config.fail_on and clip.stream_id == self.config.fail_on and clip.index == 2:
                raise RuntimeError(f"policy broke on {clip.stream_id}")
            digest = hashlib.sha256(clip.frames.tobytes() + clip.timestamps.tobytes())
            digest.update(self.history[clip.stream_id].encode())
            digest.update("|".join(e.text for e in clip.text).encode())
            history[clip.stream_id] = digest.hexdigest()
            text = f"clip {clip.index} {len(clip.frames)} frames {digest.hexdigest()[:12]}"
            text += " word" * self.config.words
            written.append([MemoryEntry(clip.t_start, clip.t_end, text)])
        self.history.update(history)  # committed only when the whole batch succeeded
        return written

    def end_stream(self, stream_id: str) -> None:
        if self.config.fail_on == f"end:{stream_id}":
            raise RuntimeError(f"end_stream broke on {stream_id}")


class SpyPolicy(FrameDigestPolicy):
    """Records every call the runner makes, in order, into ``log``."""

    def __init__(self, config: DigestConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self.log: list[tuple[str, Any]] = []
        self.batches: list[list[str]] = []

    def start_stream(self, info: StreamInfo) -> None:
        self.log.append(("start", info))
        super().start_stream(info)

    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        self.batches.append([c.stream_id for c in clips])
        for clip in clips:
            self.log.append(("observe", clip))
        return super().observe(clips)

    def notice(self, notice: TaskNotice) -> None:
        self.log.append(("notice", notice))


class SpyReader(Reader):
    """Answers E (abstains) and records what it was given, into a log it may share."""

    name = "spy"
    version = "1"
    prompt = "always abstain"

    def __init__(
        self, config: Any = None, *, seed: int = 0, log: list[tuple[str, Any]] | None = None
    ) -> None:
        super().__init__(config, seed=seed)
        self.log = log if log is not None else []
        self.inputs: list[ReaderInput] = []

    def answer(self, inputs: Sequence[ReaderInput]) -> list[ReaderOutput]:
        for request in inputs:
            self.inputs.append(request)
            self.log.append(("answer", request))
        return [ReaderOutput(raw="I cannot tell. Answer: E") for _ in inputs]


@dataclass(frozen=True)
class CrashConfig:
    stream: str = ""
    """Crash the process on this stream's last clip (``executor_error`` territory)."""
    once_marker: str = ""
    """A file: crash only while it does not exist (it is created before crashing), so a rerun
    on a fresh process succeeds; empty: crash every time."""
    hang: bool = False
    """Hang there instead (for an hour), as a wedged GPU driver would."""
    starts_log: str = ""
    """A file each ``start_stream`` appends the stream's id to, across processes."""


class CrashingPolicy(FrameDigestPolicy):
    """Ends its own process the way a segfault or the OOM killer would (``os._exit``), or
    hangs, on one stream's last clip, a moment after the streams before it finished."""

    name = "crashing"
    Config = CrashConfig

    def __init__(self, config: CrashConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(DigestConfig(), seed=seed)
        self.crash = config or CrashConfig()
        self.durations: dict[str, float] = {}

    def start_stream(self, info: StreamInfo) -> None:
        if self.crash.starts_log:
            with open(self.crash.starts_log, "a") as log:
                log.write(info.stream_id + "\n")
        self.durations[info.stream_id] = info.duration
        super().start_stream(info)

    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        for clip in clips:
            if clip.stream_id == self.crash.stream and clip.t_end >= self.durations[clip.stream_id]:
                marker = Path(self.crash.once_marker) if self.crash.once_marker else None
                if marker is None or not marker.exists():
                    if marker is not None:
                        marker.touch()
                    time.sleep(3600 if self.crash.hang else 1.0)  # parts sent reach the driver
                    os._exit(1)
        return super().observe(clips)
