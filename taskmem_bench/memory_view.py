"""Memory views: what of a question's memory snapshot the reader is shown, and whether a
leaderboard may rank runs that used it.

A task names its view with ``memory_view:`` (entry-point group ``taskmem_bench.memory_views``,
or a ``module:Class`` path). The default, ``full``, shows the whole snapshot. A view only
selects: it gets the snapshot already cut at the ask time, so it cannot add later memory, and
:meth:`MemoryView.select` refuses a selection holding an entry the snapshot lacks. A view is part
of the task, not of the policy under test, so an error in it ends the run rather than one
question.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from taskmem_bench.memory import MemoryEntry, MemorySnapshot
from taskmem_bench.plugins import load, registered
from taskmem_bench.schema import Question

ENTRY_POINT_GROUP = "taskmem_bench.memory_views"


class MemoryView(ABC):
    """Base class of memory views; subclasses say which entries the reader sees."""

    oracle_localised: ClassVar[bool] = False
    """The view selects by the question's annotated evidence (harness-side spans), which no
    deployed system has: the leaderboard refuses it."""
    category_informed: ClassVar[bool] = False
    """The view selects by the question's category, a label of the benchmark rather than of the
    stream: the leaderboard refuses it."""

    @abstractmethod
    def keep(self, entries: tuple[MemoryEntry, ...], question: Question) -> Sequence[MemoryEntry]:
        """The entries of the snapshot the reader is shown for ``question``."""

    def settings(self) -> dict[str, Any]:
        """The view's parameters, recorded in the manifest beside its name."""
        return {}

    def describe(self) -> dict[str, Any]:
        """The manifest's account of the view (without its name, which the task gives)."""
        return {"oracle_localised": self.oracle_localised, **self.settings()}

    @property
    def leaderboard_refusal(self) -> str | None:
        """Why a leaderboard refuses runs under this view, or None when it may rank them."""
        if self.oracle_localised:
            return "oracle-localised"
        if self.category_informed:
            return "category-informed"
        return None

    def select(self, snapshot: MemorySnapshot, question: Question) -> MemorySnapshot:
        """The snapshot as the reader sees it: ``keep``'s entries, which must be the snapshot's."""
        kept = tuple(self.keep(snapshot.entries, question))
        if kept == snapshot.entries:
            return snapshot
        present = {id(e) for e in snapshot.entries}
        if any(id(e) not in present for e in kept):
            raise ValueError(f"memory view {type(self).__name__} showed an entry that is not "
                             f"in the snapshot at {snapshot.t:.3f} s")
        return dataclasses.replace(snapshot, entries=kept)


class FullMemory(MemoryView):
    """The whole snapshot: the causal default."""

    def keep(self, entries: tuple[MemoryEntry, ...], question: Question) -> Sequence[MemoryEntry]:
        return entries


def available_memory_views() -> dict[str, str]:
    return registered(ENTRY_POINT_GROUP)


def load_memory_view(name: str) -> MemoryView:
    """The view registered as ``name``, or imported from a ``module:Class`` path."""
    return load(ENTRY_POINT_GROUP, "memory view", name, MemoryView)()
