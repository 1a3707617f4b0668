"""Controls shown next to every policy: what memory is worth at all, and at most.

* ``blind`` writes nothing; the reader must answer from an empty memory. Accuracy above the
  reader's blind score is what memory buys.
* ``oracle`` writes the ground-truth fact sentences of each clip, as their facts complete, in
  a fixed order: the order they completed. It is privileged (the runner gives it the facts and
  refuses it on non-synthetic tasks). It is not a ceiling: under a memory budget a clip's facts
  do not all fit, and which ones are kept is a choice the order makes.
* ``oracle-priority`` writes the same facts ranked by kind (counts, text and speech first), the
  other fixed order; on ``mini`` it keeps more of what is asked. The two orders side by side show
  how much of a score is the choice of what to keep, with perfect perception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from taskmem_bench.memory import MemoryEntry
from taskmem_bench.policy import Policy
from taskmem_bench.schema import Clip, Fact, StreamInfo


class BlindPolicy(Policy):
    """Writes no memory."""

    name = "blind"
    version = "1"

    def start_stream(self, info: StreamInfo) -> None:
        pass

    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        return [[] for _ in clips]


@dataclass(frozen=True)
class OracleConfig:
    """Which facts the oracle writes first when a memory budget cuts a clip's writes short.

    ``order="time"`` keeps the facts that completed first; ``"priority"`` ranks fact kinds by
    ``priority`` (earlier is kept first), then by time.
    """

    order: Literal["time", "priority"] = "time"
    priority: tuple[str, ...] = (
        "count", "text", "speech", "action", "location", "attribute", "object",
    )


@dataclass(frozen=True)
class PriorityOracleConfig(OracleConfig):
    """The oracle's settings, ranking facts by kind unless ``order="time"`` is set."""

    order: Literal["time", "priority"] = "priority"


class OraclePolicy(Policy):
    """Writes each ground-truth fact in the clip where the fact completes."""

    name = "oracle"
    version = "1"
    Config = OracleConfig
    privileged = True

    def __init__(self, config: OracleConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self._facts: dict[str, tuple[Fact, ...]] = {}

    def start_stream(self, info: StreamInfo) -> None:
        self._facts[info.stream_id] = tuple(sorted(info.facts, key=lambda f: f.span.end))

    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        return [self._write(clip) for clip in clips]

    def end_stream(self, stream_id: str) -> None:
        self._facts.pop(stream_id, None)

    def _write(self, clip: Clip) -> list[MemoryEntry]:
        done = [f for f in self._facts[clip.stream_id] if clip.t_start <= f.span.end < clip.t_end]
        if self.config.order == "priority":
            rank = {kind: i for i, kind in enumerate(self.config.priority)}
            done.sort(key=lambda f: (rank.get(f.kind, len(rank)), f.span.end))
        return [MemoryEntry(f.span.start, f.span.end, f.text, kind=f.kind) for f in done]


class PriorityOraclePolicy(OraclePolicy):
    """The oracle, registered a second time with ``order="priority"`` so that both fixed
    orders are named controls: a run directory, a leaderboard row and ``make run`` each show
    which one they are."""

    name = "oracle-priority"
    Config = PriorityOracleConfig
