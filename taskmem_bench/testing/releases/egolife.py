"""An EgoLife release in the official layout, small enough for tests.

``[train/]<P>/DAY<d>/DAY<d>_<P>_<HHMMSSFF>.mp4`` clips (index-coded, 20 fps, a few seconds each
instead of 30), ``EgoLifeQA/EgoLifeQA_<P>.json`` question arrays in the released record format
(not sorted by query time), and ``EgoLifeCap/{Transcript,DenseCaption}/<P>/DAY<d>/`` hourly SRT
files whose cues hold a Chinese line then an English line, timed from the hour in the file name.

The default release mixes what the real one has: a participant under ``train/`` and one not,
recording gaps inside a day and across days, a frame index in a clip name, every ``target_time``
form (point, packed range, several stamps with ``DAYx`` switches, list, dict without ``time``,
empty ``date``), invalid times (minutes, seconds or hours out of range), evidence after the
query, queries in a gap and past the last clip, a malformed record, a participant with questions
but no media and one with media but no questions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import srt

from taskmem_bench.testing.videos import write_video

FPS = 20


@dataclass(frozen=True)
class FixtureClip:
    participant: str
    day: int
    time: str
    """``HHMMSSFF`` of the clip start, as in the file name."""
    seconds: int
    train: bool = False
    """Under ``train/`` (EgoRAG's unpacking) rather than at the root."""

    @property
    def path(self) -> Path:
        name = f"DAY{self.day}_{self.participant}_{self.time}.mp4"
        folder = Path("train") if self.train else Path()
        return folder / self.participant / f"DAY{self.day}" / name


@dataclass(frozen=True)
class FixtureSide:
    """One hourly side file: ``folder`` is ``Transcript`` or ``DenseCaption``."""

    folder: str
    participant: str
    name: str
    """File name; the real ones are ``<P>_DAY<d>_<HHMMSSFF>.srt``."""
    cues: tuple[tuple[float, float, str], ...]
    """(start, end, text) relative to the hour of the name; text lines joined by newlines."""

    @property
    def path(self) -> Path:
        day = self.name.split("DAY")[1].split("_")[0]
        return Path("EgoLifeCap") / self.folder / self.participant / f"DAY{day}" / self.name


def timeline(day: int, hhmmssff: str, fps: float = FPS) -> float:
    """The week-timeline second the adapter gives ``DAY<day> HHMMSSFF``."""
    hh, mm, ss, ff = (int(hhmmssff[i : i + 2]) for i in range(0, 8, 2))
    return (day - 1) * 86400 + hh * 3600 + mm * 60 + ss + ff / fps


def record(qid: str, date: str, time: str, target: Any, *, answer: str = "B",
           kind: str = "EventRecall", **extra: Any) -> dict[str, Any]:
    """A question record with every released field; ``target`` is the ``target_time`` value
    (``...`` leaves the field out)."""
    fields = {
        "ID": qid,
        "query_time": {"date": date, "time": time},
        "type": kind,
        "need_audio": False,
        "need_name": True,
        "last_time": False,
        "trigger": f"trigger {qid}",
        "question": f"Question {qid}: what was used first?",
        "choice_a": "Tasha", "choice_b": "Alice", "choice_c": "Shure", "choice_d": "Lucia",
        "answer": answer,
        "target_time": target,
        "keywords": f"keyword {qid}",
        "reason": f"reason {qid}",
    }
    if target is ...:
        del fields["target_time"]
    return fields | extra


JAKE, ALICE, TASHA, LUCIA = "A1_JAKE", "A2_ALICE", "A3_TASHA", "A4_LUCIA"

DEFAULT_CLIPS: tuple[FixtureClip, ...] = (
    FixtureClip(JAKE, 1, "11000000", 6, train=True),
    FixtureClip(JAKE, 1, "11001000", 6, train=True),  # 4 s gap before it
    FixtureClip(JAKE, 2, "09300010", 6, train=True),  # next day; FF = 10 frames = 0.5 s
    FixtureClip(ALICE, 1, "12000000", 4),
    FixtureClip(LUCIA, 3, "10000000", 2),
)

DEFAULT_QUESTIONS: dict[str, tuple[dict[str, Any], ...]] = {
    JAKE: (  # deliberately not in query order
        record("2", "DAY2", "09300400", {"date": "DAY1", "time": "11000105DAY1_11001200"}),
        record("1", "DAY1", "11000310", {"date": "DAY1", "time": "11000105"}, kind="EntityLog"),
        record("3", "DAY1", "11001400",
               {"date": "DAY1", "time": "11000000, 11000200DAY1_11001100"}),
        record("4", "DAY2", "09300500", {"date": "DAY1"}, kind="HabitInsight"),
        record("5", "DAY2", "09300510", {"date": "", "time": "09300100"}),
        record("6", "DAY1", "11001500", {"date": "DAY1", "time": "11006100"}),
        record("7", "DAY1", "11000500", {"date": "DAY1", "time": "11001100"}),
        record("8", "DAY1", "11650000", {"date": "DAY1", "time": "11000000"}),
        record("9", "DAY1", "11000800", {"date": "DAY1", "time": "11000100"}, kind="TaskMaster"),
        record("10", "DAY1", "11000400", {"date": "DAY1", "time": "11000100"}, answer="F"),
        record("11", "DAY2", "09300600", [{"date": "DAY1", "time": "11000100"},
                                          {"date": "DAY2", "time": "09300200"}]),
        record("12", "DAY1", "11001510", {"date": "DAY1", "time": "24000000"},
               kind="RelationMap"),
        record("13", "DAY1", "11001600", ...),
    ),
    ALICE: (
        record("1", "DAY1", "11595900", {"date": "DAY1", "time": "11590000"}),  # before media
        record("2", "DAY1", "12000300", {"date": "DAY1", "time": "12000100"}),
        record("3", "DAY2", "08000000", {"date": "DAY1", "time": "12000200"}),  # past media
    ),
    TASHA: (
        record("1", "DAY1", "10000000", {"date": "DAY1", "time": "09000000"}),
        record("2", "DAY1", "10300000", {"date": "DAY1", "time": "09000000"}),
    ),
}

DEFAULT_SIDE: tuple[FixtureSide, ...] = (
    FixtureSide("Transcript", JAKE, f"{JAKE}_DAY1_11000000.srt", (
        (1.0, 2.0, "Jake: 你好，螺丝刀在哪里？\nJake: Hello, where is the screwdriver?"),
        (12.0, 13.5, "Alice: 在桌子上。"),  # no English line: kept as released
    )),
    FixtureSide("Transcript", JAKE, "DAY2_09000000.srt", (  # released without the participant
        (1802.0, 1803.0, "Alice: 我们走吧\nAlice: Let's go"),
    )),
    FixtureSide("Transcript", JAKE, "DAY1_notes.srt", ((0.0, 1.0, "Jake: not an hour file"),)),
    FixtureSide("DenseCaption", JAKE, f"{JAKE}_DAY1_11000000.srt", (
        (0.0, 3.0, "我拿起了螺丝刀。\nI pick up the screwdriver."),
        (10.0, 14.0, "我走向厨房。"),
    )),
)


def write_release(
    root: Path,
    clips: tuple[FixtureClip, ...] = DEFAULT_CLIPS,
    questions: dict[str, tuple[dict[str, Any], ...]] | None = None,
    side: tuple[FixtureSide, ...] = DEFAULT_SIDE,
) -> Path:
    """Write the release under ``root``; returns ``root``."""
    questions = DEFAULT_QUESTIONS if questions is None else questions
    for clip in clips:
        path = root / clip.path
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, clip.seconds * FPS, fps=FPS, gop=20)
    for participant, records in questions.items():
        path = root / "EgoLifeQA" / f"EgoLifeQA_{participant}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(list(records), ensure_ascii=False, indent=4), encoding="utf-8")
    for item in side:
        path = root / item.path
        path.parent.mkdir(parents=True, exist_ok=True)
        cues = [srt.Subtitle(k + 1, timedelta(seconds=a), timedelta(seconds=b), text)
                for k, (a, b, text) in enumerate(item.cues)]
        path.write_text(srt.compose(cues), encoding="utf-8")
    return root
