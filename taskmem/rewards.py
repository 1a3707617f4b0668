"""Phase One's reward terms: plain callables in trl's reward signature, one per term.

Each term is ``term(prompts, completions, **columns) -> list[float | None]``; trl sums them with
``reward_weights``. The rollout dataset supplies, per prompt, what the judges may use: the
window's ground truth (``window_facts``, mini only), the sentences the window's earlier
descriptions already state (``stated``), the budget, the frames and side text. Never the
questions or their answers.

Terms (TASKMEM.md, the paper's values as defaults):

1. :class:`FormatTerm`: an unparseable reply gets ``penalty`` (-1.5) and nothing else;
2. :class:`QualityTerm`: +0.5 when every claim is true of the window (the judge), none repeats
   an earlier description and the reply fits the budget, else -0.5;
3. :class:`RichnessTerm`: the group's correct replies ranked by distinct true facts, position
   score normalised over the group, x 0.5 x 0.1;
4. :class:`ThinkingTerm`: 0 up to ``limit`` thinking tokens, falling linearly to -1 at twice
   that.

A judge that fails on a reply scores 0 for that term, and the failure is counted
(:attr:`QualityTerm.failures`), never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from taskmem_bench.memory import count_tokens

from taskmem.protocol import parse_reply, sentences


def completion_text(completion: Any) -> str:
    """trl passes conversational completions as message lists and plain ones as strings."""
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion if isinstance(m.get("content"), str))


@dataclass(frozen=True)
class Claim:
    """What a judge is asked about one reply: its sentences, in the context of one prompt."""

    sentences: tuple[str, ...]
    context: dict[str, Any]


@dataclass(frozen=True)
class Verdict:
    """``true[i]`` says whether sentence i is true of the window; None when the judge failed
    (``error`` says why)."""

    true: tuple[bool, ...] | None
    error: str = ""


class ClaimJudge(Protocol):
    """Decides which sentences of each reply are true of its window (the paper's video-grounded
    judge). One batched call per training step."""

    def __call__(self, claims: Sequence[Claim]) -> list[Verdict]: ...


class FactJudge:
    """The mini judge: a sentence is true exactly when it is the text of a simulator fact that
    overlaps the window (``window_facts``). It stands in for the paper's video-grounded LLM
    judge, which cannot run here; it sees the simulator's facts for the window and nothing about
    questions or answers."""

    def __call__(self, claims: Sequence[Claim]) -> list[Verdict]:
        verdicts = []
        for claim in claims:
            facts = set(claim.context["window_facts"])
            verdicts.append(Verdict(tuple(s in facts for s in claim.sentences)))
        return verdicts


@dataclass
class FormatTerm:
    penalty: float = -1.5

    def __post_init__(self) -> None:
        self.__name__ = "format"  # trl logs each term under its function name

    def __call__(self, prompts, completions, **columns) -> list[float]:
        return [0.0 if parse_reply(completion_text(c)).ok else self.penalty for c in completions]


@dataclass
class QualityTerm:
    """+``value`` when a reply is accurate, new and within budget, else -``value``; None-free:
    unparseable replies score 0 here (the format term has them), judge failures score 0 and are
    counted."""

    judge: ClaimJudge
    value: float = 0.5
    failures: int = 0
    judged: int = 0
    _last: tuple | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.__name__ = "quality"  # trl logs each term under its function name

    def __call__(self, prompts, completions, **columns) -> list[float]:
        return [r for r, _ in self.score(completions, columns)]

    def score(self, completions, columns) -> list[tuple[float, int | None]]:
        """(reward, distinct true facts of a correct reply, else None) per completion; the
        richness term asks about the same batch (the very same lists), so the judgement is
        reused rather than asked twice."""
        if self._last is not None and self._last[0] is completions and self._last[1] is columns.get("group"):
            return self._last[2]  # trl hands every term the same lists
        scored = self._score(completions, columns)
        self._last = (completions, columns.get("group"), scored)
        return scored

    def _score(self, completions, columns) -> list[tuple[float, int | None]]:
        replies = [parse_reply(completion_text(c)) for c in completions]
        contexts = _rows(columns, len(completions))
        asked = [i for i, r in enumerate(replies) if r.ok]
        claimed = {i: tuple(sentences(replies[i].description)) for i in asked}
        verdicts = self.judge([Claim(claimed[i], contexts[i]) for i in asked])
        out: list[tuple[float, int | None]] = [(0.0, None)] * len(completions)
        for i, verdict in zip(asked, verdicts):
            self.judged += 1
            if verdict.true is None:
                self.failures += 1
                continue
            claims = claimed[i]
            stated = set(contexts[i].get("stated", ()))
            budget = contexts[i].get("budget")
            good = (all(verdict.true) and not any(s in stated for s in claims)
                    and len(set(claims)) == len(claims)
                    and (budget is None or count_tokens(replies[i].description) <= budget))
            true_facts = len({s for s, t in zip(claims, verdict.true) if t})
            out[i] = (self.value if good else -self.value, true_facts if good else None)
        return out


@dataclass
class RichnessTerm:
    """Ranks a group's correct replies by distinct true facts: position score
    ``1 - pos/(M-1)`` (ties share the best position), min-max normalised over the group's
    correct replies, x ``weight`` x ``scale``. Groups are the replies to one prompt
    (``group`` column)."""

    quality: QualityTerm
    weight: float = 0.5
    scale: float = 0.1

    def __post_init__(self) -> None:
        self.__name__ = "richness"  # trl logs each term under its function name

    def __call__(self, prompts, completions, **columns) -> list[float]:
        scored = self.quality.score(completions, columns)
        groups: dict[Any, list[int]] = {}
        for i, key in enumerate(columns["group"]):
            groups.setdefault(key, []).append(i)
        rewards = [0.0] * len(completions)
        for members in groups.values():
            correct = [i for i in members if scored[i][1] is not None]
            if len(correct) < 2:
                continue
            positions = {i: sum(1 for j in correct if scored[j][1] > scored[i][1]) for i in correct}
            m = len(correct)
            raw = {i: 1 - positions[i] / (m - 1) for i in correct}
            low, high = min(raw.values()), max(raw.values())
            if high == low:
                continue
            for i in correct:
                rewards[i] = (raw[i] - low) / (high - low) * self.weight * self.scale
        return rewards


@dataclass
class ThinkingTerm:
    """0 up to ``limit`` thinking tokens (memory.py's count), then linearly down to -1 at
    ``2 * limit``, and never below -1."""

    limit: int = 1200

    def __post_init__(self) -> None:
        self.__name__ = "thinking"  # trl logs each term under its function name

    def __call__(self, prompts, completions, **columns) -> list[float]:
        out = []
        for c in completions:
            text = completion_text(c)
            thinking = text.partition("</think>")[0] if "</think>" in text else text
            tokens = count_tokens(thinking.removeprefix("<think>"))
            out.append(max(-1.0, -max(0, tokens - self.limit) / self.limit))
        return out


def _rows(columns: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Column-wise trl kwargs as one dict per completion."""
    keys = [k for k, v in columns.items() if isinstance(v, list) and len(v) == n]
    return [{k: columns[k][i] for k in keys} for i in range(n)]


@dataclass
class Terms:
    """Phase One's four terms sharing one quality judgement per step."""

    judge: ClaimJudge
    format_penalty: float = -1.5
    quality_value: float = 0.5
    richness_scale: float = 0.1
    thinking_limit: int = 1200
    quality: QualityTerm = field(init=False)

    def __post_init__(self) -> None:
        self.quality = QualityTerm(self.judge, self.quality_value)

    def callables(self) -> list:
        return [FormatTerm(self.format_penalty), self.quality,
                RichnessTerm(self.quality, scale=self.richness_scale),
                ThinkingTerm(self.thinking_limit)]
