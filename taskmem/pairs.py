"""Phase Two, step 4: one (chosen, rejected) DPO pair per clip from its consistent wins.

TASKMEM.md, Phase Two, step 4: keep wins whose winner is at least as correct as the loser;
build the loser->winner graph; drop a clip whose graph has a cycle (its preferences contradict
each other); from each undefeated candidate take its longest chain down to a candidate it beat
through others; keep chains whose ends differ by fewer than ``max_gap`` tokens (so DPO does not
learn length instead of content) and are not both incorrect; prefer the smallest gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from graphlib import CycleError, TopologicalSorter

from taskmem.candidates import Candidate, ClipKey, ClipPrompt
from taskmem.protocol import Prompt
from taskmem.usefulness import ClipWins


@dataclass(frozen=True, eq=False)
class PreferencePair:
    """A DPO example (what ``taskmem.dpo.PreferencePair`` reads): the clip's prompt (with the
    supplement) and two of its candidates, thinking included; ``chain`` is how many wins lead
    from rejected up to chosen."""

    key: ClipKey
    clip: ClipPrompt
    chosen: Candidate
    rejected: Candidate
    chain: int

    @property
    def prompt(self) -> Prompt:
        return self.clip.prompt

    @property
    def chosen_completion(self) -> str:
        return self.chosen.completion

    @property
    def rejected_completion(self) -> str:
        return self.rejected.completion

    @property
    def gap(self) -> int:
        """The two descriptions' difference in length, in memory.py's tokens."""
        return abs(self.chosen.tokens - self.rejected.tokens)


def select_pair(result: ClipWins, *, max_gap: int = 20) -> PreferencePair | None:
    """The clip's pair, or None when its graph has a cycle or no chain passes the rules."""
    kept = result.clip.kept
    beat: dict[int, set[int]] = {}  # winner -> the losers it beat, the graph reversed
    for winner, loser in result.wins:
        if kept[winner].correct >= kept[loser].correct:
            beat.setdefault(winner, set()).add(loser)
            beat.setdefault(loser, set())
    try:
        tuple(TopologicalSorter(beat).static_order())
    except CycleError:
        return None

    @cache
    def longest(node: int) -> tuple[int, frozenset[int]]:
        """The longest chain below ``node``: its length and every candidate it can end at."""
        below = [(length + 1, ends) for length, ends in map(longest, beat[node])]
        if not below:
            return 0, frozenset({node})
        best = max(length for length, _ in below)
        return best, frozenset().union(*(ends for length, ends in below if length == best))

    losers = {loser for losers in beat.values() for loser in losers}
    options = []
    for top in sorted(set(beat) - losers):
        length, ends = longest(top)
        for bottom in sorted(ends):
            chosen, rejected = kept[top], kept[bottom]
            gap = abs(chosen.candidate.tokens - rejected.candidate.tokens)
            if gap < max_gap and (chosen.correct or rejected.correct):
                options.append((gap, top, bottom, length))
    if not options:
        return None
    _, top, bottom, length = min(options)
    clip = result.clip.clip
    return PreferencePair(clip.key, clip, kept[top].candidate, kept[bottom].candidate, length)


def select_pairs(results: Sequence[ClipWins], *, max_gap: int = 20) -> list[PreferencePair]:
    """At most one pair per clip, in the clips' order."""
    pairs = (select_pair(r, max_gap=max_gap) for r in results)
    return [p for p in pairs if p is not None]
