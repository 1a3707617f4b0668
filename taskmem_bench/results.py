"""Result tables and the run directory: per-question rows, memory logs, summary, manifest.

A run directory holds one (task, policy) run::

    manifest.json      the run record (manifest.Manifest); written first
    parts/NNNNNN.parquet         rows of a finished stream (``.failed.parquet``: a failed one)
    memory/NNNNNN.jsonl          the stream's memory log (the snapshot a row used is a prefix)
    rows.parquet       all rows, merged from the parts when the run ends
    summary.json       scores, breakdowns, failures, memory size and timing
    adaptations.jsonl  each ``end_wave`` of a policy that learns across streams (``Adaptation``)
    adaptations/wave-NNNN/       what that wave's ``end_wave`` wrote (e.g. an adapter)

Every file is written to a temporary name and renamed into place, so a killed run leaves only
whole files (and temporaries, which the next run or resume removes); a resumed run keeps
finished streams' parts and recomputes the rest.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from taskmem_bench.manifest import Manifest, ManifestError, hashed_plan
from taskmem_bench.memory import StoredEntry
from taskmem_bench.memorylog import MemoryLog
from taskmem_bench.scoring.metrics import failure_reason, score_by, score_rows
from taskmem_bench.scoring.base import scoring_summary

ROW_SCHEMA: dict[str, Any] = {
    "task": pl.String,
    "policy": pl.String,
    "reader": pl.String,
    "stream_id": pl.String,
    "question_id": pl.String,
    "category": pl.String,
    "question": pl.String,
    "options": pl.String,
    "answer_format": pl.String,
    "ask_time": pl.Float64,
    "evidence_delay": pl.Float64,
    "memory_entries": pl.Int64,
    "memory_shown": pl.Int64,
    "memory_tokens": pl.Int64,
    "memory_chars": pl.Int64,
    "memory_digest": pl.String,
    "budget_dropped_tokens": pl.Int64,
    "raw_output": pl.String,
    "parsed": pl.String,
    "extraction": pl.String,
    "gold": pl.String,
    "correct": pl.Boolean,
    "abstained": pl.Boolean,
    "parse_failed": pl.Boolean,
    "verdict_by": pl.String,
    "variants": pl.String,
    "judge_output": pl.String,
    "judge_score": pl.Int64,
    "failure": pl.String,
    "error": pl.String,
    "tags": pl.String,
}


@dataclass(frozen=True)
class QuestionRow:
    """One answered (or failed) question. ``memory_entries``/``memory_digest`` reference the
    snapshot the reader saw: the first ``memory_entries`` entries of the stream's memory log."""

    task: str
    policy: str
    reader: str
    stream_id: str
    question_id: str
    category: str
    question: str
    options: str
    """JSON list of the option texts, labelled A, B, ... by position."""
    answer_format: str
    ask_time: float
    evidence_delay: float | None
    memory_entries: int
    memory_shown: int
    """Entries the reader was shown: all ``memory_entries``, except under an oracle-localised
    memory view (``egolife_paper``), which shows the entries near the query and evidence."""
    memory_tokens: int
    memory_chars: int
    memory_digest: str | None
    budget_dropped_tokens: int
    raw_output: str | None
    parsed: str | None
    extraction: str | None
    gold: str
    correct: bool
    abstained: bool
    parse_failed: bool
    verdict_by: str
    """What decided ``correct``/``abstained``: ``robust`` (the final-answer parser) or
    ``llm_judge`` (open answers; ``judge_output`` and ``judge_score`` hold its reply)."""
    variants: str | None
    """JSON: the question's value under each of the task's scoring variants
    (scoring/variants.py), e.g. ``{"videomme_official": "B"}``."""
    judge_output: str | None
    judge_score: int | None
    failure: str | None
    error: str | None
    tags: str


def rows_frame(rows: Iterable[QuestionRow]) -> pl.DataFrame:
    return pl.DataFrame([asdict(r) for r in rows], schema=ROW_SCHEMA)


def write_atomic(path: Path, write: Any) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place, so a
    reader (or a killed run) never sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: Any) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2, sort_keys=True)))


def write_parquet(path: Path, frame: pl.DataFrame) -> None:
    write_atomic(path, lambda tmp: frame.write_parquet(tmp))


@dataclass(frozen=True)
class FailureCause:
    """One distinct cause of failure in a run: the failure reason (``policy_error``,
    ``reader_error``, ``judge_error``, ...), the last line of its error, the streams it hit and
    the questions it cost (0 for a stream that failed after its last question)."""

    reason: str
    error: str
    streams: tuple[str, ...]
    questions: int


@dataclass(frozen=True)
class Adaptation:
    """One ``Policy.end_wave`` call of a policy that learns across streams: after which wave and
    streams it ran, what the policy had seen by then, when and for how long it ran, and what
    the policy reported (``record``) or why it failed (``error``, one line; ``traceback``)."""

    wave: int
    stream_ids: tuple[str, ...]
    streams_seen: int
    questions_seen: int
    """Task notices the policy was given, over all streams so far."""
    started_at: str
    """UTC, ISO 8601."""
    wall_s: float
    record: dict[str, Any] | None
    error: str | None = None
    traceback: str | None = None
    timed_out: bool = False
    """The call ran past its deadline and was abandoned (or could not start because an
    abandoned policy call still runs): the policy may change whenever that call ends, so the
    runner fails every later stream rather than run them against a moving policy."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, line: str) -> Adaptation:
        data = json.loads(line)
        return cls(**{**data, "stream_ids": tuple(data["stream_ids"])})


class RunDirError(RuntimeError):
    """A run directory that cannot be used: one that may not be overwritten or resumed, or
    whose files are damaged."""


class RunDir:
    """The files of one (task, policy) run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.manifest_path = self.path / "manifest.json"
        self.rows_path = self.path / "rows.parquet"
        self.summary_path = self.path / "summary.json"
        self.parts = self.path / "parts"
        self.memory = self.path / "memory"
        self.adaptations_path = self.path / "adaptations.jsonl"

    def open(self, manifest: Manifest, *, resume: bool) -> dict[int, bool]:
        """Start or resume the run; returns finished stream indices mapped to "failed".

        A resumed run must have been started with the same plan (``plan_hash``); a run
        directory is never silently reused.
        """
        if not self.manifest_path.exists():
            self._remove_temporaries()
            write_json(self.manifest_path, manifest.to_json())
            return self.finished_streams()
        if not resume:
            raise RunDirError(
                f"{self.path} already holds a run; pass --resume to continue it, "
                "or choose another --out"
            )
        previous = self.manifest()
        if previous.plan_hash != manifest.plan_hash:
            raise RunDirError(
                f"cannot resume {self.path}: it was started with a different plan "
                f"({_plan_difference(previous, manifest)}); choose another --out"
            )
        self._remove_temporaries()
        write_json(self.manifest_path, previous.resumed_by(manifest).to_json())
        return self.finished_streams()

    def manifest(self) -> Manifest:
        """The run's manifest as written; a damaged one is a ``RunDirError``."""
        try:
            return Manifest.parse(json.loads(self.manifest_path.read_text()))
        except (ManifestError, json.JSONDecodeError) as exc:
            raise RunDirError(f"{self.manifest_path} cannot be read: {exc}") from None

    def _remove_temporaries(self) -> None:
        """Delete the ``.NAME.*.tmp`` files (``write_atomic``'s) a killed process left here;
        called only once this process owns the directory (one process writes a run at a time)."""
        for folder in (self.path, self.parts, self.memory):
            for path in folder.glob(".*.tmp") if folder.is_dir() else ():
                if path.is_file() and not path.is_symlink():
                    path.unlink()

    def record_backends(self, backends: dict[str, dict[str, Any]]) -> None:
        """Add what each loaded backend reports, known only once the run has started, to the
        manifest; the plan hash is unaffected."""
        write_json(self.manifest_path, self.manifest().updated(backends=backends).to_json())

    def finished_streams(self) -> dict[int, bool]:
        finished: dict[int, bool] = {}
        for part in self.parts.glob("*.parquet") if self.parts.exists() else ():
            index, _, kind = part.name.partition(".")
            finished[int(index)] = kind == "failed.parquet"
        return finished

    def write_stream(
        self,
        index: int,
        stream_id: str,
        rows: Sequence[QuestionRow],
        log: Sequence[StoredEntry],
        failure: tuple[str, str] | None,
    ) -> None:
        """Persist one finished stream: memory log, the failure if any, then its rows (the
        commit point)."""
        lines = MemoryLog(stream_id, tuple(log)).to_jsonl()
        write_atomic(self.memory / f"{index:06d}.jsonl", lambda tmp: tmp.write_text(lines))
        for stale in self.parts.glob(f"{index:06d}.*") if self.parts.exists() else ():
            stale.unlink()
        if failure is not None:
            reason, error = failure
            record = {"stream_id": stream_id, "reason": reason, "error": error}
            write_json(self.parts / f"{index:06d}.failure.json", record)
        suffix = "failed.parquet" if failure is not None else "parquet"
        write_parquet(self.parts / f"{index:06d}.{suffix}", rows_frame(rows))

    def append_adaptation(self, adaptation: Adaptation) -> None:
        """Add one ``end_wave`` call to ``adaptations.jsonl`` (the file rewritten atomically:
        a killed run never leaves half a line)."""
        lines = self.adaptations_path.read_text() if self.adaptations_path.exists() else ""
        lines += adaptation.to_json() + "\n"
        write_atomic(self.adaptations_path, lambda tmp: tmp.write_text(lines))

    def adaptation_folder(self, wave: int) -> Path:
        """The folder ``end_wave`` of wave ``wave`` may write into (``adaptations/wave-NNNN``)."""
        return self.path / "adaptations" / f"wave-{wave:04d}"

    def adaptations(self) -> list[Adaptation]:
        """The run's ``end_wave`` calls in the order they ran; none for other policies."""
        if not self.adaptations_path.exists():
            return []
        lines = self.adaptations_path.read_text().splitlines()
        return [Adaptation.from_json(line) for line in lines]

    def has_failed_questions(self, index: int) -> bool:
        """A finished stream with questions that failed (a reader, scoring or judge error, e.g.
        a server that was down): a resumed run runs it again, so fixing the cause and resuming
        recovers them."""
        part = self.parts / f"{index:06d}.parquet"
        if not part.exists():
            return False
        rows = pl.read_parquet(part, columns=["failure", "extraction"])
        return bool(rows.select(failure_reason().is_not_null().any()).item())

    def stream_failures(self) -> list[dict[str, str]]:
        """Why each failed stream failed (the last line of its traceback; the full one is in
        ``parts/NNNNNN.failure.json``)."""
        found = []
        for path in sorted(self.parts.glob("*.failure.json")) if self.parts.exists() else ():
            record = json.loads(path.read_text())
            found.append({"stream_id": record["stream_id"], "reason": record["reason"],
                          "error": _last_line(record["error"])})
        return found

    def failure_causes(self) -> list[FailureCause]:
        """What failed in this run, one entry per distinct cause (reason and the last line of
        its error) with the streams and questions it cost, most streams first: a server that is
        down for 16 streams is one cause, not 16 lines."""
        rows = (
            pl.read_parquet(self.rows_path, columns=["stream_id", "failure", "extraction", "error"])
            if self.rows_path.exists() else rows_frame([])
        )
        failed = rows.select("stream_id", failure_reason().alias("reason"), "error")
        causes: dict[tuple[str, str], tuple[set[str], int]] = {}
        for stream_id, reason, error in failed.drop_nulls("reason").iter_rows():
            key = (reason, _last_line(error or ""))
            streams, questions = causes.get(key, (set(), 0))
            causes[key] = (streams | {stream_id}, questions + 1)
        for record in self.stream_failures():
            key = (record["reason"], record["error"])
            streams, questions = causes.get(key, (set(), 0))
            causes[key] = (streams | {record["stream_id"]}, questions)
        found = [FailureCause(reason, error, tuple(sorted(streams)), questions)
                 for (reason, error), (streams, questions) in causes.items()]
        return sorted(found, key=lambda c: (-len(c.streams), -c.questions, c.reason, c.error))

    def merged_rows(self) -> pl.DataFrame:
        parts = sorted(self.parts.glob("*.parquet")) if self.parts.exists() else []
        if not parts:
            return rows_frame([])
        return pl.concat([pl.read_parquet(p) for p in parts], how="vertical")

    def memory_log(self, index: int) -> MemoryLog:
        """A stream's memory log, named by the stream id its rows carry (none without rows)."""
        text = (self.memory / f"{index:06d}.jsonl").read_text()
        return MemoryLog.from_jsonl(text, self._stream_id(index))

    def memory_logs(self) -> dict[int, MemoryLog]:
        """Every finished stream's memory log, by stream index."""
        return {index: self.memory_log(index) for index in sorted(self.finished_streams())}

    def _stream_id(self, index: int) -> str | None:
        part = next(self.parts.glob(f"{index:06d}.*parquet"), None) if self.parts.exists() else None
        if part is None:
            return None
        ids = pl.read_parquet(part, columns=["stream_id"])["stream_id"].unique().to_list()
        return ids[0] if len(ids) == 1 else None


def _last_line(error: str) -> str:
    """The line of a traceback that says what went wrong: its last."""
    return (error.strip().splitlines()[-1:] or [""])[0]


def _plan_difference(old: Manifest, new: Manifest) -> str:
    before, after = hashed_plan(old.to_json()), hashed_plan(new.to_json())
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return "differs in " + ", ".join(changed) if changed else "differs"


def summarize(rows: pl.DataFrame, extra: Mapping[str, Any], scoring: str = "paper") -> dict[str, Any]:
    """Scores over all rows and per category, the task's ``scoring`` variants, failure counts,
    and ``extra`` (identity, timing)."""
    overall = score_rows(rows)
    failures = (
        rows.select(failure_reason().alias("failure"))
        .drop_nulls()
        .group_by("failure")
        .len()
        .sort("failure")
    )
    return {
        **extra,
        **overall.to_dict(),
        "by_category": {k: v.to_dict() for k, v in sorted(score_by(rows, "category").items())},
        "scoring": scoring_summary(scoring, rows),
        "failures": dict(zip(failures["failure"].to_list(), failures["len"].to_list())),
    }


def find_summaries(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every run under ``root`` (itself included) that has finished and written a summary."""
    root = Path(root)
    found = sorted(root.rglob("summary.json")) if root.is_dir() else []
    summaries = []
    for path in found:
        try:
            summaries.append((path.parent, json.loads(path.read_text())))
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path} is not valid JSON ({exc}); the run did not finish writing it") from None
    return summaries
