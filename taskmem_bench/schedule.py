"""The order of work: each stream's clips and questions in causal order, and each round's batches.

A stream's *schedule* interleaves its clips (decoded once, in order, cut at every ask time) with
its questions, so that a question is answered from the memory at its ``ask_time`` before any
later clip of its stream reaches the policy (or, decoded in the runner's process, is decoded;
decode workers decode ahead as the harness's private work). The engine keeps a ``LiveStream``
per stream in flight, pulls each schedule up to its next clip, and sends the pending clips in
batches that hold one clip from each of up to ``batch_size`` streams, which keeps a GPU backend
busy.
"""

from __future__ import annotations

import traceback
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from taskmem_bench.memory import MemoryStore
from taskmem_bench.results import QuestionRow
from taskmem_bench.schema import Clip, Episode, Question


T = TypeVar("T")


class Checkpoint:
    """Marks the point after a clip and the questions at its end, before the next decode."""


CHECKPOINT = Checkpoint()


class CausalOrder(Iterator[Clip | Question | Checkpoint]):
    """The causal order of one stream: each question right after the last clip ending at or
    before its ask time, and before the first clip after it.

    Questions at a clip's end (the usual case: clips are cut at ask times) come before anything
    later is decoded. A question that falls in a gap between segments is only known to be due
    once the next clip has been decoded (its start shows that nothing ended in between); that
    clip still reaches the policy only after the answer. Closing the order closes ``clips``
    (its decoder, here or in a decode worker), whether or not it was started."""

    def __init__(self, questions: Iterable[Question], clips: Iterator[Clip]) -> None:
        self._clips = clips
        self._items = self._interleave(deque(sorted(questions, key=lambda q: q.ask_time)))

    def __next__(self) -> Clip | Question | Checkpoint:
        return next(self._items)

    def close(self) -> None:
        self._items.close()
        close = getattr(self._clips, "close", None)
        if close is not None:
            close()

    def _interleave(self, due: deque[Question]) -> Iterator[Clip | Question | Checkpoint]:
        for clip in self._clips:
            while due and due[0].ask_time <= clip.t_start:
                yield due.popleft()
            yield clip
            while due and due[0].ask_time <= clip.t_end:
                yield due.popleft()
            yield CHECKPOINT
        yield from due


@dataclass
class LiveStream:
    """A stream in flight: its schedule, its memory, the clip it waits to have observed, its
    rows so far and, once it failed, why."""

    index: int
    episode: Episode
    store: MemoryStore
    items: CausalOrder
    pending: Clip | None = None
    waiting_since: int = 0  # the round in which the pending clip was decoded
    exhausted: bool = False
    failure: tuple[str, str] | None = None
    rows: list[QuestionRow] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.episode.stream.id

    @property
    def done(self) -> bool:
        return self.failure is not None or (self.exhausted and self.pending is None)

    @property
    def needs_clip(self) -> bool:
        """Whether the next advance pulls its schedule: it goes on and holds no pending clip."""
        return not self.done and self.pending is None

    def advance(self, round_number: int) -> list[Question]:
        """Pull the schedule up to the next clip, returning the questions due before it; stop at
        a checkpoint when questions are due, so they are answered before the decoder reads
        further. A decoding error fails the stream (``media_error``)."""
        due: list[Question] = []
        try:
            for item in self.items:
                if isinstance(item, Question):
                    due.append(item)
                elif isinstance(item, Clip):
                    self.pending = item
                    self.waiting_since = round_number
                    return due
                elif due:
                    return due
            self.exhausted = True
        except Exception:
            self.failure = ("media_error", traceback.format_exc())
        return due


def round_batches(active: Sequence[LiveStream], size: int) -> list[list[LiveStream]]:
    """The streams whose pending clips this round sends, in batches of ``size``: the
    longest-waiting first, and only full batches while more clips are ready than one batch
    holds; the rest wait (first in line) for the next round, when the streams observed now
    have new clips. A partial batch goes only when fewer clips than a batch are ready."""
    ready = [s for s in active if s.pending is not None and s.failure is None]
    ready.sort(key=lambda s: s.waiting_since)  # stable: equal waits keep their order
    sent = len(ready) - len(ready) % size if len(ready) >= size else len(ready)
    return [ready[start : start + size] for start in range(0, sent, size)]


def waves(indexed: Sequence[tuple[int, T]], size: int | None) -> list[list[tuple[int, T]]]:
    """The streams to run (``(index, item)`` pairs) grouped into waves, in index order: stream
    ``i`` is in wave ``i // size``. A policy that learns across streams adapts between waves,
    so a wave starts only once the one before it has finished. ``size`` None: one group."""
    if size is None:
        return [list(indexed)]
    grouped: dict[int, list[tuple[int, T]]] = {}
    for pair in sorted(indexed, key=lambda pair: pair[0]):
        grouped.setdefault(pair[0] // size, []).append(pair)
    return list(grouped.values())
