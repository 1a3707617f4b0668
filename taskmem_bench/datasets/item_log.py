"""What an adapter excluded and what it had to interpret, collected in the order met, so the
parts of one adapter that read different files record into one release."""

from __future__ import annotations

from dataclasses import dataclass, field

from taskmem_bench.datasets.base import Irregularity, SkippedItem


@dataclass
class ItemLog:
    """A release's ``skipped`` and ``irregular`` items while it is being built."""

    skipped: list[SkippedItem] = field(default_factory=list)
    irregular: list[Irregularity] = field(default_factory=list)

    def note(self, item_id: str, kind: str, detail: str) -> None:
        self.irregular.append(Irregularity(item_id, kind, detail))

    def skip(self, item_id: str, reason: str, kind: str) -> None:
        self.skipped.append(SkippedItem(item_id, reason, kind))
