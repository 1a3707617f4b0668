"""Video-MME as causal streams: one stream per video, its questions asked when the video ends.

Reads the release as published (``lmms-lab/Video-MME``): the parquet
``videomme/test-00000-of-00001.parquet`` (one row per question, read and checked by
:mod:`~taskmem_bench.datasets.videomme_annotations`), videos ``<videoID>.mp4``
(a few ``.MP4``/``.mkv``) and subtitles ``<videoID>.srt`` found by stem anywhere under the root
(unpacking tools differ: ``data/`` + ``subtitle/`` or flat). The choices, and where they show:

* ``duration`` is a bucket label (short/medium/long), not seconds: it becomes a tag; stream
  length and ask time are the probed media duration. A probed length far outside its bucket
  (a wrong or partial download) is an ``Irregularity(kind="duration_outside_bucket")``.
* Options come prefixed ("A. Apples."): the prefix is removed and labels are positions, A..D.
  A prefix whose letter is not its position, or a missing prefix, is an irregularity
  (``option_label_mismatch``, ``option_unlabelled``); the option is kept where it stands.
* A gold answer that labels no option excludes the question (``invalid_answer``); duplicate
  question ids, missing columns, columns of the wrong type or an unreadable parquet stop the
  load naming the file (an ``AnnotationError``: one line, exit 2).
* Missing media excludes each of the video's questions (``missing_media``); unreadable or
  corrupt media likewise (``corrupt_media``). Missing subtitles are counted in
  ``details["subtitles"]``; unparseable ones are an irregularity (``malformed_subtitles``).
  ``<font>`` and other tags are stripped (``srt_text``).
* Several files for one video id (``x.mp4`` and ``x.mkv``): ``.mp4`` first, then path order;
  recorded as ``duplicate_media`` / ``duplicate_subtitles``.
* ``revision``: parser version, the edition (column set + row count: earlier uploads had 2,541 or
  2,544 rows and a ``language`` column, one also a ``Subtitle`` column), the row count and the
  parquet's sha256 (``details["edition"]`` says whether the edition is a known one).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskmem_bench.datasets.base import (
    DatasetAdapter, DatasetRelease, Irregularity, SkippedItem,
)
from taskmem_bench.datasets.files import MEDIA_SUFFIXES, FileIndex, sha256_file
from taskmem_bench.datasets.prepare import MediaIndex, MediaInfo, release_root
from taskmem_bench.datasets.srt_text import SrtError, read_srt
from taskmem_bench.datasets.videomme_annotations import (
    Annotations, VideoMMEError, check_row, read_annotations,
)
from taskmem_bench.media import MediaError
from taskmem_bench.schema import (
    ANSWER_LABELS, Episode, Hidden, MediaSegment, Question, Stream, TextEvent,
)

PARSER_VERSION = "videomme-v1"
SUBTITLES = "subtitles"
DURATIONS = ("short", "medium", "long")
# Generous bounds around the published buckets (short < 2 min, medium 4-15 min, long 30-60 min):
# only a length no bucket boundary explains is reported.
BUCKET_SECONDS = {"short": (0.0, 180.0), "medium": (180.0, 1200.0), "long": (1200.0, 4500.0)}
_PREFIX = re.compile(r"^\s*\(?([A-Za-z])\s*[.)．:：]\)?(?:\s+|$)")


@dataclass(frozen=True)
class Config:
    """Where the release is and which part of it to stream."""

    root: str | None = None
    """The release folder: media and subtitles are found anywhere under it."""
    annotations: str | None = None
    """The parquet (default: ``<root>/videomme/test-00000-of-00001.parquet``, else the one
    ``test-*-of-*.parquet`` under the root)."""
    source: str = "local"
    """``local`` (the parquet) or ``hf`` (``datasets.load_dataset``; needs the package and a
    cached or online copy)."""
    durations: tuple[str, ...] = ()
    """Only videos of these buckets (empty: all)."""

    def __post_init__(self) -> None:
        if self.source not in ("local", "hf"):
            raise ValueError(f"videomme source must be local or hf, not {self.source!r}")
        unknown = sorted(set(self.durations) - set(DURATIONS))
        if unknown:
            raise ValueError(f"unknown videomme durations {unknown}; choose from {DURATIONS}")



class VideoMME(DatasetAdapter):
    """Video-MME (Fu et al., 2024): 900 videos, 2,700 four-option questions."""

    name = "videomme"
    Config = Config

    def revision(self, config: Config | None = None) -> str:
        config = config or Config()
        return _revision(_annotations(config, release_root(config, self.name)), config)

    def load(self, config: Config | None = None) -> DatasetRelease:
        config = config or Config()
        root = release_root(config, self.name)
        return _Loader(config, root, _annotations(config, root)).release()


def _annotations(config: Config, root: Path) -> Annotations:
    return read_annotations(root, config.source, config.annotations)


def _revision(annotations: Annotations, config: Config) -> str:
    subset = f":durations={'+'.join(config.durations)}" if config.durations else ""
    return (f"{PARSER_VERSION}:{annotations.edition}:rows={annotations.frame.height}"
            f":sha256={annotations.sha256[:16]}{subset}")


@dataclass
class _Video:
    """One video's rows, in parquet order."""

    video_id: str
    rows: list[tuple[int, dict[str, Any]]]


class _Loader:
    """Builds the release; collects what it excluded and what it had to interpret."""

    def __init__(self, config: Config, root: Path, annotations: Annotations) -> None:
        self.config, self.root, self.annotations = config, root, annotations
        self.skipped: list[SkippedItem] = []
        self.irregular: list[Irregularity] = []
        self.files = FileIndex.scan(root, (*MEDIA_SUFFIXES, ".srt"))
        self.media = MediaIndex.open(VideoMME.name, root)
        self.hashes: dict[str, str] = {annotations.name: annotations.sha256}
        self.without_subtitles: list[str] = []

    def release(self) -> DatasetRelease:
        videos = self._videos()
        episodes = [e for v in videos if (e := self._episode(v)) is not None]
        self.media.save()
        questions = [q for e in episodes for q in e.stream.questions]
        return DatasetRelease(
            name=VideoMME.name,
            revision=_revision(self.annotations, self.config),
            episodes=tuple(episodes),
            synthetic=False,
            files=dict(sorted(self.hashes.items())),
            skipped=tuple(self.skipped),
            irregular=tuple(self.irregular),
            details={
                "root": str(self.root),
                "annotations": self.annotations.name,
                "edition": {"columns": self.annotations.edition,
                            "rows": self.annotations.frame.height,
                            "known": self.annotations.known},
                "durations": list(self.config.durations) or list(DURATIONS),
                "videos": len(episodes),
                "questions": len(questions),
                "by_duration": _counts(q.tags["duration"] for q in questions),
                "by_task_type": _counts(q.category for q in questions),
                "subtitles": {
                    "with": len(episodes) - len(self.without_subtitles),
                    "without": len(self.without_subtitles),
                    "videos_without": self.without_subtitles,
                },
                "media_index": self.media.stats(),
            },
        )

    def _videos(self) -> list[_Video]:
        """Rows grouped by video in first-appearance order; ids and fields validated."""
        name = self.annotations.name
        frame = self.annotations.frame
        ids = frame["question_id"].to_list()
        twice = sorted(k for k, n in Counter(ids).items() if n > 1 and k is not None)
        if twice:
            raise VideoMMEError(f"{name}: duplicate question_id(s) {', '.join(map(str, twice))}")
        videos: dict[str, _Video] = {}
        for index, row in enumerate(frame.iter_rows(named=True)):
            check_row(name, index, row)
            if self.config.durations and row["duration"] not in self.config.durations:
                continue
            videos.setdefault(row["video_id"], _Video(row["video_id"], [])).rows.append(
                (index, row))
        return list(videos.values())

    def _episode(self, video: _Video) -> Episode | None:
        first = video.rows[0][1]
        self._check_consistent(video)
        youtube_id = first["videoID"]
        path = self._pick(video.video_id, youtube_id, MEDIA_SUFFIXES, "duplicate_media")
        info = self._probe(video, youtube_id, path)
        if info is None:
            return None
        duration = float(info.duration or 0.0)
        self._check_bucket(video.video_id, first["duration"], duration)
        built = [self._question(video.video_id, index, row, duration) for index, row in video.rows]
        pairs = [pair for pair in built if pair is not None]
        if not pairs:
            return None
        stream = Stream(
            id=video.video_id,
            segments=(MediaSegment(path, t_start=0.0, duration=duration),),
            questions=tuple(q for q, _ in pairs),
            text_events=tuple(self._subtitles(video.video_id, youtube_id, duration)),
            fps=info.fps,
            duration=duration,
        )
        return Episode(stream=stream, hidden={q.id: h for q, h in pairs})

    def _pick(self, video_id: str, stem: str, suffixes: tuple[str, ...],
              kind: str) -> Path | None:
        candidates = [p for p in self.files.get(stem) if p.suffix.lower() in suffixes]
        if not candidates:
            return None
        candidates.sort(key=lambda p: (suffixes.index(p.suffix.lower()), p))
        if len(candidates) > 1:
            listed = ", ".join(self.files.relative(p) for p in candidates)
            self.irregular.append(Irregularity(
                video_id, kind, f"{len(candidates)} files for {stem}: {listed}; "
                f"using {self.files.relative(candidates[0])}"))
        return candidates[0]

    def _probe(self, video: _Video, youtube_id: str, path: Path | None) -> MediaInfo | None:
        """The media's facts, or None after listing each question as excluded."""
        if path is None:
            kind = "missing_media"
            reason = (f"video {video.video_id}: no {youtube_id}.mp4/.mkv under {self.root}")
        else:
            try:
                return self.media.probe(path)
            except MediaError as exc:
                kind, reason = "corrupt_media", f"video {video.video_id}: {exc}"
        self.skipped += [SkippedItem(row["question_id"], reason, kind) for _, row in video.rows]
        return None

    def _check_consistent(self, video: _Video) -> None:
        first = video.rows[0][1]
        for _, row in video.rows[1:]:
            differ = [k for k in ("videoID", "duration", "domain", "sub_category")
                      if row[k] != first[k]]
            if differ:
                self.irregular.append(Irregularity(
                    row["question_id"], "inconsistent_video",
                    f"{', '.join(differ)} differ from question {first['question_id']} of video "
                    f"{video.video_id}; the first question's values are used"))

    def _check_bucket(self, video_id: str, label: str, seconds: float) -> None:
        low, high = BUCKET_SECONDS.get(label, (None, None))
        if low is None:
            self.irregular.append(Irregularity(
                video_id, "unknown_duration_label", f"duration label {label!r}"))
        elif not low <= seconds <= high:
            self.irregular.append(Irregularity(
                video_id, "duration_outside_bucket",
                f"labelled {label} but the media is {seconds:.1f}s long (wrong or partial "
                "download?)"))

    def _question(self, video_id: str, index: int, row: dict[str, Any],
                  duration: float) -> tuple[Question, Hidden] | None:
        qid = row["question_id"]
        options = [self._option(qid, position, text)
                   for position, text in enumerate(row["options"])]
        labels = ANSWER_LABELS[: len(options)]
        gold = row["answer"].strip()
        if gold not in labels:
            self.skipped.append(SkippedItem(
                qid, f"{self.annotations.name} row {index}: answer {row['answer']!r} labels none "
                f"of its {len(options)} options", "invalid_answer"))
            return None
        tags = {k: row[k] for k in ("duration", "domain", "sub_category", "task_type")}
        tags["video_id"] = video_id
        if row.get("language") is not None:
            tags["language"] = row["language"]
        question = Question(
            id=qid, stream_id=video_id, ask_time=duration, text=row["question"],
            options=tuple(options), category=row["task_type"], tags=tags,
        )
        return question, Hidden(question_id=qid, gold=gold, raw=row)

    def _option(self, qid: str, position: int, text: str) -> str:
        """``text`` without its "A. " prefix; odd prefixes are recorded, the text kept."""
        expected = ANSWER_LABELS[position]
        match = _PREFIX.match(text)
        if match is None:
            self.irregular.append(Irregularity(
                qid, "option_unlabelled", f"option {expected} {text!r} has no letter prefix"))
            return text.strip()
        if match.group(1) != expected:
            self.irregular.append(Irregularity(
                qid, "option_label_mismatch",
                f"option {position + 1} is prefixed {match.group(1)!r} ({text!r}); it is "
                f"labelled {expected} by its position"))
        return text[match.end():].strip()

    def _subtitles(self, video_id: str, youtube_id: str, duration: float) -> list[TextEvent]:
        path = self._pick(video_id, youtube_id, (".srt",), "duplicate_subtitles")
        if path is None:
            self.without_subtitles.append(video_id)
            return []
        self.hashes[self.files.relative(path)] = sha256_file(path)
        try:
            events = read_srt(path, SUBTITLES)
        except SrtError as exc:
            self.irregular.append(Irregularity(video_id, "malformed_subtitles", str(exc)))
            return []
        late = [e for e in events if e.t_start >= duration]
        if late:
            self.irregular.append(Irregularity(
                video_id, "subtitles_past_media_end",
                f"{len(late)} of {len(events)} cues start after the media ends "
                f"({duration:.1f}s), first at {late[0].t_start:.1f}s: never delivered"))
        return events



def _counts(values: Any) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))
