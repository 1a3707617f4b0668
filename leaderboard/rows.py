"""The rows belong to the run and are complete: one vectorised pass before any per-row work.

Later checks index rows by question and read their fields without guarding each one, so a
row of another task, policy or reader, a missing field, a question listed twice or a
non-finite time is refused here. Ranked runs give the reader the whole memory snapshot, so a
row whose reader was given only part of it is refused too.
"""

from __future__ import annotations

import polars as pl

from leaderboard.errors import Rejected
from taskmem_bench.manifest import Manifest

REQUIRED_ROW_FIELDS = (
    "stream_id", "question_id", "category", "question", "options", "answer_format", "ask_time", "memory_entries",
    "memory_shown", "memory_tokens", "memory_chars", "gold", "correct", "abstained", "parse_failed",
    "verdict_by", "tags",
)
"""Row fields every row has, answered or failed (the rest may be null, e.g. on failed rows)."""


def check_rows(rows: pl.DataFrame, m: Manifest) -> None:
    """Every row belongs to this run and has the fields scoring needs, with sane values."""
    if rows.is_empty():
        raise Rejected("rows.parquet has no rows")
    for column, value in (("task", m.task.name), ("policy", m.policy.name), ("reader", m.reader.name)):
        if not rows[column].eq_missing(value).all():
            raise Rejected(f"rows.parquet has rows whose {column} is not the manifest's")
    nulls = rows.select(REQUIRED_ROW_FIELDS).null_count().row(0, named=True)
    empty = [column for column, count in nulls.items() if count]
    if empty:
        raise Rejected(f"rows.parquet has nulls in {', '.join(empty)}")
    if rows["question_id"].is_duplicated().any():
        raise Rejected("rows.parquet lists a question twice")
    if not rows["ask_time"].is_finite().all():
        raise Rejected("rows.parquet has non-finite ask times")
    delay = rows["evidence_delay"].drop_nulls()
    # A real release may annotate evidence after the question (EgoLife's evidence_after_query):
    # its delays are the question manifest's, which plan_check holds them to.
    if not (delay.is_finite().all() and (not m.dataset.synthetic or (delay >= 0).all())):
        raise Rejected("rows.parquet has evidence delays that are negative or not finite")
    if (rows["memory_shown"] != rows["memory_entries"]).any():
        raise Rejected("rows.parquet has questions whose reader was shown only part of the "
                       "memory snapshot; ranked runs show all of it")
