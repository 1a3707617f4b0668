"""The ``egolife`` adapter: EgoLifeQA over each participant's week of clips, as released.

Layout read (``root`` is the release folder; ``train/`` is optional, as EgoRAG unpacks it)::

    [train/]<P>/DAY<d>/DAY<d>_<P>_<HHMMSSFF>.mp4          ~30 s clips, name = clip start
    EgoLifeQA/EgoLifeQA_<P>.json                         questions (public: A1_JAKE)
    EgoLifeCap/Transcript/<P>/DAY<d>/<P>_DAY<d>_<HHMMSSFF>.srt     hourly, Chinese + English cues
    EgoLifeCap/DenseCaption/<P>/DAY<d>/<P>_DAY<d>_<HHMMSSFF>.srt   hourly dense captions

(``EgoLifeQA`` and ``EgoLifeCap`` may also sit one folder down, e.g. under ``train/``; side files
named ``DAY<d>_<HHMMSSFF>.srt`` without the participant are read too.)

One stream per participant that has a question file: a week on one timeline (see
:mod:`egolife_time`), each clip placed at its file-name start with its probed duration, gaps
left as gaps (:mod:`egolife_clips`). Questions are asked at ``query_time`` (sorted: the file is
not), the runner cuts the clip holding a query at the query. Side-channel SRT cue times are
relative to the hour the file name gives (:mod:`egolife_side`). Every choice made on odd input
is recorded: excluded items as ``SkippedItem``s, kept-but-odd ones as ``Irregularity``s (kinds
listed in ``IRREGULARITY_KINDS``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskmem_bench.datasets.base import DatasetAdapter, DatasetRelease
from taskmem_bench.datasets.egolife_clips import EPS, PlacedClips, discover_clips, place_clips
from taskmem_bench.datasets.egolife_side import side_channels
from taskmem_bench.datasets.egolife_time import (
    DAY_SECONDS,
    TimeFormatError,
    parse_moment,
    parse_target_time,
)
from taskmem_bench.datasets.files import relative_key, sha256_file
from taskmem_bench.datasets.item_log import ItemLog
from taskmem_bench.datasets.jsonload import AnnotationError, load_json
from taskmem_bench.datasets.prepare import MediaIndex, release_root
from taskmem_bench.schema import Episode, Hidden, Question, Stream

PARSER_VERSION = "1"
HINT_FIELDS = ("keywords", "reason", "trigger")
CHOICE_FIELDS = ("choice_a", "choice_b", "choice_c", "choice_d")
IRREGULARITY_KINDS = (
    "clip_name_mismatch",  # a clip whose name disagrees with its folders, or has a bad time
    "duplicate_clip",  # the same clip under two roots (with and without train/); first kept
    "side_file_name",  # a transcript/caption file whose name gives no hour; not read
    "target_time_invalid", "target_time_date_only", "target_time_date_missing",
    "evidence_after_query",  # evidence ends after the ask time; kept as annotated
    "query_in_gap",  # asked where no clip records (before the first, or between clips)
    "query_past_media",  # asked after the participant's last clip ends
)


@dataclass(frozen=True)
class Config:
    """``participants``: streams to build (default: every participant with a question file);
    ``transcripts`` / ``captions``: read those side channels (a task still has to allow them)."""

    root: str | None = None
    participants: tuple[str, ...] = ()
    transcripts: bool = True
    captions: bool = True

    @property
    def channels_to_read(self) -> tuple[str, ...]:
        """The side channels to read, by their ``egolife_side.CHANNELS`` names."""
        chosen = {"transcript": self.transcripts, "captions": self.captions}
        return tuple(channel for channel, read in chosen.items() if read)


class EgoLifeDataset(DatasetAdapter):
    """EgoLifeQA as a causal stream per participant week."""

    name = "egolife"
    Config = Config

    def revision(self, config: Config | None = None) -> str:
        """Parser version and the sha256 of each selected participant's question file (not the
        media, which the prepared manifest fingerprints, nor the side-channel files, hashed in
        ``files``)."""
        config = config if config is not None else Config()
        _, qa_files = _question_files(release_root(config, self.name), config)
        digest = hashlib.sha256()
        for participant, path in qa_files.items():
            digest.update(f"{participant}:{sha256_file(path)}\n".encode())
        return f"egolife:parser{PARSER_VERSION}:{digest.hexdigest()[:16]}"

    def load(self, config: Config | None = None) -> DatasetRelease:
        config = config if config is not None else Config()
        root = release_root(config, self.name)
        found, qa_files = _question_files(root, config)
        log = _Log()
        clips = discover_clips(root, log)
        index = MediaIndex.open(self.name, root)
        files = {relative_key(root, p): sha256_file(p) for p in qa_files.values()}
        episodes, per_participant = [], {}
        for participant, qa_path in qa_files.items():
            records = _records(qa_path)
            placed = place_clips(clips.get(participant, []), index, root, log)
            if not placed.segments:
                log.skip_all(records, participant, qa_path, "missing_media",
                             f"no readable clips of {participant} under {root}")
                per_participant[participant] = {"clips": 0, "questions": 0}
                continue
            questions, hidden, forms = _questions(records, participant, qa_path, placed, log)
            text, side = side_channels(found.get("EgoLifeCap"), participant, placed.fps,
                                       config.channels_to_read, root, log)
            files.update(side.hashes)
            stream = Stream(
                id=participant,
                segments=placed.segments,
                questions=questions,
                text_events=text,
                fps=placed.fps,
                duration=max(s.t_end for s in placed.segments),
            )
            episodes.append(Episode(stream=stream, hidden=hidden))
            per_participant[participant] = {
                "clips": len(placed.segments),
                "fps": placed.fps,
                "video_hours": round(sum(s.duration for s in placed.segments) / 3600, 4),
                "days": sorted({int(s.t_start // DAY_SECONDS) + 1 for s in placed.segments}),
                "questions": len(questions),
                "evidence_forms": dict(sorted(forms.items())),
                "side_files": side.files,
                "cues_without_english": side.without_english,
            }
        index.save()
        questions = [q for e in episodes for q in e.stream.questions]
        return DatasetRelease(
            name=self.name,
            revision=self.revision(config),
            episodes=tuple(episodes),
            synthetic=False,
            files=dict(sorted(files.items())),
            skipped=tuple(log.skipped),
            irregular=tuple(log.irregular),
            details={
                "root": str(root),
                "participants": per_participant,
                "participants_without_questions": sorted(set(clips) - set(qa_files)),
                "time_model": (
                    "t = (day-1)*86400 + HH*3600 + MM*60 + SS + FF/fps; FF is a frame index; "
                    "fps: each clip's probed rate for its start, the participant's most common "
                    "clip rate for query and target times"
                ),
                "questions": len(questions),
                "categories": dict(sorted(Counter(q.category for q in questions).items())),
                "media_index": index.stats(),
            },
        )


class _Log(ItemLog):
    """The release's exclusions and irregularities; also skips a whole question file."""

    def skip_all(self, records: list[Any], participant: str, path: Path, kind: str,
                 reason: str) -> None:
        for i, record in enumerate(records):
            self.skip(_question_id(participant, record, path, i), reason, kind)


def _question_files(root: Path, config: Config) -> tuple[dict[str, Path], dict[str, Path]]:
    """The release's top folders (``EgoLifeQA``, ``EgoLifeCap``) and the question file of each
    selected participant; an error naming what is missing."""
    found = {name: folder for name in ("EgoLifeQA", "EgoLifeCap")
             if (folder := _find_folder(root, name)) is not None}
    if "EgoLifeQA" not in found:
        raise AnnotationError(f"egolife: no EgoLifeQA folder under {root} (expected "
                              "EgoLifeQA/EgoLifeQA_<participant>.json)")
    available = {p.stem.removeprefix("EgoLifeQA_"): p
                 for p in sorted(found["EgoLifeQA"].glob("EgoLifeQA_*.json"))}
    wanted = tuple(config.participants) or tuple(available)
    missing = [p for p in wanted if p not in available]
    if missing or not wanted:
        raise AnnotationError(
            f"egolife: no question file for {', '.join(missing) or 'any participant'} in "
            f"{found['EgoLifeQA']} (found: {', '.join(available) or 'none'})")
    return found, {p: available[p] for p in wanted}


def _find_folder(root: Path, name: str) -> Path | None:
    """``root/name``, else ``root/*/name`` (first in name order)."""
    if (root / name).is_dir():
        return root / name
    return next((p for p in sorted(root.glob(f"*/{name}")) if p.is_dir()), None)


def _records(path: Path) -> list[Any]:
    data = load_json(path)
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected a JSON array of questions, "
                              f"got {type(data).__name__}")
    return data


def _question_id(participant: str, record: Any, path: Path, index: int) -> str:
    """``<P>-<ID>``; records without an ID are named by file and index."""
    qid = record.get("ID") if isinstance(record, Mapping) else None
    return f"{participant}-{qid}" if isinstance(qid, (str, int)) else f"{path.name}#{index}"


def _questions(records: list[Any], participant: str, path: Path, placed: PlacedClips,
               log: _Log) -> tuple[tuple[Question, ...], dict[str, Hidden], Counter]:
    assert placed.fps is not None
    questions, hidden, forms = [], {}, Counter()
    for i, record in enumerate(records):
        qid = _question_id(participant, record, path, i)
        problem = _malformed(record)
        if problem is None and qid in hidden:
            log.skip(qid, f"{path.name} record {i}: ID {record['ID']} appears twice; the first "
                     "is used", "duplicate_question_id")
            continue
        if problem is not None:
            log.skip(qid, f"{path.name} record {i}: {problem}", "malformed_record")
            continue
        try:
            asked = parse_moment(record["query_time"])
        except TimeFormatError as exc:
            log.skip(qid, f"{path.name} record {i}: query_time: {exc}", "invalid_query_time")
            continue
        t = asked.seconds(placed.fps)
        evidence = parse_target_time(record.get("target_time"), asked, placed.fps)
        forms[evidence.form] += 1
        for kind, detail in evidence.notes:
            log.note(qid, kind, detail)
        late = [s for s in evidence.spans if s.end > t + EPS]
        if late:
            log.note(qid, "evidence_after_query",
                     f"evidence ends {max(s.end for s in late) - t:.1f} s after the query; kept")
        where = placed.where(t)
        if where != "inside":
            log.note(qid, f"query_{'past_media' if where == 'past' else 'in_gap'}",
                     f"asked at DAY{asked.day} {record['query_time'].get('time')}, "
                     f"{'after the last clip' if where == 'past' else 'where no clip records'}")
        questions.append(Question(
            id=qid,
            stream_id=participant,
            ask_time=t,
            text=record["question"],
            options=tuple(record[f] for f in CHOICE_FIELDS),
            category=record["type"],
            tags={
                "type": record["type"],
                "need_audio": _flag(record.get("need_audio")),
                "need_name": _flag(record.get("need_name")),
                "participant": participant,
                "evidence_form": evidence.form,
            },
            evidence=evidence.spans,
        ))
        hidden[qid] = Hidden(
            question_id=qid,
            gold=record["answer"].strip().upper(),
            hints={k: record[k] for k in HINT_FIELDS if k in record},
            raw=record,
        )
    questions.sort(key=lambda q: (q.ask_time, q.id))
    return tuple(questions), hidden, forms


def _malformed(record: Any) -> str | None:
    """What makes a question record unusable, or None."""
    if not isinstance(record, Mapping):
        return f"not an object: {type(record).__name__}"
    if not isinstance(record.get("ID"), (str, int)):
        return "no ID"
    if "query_time" not in record:
        return "no 'query_time'"
    for name in ("question", "type", *CHOICE_FIELDS):
        value = record.get(name)
        if not isinstance(value, str) or not value.strip():
            return f"missing or empty {name!r}"
    answer = record.get("answer")
    if not isinstance(answer, str) or answer.strip().upper() not in ("A", "B", "C", "D"):
        return f"answer {answer!r} is not one of A-D"
    return None


def _flag(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
