"""Phase Two, step 3: which of two candidates is more useful for questions like the recent ones.

One interface, :class:`UsefulnessJudge`, batched, with two implementations:

- :class:`LLMUsefulnessJudge`: the paper's pairwise prompt through any backend;
- :class:`QuestionOverlapJudge`: the model-free CPU stand-in for ``mini``.

:func:`judge_both_orders` asks every pair of a clip's kept candidates in both orders and keeps
a win only when both orders name the same candidate (TASKMEM.md, Phase Two, step 3).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from taskmem_bench.backends import BackendSettings, ChatRequest, Message, Sampling
from taskmem_bench.model_policy import generate_all

from taskmem.fidelity import Filtered
from taskmem.protocol import _FENCE


@dataclass(frozen=True)
class Comparison:
    """Two descriptions of one clip, and the example questions (supplement lines: text and
    options) they are to be useful for."""

    questions: tuple[str, ...]
    first: str
    second: str


@dataclass(frozen=True)
class Preference:
    """``choice`` names the more useful description, or "tie"; None when the judge failed
    (``error`` says why)."""

    choice: Literal["first", "second", "tie"] | None
    error: str = ""


class UsefulnessJudge(Protocol):
    """One preference per comparison, in order, from one batched call."""

    def __call__(self, comparisons: Sequence[Comparison]) -> list[Preference]: ...


USEFULNESS_QUESTION = (
    "A memory writer keeps short entries about a live video stream; questions are later "
    "answered from these entries alone. Recent questions were:\n{questions}\n\nTwo candidate "
    "entries for the same video segment:\nEntry 1: {first}\nEntry 2: {second}\n\nWhich entry is "
    "more useful for answering questions like these? Reply with one JSON object only: "
    '{{"better": 1, 2 or "tie", "reason": "<short>"}}'
)
_CHOICES = {1: "first", 2: "second", "tie": "tie"}


@dataclass(frozen=True)
class LLMUsefulnessJudge:
    """Asks the model named by ``settings`` (e.g. backend ``openai``), greedily, one request
    per comparison; a failed call or an unparseable reply is a :class:`Preference` with an
    error, never a tie."""

    settings: BackendSettings
    max_new_tokens: int = 256

    def __call__(self, comparisons: Sequence[Comparison]) -> list[Preference]:
        if not comparisons:
            return []
        try:
            generations = generate_all(self.settings, [self.request(c) for c in comparisons])
        except Exception as exc:  # noqa: BLE001 - a failed call costs its comparisons, counted
            return [Preference(None, f"usefulness judge call failed: {type(exc).__name__}: {exc}")
                    ] * len(comparisons)
        return [preference_of(g.answer) for g in generations]

    def request(self, comparison: Comparison) -> ChatRequest:
        text = USEFULNESS_QUESTION.format(
            questions="\n".join(f"- {q}" for q in comparison.questions),
            first=comparison.first, second=comparison.second)
        return ChatRequest((Message.text("user", text),), Sampling(max_new_tokens=self.max_new_tokens))


def preference_of(answer: str) -> Preference:
    """The judge's answer (after any thinking) must be exactly one JSON object, optionally in a
    code fence, whose ``better`` is 1, 2 or "tie"."""
    text = answer.strip()
    fenced = _FENCE.match(text)
    try:
        value = json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        value = None
    better = value.get("better") if isinstance(value, dict) else None
    if isinstance(better, bool) or better not in _CHOICES:
        return Preference(None, f"unparseable usefulness reply: {answer[:200]!r}")
    return Preference(_CHOICES[better])  # type: ignore[arg-type]


_WORD = re.compile(r"[a-z0-9]+")
STOP_WORDS = frozenset("""
a an the and or but of to in on at by for from with into onto over under as is are was were be
been being am it its this that these those there here which what who whom whose where when why
how many much do does did done has have had not no yes can could will would should may might
than then so if any some all each every one option""".split())
"""Generic English function words, plus "option" (the supplement lines' own label)."""


def content_words(text: str) -> frozenset[str]:
    """Lower-case word tokens without stop words, a final "s" dropped from words over three
    letters (a crude stem: "hexagons" meets "hexagon", "shows" meets "show"), and every numeral
    as one word "#" (any count answers a question whose options are counts)."""
    words = ("#" if w.isdigit() else w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS)
    stems = (w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)
    return frozenset(w for w in stems if w not in STOP_WORDS)


@dataclass(frozen=True)
class QuestionOverlapJudge:
    """The CPU stand-in for ``mini``: a description is more useful when more of its distinct
    content words occur in the example questions' text and options; a tie when equal.

    Model-free and derived from the questions alone: it never sees gold answers or simulator
    facts and has no table of what a category is about, so the focus it learns comes from the
    words of the tasks the environment asked (a count question's options are numbers, an OCR
    question's are words on signs)."""

    def __call__(self, comparisons: Sequence[Comparison]) -> list[Preference]:
        out = []
        for comparison in comparisons:
            asked = content_words(" ".join(comparison.questions))
            first = len(content_words(comparison.first) & asked)
            second = len(content_words(comparison.second) & asked)
            out.append(Preference("first" if first > second else "second" if second > first else "tie"))
        return out


@dataclass(frozen=True, eq=False)
class ClipWins:
    """A clip's consistent wins as (winner, loser) indices into ``clip.kept``, and how its
    pairs went: asked (in both orders), failed (no win: an error, a tie or orders that
    disagree), of which ``errors`` had a judge failure; ``gave_up`` when the clip was abandoned
    after too many failed pairs in a row."""

    clip: Filtered
    wins: tuple[tuple[int, int], ...]
    asked: int
    failed: int
    errors: int
    gave_up: bool


def judge_both_orders(
    judge: UsefulnessJudge, clips: Sequence[Filtered], *, give_up_after: int = 30
) -> list[ClipWins]:
    """Every pair of each clip's kept candidates with different descriptions, asked as (a, b)
    and (b, a) in one batched call. Pairs are then read in order as the authors' sequential
    loop asks them: after ``give_up_after`` failed pairs in a row a clip is given up, keeping
    the wins it had (later answers are ignored, so the outcome does not depend on batching)."""
    if give_up_after < 1:
        raise ValueError(f"give_up_after must be at least 1, got {give_up_after}")
    pairs = [[(i, j) for i, j in itertools.combinations(range(len(c.kept)), 2)
              if _text(c, i) != _text(c, j)] for c in clips]
    comparisons = [Comparison(c.clip.questions, _text(c, a), _text(c, b))
                   for c, ps in zip(clips, pairs) for i, j in ps for a, b in ((i, j), (j, i))]
    preferences = _asked(judge, comparisons)
    out, at = [], 0
    for clip, clip_pairs in zip(clips, pairs):
        answers = preferences[at:at + 2 * len(clip_pairs)]
        at += 2 * len(clip_pairs)
        wins, asked, failed, errors, in_a_row = [], 0, 0, 0, 0
        for (i, j), forward, backward in zip(clip_pairs, answers[::2], answers[1::2]):
            if in_a_row >= give_up_after:
                break
            asked += 1
            errors += forward.choice is None or backward.choice is None
            if (forward.choice, backward.choice) == ("first", "second"):
                wins.append((i, j))
                in_a_row = 0
            elif (forward.choice, backward.choice) == ("second", "first"):
                wins.append((j, i))
                in_a_row = 0
            else:
                failed += 1
                in_a_row += 1
        out.append(ClipWins(clip, tuple(wins), asked, failed, errors, in_a_row >= give_up_after))
    return out


def _text(clip: Filtered, i: int) -> str:
    return clip.kept[i].candidate.description or ""


def _asked(judge: UsefulnessJudge, comparisons: list[Comparison]) -> list[Preference]:
    """The judge's preferences; a judge that raises or answers a different number of
    comparisons costs every comparison, as errors."""
    if not comparisons:
        return []
    try:
        preferences = list(judge(comparisons))
    except Exception as exc:  # noqa: BLE001 - counted as failed pairs, never dropped
        return [Preference(None, f"usefulness judge failed: {type(exc).__name__}: {exc}")] * len(comparisons)
    if len(preferences) != len(comparisons):
        error = f"usefulness judge answered {len(preferences)} of {len(comparisons)} comparisons"
        return [Preference(None, error)] * len(comparisons)
    return preferences
