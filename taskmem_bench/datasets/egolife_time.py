"""EgoLife time stamps: ``DAY<d>`` + ``HHMMSSFF`` on a week-long timeline, and ``target_time``.

EgoLife names a moment by a recording day and a wall-clock ``HHMMSSFF`` of that day, ``FF``
being a frame index within the second. The harness places every participant's week on one
timeline, ``t = (day - 1) * 86400 + HH * 3600 + MM * 60 + SS + FF / fps``, with ``fps`` probed
from the participant's clips (EgoRAG's ``time_to_frame_idx`` also counts ``FF`` in frames of the
video's own rate). Nights and other recording gaps stay gaps on that timeline.

``target_time`` (the annotated evidence) comes in several shapes; :func:`parse_target_time`
reads all of them and reports what it could not use rather than guessing:

* a point: ``{"date": "DAY1", "time": "11153417"}``;
* a range packed into ``time``: ``"11153417DAY1_11181201"`` (start on ``date``, ``DAY1``
  switching the day of what follows);
* several stamps packed into ``time``, ``DAYx`` tokens switching the day for what follows;
* a dict without ``time`` (only the day is known: the span is that day, from 00:00 to its last
  frame, or up to the query when it is the query's day);
* a missing or empty ``date``: the query's day;
* a list of any of these (read element by element).

Exactly two stamps in order make one range; any other count makes one point span per stamp
(where a string packs more than two stamps, nothing says which pairs are ranges). Either way the
latest evidence end, which the evidence delay is measured from, is the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskmem_bench.schema import Span

DAY_SECONDS = 86400.0

_STAMP = re.compile(r"\d{8}")
_DAY = re.compile(r"DAY(\d+)", re.IGNORECASE)
_MAX_DAY_DIGITS = 4  # a week has 7 days; a longer number is a typo, not a day to convert
# What a packed ``time`` string is made of: day tokens, digit runs, and separators between them.
_TOKEN = re.compile(
    r"(?P<day>DAY\d+)|(?P<digits>\d+)|(?P<sep>[\s_,;:/~\-]+)|(?P<other>[A-Za-z]+|.)",
    re.IGNORECASE,
)


class TimeFormatError(ValueError):
    """A day or ``HHMMSSFF`` value that is malformed or out of range."""


@dataclass(frozen=True)
class Stamp:
    """A wall-clock moment of a recording day; ``ff`` is a frame index within the second."""

    day: int
    hh: int
    mm: int
    ss: int
    ff: int

    def seconds(self, fps: float) -> float:
        """Seconds on the participant's week timeline."""
        clock = self.hh * 3600 + self.mm * 60 + self.ss + self.ff / fps
        return (self.day - 1) * DAY_SECONDS + clock


def parse_day(text: Any) -> int:
    """``"DAY3"`` (any case) -> 3."""
    match = _DAY.fullmatch(str(text).strip()) if isinstance(text, str) else None
    if match is None or len(match[1]) > _MAX_DAY_DIGITS or int(match[1]) < 1:
        raise TimeFormatError(f"not a recording day: {text!r} (expected DAY1, DAY2, ...)")
    return int(match[1])


def parse_stamp(day: int, text: Any) -> Stamp:
    """``HHMMSSFF`` on ``day``; hours < 24, minutes and seconds < 60."""
    if not isinstance(text, str) or not _STAMP.fullmatch(text.strip()):
        raise TimeFormatError(f"not an HHMMSSFF time: {text!r}")
    digits = text.strip()
    hh, mm, ss, ff = (int(digits[i : i + 2]) for i in range(0, 8, 2))
    if hh >= 24 or mm >= 60 or ss >= 60:
        raise TimeFormatError(f"time out of range: {digits} (HH < 24, MM < 60, SS < 60)")
    return Stamp(day, hh, mm, ss, ff)


def parse_moment(record: Any) -> Stamp:
    """A ``{"date": "DAYd", "time": "HHMMSSFF"}`` record (``query_time``)."""
    if not isinstance(record, Mapping):
        raise TimeFormatError(f"expected {{date, time}}, got {record!r}")
    return parse_stamp(parse_day(record.get("date")), record.get("time"))


@dataclass(frozen=True)
class Evidence:
    """Evidence spans read from one ``target_time`` and how they were read.

    ``form``: ``none``, ``point``, ``range``, ``multi``, ``date_only`` or ``list`` (several
    records). ``notes`` are Irregularity kinds with details: ``target_time_invalid`` (a part
    that was dropped), ``target_time_date_only``, ``target_time_date_missing``.
    """

    spans: tuple[Span, ...]
    form: str
    notes: tuple[tuple[str, str], ...] = ()


def parse_target_time(value: Any, query: Stamp, fps: float) -> Evidence:
    """Evidence spans on the week timeline for a ``target_time`` of a question asked at
    ``query``. Unusable parts are dropped and named in ``notes``; nothing raises."""
    if value is None or value == "" or value == {} or value == []:
        return Evidence((), "none")
    if isinstance(value, list):
        parts = [parse_target_time(v, query, fps) for v in value]
        spans = tuple(s for p in parts for s in p.spans)
        return Evidence(spans, "list", tuple(n for p in parts for n in p.notes))
    if isinstance(value, str):
        value = {"time": value}
    if not isinstance(value, Mapping):
        return Evidence((), "none", (("target_time_invalid", f"unreadable target_time {value!r}"),))

    notes: list[tuple[str, str]] = []
    date = value.get("date")
    if date in (None, ""):
        day = query.day
        notes.append(("target_time_date_missing", f"no date; the query's day DAY{day} is used"))
    else:
        try:
            day = parse_day(date)
        except TimeFormatError as exc:
            return Evidence((), "none", (("target_time_invalid", str(exc)),))
    time = value.get("time")
    if time in (None, ""):
        start = (day - 1) * DAY_SECONDS
        end = start + DAY_SECONDS - 1 / fps  # the day's last frame: still that calendar day
        if day == query.day:
            end = min(end, query.seconds(fps))
        notes.append(("target_time_date_only", f"only the day DAY{day} is known"))
        return Evidence((Span(start, max(start, end)),), "date_only", tuple(notes))
    stamps, problems = _packed_stamps(str(time), day)
    notes += [("target_time_invalid", p) for p in problems]
    times = [s.seconds(fps) for s in stamps]
    if len(times) == 2 and times[0] <= times[1]:
        return Evidence((Span(times[0], times[1]),), "range", tuple(notes))
    form = "point" if len(times) == 1 else "multi" if times else "none"
    return Evidence(tuple(Span(t, t) for t in times), form, tuple(notes))


def _packed_stamps(text: str, day: int) -> tuple[list[Stamp], list[str]]:
    """The ``HHMMSSFF`` stamps of a ``time`` string, each on the day of the last ``DAYx`` token
    before it (``day`` before any), and the problems met (bad stamps, stray text)."""
    stamps: list[Stamp] = []
    problems: list[str] = []
    for token in _TOKEN.finditer(text):
        if token["day"]:
            try:
                day = parse_day(token["day"])
            except TimeFormatError as exc:  # what follows has no known day: not read
                problems.append(f"{exc} in target_time {text!r}; the rest is not read")
                break
        elif token["digits"]:
            try:
                stamps.append(parse_stamp(day, token["digits"]))
            except TimeFormatError as exc:
                problems.append(f"{exc} in target_time {text!r}")
        elif token["other"]:
            problems.append(f"unexpected {token['other']!r} in target_time {text!r}")
    return stamps, problems
