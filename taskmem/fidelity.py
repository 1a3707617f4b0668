"""Phase Two, step 2: the fidelity filter, Phase One's quality judge applied to candidates.

Unparseable candidates and over-long thinking (beyond :class:`~taskmem.rewards.ThinkingTerm`'s
limit) are dropped; the rest are judged by :class:`~taskmem.rewards.QualityTerm` with any
:class:`~taskmem.rewards.ClaimJudge` (every claim true, none repeating the window's earlier
descriptions, within the clip's budget and the length cap) and kept with that verdict as
``correct``. A judge failure drops the candidate and is counted.

:class:`ConsensusJudge` is the claim judge a deployed mini policy can use. The mini
:class:`~taskmem.rewards.FactJudge` reads the simulator's facts for the window, and a deployed
policy must never receive them (it would be told the answers to the questions); the paper's
video-grounded LLM judge cannot run on CPU. So the CPU stand-in asks the frozen memorizer
itself: a sentence counts as supported when enough of the clip's samples state it
(self-consistency), which needs nothing but the candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from taskmem.candidates import Candidate, ClipPrompt
from taskmem.protocol import sentences
from taskmem.rewards import Claim, ClaimJudge, QualityTerm, ThinkingTerm, Verdict
from taskmem.streams import trl_prompt


@dataclass(frozen=True)
class Judged:
    """A candidate that passed the filter, with the quality judge's verdict."""

    candidate: Candidate
    correct: bool


@dataclass(frozen=True, eq=False)
class Filtered:
    """One clip after the filter: the kept candidates in sampling order, and how many were
    dropped for each reason."""

    clip: ClipPrompt
    kept: tuple[Judged, ...]
    unparseable: int = 0
    overlong: int = 0
    judge_failures: int = 0


def fidelity_filter(
    clips: Sequence[ClipPrompt],
    candidates: Sequence[Sequence[Candidate]],
    judge: ClaimJudge,
    *,
    thinking_limit: int = 1200,
    length_cap: int = 300,
) -> list[Filtered]:
    """One :class:`Filtered` per clip (``candidates[i]`` are ``clips[i]``'s), judged in one
    batched call. A description must fit ``min(clip budget, length_cap)`` tokens.

    Each claim's context holds the clip's prompt and images (trl's format, as the LLM claim
    judge reads them), ``stated``, ``budget`` and ``peers`` (the sentences of every candidate of
    the clip, for :class:`ConsensusJudge`): only what the policy itself has, so no simulator
    fact can reach an adaptation through the filter."""
    if len(candidates) != len(clips):
        raise ValueError("fidelity_filter needs one candidate list per clip")
    thinking = ThinkingTerm(thinking_limit)
    asked: list[tuple[int, Candidate]] = []
    columns: dict[str, list[Any]] = {}
    unparseable, overlong = [0] * len(clips), [0] * len(clips)
    for i, (clip, group) in enumerate(zip(clips, candidates)):
        prompt, images = trl_prompt(clip.prompt)
        peers = tuple(frozenset(_normal(s) for s in sentences(c.description or "")) for c in group)
        budget = length_cap if clip.budget is None else min(clip.budget, length_cap)
        row = {"prompt": prompt, "images": images, "stated": sorted(clip.stated),
               "budget": budget, "peers": peers, "group": i}
        for candidate, penalty in zip(group, thinking(None, [c.completion for c in group])):
            if candidate.description is None:
                unparseable[i] += 1
            elif penalty < 0:
                overlong[i] += 1
            else:
                asked.append((i, candidate))
                for name, value in row.items():
                    columns.setdefault(name, []).append(value)
    scored = QualityTerm(judge).score([c.completion for _, c in asked], columns) if asked else []
    kept: list[list[Judged]] = [[] for _ in clips]
    failures = [0] * len(clips)
    for (i, candidate), (reward, _) in zip(asked, scored):
        if reward == 0:  # the quality term's score for a judge failure
            failures[i] += 1
        else:
            kept[i].append(Judged(candidate, reward > 0))
    return [Filtered(clip, tuple(k), u, o, f)
            for clip, k, u, o, f in zip(clips, kept, unparseable, overlong, failures)]


@dataclass(frozen=True)
class ConsensusJudge:
    """A sentence is supported when at least ``share`` of its clip's candidates (``peers`` in
    the claim's context, one sentence set per sampled candidate) state it, compared
    case-insensitively without final punctuation. The CPU stand-in for a deployed mini policy;
    see the module docstring for why it uses no facts."""

    share: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ValueError(f"share must be in (0, 1], got {self.share}")

    def __call__(self, claims: Sequence[Claim]) -> list[Verdict]:
        verdicts = []
        for claim in claims:
            peers = claim.context.get("peers")
            if not peers:
                verdicts.append(Verdict(None, "the consensus judge needs the clip's candidates"))
                continue
            verdicts.append(Verdict(tuple(
                sum(_normal(s) in p for p in peers) >= self.share * len(peers)
                for s in claim.sentences)))
        return verdicts


def _normal(sentence: str) -> str:
    return " ".join(sentence.lower().rstrip(".!?").split())
