"""From a reader's raw reply to a per-question verdict."""

from __future__ import annotations

from dataclasses import dataclass

from taskmem_bench.schema import Hidden, Question
from taskmem_bench.scoring.extract import extract_choice


@dataclass(frozen=True)
class Verdict:
    parsed: str | None
    correct: bool
    abstained: bool
    parse_failed: bool
    method: str
    """How the answer was found (e.g. ``answer_line``), or why none was (e.g. ``no_choice``)."""


def judge_choice(question: Question, hidden: Hidden, raw: str) -> Verdict:
    """Multiple choice: the robust final-answer parser, then comparison with the gold label."""
    if question.scoring.kind != "multiple_choice":
        raise NotImplementedError(
            f"question {question.id}: '{question.scoring.kind}' answers need a judge; "
            "only multiple choice is scored so far"
        )
    labels = question.labels + question.abstain_label
    extraction = extract_choice(raw, question.options, labels=labels)
    label = extraction.label
    return Verdict(
        parsed=label,
        correct=label is not None and label == hidden.gold,
        abstained=label == question.abstain_label,
        parse_failed=label is None,
        method=extraction.method if label is not None else str(extraction.failure),
    )
