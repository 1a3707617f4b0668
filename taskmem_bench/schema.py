"""The normalized data model every dataset adapter produces and every component consumes.

Two families of types live here and must not be mixed:

* harness-side records (``Stream``, ``MediaSegment``, ``Hidden``, ``Episode``) carry file paths,
  gold answers and hints; only the runner, the media decoder and the scorers see them;
* model-facing records (``StreamInfo``, ``Clip``, ``TaskNotice``) are all a policy ever receives.
  They hold no paths, no gold and no hints by construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

ANSWER_LABELS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Span:
    """A closed time interval on a stream's timeline, in seconds."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"span ends before it starts: {self.start} > {self.end}")


@dataclass(frozen=True)
class MediaSegment:
    """A stretch of one media file placed on the stream timeline.

    ``file_offset`` is where the stretch starts inside the file (seconds); ``t_start`` is where it
    lands on the timeline. Timelines may have gaps between segments (EgoLife recordings do).
    ``duration`` of ``None`` means "until the file ends".
    """

    path: Path
    t_start: float
    duration: float | None = None
    file_offset: float = 0.0

    @property
    def t_end(self) -> float | None:
        return None if self.duration is None else self.t_start + self.duration


@dataclass(frozen=True)
class TextEvent:
    """Side-channel text (subtitles, transcript lines, speech) on the stream timeline.

    The text becomes available when it ends (a line still being spoken is not known yet): it is
    delivered with the clip whose window holds its ``t_end`` (``media.iter_clips``).
    """

    channel: str
    t_start: float
    t_end: float
    text: str


@dataclass(frozen=True)
class ScoringSpec:
    """How a question's reply is turned into a verdict."""

    kind: Literal["multiple_choice", "open"] = "multiple_choice"
    abstain_text: str = "Insufficient Information"


@dataclass(frozen=True)
class Question:
    """A question as the harness schedules it. Gold answers live in :class:`Hidden`."""

    id: str
    stream_id: str
    ask_time: float
    text: str
    options: tuple[str, ...]
    category: str
    tags: Mapping[str, str] = field(default_factory=dict)
    evidence: tuple[Span, ...] = ()
    scoring: ScoringSpec = ScoringSpec()

    @property
    def labels(self) -> str:
        """Option labels, A, B, ... by position."""
        return ANSWER_LABELS[: len(self.options)]

    @property
    def evidence_delay(self) -> float | None:
        """Seconds from the end of the latest evidence to the ask time (None without evidence)."""
        return self.ask_time - max(span.end for span in self.evidence) if self.evidence else None

    @property
    def abstain_label(self) -> str:
        """The label after the last option: "cannot be determined from memory"."""
        return ANSWER_LABELS[len(self.options)]


@dataclass(frozen=True)
class Hidden:
    """What no model-facing code may receive: the gold answer, dataset hints, the raw record."""

    question_id: str
    gold: str
    hints: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fact:
    """A ground-truth fact with its time span, known only for synthetic data (privileged)."""

    span: Span
    kind: str
    text: str


@dataclass(frozen=True)
class Stream:
    """One continuous stream: its media on a timeline, side-channel text and scheduled questions."""

    id: str
    segments: tuple[MediaSegment, ...]
    questions: tuple[Question, ...] = ()
    text_events: tuple[TextEvent, ...] = ()
    fps: float | None = None
    duration: float | None = None

    @property
    def media_seconds(self) -> float | None:
        """Seconds of video in the stream: the segments' durations summed when all are known
        (EgoLife's week-long timeline holds far less video than its span), else ``duration``."""
        if self.segments and all(s.duration is not None for s in self.segments):
            return sum(s.duration for s in self.segments)
        return self.duration


@dataclass(frozen=True)
class Episode:
    """A stream plus the harness-only records that go with it."""

    stream: Stream
    hidden: Mapping[str, Hidden]
    facts: tuple[Fact, ...] = ()


# ---------------------------------------------------------------------------------------------
# Model-facing records


@dataclass(frozen=True)
class MemoryBudget:
    """Caps on what a policy may write; ``None`` means no cap. Tokens as counted by memory.py."""

    tokens_per_clip: int | None = None
    tokens_per_minute: int | None = None

    def __post_init__(self) -> None:
        for cap in (self.tokens_per_clip, self.tokens_per_minute):
            if cap is not None and cap < 0:
                raise ValueError("memory budgets must be at least 0 (or none)")

    @property
    def unlimited(self) -> bool:
        return self.tokens_per_clip is None and self.tokens_per_minute is None


@dataclass(frozen=True)
class StreamInfo:
    """What a policy learns when a stream starts: metadata only, never the questions.

    ``facts`` is filled only for privileged policies (the oracle control) on synthetic tasks.
    """

    stream_id: str
    fps: float | None
    duration: float | None
    clip_seconds: float
    sample_fps: float
    side_channels: tuple[str, ...]
    budget: MemoryBudget
    facts: tuple[Fact, ...] = ()


@dataclass(frozen=True, eq=False)
class Clip:
    """A window ``[t_start, t_end)`` of one stream: sampled frames with timeline timestamps and
    the allowed side-channel text that ended inside the window."""

    stream_id: str
    index: int
    t_start: float
    t_end: float
    frames: np.ndarray  # (n, height, width, 3) uint8 RGB
    timestamps: np.ndarray  # (n,) float64 seconds on the stream timeline
    text: tuple[TextEvent, ...] = ()


@dataclass(frozen=True)
class TaskNotice:
    """Sent to a policy after a question was answered: the task, never its answer."""

    stream_id: str
    question_id: str
    ask_time: float
    text: str
    options: tuple[str, ...]
    category: str
