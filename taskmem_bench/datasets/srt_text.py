"""SRT subtitle files as side-channel ``TextEvent``s, shared by the dataset adapters.

Released subtitles carry markup that is not speech: Video-MME wraps every cue in
``<font color=...>`` tags, other tools add ``<i>``/``<b>`` or ASS overrides like ``{\\an8}``.
:func:`read_srt` strips that markup, keeps the cue times (shifted by ``offset``, e.g. the start
of the hour an EgoLife transcript covers) and lets the caller choose what text a cue yields
(``pick``: EgoLife keeps the English line of its Chinese + English cues).

API (stable; adapters import it):

* ``read_srt(path, channel, offset=0.0, pick=None) -> list[TextEvent]``
* ``strip_markup(text) -> str``
* ``SrtError`` (a ``ValueError`` naming the file and the cue)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import srt

from taskmem_bench.schema import TextEvent

# An HTML-like tag (<font color="#fff">, </i>) or an ASS override block ({\an8}). A bare "<"
# in speech ("a < b") is kept: a tag must start with a letter or "/" right after "<".
_MARKUP = re.compile(r"</?[A-Za-z][^<>]*>|\{\\[^{}]*\}")
_SPACE = re.compile(r"[ \t\u00a0]+")

Pick = Callable[[list[str]], str | None]
"""Turns a cue's lines (markup stripped, blank lines dropped) into its text; None drops it."""


class SrtError(ValueError):
    """An SRT file that cannot be read or parsed; the message names the file."""


def strip_markup(text: str) -> str:
    """``text`` without tags and ASS overrides, runs of spaces collapsed, each line trimmed."""
    lines = (_SPACE.sub(" ", _MARKUP.sub("", line)).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _join_lines(lines: list[str]) -> str | None:
    return " ".join(lines) or None


def read_srt(path: Path | str, channel: str, offset: float = 0.0,
             pick: Pick | None = None) -> list[TextEvent]:
    """The cues of ``path`` as ``TextEvent``s on ``channel``, in file order, times + ``offset``.

    Each cue's text is markup-stripped and split into non-empty lines; ``pick`` (default: join
    the lines with spaces) makes the event text, and cues left empty are dropped. The file is
    read as UTF-8 (a byte-order mark is allowed); undecodable bytes become U+FFFD rather than
    failing a whole release over one character.
    """
    path = Path(path)
    try:
        content = path.read_bytes().decode("utf-8-sig", errors="replace")
    except OSError as exc:
        raise SrtError(f"{path}: cannot read subtitles: {exc}") from exc
    choose = pick or _join_lines
    events: list[TextEvent] = []
    try:
        for cue in srt.parse(content):
            lines = strip_markup(cue.content).splitlines()
            text = choose(lines) if lines else None
            if not text:
                continue
            start = cue.start.total_seconds() + offset
            end = max(start, cue.end.total_seconds() + offset)
            events.append(TextEvent(channel, start, end, text))
    except (srt.SRTParseError, srt.TimestampParseError) as exc:
        raise SrtError(f"{path}: malformed SRT after cue {len(events)}: {exc}") from exc
    return events
