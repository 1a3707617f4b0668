"""EgoLife's side channels: the hourly transcript and dense-caption SRT files of a participant,
their cues placed on the week timeline by the hour each file's name gives, English lines kept."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from taskmem_bench.datasets.egolife_time import TimeFormatError, parse_stamp
from taskmem_bench.datasets.files import relative_key, sha256_file
from taskmem_bench.datasets.item_log import ItemLog
from taskmem_bench.datasets.srt_text import SrtError, read_srt
from taskmem_bench.schema import TextEvent

CHANNELS = {"transcript": "Transcript", "captions": "DenseCaption"}
"""Side channel name -> its folder under ``EgoLifeCap``."""
_SIDE = re.compile(r"(?:(?P<who>.+)_)?DAY(?P<day>\d+)_(?P<time>\d{8})", re.IGNORECASE)
# CJK ideographs, CJK and full-width punctuation: a line with any is not the English line.
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


@dataclass
class SideFiles:
    """What was read per channel: each file's sha256 (by release-relative name), the number of
    files, and the cues that had no English line."""

    hashes: dict[str, str] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    without_english: dict[str, int] = field(default_factory=dict)


class _EnglishLines:
    """A cue's English lines (those without CJK characters), joined; a cue with none keeps its
    released text and is counted."""

    def __init__(self) -> None:
        self.without_english = 0

    def __call__(self, lines: list[str]) -> str | None:
        english = [line for line in lines if not _CJK.search(line)]
        if english:
            return " ".join(english)
        self.without_english += 1
        return " ".join(lines)


def side_channels(cap: Path | None, participant: str, fps: float | None,
                  wanted: Collection[str], root: Path,
                  log: ItemLog) -> tuple[tuple[TextEvent, ...], SideFiles]:
    """The cues of one participant's ``wanted`` channels (names in ``CHANNELS``) under the
    ``EgoLifeCap`` folder ``cap``, on the week timeline."""
    side, events = SideFiles(), []
    for channel, folder in CHANNELS.items():
        if channel not in wanted:
            continue
        pick, count = _EnglishLines(), 0
        paths = sorted(cap.glob(f"{folder}/{participant}/DAY*/*.srt")) if cap else []
        for path in paths:
            rel = relative_key(root, path)
            offset = _hour_offset(path, participant, fps)
            if offset is None:
                log.note(rel, "side_file_name", f"not [{participant}_]DAY<d>_<HHMMSSFF>.srt "
                                                f"in {path.parent.name}; not read")
                continue
            try:
                events += read_srt(path, channel, offset=offset, pick=pick)
            except SrtError as exc:
                log.skip(rel, str(exc), "malformed_side_file")
                continue
            side.hashes[rel] = sha256_file(path)
            count += 1
        side.files[channel] = count
        side.without_english[channel] = pick.without_english
    events.sort(key=lambda e: (e.t_start, e.t_end, e.channel))
    return tuple(events), side


def _hour_offset(path: Path, participant: str, fps: float | None) -> float | None:
    """Where a side file's cue times start: its name's day and time, or None if unreadable."""
    match = _SIDE.fullmatch(path.stem)
    if match is None or (match["who"] and match["who"] != participant) or fps is None:
        return None
    day = int(match["day"])
    if f"DAY{day}" != path.parent.name.upper():
        return None
    try:
        return parse_stamp(day, match["time"]).seconds(fps)
    except TimeFormatError:
        return None
