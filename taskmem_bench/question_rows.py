"""A question's result row: answered and scored, or failed with the reason and traceback.

The row records what the reader saw (a reference to the memory snapshot at the ask time: its
entry count and digest, and how many entries the memory view showed), its raw reply, the
scoring's verdict and the gold, which is read from the stream's ``Hidden`` here and nowhere
the policy or the reader can reach.
"""

from __future__ import annotations

import json

from taskmem_bench.memory import MemorySnapshot
from taskmem_bench.plan import RunPlan
from taskmem_bench.plugin_calls import failure_text
from taskmem_bench.readers import ReaderOutput
from taskmem_bench.results import QuestionRow
from taskmem_bench.schedule import LiveStream
from taskmem_bench.schema import Question
from taskmem_bench.scoring.base import VERDICT_BY, ScoredAnswer


def answered_row(
    plan: RunPlan, stream: LiveStream, question: Question, snapshot: MemorySnapshot,
    output: ReaderOutput | BaseException, scored: ScoredAnswer | BaseException | None, *,
    shown: int,
) -> QuestionRow:
    """The row of a question the reader was asked, from the memory ``snapshot`` at its ask
    time of which it was shown ``shown`` entries. A reader that failed on it gives
    ``reader_error``; a reply whose scoring raised gives ``scoring_error`` and keeps no output
    (a failed row has none)."""
    if isinstance(output, BaseException):
        failure = ("reader_error", failure_text(output))
        return _row(plan, stream, question, snapshot, shown=shown, failure=failure)
    if isinstance(scored, BaseException):
        failure = ("scoring_error", failure_text(scored))
        return _row(plan, stream, question, snapshot, shown=shown, failure=failure)
    return _row(plan, stream, question, snapshot, shown=shown, raw=output.raw, scored=scored)


def failed_row(
    plan: RunPlan, stream: LiveStream, question: Question, failure: tuple[str, str]
) -> QuestionRow:
    """The row of a question its failed stream never answered: no snapshot, no output."""
    return _row(plan, stream, question, None, shown=0, failure=failure)


def _row(
    plan: RunPlan,
    stream: LiveStream,
    question: Question,
    snapshot: MemorySnapshot | None,
    *,
    shown: int,
    raw: str | None = None,
    scored: ScoredAnswer | None = None,
    failure: tuple[str, str] | None = None,
) -> QuestionRow:
    hidden = stream.episode.hidden[question.id]
    verdict = scored.verdict if scored else None
    judgment = scored.judgment if scored else None
    return QuestionRow(
        task=plan.task.name,
        policy=plan.policy_name,
        reader=plan.reader_name,
        stream_id=stream.id,
        question_id=question.id,
        category=question.category,
        question=question.text,
        options=json.dumps(list(question.options)),
        answer_format=question.scoring.kind,
        ask_time=question.ask_time,
        evidence_delay=question.evidence_delay,
        memory_entries=len(snapshot.entries) if snapshot else 0,
        memory_shown=shown,
        memory_tokens=snapshot.n_tokens if snapshot else 0,
        memory_chars=snapshot.n_chars if snapshot else 0,
        memory_digest=snapshot.digest if snapshot else None,
        budget_dropped_tokens=stream.store.dropped_tokens,
        raw_output=raw,
        parsed=verdict.parsed if verdict else None,
        extraction=verdict.method if verdict else None,
        gold=hidden.gold,
        correct=verdict.correct if verdict else False,
        abstained=verdict.abstained if verdict else False,
        parse_failed=verdict.parse_failed if verdict else False,
        verdict_by=VERDICT_BY[question.scoring.kind],
        variants=scored.variants if scored else None,
        judge_output=judgment.raw if judgment else None,
        judge_score=judgment.score if judgment else None,
        failure=failure[0] if failure else None,
        error=failure[1] if failure else judgment.error if judgment else None,
        tags=json.dumps(dict(question.tags), sort_keys=True),
    )
