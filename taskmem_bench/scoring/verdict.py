"""From a reader's raw reply to a per-question verdict: the rules, with no model involved.

Multiple choice is decided by the robust final-answer parser; an open answer by the LLM judge's
judgment (:mod:`~taskmem_bench.scoring.judge`), which :meth:`~taskmem_bench.scoring.base.
Scoring.score` asks for and hands in. Plain values (reply, options, gold, judgment) rather than
dataset records, so that the leaderboard re-scores a bundle's rows with the runner's rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taskmem_bench.schema import ANSWER_LABELS
from taskmem_bench.scoring.anls import final_answer, is_abstention
from taskmem_bench.scoring.extract import extract_choice
from taskmem_bench.scoring.judge import Judgment


@dataclass(frozen=True)
class Verdict:
    parsed: str | None
    correct: bool
    abstained: bool
    parse_failed: bool
    method: str
    """How the answer was found (e.g. ``answer_line``), or why none was (e.g. ``no_choice``)."""


def verdict_choice(raw: str, options: Sequence[str], gold: str) -> Verdict:
    """Multiple choice: the robust final-answer parser, then comparison with the gold label.
    The label after the last option is the abstention."""
    abstain = ANSWER_LABELS[len(options)]
    extraction = extract_choice(raw, options, labels=ANSWER_LABELS[: len(options) + 1])
    label = extraction.label
    return Verdict(
        parsed=label,
        correct=label is not None and label == gold,
        abstained=label == abstain,
        parse_failed=label is None,
        method=extraction.method if label is not None else str(extraction.failure),
    )


def open_reply(raw: str, abstain_text: str) -> tuple[str, bool]:
    """An open reply's final answer (its last ``Answer:`` line after any thinking, else the
    whole reply after thinking) and whether that answer abstains."""
    answer = final_answer(raw)
    return answer, is_abstention(answer, abstain_text)


def answer_to_judge(raw: str, abstain_text: str) -> str | None:
    """The open reply's final answer for the LLM judge to decide, or None when it abstains or
    is empty (:func:`verdict_open` decides those without a judgment)."""
    answer, abstained = open_reply(raw, abstain_text)
    return answer if not abstained and answer.strip() else None


def verdict_open(raw: str, abstain_text: str, judgment: Judgment | None) -> Verdict:
    """Open answer: an abstention or an empty answer needs no judge; any other answer is as
    correct as the LLM judge says, and an unparseable or failed judgment is wrong (not
    abstained), its status kept in ``method``."""
    answer, abstained = open_reply(raw, abstain_text)
    if abstained:
        return Verdict(answer, correct=False, abstained=True, parse_failed=False,
                       method="abstained")
    if not answer.strip():
        return Verdict(None, correct=False, abstained=False, parse_failed=True,
                       method="no_answer")
    if judgment is None:
        raise ValueError("an open answer that does not abstain needs the judge's judgment")
    return Verdict(answer, correct=judgment.correct, abstained=False, parse_failed=False,
                   method=judgment.status)
