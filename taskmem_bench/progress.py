"""Progress of long steps that reads well on a terminal and in a log.

A step (generating a dataset's media, one policy's run) reports named counts of work done
against planned totals. On a terminal they show as live bars; elsewhere (CI, ``nohup``, a file)
as a plain line when the step starts, every ``interval_s`` seconds, and when it ends, so a log
shows the work moving even while one long model call runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from taskmem_bench.media import ClipBoundaries
from taskmem_bench.schema import Episode, Stream

ProgressFn = Callable[[int, int], None]
"""What a long step calls as it goes: ``(done, total)``."""


@dataclass
class _Count:
    done: int
    total: int


class StepProgress:
    """Named counts of one step, shown while it runs (a context manager)."""

    def __init__(self, console: Console, title: str, *, interval_s: float) -> None:
        self.console = console
        self.title = title
        self.interval_s = interval_s
        self.counts: dict[str, _Count] = {}
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._bars: Progress | None = None
        self._bar_ids: dict[str, int] = {}

    def __enter__(self) -> StepProgress:
        self._started = time.monotonic()
        if self.console.is_terminal:
            self._bars = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=self.console, transient=True,
            )
            self._bars.start()
        else:
            if self.counts:
                self._print()
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        if self._bars is not None:
            self._bars.stop()
        elif kind is None and self.counts:
            self._print()  # the final count; an interrupted step says what finished elsewhere

    def set(self, name: str, done: int, total: int) -> None:
        """``done`` of ``total`` units of ``name`` are finished."""
        self.counts[name] = _Count(done, total)
        if self._bars is None:
            return
        if name not in self._bar_ids:
            self._bar_ids[name] = self._bars.add_task(escape(f"{self.title} {name}"), total=total)
        self._bars.update(self._bar_ids[name], completed=done, total=total)

    def counter(self, name: str) -> ProgressFn:
        """A ``(done, total)`` callback that updates ``name``, for code that knows nothing of
        how progress is shown (a dataset adapter)."""
        return lambda done, total: self.set(name, done, total)

    def line(self) -> str:
        """The plain progress line; safe to call from the ticker while counts are added."""
        counts = ", ".join(f"{c.done}/{c.total} {name}" for name, c in list(self.counts.items()))
        elapsed = round(time.monotonic() - self._started)
        return f"{self.title}: {counts or 'working'} ({elapsed // 60}:{elapsed % 60:02d} elapsed)"

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._print()

    def _print(self) -> None:
        self.console.print(escape(self.line()), highlight=False, soft_wrap=True)


def planned_clips(stream: Stream, clip_seconds: float) -> int:
    """How many clips the runner will cut from ``stream``: the clip windows (boundaries at
    multiples of ``clip_seconds`` and at every ask time) that overlap its media. Text-only
    clips in gaps between segments are not foreseen; a segment of unknown length counts as
    reaching the stream's end, or as one window. The windows are ``media.ClipBoundaries``'s, the
    runner's own."""
    boundaries = ClipBoundaries(clip_seconds, tuple(sorted({q.ask_time for q in stream.questions})))
    starts: set[float] = set()
    for segment in stream.segments:
        end = max(segment.t_start, segment.t_end or stream.duration or segment.t_start)
        t = segment.t_start  # the window of the first frame, then each one that starts before end
        while True:
            start, t = boundaries.window(t)
            starts.add(start)
            if t >= end:
                break
    return len(starts)


class RunTally:
    """The runner's events (``clip``, ``question``, ``stream`` done, with the stream's id) as
    clips, questions and streams done against a run's planned totals. A finished stream counts
    as wholly done (a failed one too: its remaining questions got failure rows), and no stream
    counts past its plan, so the totals are reached exactly when the run ends."""

    def __init__(self, progress: StepProgress, episodes: Sequence[Episode], clip_seconds: float):
        self.progress = progress
        self.planned = {
            e.stream.id: {"clips": planned_clips(e.stream, clip_seconds),
                          "questions": len(e.stream.questions)}
            for e in episodes
        }
        self.counted = {stream_id: {"clips": 0, "questions": 0} for stream_id in self.planned}
        self.totals = {"clips": sum(p["clips"] for p in self.planned.values()),
                       "questions": sum(p["questions"] for p in self.planned.values()),
                       "streams": len(self.planned)}
        self.done = {kind: 0 for kind in self.totals}
        self._show()

    def __call__(self, event: str, stream_id: str) -> None:
        if event == "stream":
            self.done["streams"] += 1
            for kind in ("clips", "questions"):
                self._count(stream_id, kind, self.planned[stream_id][kind])
        else:
            kind = f"{event}s"
            self._count(stream_id, kind, self.counted[stream_id][kind] + 1)
        self._show()

    def _count(self, stream_id: str, kind: str, upto: int) -> None:
        """Count the stream's ``kind`` done up to ``upto``, never past its plan."""
        counted = self.counted[stream_id]
        new = max(counted[kind], min(upto, self.planned[stream_id][kind]))
        self.done[kind] += new - counted[kind]
        counted[kind] = new

    def _show(self) -> None:
        for kind, total in self.totals.items():
            self.progress.set(kind, self.done[kind], total)
