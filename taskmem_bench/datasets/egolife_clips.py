"""A participant's EgoLife clips on the week timeline: which clip files there are (names checked
against their folders) and where each one starts and ends once probed."""

from __future__ import annotations

import bisect
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from taskmem_bench.datasets.egolife_time import Stamp, TimeFormatError, parse_stamp
from taskmem_bench.datasets.files import relative_key
from taskmem_bench.datasets.item_log import ItemLog
from taskmem_bench.datasets.prepare import MediaIndex
from taskmem_bench.media import MediaError
from taskmem_bench.schema import MediaSegment

_CLIP = re.compile(r"DAY(\d+)_(.+)_(\d{8})", re.IGNORECASE)
_DAY_DIR = re.compile(r"DAY\d+", re.IGNORECASE)
EPS = 1e-6
"""Seconds within which two times on the timeline count as the same."""


@dataclass(frozen=True)
class ClipFile:
    """A clip file and the start its name gives."""

    path: Path
    stamp: Stamp


def discover_clips(root: Path, log: ItemLog) -> dict[str, list[ClipFile]]:
    """Clips by participant under ``root`` and ``root/train``; names checked against their
    folders."""
    clips: dict[str, list[ClipFile]] = {}
    seen: dict[tuple[str, str], Path] = {}
    for base in (root, root / "train"):
        for day_dir in sorted(p for p in base.glob("*/DAY*") if p.is_dir()):
            if not _DAY_DIR.fullmatch(day_dir.name):
                continue
            participant = day_dir.parent.name
            for path in sorted(day_dir.iterdir()):
                if path.suffix.lower() != ".mp4" or path.name.startswith("."):
                    continue
                rel = relative_key(root, path)
                match = _CLIP.fullmatch(path.stem)
                if (match is None or match[2] != participant
                        or f"DAY{int(match[1])}" != day_dir.name.upper()):
                    log.note(rel, "clip_name_mismatch",
                             f"not DAY<d>_{participant}_<HHMMSSFF>.mp4 of folder {day_dir.name}; "
                             "not used")
                    continue
                try:
                    stamp = parse_stamp(int(match[1]), match[3])
                except TimeFormatError as exc:
                    log.note(rel, "clip_name_mismatch", f"{exc}; not used")
                    continue
                key = (participant, path.name)
                if key in seen:
                    log.note(rel, "duplicate_clip",
                             f"also at {relative_key(root, seen[key])}; that one is used")
                    continue
                seen[key] = path
                clips.setdefault(participant, []).append(ClipFile(path, stamp))
    return clips


@dataclass(frozen=True)
class PlacedClips:
    """A participant's readable clips on the week timeline, and the rate for query times."""

    segments: tuple[MediaSegment, ...]
    fps: float | None

    def where(self, t: float) -> str:
        """``inside`` a clip, in a ``gap`` (or before the first), or ``past`` the last."""
        starts = [s.t_start for s in self.segments]
        i = bisect.bisect_right(starts, t + EPS) - 1
        if i >= 0 and t <= self.segments[i].t_end + EPS:
            return "inside"
        return "past" if t > max(s.t_end for s in self.segments) else "gap"


def place_clips(clips: list[ClipFile], index: MediaIndex, root: Path,
                log: ItemLog) -> PlacedClips:
    """The clips that probe with a frame rate and duration, each at its name's start; the rest
    are skipped as ``corrupt_media``."""
    segments, rates = [], Counter()
    for clip in clips:
        try:
            info = index.probe(clip.path)
        except MediaError as exc:
            log.skip(relative_key(root, clip.path), str(exc), "corrupt_media")
            continue
        fps = info.fps or 0.0
        if not fps or info.duration is None:
            log.skip(relative_key(root, clip.path), "frame rate or duration unknown",
                     "corrupt_media")
            continue
        rates[fps] += 1
        segments.append(MediaSegment(clip.path, t_start=clip.stamp.seconds(fps),
                                     duration=info.duration))
    segments.sort(key=lambda s: (s.t_start, str(s.path)))
    return PlacedClips(tuple(segments), rates.most_common(1)[0][0] if rates else None)
