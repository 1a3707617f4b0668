"""Claim precision and richness of a memory log on mini: how much of what a memorizer wrote is
true, and how much true information it kept.

A written sentence is a *true claim* when it is the text of a simulator fact whose span overlaps
the window the memorizer saw (its clip's end minus the window length, to the clip's end). Each
sentence gets a kind, the fact's kind when it is true, else the kind its wording claims
(:func:`claimed_kind`), so precision can be reported per kind.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from taskmem_bench.datasets.mini.world import World
from taskmem_bench.memory import StoredEntry, count_tokens

from taskmem.minidata import CLIP_SECONDS, overlapping
from taskmem.protocol import sentences

KIND_PATTERNS = (
    ("text", re.compile(r"^The sign shows")),
    ("count", re.compile(r"^There (are|is) ")),
    ("speech", re.compile(r"^\w+ says ")),
    ("location", re.compile(r" is (left|right) of ")),
    ("attribute", re.compile(r" pattern\.?$")),
    ("object", re.compile(r" (appears|disappears) ")),
    ("action", re.compile(r"the person ")),
)
KINDS = tuple(k for k, _ in KIND_PATTERNS) + ("other",)


def claimed_kind(sentence: str) -> str:
    """The fact kind a sentence's wording claims (mini's sentence templates), else ``other``."""
    return next((kind for kind, pattern in KIND_PATTERNS if pattern.search(sentence)), "other")


@dataclass
class ClaimTally:
    """Counts over many clips: sentences written and true, by kind, and distinct true facts."""

    written: Counter = field(default_factory=Counter)
    true: Counter = field(default_factory=Counter)
    clips: int = 0
    true_facts: int = 0
    tokens: int = 0

    def add_clip(self, description: str, window: Iterable[tuple[str, str]], tokens: int) -> None:
        """One clip's description against its window's facts, given as (text, kind)."""
        facts = dict(window)
        self.clips += 1
        self.tokens += tokens
        seen = set()
        for sentence in sentences(description):
            kind = facts.get(sentence) or claimed_kind(sentence)
            self.written[kind] += 1
            if sentence in facts:
                self.true[kind] += 1
                seen.add(sentence)
        self.true_facts += len(seen)

    @property
    def precision(self) -> float | None:
        total = sum(self.written.values())
        return sum(self.true.values()) / total if total else None

    def precision_by_kind(self) -> dict[str, float]:
        return {k: self.true[k] / n for k, n in sorted(self.written.items()) if n}

    @property
    def richness(self) -> float:
        """Distinct true facts per clip."""
        return self.true_facts / self.clips if self.clips else 0.0

    def as_dict(self) -> dict:
        return {
            "clips": self.clips, "sentences": sum(self.written.values()),
            "claim_precision": self.precision, "richness": self.richness,
            "tokens_per_clip": self.tokens / self.clips if self.clips else 0.0,
            "written_by_kind": dict(sorted(self.written.items())),
            "precision_by_kind": self.precision_by_kind(),
        }


def window_facts(world: World, clip_end: float, window_seconds: float) -> list[tuple[str, str]]:
    """(text, kind) of the facts overlapping ``[clip_end - window_seconds, clip_end]``."""
    return [(f.text, f.kind) for f in overlapping(world, clip_end - window_seconds, clip_end)]


def tally_log(log: Sequence[StoredEntry], world: World, cuts: Iterable[float] = (),
              window_seconds: float = 50.0) -> ClaimTally:
    """A stream's memory log (``RunDir.memory_log``) scored against its world; clips that wrote
    nothing count, with no sentences. ``cuts`` are the stream's ask times, where the runner cut
    clips."""
    tally = ClaimTally()
    by_clip: dict[float, list[str]] = {}
    for stored in log:  # grouped by the clip that wrote them (its end), not their spans
        by_clip.setdefault(stored.written_at, []).append(stored.entry.text)
    ends = sorted(set(by_clip) | clip_ends(world, cuts))
    for end in ends:
        text = " ".join(by_clip.get(end, []))
        tally.add_clip(text, window_facts(world, end, window_seconds), count_tokens(text))
    return tally


def clip_ends(world: World, cuts: Iterable[float] = (),
              clip_seconds: float = CLIP_SECONDS) -> set[float]:
    """Where the runner's clips end: every ``clip_seconds`` and at every cut (media.iter_clips)."""
    n = int(round(world.duration / clip_seconds))
    ends = {min(world.duration, clip_seconds * (i + 1)) for i in range(n)}
    return ends | {float(t) for t in cuts if 0 < t < world.duration}


def merge(tallies: Iterable[ClaimTally]) -> ClaimTally:
    total = ClaimTally()
    for t in tallies:
        total.written += t.written
        total.true += t.true
        total.clips += t.clips
        total.true_facts += t.true_facts
        total.tokens += t.tokens
    return total
