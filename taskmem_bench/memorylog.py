"""A stream's memory log, in the two forms a run keeps it, and the snapshots rows cite from it.

The runner writes each finished stream's log as JSONL (``memory/NNNNNN.jsonl``); a bundle
carries every stream's log as one Parquet table (``MEMORY_SCHEMA``). Both read into a
``MemoryLog``, and a row's snapshot (the first ``memory_entries`` entries) is rebuilt and
checked by ``MemoryLog.snapshot`` for the run directory, the leaderboard and the lm-eval bridge
alike. A table from a bundle is untrusted: reading it checks what the runner guarantees.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import polars as pl

from taskmem_bench.memory import MemoryEntry, MemorySnapshot, StoredEntry

MEMORY_SCHEMA: dict[str, Any] = {
    "stream_index": pl.Int64,
    "stream_id": pl.String,
    "position": pl.Int64,
    "written_at": pl.Float64,
    "clip_index": pl.Int64,
    "t_start": pl.Float64,
    "t_end": pl.Float64,
    "kind": pl.String,
    "text": pl.String,
    "meta": pl.String,
}
"""One row per stored memory entry. ``stream_id`` is null for a stream that had no questions;
``meta`` is the entry's metadata as JSON."""


class MemoryLogError(ValueError):
    """A memory log, or a row's snapshot of one, that the runner does not write. The untrusted
    stream or question id it is ``about`` stays out of ``problem`` (``{}`` marks its place), so
    each caller quotes it its own way (``reason``)."""

    def __init__(self, problem: str, about: object = None) -> None:
        self.problem, self.about = problem, about
        super().__init__(self.reason(repr))

    def reason(self, quote: Callable[[object], str]) -> str:
        return self.problem if self.about is None else self.problem.format(quote(self.about))


@dataclass(frozen=True)
class MemoryLog(Sequence[StoredEntry]):
    """The entries one stream's policy wrote, in order, each stamped with the end of its clip.
    ``stream_id`` is None for a stream without questions (no row names it)."""

    stream_id: str | None
    entries: tuple[StoredEntry, ...] = ()

    @overload
    def __getitem__(self, index: int) -> StoredEntry: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[StoredEntry, ...]: ...
    def __getitem__(self, index: int | slice) -> StoredEntry | tuple[StoredEntry, ...]:
        return self.entries[index]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[StoredEntry]:
        return iter(self.entries)

    @classmethod
    def from_jsonl(cls, text: str, stream_id: str | None) -> MemoryLog:
        return cls(stream_id, tuple(StoredEntry.from_json(json.loads(line)) for line in text.splitlines()))

    def to_jsonl(self) -> str:
        return "".join(json.dumps(s.to_json(), sort_keys=True) + "\n" for s in self.entries)

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> dict[str, MemoryLog]:
        """Every named stream's log in a memory table, by stream id; raises ``MemoryLogError``
        unless each is one stream's, complete, with finite times and consecutive positions."""
        required = frame.select("stream_index", "position", "written_at", "text")
        if required.null_count().sum_horizontal().item():
            raise MemoryLogError("null stream indices, positions, write times or texts")
        named = frame.filter(pl.col("stream_id").is_not_null())
        if (named.group_by("stream_id").agg(pl.col("stream_index").n_unique())["stream_index"].max() or 0) > 1:
            raise MemoryLogError("one stream id is given to several streams")
        logs: dict[str, list[StoredEntry]] = {}
        for r in named.sort("stream_index", "position").iter_rows(named=True):
            log = logs.setdefault(r["stream_id"], [])
            log.append(_stored(r))
            if r["position"] != len(log) - 1:
                raise MemoryLogError("stream {} is not one log with consecutive positions", r["stream_id"])
        return {stream_id: cls(stream_id, tuple(log)) for stream_id, log in logs.items()}

    def snapshot(self, k: int, t: float) -> MemorySnapshot:
        """The memory a reader was given at ``t`` by a row that states ``k`` entries: the first
        ``k``, which must be exactly those written by ``t`` (``MemoryStore.snapshot``)."""
        if not 0 <= k <= len(self.entries):
            raise MemoryLogError("its snapshot is not a prefix of the memory log")
        if any(s.written_at > t for s in self.entries[:k]) or (
            k < len(self.entries) and self.entries[k].written_at <= t
        ):
            raise MemoryLogError("its snapshot is not the memory written by its ask time")
        return MemorySnapshot(self.stream_id, t, tuple(s.entry for s in self.entries[:k]))


def _stored(r: Mapping[str, Any]) -> StoredEntry:
    """One row of a memory table as the entry the store kept, or ``MemoryLogError``."""
    try:
        meta = json.loads(r["meta"])
    except (TypeError, ValueError, RecursionError):
        meta = None
    times = (r["written_at"], r["t_start"], r["t_end"])
    if (
        not isinstance(meta, dict)
        or None in (*times, r["text"], r["kind"], r["clip_index"])
        or not all(map(math.isfinite, times))
    ):
        raise MemoryLogError(f"entry {r['position']} of stream {{}} is incomplete or has "
                             "non-finite times", r["stream_id"])
    entry = MemoryEntry(r["t_start"], r["t_end"], r["text"], r["kind"], meta)
    return StoredEntry(r["written_at"], r["clip_index"], entry)


def memory_frame(logs: Mapping[int, MemoryLog]) -> pl.DataFrame:
    """The memory table of the logs given by stream index (a bundle's ``memory.parquet``)."""
    records = [
        {
            "stream_index": index, "stream_id": log.stream_id, "position": position,
            "written_at": stored.written_at, "clip_index": stored.clip_index,
            "t_start": stored.entry.t_start, "t_end": stored.entry.t_end, "kind": stored.entry.kind,
            "text": stored.entry.text, "meta": json.dumps(dict(stored.entry.meta), sort_keys=True),
        }
        for index, log in sorted(logs.items())
        for position, stored in enumerate(log)
    ]
    return pl.DataFrame(records, schema=MEMORY_SCHEMA)


def row_snapshots(rows: pl.DataFrame, logs: Mapping[str, MemoryLog]) -> dict[str, MemorySnapshot]:
    """Each row's snapshot rebuilt from its stream's log, by question id, with the row's digest,
    token and character counts; a failed row without a snapshot gets none. Raises
    ``MemoryLogError`` about the first row that does not match."""
    snapshots: dict[str, MemorySnapshot] = {}
    for row in rows.iter_rows(named=True):
        qid = row["question_id"]
        if row["memory_digest"] is None:
            if row["failure"] is None or row["memory_entries"]:
                raise MemoryLogError("question {} has no memory snapshot digest", qid)
            continue
        log = logs.get(row["stream_id"], MemoryLog(row["stream_id"]))
        try:
            snapshot = log.snapshot(row["memory_entries"], row["ask_time"])
        except MemoryLogError as exc:
            raise MemoryLogError(f"question {{}}: {exc.problem}", qid) from None
        stated = (row["memory_digest"], row["memory_tokens"], row["memory_chars"])
        if stated != (snapshot.digest, snapshot.n_tokens, snapshot.n_chars):
            raise MemoryLogError("question {}: its memory digest or size does not match the "
                                 "memory log", qid)
        snapshots[qid] = snapshot
    return snapshots
