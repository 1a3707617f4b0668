"""A run's rows against the dataset's plan: the right questions, streams, golds and hours.

Re-scoring proves that the numbers follow from the rows; it cannot prove that the rows are the
benchmark's. When the dataset adapter can list its questions cheaply
(``DatasetAdapter.planned_streams``), the rows must be exactly the questions of the first
``--limit`` streams (or all), field for field: no dropped or invented questions, no moved gold,
no question given a stream of its own (which would narrow the clustered intervals), no faked
limit. The plan's stream durations also fix the video hours that memory per hour divides by.
A real release's plan is its shipped question manifest (``question_plan``): the same checks,
with question text and options compared by their sha256, and ask times, evidence delays and
durations within ``MEDIA_TOLERANCE`` per stream, since a real release's ask times and durations
come from probing its media (EgoTempo asks at the end of the media it has, Video-MME at the
probed length), which another decoder may measure a little differently. Without a plan only the
counts are checked, and the hours are bounded below by the last ask time of each stream. A
run's ``--limit`` is normalised to the streams it covers (``Coverage``).
The plan also gives each question's abstain text, which re-scoring needs (``abstain_texts``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from leaderboard.bundle import Bundle
from leaderboard.errors import Rejected
from leaderboard.question_plan import DIGESTED, ManifestPlan, hashed
from taskmem_bench.datasets import load_adapter
from taskmem_bench.datasets.base import PlannedStream
from taskmem_bench.manifest import Manifest
from taskmem_bench.schema import ScoringSpec
from taskmem_bench.taskconfig import TaskConfig, validate
from taskmem_bench.untrusted import show

PLANNED_FIELDS = {
    "stream_id": pl.String, "question_id": pl.String, "question": pl.String,
    "options": pl.String, "answer_format": pl.String, "gold": pl.String,
    "ask_time": pl.Float64, "evidence_delay": pl.Float64, "category": pl.String,
    "tags": pl.String,
}
"""Row fields the dataset decides, in the text form the runner writes them."""
HOURS_ROUNDING = 5e-5
"""The runner rounds video hours to 4 decimals."""
MEDIA_TOLERANCE = 0.5
"""Seconds a real release's ask time, evidence delay or stream duration may differ by from its
question manifest's, per stream: the slack the EgoTempo adapter itself allows a window's media
(``datasets.egotempo._END_SLACK``)."""
TIMED = ("ask_time", "evidence_delay")
"""Row fields a real release derives from its media, compared within ``MEDIA_TOLERANCE``."""


@dataclass(frozen=True)
class Coverage:
    """How much of its benchmark a run covers. The leaderboard uses this, not the run's
    ``--limit``, so a full run is one entry whether it was run with ``--limit 12``, ``--limit
    1000`` or none."""

    streams: int
    """The streams the run covers."""
    of: int | None
    """The streams the benchmark has; None when the dataset cannot list them."""
    excluded: int = 0
    """Questions of those streams the run skipped for missing media (real releases)."""
    excluded_digest: str | None = None
    """A digest of the skipped questions' ids (None without any): runs that skipped different
    questions are different entries with different blind controls."""

    @property
    def full(self) -> bool:
        return self.streams == self.of and not self.excluded

    @property
    def limit(self) -> int | None:
        """The normalised limit: None for a full run, else the number of streams covered."""
        return None if self.full else self.streams

    @property
    def key(self) -> str:
        """What runs must share to be one entry or to share a blind control: the normalised
        limit and the questions skipped."""
        return json.dumps([self.limit, self.excluded_digest])


def dataset_split(m: Manifest, shipped: TaskConfig,
                  real: ManifestPlan | None = None) -> list[PlannedStream] | None:
    """Every stream of the run's dataset split (the shipped task's dataset, under the config
    the manifest states: nothing the bundle names is imported; a real release's, ``real``, from
    its question manifest, less the run's missing media), or None when the adapter cannot list
    them."""
    if real is not None:
        return real.streams
    adapter = load_adapter(shipped.dataset)()
    return adapter.planned_streams(validate(adapter.Config, m.dataset.config, "dataset"))


def within_limit(split: Sequence[PlannedStream] | None, limit: int | None) -> list[PlannedStream] | None:
    """The streams the run should have covered: the first ``limit`` of the split."""
    return None if split is None else list(split[:limit])


def coverage(m: Manifest, streams: int, split: Sequence[PlannedStream] | None,
             real: ManifestPlan | None) -> Coverage:
    """What the run's ``streams`` (checked by ``check_streams``) cover of the split; without a
    split, a run that stopped short of its limit ran out of streams, so it covers them all. A
    real release's streams are its question manifest's, and the questions skipped for missing
    media are counted within the streams covered."""
    if real is not None:
        skipped = sorted(real.excluded_within(streams))
        digest = hashlib.sha256(json.dumps(skipped).encode()).hexdigest()[:16] if skipped else None
        return Coverage(streams, real.of, len(skipped), digest)
    if split is not None:
        return Coverage(streams, len(split))
    return Coverage(streams, streams if m.limit is None or streams < m.limit else None)


def check_streams(bundle: Bundle, m: Manifest, plan: Sequence[PlannedStream] | None,
                  real: ManifestPlan | None) -> int:
    """The summary's stream counts agree with the limit, the plan, the rows and the memory log;
    with a plan, the rows are its questions (a real release's, ``real``, by digest). Returns
    the number of streams run."""
    streams = bundle.summary.get("streams")
    counts = {k: streams.get(k) if isinstance(streams, Mapping) else None
              for k in ("total", "finished", "failed")}
    if not all(type(v) is int for v in counts.values()):
        raise Rejected("summary.json streams must give whole numbers total, finished and failed")
    total = counts["total"]
    if counts["finished"] != total or not 0 <= counts["failed"] <= total:
        raise Rejected(f"summary.json streams {show(counts)} is not a finished run")
    if m.limit is not None and total > m.limit:
        raise Rejected(f"summary.json counts {total} streams, over the run's limit of {m.limit}")
    if plan is not None and total != len(plan):
        raise Rejected(f"summary.json counts {total} streams; the dataset has {len(plan)} "
                       f"{'within the limit' if m.limit else 'in this split'}")
    if bundle.rows["stream_id"].n_unique() > total:
        raise Rejected(f"rows.parquet has questions of more than the {total} streams run")
    indices = bundle.memory["stream_index"]
    if len(indices) and not (0 <= indices.min() and indices.max() < total):
        raise Rejected(f"memory.parquet has stream indices outside 0 to {total - 1}")
    if plan is not None:
        _check_memory_streams(bundle.memory, plan)
        if real is None:
            _check_rows(bundle.rows.select(list(PLANNED_FIELDS)), planned_rows(plan))
        else:
            _check_rows(hashed(bundle.rows.select(list(PLANNED_FIELDS))),
                        planned_rows(plan, real.options), digested=True)
    return total


def _check_memory_streams(memory: pl.DataFrame, plan: Sequence[PlannedStream]) -> None:
    ids = pl.DataFrame({"stream_index": range(len(plan)), "planned": [s.stream_id for s in plan]},
                       schema={"stream_index": pl.Int64, "planned": pl.String})
    wrong = (memory.filter(pl.col("stream_id").is_not_null())
             .join(ids, on="stream_index", how="left")
             .filter(pl.col("stream_id") != pl.col("planned")))
    if not wrong.is_empty():
        raise Rejected(f"memory.parquet: stream {wrong['stream_index'][0]} is "
                       f"{show(wrong['planned'][0])} in the dataset, not "
                       f"{show(wrong['stream_id'][0])}")


def planned_rows(
    plan: Sequence[PlannedStream], options: Mapping[str, str] | None = None
) -> pl.DataFrame:
    """The plan's questions as row fields; ``options`` replaces each question's options cell
    (a question manifest's plan gives them as digests, its texts being digests already)."""
    return pl.DataFrame(
        [
            {
                "stream_id": q.stream_id, "question_id": q.question_id, "question": q.text,
                "options": (json.dumps(list(q.options)) if options is None
                            else options[q.question_id]),
                "answer_format": q.answer_format,
                "gold": q.gold, "ask_time": q.ask_time, "evidence_delay": q.evidence_delay,
                "category": q.category, "tags": json.dumps(dict(q.tags), sort_keys=True),
            }
            for stream in plan for q in stream.questions
        ],
        schema=PLANNED_FIELDS,
    )


def _check_rows(theirs: pl.DataFrame, ours: pl.DataFrame, digested: bool = False) -> None:
    """Names the first question missing, invented or differing, and the field that differs;
    ``digested`` (a real release): ``question_plan.DIGESTED`` fields hold sha256 digests on
    both sides, and ``TIMED`` fields may differ by ``MEDIA_TOLERANCE``."""
    missing = ours.join(theirs, on="question_id", how="anti")
    if not missing.is_empty():
        raise Rejected(f"rows.parquet lacks question {show(missing['question_id'][0])} of the "
                       f"dataset ({len(missing)} of {len(ours)} missing)")
    invented = theirs.join(ours, on="question_id", how="anti")
    if not invented.is_empty():
        raise Rejected(f"question {show(invented['question_id'][0])} is not a question of the "
                       "dataset's streams")
    paired = ours.join(theirs, on="question_id", suffix=" stated").sort("question_id")
    for field in PLANNED_FIELDS:
        if field == "question_id":
            continue
        differs = paired.filter(_differs(field, MEDIA_TOLERANCE if digested else 0.0))
        if not differs.is_empty():
            row = differs.row(0, named=True)
            if digested and field in DIGESTED:
                what = "question text does" if field == "question" else "options do"
                raise Rejected(f"question {show(row['question_id'])}: the row's {what} not "
                               f"hash to the question manifest's (sha256 "
                               f"{str(row[f'{field} stated'])[:12]}..., manifest "
                               f"{row[field][:12]}...)")
            within = f" (within {MEDIA_TOLERANCE} s)" if digested and field in TIMED else ""
            raise Rejected(f"question {show(row['question_id'])}: the row's {field} "
                           f"{show(row[f'{field} stated'])} is not the dataset's "
                           f"{show(row[field])}{within}")


def _differs(field: str, tolerance: float) -> pl.Expr:
    ours, theirs = pl.col(field), pl.col(f"{field} stated")
    if field in TIMED and tolerance:
        return ours.is_null().ne(theirs.is_null()) | ((ours - theirs).abs() > tolerance)
    return ours.ne_missing(theirs)


def abstain_texts(rows: pl.DataFrame, plan: Sequence[PlannedStream] | None) -> dict[str, str]:
    """Each row's question's ``abstain_text`` by question id, which re-scoring needs and rows
    do not record: the dataset's, from its plan (``check_streams`` made the rows its
    questions); without a plan, ``ScoringSpec``'s default."""
    planned = {q.question_id: q.abstain_text for stream in plan or () for q in stream.questions}
    default = ScoringSpec().abstain_text
    return {qid: planned.get(qid, default) for qid in rows["question_id"]}


def video_hours(bundle: Bundle, plan: Sequence[PlannedStream] | None,
                per_stream: float = 0.0) -> float:
    """The video hours memory per hour divides by: the plan's stream durations where known (the
    summary's figure must be theirs within the runner's rounding and ``per_stream`` seconds a
    stream), else the summary's figure if it is at least the rows' last ask times (a stream
    lasts at least until its last question)."""
    stated = stated_hours(bundle.summary)
    last_asks = bundle.rows.group_by("stream_id").agg(pl.col("ask_time").max())["ask_time"]
    durations = {s.stream_id: s.duration for s in plan or ()}
    if plan is not None and all(d is not None for d in durations.values()):
        hours = sum(durations.values()) / 3600
        if abs(stated - hours) > HOURS_ROUNDING + len(durations) * per_stream / 3600 + 1e-9:
            short = ("; a run whose media lacked part of a stream (an EgoLife clip, say) is "
                     "not a run on the whole release" if stated < hours else "")
            raise Rejected(f"summary.json states memory.video_hours = {show(stated)}; the "
                           f"dataset's streams last {round(hours, 4)} hours{short}")
        return hours
    floor = float(last_asks.sum()) / 3600
    if stated < floor - HOURS_ROUNDING:
        raise Rejected(f"summary.json states memory.video_hours = {show(stated)}, less than the "
                       f"{round(floor, 4)} hours up to the streams' last questions")
    return stated


def stated_hours(summary: Mapping[str, Any]) -> float:
    """The summary's ``memory.video_hours``; rejected unless a number of hours."""
    memory = summary.get("memory")
    hours = memory.get("video_hours") if isinstance(memory, Mapping) else None
    if not isinstance(hours, (int, float)) or isinstance(hours, bool) or hours < 0:
        raise Rejected("summary.json memory.video_hours is not a number of hours")
    return float(hours)
