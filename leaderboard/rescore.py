"""Re-scoring a bundle's rows: each verdict must be what the task's scoring gives its raw output.

The rows go through the same :meth:`~taskmem_bench.scoring.base.Scoring.score` the runner used.
An open answer's LLM judgment is not asked of a model again: the scoring is handed a judge that
replays the row's recorded reply, parsed again (or its recorded judge error), so the verdict,
the judge score and the variants must follow from what the row itself records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from leaderboard.errors import Rejected
from taskmem_bench.schema import ANSWER_LABELS, ScoringSpec
from taskmem_bench.scoring.base import VERDICT_BY, Judge, Scoring, ScoringItem
from taskmem_bench.scoring.judge import JudgeItem, Judgment, judgment_of
from taskmem_bench.scoring.metrics import JUDGE_ERROR
from taskmem_bench.untrusted import show

VERDICT_FIELDS = ("parsed", "correct", "abstained", "parse_failed")


def check_verdicts(rows: pl.DataFrame, scoring: Scoring, abstain_texts: Mapping[str, str]) -> None:
    """Every row's verdict, judge score and variants are what re-scoring it gives, with its
    question's abstain text (``plan_check.abstain_texts``)."""
    for row in rows.iter_rows(named=True):
        rescore_row(row, scoring, abstain_texts[row["question_id"]])


def rescore_row(
    row: Mapping[str, Any], scoring: Scoring, abstain_text: str = ScoringSpec().abstain_text
) -> None:
    """One row re-scored (a bundle row's fields as a mapping) with its question's
    ``abstain_text``; raises ``Rejected`` naming the first field that disagrees."""
    qid = show(row["question_id"])
    options = _checked_options(row, qid)
    if row["verdict_by"] != VERDICT_BY[row["answer_format"]]:
        raise Rejected(f"question {qid}: verdict_by {show(row['verdict_by'])} is not "
                       f"{VERDICT_BY[row['answer_format']]}")
    if row["failure"] is not None:
        if row["raw_output"] is not None or row["correct"]:
            raise Rejected(f"question {qid} failed but has a reader output or counts as correct")
        return
    if row["raw_output"] is None:
        raise Rejected(f"question {qid} has neither a reader output nor a failure reason")
    recorded = _recorded_judgment(row) if row["answer_format"] == "open" else None
    item = ScoringItem(row["question"], tuple(options), row["gold"], row["raw_output"],
                       ScoringSpec(row["answer_format"], abstain_text))
    (scored,) = scoring.score([item], _replaying(recorded))
    if isinstance(scored, Exception):
        raise scored
    if row["answer_format"] == "open":
        if scored.judgment is not None and recorded is None:
            raise Rejected(f"question {qid}: an open answer with neither a judge reply nor a "
                           "judge error")
        score = recorded.score if recorded is not None else None
        if row["judge_score"] != score:
            raise Rejected(f"question {qid}: judge_score {show(row['judge_score'])} is not the "
                           f"score in its judge reply ({score})")
    for field in VERDICT_FIELDS:
        ours = getattr(scored.verdict, field)
        if row[field] != ours:
            raise Rejected(f"question {qid}: the row says {field} = {show(row[field])}, "
                           f"re-scoring its raw output gives {ours!r}")
    if row["variants"] != scored.variants:
        raise Rejected(f"question {qid}: the row's scoring variants {show(row['variants'])} are "
                       f"not what re-scoring its raw output gives ({scored.variants})")


def _recorded_judgment(row: Mapping[str, Any]) -> Judgment | None:
    """The judgment a row records: its judge reply parsed again (re-parsed, not re-judged: the
    judge model is not called), or the failed call; None when it records neither."""
    if row["judge_output"] is not None:
        return judgment_of(row["judge_output"])
    return Judgment(JUDGE_ERROR, None, None, None) if row["extraction"] == JUDGE_ERROR else None


def _replaying(recorded: Judgment | None) -> Judge:
    """A judge that gives the recorded judgment instead of asking a model; asked about a row that
    recorded none, it fails (and ``rescore_row`` rejects the row)."""

    def judge(items: Sequence[JudgeItem]) -> list[Judgment]:
        if recorded is None:
            raise LookupError("the row records no judge reply and no judge error")
        return [recorded] * len(items)

    return judge


def _checked_options(row: Mapping[str, Any], qid: str) -> list[str]:
    """The row's options, checked against its answer format and gold."""
    if row["answer_format"] == "open":
        if row["options"] != "[]":
            raise Rejected(f"question {qid}: an open question has options")
        return []
    if row["answer_format"] != "multiple_choice":
        raise Rejected(f"question {qid}: answer format {show(row['answer_format'])} cannot be "
                       "re-scored by this package version")
    options = _options(row["options"])
    if options is None:
        raise Rejected(f"question {qid}: options are not a JSON list of 2 to "
                       f"{len(ANSWER_LABELS) - 1} strings")
    if row["gold"] not in ANSWER_LABELS[: len(options)]:
        raise Rejected(f"question {qid}: gold {show(row['gold'])} is not an option label")
    return options


def _options(text: str | None) -> list[str] | None:
    try:
        options = json.loads(text) if text is not None else None
    except (ValueError, RecursionError):
        return None
    if (
        isinstance(options, list)
        and 2 <= len(options) < len(ANSWER_LABELS)
        and all(isinstance(o, str) for o in options)
    ):
        return options
    return None
