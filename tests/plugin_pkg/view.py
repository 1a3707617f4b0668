"""A memory-view plugin: the reader sees only the latest entries of each snapshot (causal, so
a leaderboard could rank it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskmem_bench.memory import MemoryEntry
from taskmem_bench.memory_view import MemoryView
from taskmem_bench.schema import Question


class LastEntries(MemoryView):
    last = 2

    def keep(self, entries: tuple[MemoryEntry, ...], question: Question) -> Sequence[MemoryEntry]:
        return entries[-self.last:]

    def settings(self) -> dict[str, Any]:
        return {"last": self.last}
