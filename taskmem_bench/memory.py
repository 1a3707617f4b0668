"""Memory: what policies write, how it is stored, cut at a time, rendered and measured.

The store is append-only and stamps each entry with the end of the clip it was written from.
Because clips arrive in time order, the snapshot at time ``t`` is always a prefix of the log,
so a per-question row can reference its snapshot by (entry count, digest).
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from taskmem_bench.schema import MemoryBudget

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Tokenizer-free token count: words and punctuation marks.

    Model tokenizers differ; a fixed count keeps memory sizes comparable across policies.
    English prose gives roughly 1.1-1.3 of these per word.
    """
    return len(_TOKEN.findall(text))


def truncate_tokens(text: str, limit: int) -> str:
    """The longest prefix of ``text`` with at most ``limit`` tokens."""
    if limit <= 0:
        return ""
    matches = list(_TOKEN.finditer(text))
    if len(matches) <= limit:
        return text
    return text[: matches[limit - 1].end()]


@dataclass(frozen=True)
class MemoryEntry:
    """One memory item written by a policy about the time span ``[t_start, t_end]``."""

    t_start: float
    t_end: float
    text: str
    kind: str = "description"
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"meta": dict(self.meta)}


@dataclass(frozen=True)
class StoredEntry:
    """An entry as the store keeps it: stamped with the end of the clip that produced it."""

    written_at: float
    clip_index: int
    entry: MemoryEntry

    def to_json(self) -> dict[str, Any]:
        return {"written_at": self.written_at, "clip_index": self.clip_index, **self.entry.to_json()}

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> StoredEntry:
        entry = MemoryEntry(
            t_start=record["t_start"],
            t_end=record["t_end"],
            text=record["text"],
            kind=record.get("kind", "description"),
            meta=record.get("meta", {}),
        )
        return cls(written_at=record["written_at"], clip_index=record["clip_index"], entry=entry)


DAY_SECONDS = 86400


def render_time(seconds: float, *, with_day: bool | None = None) -> str:
    """``HH:MM:SS`` on the stream timeline; past 24 h (or with ``with_day``) ``DAY<d> HH:MM:SS``
    with day 1 starting at 0 s, as EgoLife names its days, rather than hours running past 24."""
    day, rest = divmod(int(seconds), DAY_SECONDS)
    clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"DAY{day + 1} {clock}" if (day > 0 if with_day is None else with_day) else clock


@dataclass(frozen=True)
class MemorySnapshot:
    """The memory of one stream as it stood at time ``t``."""

    stream_id: str
    t: float
    entries: tuple[MemoryEntry, ...]

    def render(self) -> str:
        """The paper's rendering: ``HH:MM:SS-HH:MM:SS`` then the text, one block per entry
        (every time with its day once the snapshot is past the first day)."""
        return "\n\n".join(
            f"{self.render_time(e.t_start)}-{self.render_time(e.t_end)}\n{e.text}"
            for e in sorted(self.entries, key=lambda e: (e.t_start, e.t_end))
        )

    def render_time(self, seconds: float) -> str:
        """A time as this snapshot shows it: with the day on all times of a stream that has run
        past its first day, so that day-1 and day-2 entries read alike."""
        return render_time(seconds, with_day=self.t >= DAY_SECONDS)

    @property
    def n_chars(self) -> int:
        return sum(len(e.text) for e in self.entries)

    @property
    def n_tokens(self) -> int:
        return sum(count_tokens(e.text) for e in self.entries)

    @property
    def digest(self) -> str:
        payload = json.dumps([e.to_json() for e in self.entries], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class WriteReport:
    """What the budget did to one clip's writes."""

    written_tokens: int = 0
    dropped_tokens: int = 0

    @property
    def exceeded(self) -> bool:
        return self.dropped_tokens > 0


def _frozen_copy(entry: object) -> MemoryEntry:
    """A validated copy of a policy's entry, so the log can never change after it was used:
    finite ordered times, text and kind as exact strings, ``meta`` as plain JSON (numpy scalars
    become numbers). Anything else is the policy's error, raised here, naming the field, so it
    costs only its stream; nothing is converted to fit (``None`` is never stored as "None")."""
    if not isinstance(entry, MemoryEntry):
        raise TypeError(f"policies must write MemoryEntry objects, got {type(entry).__name__}")
    t_start, t_end = _time(entry, "t_start"), _time(entry, "t_end")
    if not (math.isfinite(t_start) and math.isfinite(t_end)) or t_end < t_start:
        raise ValueError(f"memory entry times must be finite with t_start <= t_end: {t_start}, {t_end}")
    text, kind = _string(entry, "text"), _string(entry, "kind")
    if not isinstance(entry.meta, Mapping):
        raise TypeError(f"memory entry meta must be a mapping, got {_type(entry.meta)}")
    try:
        meta = json.loads(json.dumps(dict(entry.meta), default=_json_scalar, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"memory entry meta must be JSON-serialisable: {exc}") from None
    return MemoryEntry(t_start, t_end, text, kind, meta)


def _string(entry: MemoryEntry, name: str) -> str:
    """A text field as an exact ``str``: a plugin's ``str`` subclass is copied (``str.__str__``
    runs none of its methods), so none of its code runs later, in the harness."""
    value = getattr(entry, name)
    if not isinstance(value, str):
        raise TypeError(f"memory entry {name} must be a str, got {_type(value)}")
    return str.__str__(value)


def _time(entry: MemoryEntry, name: str) -> float:
    """A time given as a real number (int, float, numpy number; not bool, not a string)."""
    value = getattr(entry, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"memory entry {name} must be a real number, got {_type(value)}")
    return float(value)


def _type(value: object) -> str:
    return type(value).__name__


def _json_scalar(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


class MemoryStore:
    """Append-only memory of one stream, with the task's budget enforced on every write."""

    def __init__(self, stream_id: str, budget: MemoryBudget = MemoryBudget()) -> None:
        self.stream_id = stream_id
        self.budget = budget
        self._log: list[StoredEntry] = []
        self._last_written_at = float("-inf")
        self.dropped_tokens = 0

    @property
    def log(self) -> tuple[StoredEntry, ...]:
        return tuple(self._log)

    def write(self, clip_index: int, clip_end: float, entries: Sequence[MemoryEntry]) -> WriteReport:
        """Append the entries written from the clip that ended at ``clip_end``: all of them or,
        when one is malformed, none (the ``TypeError``/``ValueError`` names it).

        Entries beyond the budget are truncated (the one crossing the cap) or dropped (the rest);
        the dropped token count is reported so rows can flag it.
        """
        if clip_end < self._last_written_at:
            raise ValueError(
                f"stream {self.stream_id}: clip ending at {clip_end} written after one ending at "
                f"{self._last_written_at}; memory is append-only in time order"
            )
        if not isinstance(entries, list | tuple):
            raise TypeError(
                f"observe() must return one list of MemoryEntry per clip, got {_type(entries)}"
            )
        copies = [_frozen_copy(e) for e in entries]  # all checked before any is kept
        self._last_written_at = clip_end
        allowance = self._allowance(clip_end)
        report = WriteReport()
        for entry in copies:
            tokens = count_tokens(entry.text)
            room = allowance - report.written_tokens
            if tokens > room:
                report.dropped_tokens += tokens - max(room, 0)
                if room <= 0:
                    continue
                entry = MemoryEntry(
                    entry.t_start, entry.t_end, truncate_tokens(entry.text, room), entry.kind,
                    {**entry.meta, "truncated": True},
                )
                tokens = room
            report.written_tokens += tokens
            self._log.append(StoredEntry(clip_end, clip_index, entry))
        self.dropped_tokens += report.dropped_tokens
        return report

    def _allowance(self, clip_end: float) -> float:
        allowance = float("inf")
        if self.budget.tokens_per_clip is not None:
            allowance = self.budget.tokens_per_clip
        if self.budget.tokens_per_minute is not None:
            recent = sum(
                count_tokens(s.entry.text) for s in self._log if s.written_at > clip_end - 60.0
            )
            allowance = min(allowance, max(self.budget.tokens_per_minute - recent, 0))
        return allowance

    def snapshot(self, t: float) -> MemorySnapshot:
        """Entries written from clips that ended at or before ``t``."""
        return MemorySnapshot(
            self.stream_id, t, tuple(s.entry for s in self._log if s.written_at <= t)
        )
