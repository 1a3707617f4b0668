"""The ``egotempo`` adapter: EgoTempo's open questions, one stream per clip, as released.

``egotempo_openQA.json`` = ``{"info": {...}, "annotations": [{question_id, clip_id,
question_type, question, answer}, ...]}``, all strings. ``clip_id`` is
``<ego4d_uid>_<start>_<end>`` with float seconds into the full Ego4D video; uids contain hyphens,
starts may be slightly negative (clamped to 0, reported). ``question_id`` is opaque.

Media, found by stem anywhere under ``root``: a pre-trimmed ``<clip_id>.mp4`` (preferred: only
the window is decoded) or the full ``<uid>.mp4`` (Ego4D's ``v2/video_540ss/<uid>.mp4``), whose
window is decoded by seeking (``MediaSegment.file_offset``). Each clip is a stream whose time 0
is the clip start; all its questions are asked at its end. Choices on odd input are recorded:
``SkippedItem`` kinds ``malformed_record``, ``duplicate_question_id``, ``missing_media``,
``corrupt_media``; ``Irregularity`` kinds ``negative_start``, ``duplicate_media``,
``window_past_media_end`` (the stream ends where the media does).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskmem_bench.datasets.base import DatasetAdapter, DatasetRelease, Irregularity, SkippedItem
from taskmem_bench.datasets.files import FileIndex, sha256_file
from taskmem_bench.datasets.jsonload import AnnotationError, load_json
from taskmem_bench.datasets.prepare import MediaIndex, release_root
from taskmem_bench.media import MediaError
from taskmem_bench.schema import Episode, Hidden, MediaSegment, Question, ScoringSpec, Stream

PARSER_VERSION = "1"
ANNOTATIONS = "egotempo_openQA.json"
ABSTAIN_TEXT = "Insufficient Information"
FIELDS = ("question_id", "clip_id", "question_type", "question", "answer")
# Media may end a little before a window's end (container rounding); past this it is reported.
_END_SLACK = 0.5


@dataclass(frozen=True)
class Config:
    root: str | None = None
    annotations: str = ANNOTATIONS
    """The annotation file's name (found at the root or anywhere under it) or path under it."""


@dataclass(frozen=True)
class ClipWindow:
    """A parsed ``clip_id``: the Ego4D video and the window in it (start clamped to 0)."""

    clip_id: str
    uid: str
    start: float
    end: float
    raw_start: float


def parse_clip_id(clip_id: str) -> ClipWindow:
    """``<uid>_<start>_<end>`` by a right split on the last two underscores; ``ValueError`` when
    that does not give a uid and two finite numbers with a non-empty window."""
    parts = clip_id.rsplit("_", 2)
    if len(parts) != 3 or not parts[0]:
        raise ValueError(f"clip_id {clip_id!r} is not <uid>_<start>_<end>")
    try:
        raw_start, end = float(parts[1]), float(parts[2])
    except ValueError:
        raise ValueError(f"clip_id {clip_id!r}: start/end are not numbers") from None
    if not (math.isfinite(raw_start) and math.isfinite(end)) or end <= max(raw_start, 0.0):
        raise ValueError(f"clip_id {clip_id!r}: empty or invalid window")
    return ClipWindow(clip_id, parts[0], max(raw_start, 0.0), end, raw_start)


class EgoTempoDataset(DatasetAdapter):
    """EgoTempo (open answers, LLM-judged) as one stream per clip."""

    name = "egotempo"
    Config = Config

    def revision(self, config: Config | None = None) -> str:
        """Parser version and the sha256 of the annotation file (media: see the prepared
        manifest)."""
        config = config if config is not None else Config()
        path = _annotation_file(release_root(config, self.name), config)
        return f"egotempo:parser{PARSER_VERSION}:{sha256_file(path)[:16]}"

    def load(self, config: Config | None = None) -> DatasetRelease:
        config = config if config is not None else Config()
        root = release_root(config, self.name)
        path = _annotation_file(root, config)
        data = load_json(path, "annotations")
        if not isinstance(data, Mapping) or not isinstance(data.get("annotations"), list):
            raise AnnotationError(f"{path}: expected {{\"info\": ..., \"annotations\": [...]}}")
        skipped: list[SkippedItem] = []
        irregular: list[Irregularity] = []
        clips = _group_by_clip(data["annotations"], path, skipped, irregular)
        files = FileIndex.scan(root, (".mp4",))
        index = MediaIndex.open(self.name, root)
        episodes, kinds = [], Counter()
        for window, records in clips.items():
            placed = _place(window, files, index, irregular)
            if isinstance(placed, _Unplaced):
                skipped += [SkippedItem(r["question_id"], placed.reason, placed.kind)
                            for r in records]
                continue
            kinds[placed.kind] += 1
            episodes.append(_episode(window, placed, records))
        index.save()
        questions = [q for e in episodes for q in e.stream.questions]
        return DatasetRelease(
            name=self.name,
            revision=self.revision(config),
            episodes=tuple(episodes),
            synthetic=False,
            files={files.relative(path): sha256_file(path)},
            skipped=tuple(skipped),
            irregular=tuple(irregular),
            details={
                "root": str(root),
                "info": data.get("info"),
                "clips": len(episodes),
                "questions": len(questions),
                "media": dict(sorted(kinds.items())),
                "video_hours": round(sum(e.stream.duration for e in episodes) / 3600, 4),
                "categories": dict(sorted(Counter(q.category for q in questions).items())),
                "media_index": index.stats(),
            },
        )


def _annotation_file(root: Path, config: Config) -> Path:
    direct = root / config.annotations
    if direct.is_file():
        return direct
    found = sorted(root.rglob(Path(config.annotations).name))
    if not found:
        raise AnnotationError(f"egotempo: no {config.annotations} under {root}")
    return found[0]


def _group_by_clip(
    records: list[Any], path: Path, skipped: list[SkippedItem], irregular: list[Irregularity]
) -> dict[ClipWindow, list[Mapping[str, str]]]:
    """Valid records by clip, clips in order of first appearance."""
    clips: dict[ClipWindow, list[Mapping[str, str]]] = {}
    seen: set[str] = set()
    for i, record in enumerate(records):
        item = f"{path.name}#{i}"
        if not isinstance(record, Mapping) or not all(isinstance(record.get(f), str)
                                                      for f in FIELDS):
            missing = [f for f in FIELDS if not isinstance(record, Mapping)
                       or not isinstance(record.get(f), str)]
            skipped.append(SkippedItem(item, f"{path.name} record {i}: "
                                       f"{', '.join(missing)} missing or not a string",
                                       "malformed_record"))
            continue
        qid = record["question_id"]
        if qid in seen:
            skipped.append(SkippedItem(item, f"{path.name} record {i}: question_id {qid} "
                                       "appears twice; the first is used",
                                       "duplicate_question_id"))
            continue
        try:
            window = parse_clip_id(record["clip_id"])
        except ValueError as exc:
            skipped.append(SkippedItem(qid, f"{path.name} record {i}: {exc}", "malformed_record"))
            continue
        seen.add(qid)
        if window not in clips and window.raw_start < 0:
            irregular.append(Irregularity(window.clip_id, "negative_start",
                                          f"start {window.raw_start} clamped to 0"))
        clips.setdefault(window, []).append(record)
    return clips


@dataclass(frozen=True)
class _Placed:
    segment: MediaSegment
    kind: str
    """``pre_trimmed`` or ``full_video``."""
    fps: float | None


@dataclass(frozen=True)
class _Unplaced:
    reason: str
    kind: str
    """The ``SkippedItem`` kind of the clip's questions."""


def _place(window: ClipWindow, files: FileIndex, index: MediaIndex,
           irregular: list[Irregularity]) -> _Placed | _Unplaced:
    """The clip's media segment (a readable pre-trimmed file first, else the full video), or
    why there is none."""
    failure = None
    for stem, kind in ((window.clip_id, "pre_trimmed"), (window.uid, "full_video")):
        paths = files.get(stem)
        if not paths:
            continue
        if len(paths) > 1:
            irregular.append(Irregularity(window.clip_id, "duplicate_media",
                                          f"{len(paths)} files named {stem}: "
                                          f"{files.relative(paths[0])} is used"))
        try:
            info = index.probe(paths[0])
        except MediaError as exc:
            failure = failure or _Unplaced(str(exc), "corrupt_media")
            continue
        offset = 0.0 if kind == "pre_trimmed" else window.start
        media_end = info.duration or 0.0
        available = media_end - offset
        wanted = window.end - window.start
        if available <= 0:
            return _Unplaced(f"{files.relative(paths[0])} ends at {media_end:.3f} s, "
                             "before the window starts", "missing_media")
        if available < wanted - _END_SLACK:
            irregular.append(Irregularity(
                window.clip_id, "window_past_media_end",
                f"{files.relative(paths[0])} has {available:.3f} s of the {wanted:.3f} s "
                "window; the stream ends with the media"))
        segment = MediaSegment(paths[0], t_start=0.0, duration=min(wanted, available),
                               file_offset=offset)
        return _Placed(segment, kind, info.fps)
    return failure or _Unplaced(
        f"neither {window.clip_id}.mp4 nor {window.uid}.mp4 under the root", "missing_media")


def _episode(window: ClipWindow, placed: _Placed, records: list[Mapping[str, str]]) -> Episode:
    duration = placed.segment.duration
    assert duration is not None
    questions = tuple(
        Question(
            id=r["question_id"],
            stream_id=window.clip_id,
            ask_time=duration,
            text=r["question"],
            options=(),
            category=r["question_type"],
            tags={"question_type": r["question_type"], "video_uid": window.uid},
            scoring=ScoringSpec(kind="open", abstain_text=ABSTAIN_TEXT),
        )
        for r in records
    )
    hidden = {r["question_id"]: Hidden(r["question_id"], gold=r["answer"], raw=dict(r))
              for r in records}
    stream = Stream(id=window.clip_id, segments=(placed.segment,), questions=questions,
                    fps=placed.fps, duration=duration)
    return Episode(stream=stream, hidden=hidden)

