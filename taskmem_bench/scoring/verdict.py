"""From a reader's raw reply to a per-question verdict.

Takes plain values (reply, options, gold) rather than dataset records so that the leaderboard
can re-score a submitted bundle's rows with exactly the function the runner used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taskmem_bench.schema import ANSWER_LABELS
from taskmem_bench.scoring.extract import extract_choice


@dataclass(frozen=True)
class Verdict:
    parsed: str | None
    correct: bool
    abstained: bool
    parse_failed: bool
    method: str
    """How the answer was found (e.g. ``answer_line``), or why none was (e.g. ``no_choice``)."""


def judge_choice(raw: str, options: Sequence[str], gold: str) -> Verdict:
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
