"""A Video-MME release in the official layout, small enough for tests.

``videomme/test-00000-of-00001.parquet`` with the published columns and types (``options`` a
list of "A. ..." strings), ``<videoID>.<ext>`` media and ``<videoID>.srt`` subtitles. The
default release mixes what real unpacked copies mix: nested (``data/``, ``subtitle/``) and flat
files, an ``.MP4`` and an ``.mkv``, ``<font>``-wrapped and plain cues, a video without
subtitles, a video whose media is missing, a prefix that is not its option's position, a video
whose length is outside its duration bucket and a cue past the media end.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import polars as pl
import srt

from taskmem_bench.testing.videos import write_video

PARQUET = Path("videomme") / "test-00000-of-00001.parquet"
FPS = 10
SCHEMA = {
    "video_id": pl.String, "duration": pl.String, "domain": pl.String,
    "sub_category": pl.String, "url": pl.String, "videoID": pl.String,
    "question_id": pl.String, "task_type": pl.String, "question": pl.String,
    "options": pl.List(pl.String), "answer": pl.String,
}


@dataclass(frozen=True)
class FixtureQuestion:
    task_type: str
    question: str
    options: tuple[str, ...]
    """As in the parquet: with their "A. " prefixes."""
    answer: str


@dataclass(frozen=True)
class FixtureVideo:
    video_id: str
    youtube_id: str
    duration: str
    """The bucket label, as in the parquet."""
    domain: str
    sub_category: str
    media: str | None
    """Where the media file goes, relative to the root; None: not downloaded."""
    seconds: int
    subtitle: str | None = None
    """Where the SRT goes, relative to the root; None: the video has none."""
    cues: tuple[tuple[float, float, str], ...] = ()
    font_tags: bool = False
    questions: tuple[FixtureQuestion, ...] = ()

    def question_ids(self) -> list[str]:
        return [f"{self.video_id}-{k + 1}" for k in range(len(self.questions))]


def _q(task_type: str, question: str, answer: str, *texts: str) -> FixtureQuestion:
    return FixtureQuestion(task_type, question,
                           tuple(f"{label}. {t}" for label, t in zip("ABCD", texts)), answer)


DEFAULT_VIDEOS: tuple[FixtureVideo, ...] = (
    FixtureVideo(
        "001", "aB3-xY_9kLm", "short", "Knowledge", "Humanity & History",
        media="data/aB3-xY_9kLm.mp4", seconds=3,
        subtitle="subtitle/aB3-xY_9kLm.srt", font_tags=True,
        cues=((0.0, 1.2, "Hello and welcome"), (1.5, 2.8, "to the <b>history</b> of trees")),
        questions=(
            _q("Counting Problem", "How many candles are lit?", "C", "1.", "4.", "2.", "3."),
            _q("Information Synopsis", "What is the genre of this video?", "A",
               "A history lesson.", "A cooking show.", "A travel vlog.", "A tutorial."),
            _q("OCR Problems", "What word is on the sign?", "D",
               "Open.", "Closed.", "Exit.", "Deep."),
        ),
    ),
    FixtureVideo(
        "002", "Zq8_RT1-aaa", "short", "Film & Television", "Animation",
        media="Zq8_RT1-aaa.MP4", seconds=2,
        subtitle="Zq8_RT1-aaa.srt", cues=((0.2, 1.0, "Meow"),),
        questions=(
            _q("Object Recognition", "Which animal appears first?", "B",
               "A dog.", "A cat.", "A bird.", "A fish."),
            FixtureQuestion("Action Recognition", "What does the cat do?",
                            ("A. It jumps.", "C. It sleeps.", "C. It runs.", "D. It eats."),
                            "A"),
            _q("Attribute Perception", "What colour is the cat?", "C",
               "Black.", "White.", "Orange.", "Grey."),
        ),
    ),
    FixtureVideo(
        "003", "mkvVIDEO001", "short", "Sports Competition", "Football",
        media="data/nested/mkvVIDEO001.mkv", seconds=2,
        questions=(
            _q("Counting Problem", "How many goals are scored?", "B", "0.", "1.", "2.", "3."),
            _q("Temporal Reasoning", "What happens after the whistle?", "A",
               "Kick-off.", "Half time.", "A penalty.", "A substitution."),
            _q("Spatial Perception", "Where is the ball at the start?", "D",
               "Left goal.", "Right goal.", "Corner.", "Centre spot."),
        ),
    ),
    FixtureVideo(
        "004", "missingVID1", "long", "Life Record", "Travel",
        media=None, seconds=0,
        subtitle="subtitle/missingVID1.srt", cues=((5.0, 6.0, "We arrive in Rome"),),
        questions=(
            _q("Object Reasoning", "Why do they buy a map?", "A",
               "They are lost.", "As a gift.", "To cook.", "To read."),
            _q("Action Reasoning", "Why do they run?", "B",
               "For fun.", "To catch a train.", "It rains.", "A race."),
            _q("Temporal Perception", "When do they eat?", "C",
               "Morning.", "Noon.", "Evening.", "Never."),
        ),
    ),
    FixtureVideo(
        "005", "Mid_Len-005", "medium", "Artistic Performance", "Magic Show",
        media="Mid_Len-005.mp4", seconds=2,
        subtitle="Mid_Len-005.srt", font_tags=True,
        cues=((0.5, 1.5, "Pick a card"), (30.0, 31.0, "Thank you")),
        questions=(
            _q("Action Recognition", "What does the magician ask?", "A",
               "To pick a card.", "To clap.", "To leave.", "To sing."),
            _q("Object Recognition", "What is on the table?", "B",
               "A hat.", "A deck of cards.", "A rabbit.", "A cup."),
            _q("Spatial Reasoning", "Where is the card hidden?", "C",
               "In the hat.", "Under the cup.", "In a pocket.", "Nowhere."),
        ),
    ),
)


def rows(videos: tuple[FixtureVideo, ...]) -> list[dict[str, object]]:
    """The parquet's rows for ``videos`` (one per question)."""
    return [
        {
            "video_id": v.video_id, "duration": v.duration, "domain": v.domain,
            "sub_category": v.sub_category,
            "url": f"https://www.youtube.com/watch?v={v.youtube_id}", "videoID": v.youtube_id,
            "question_id": qid, "task_type": q.task_type, "question": q.question,
            "options": list(q.options), "answer": q.answer,
        }
        for v in videos
        for qid, q in zip(v.question_ids(), v.questions)
    ]


def write_parquet(path: Path, records: list[dict[str, object]],
                  schema: dict[str, object] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(records, schema=schema or SCHEMA, orient="row").write_parquet(path)
    return path


def write_srt(path: Path, cues: tuple[tuple[float, float, str], ...], font_tags: bool) -> Path:
    subtitles = [
        srt.Subtitle(k + 1, timedelta(seconds=start), timedelta(seconds=end),
                     f'<font color="#ffffff" size=".72c">{text}</font>' if font_tags else text)
        for k, (start, end, text) in enumerate(cues)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(srt.compose(subtitles), encoding="utf-8")
    return path


def write_release(root: Path, videos: tuple[FixtureVideo, ...] = DEFAULT_VIDEOS) -> Path:
    """Write the release under ``root``; returns the parquet's path."""
    for video in videos:
        if video.media is not None:
            target = root / video.media
            target.parent.mkdir(parents=True, exist_ok=True)
            write_video(target, video.seconds * FPS, fps=FPS)
        if video.subtitle is not None:
            write_srt(root / video.subtitle, video.cues, video.font_tags)
    return write_parquet(root / PARQUET, rows(videos))


def replace_video(videos: tuple[FixtureVideo, ...], video_id: str,
                  **changes: object) -> tuple[FixtureVideo, ...]:
    """``videos`` with one video's fields changed (tests build variants from the default)."""
    return tuple(dataclasses.replace(v, **changes) if v.video_id == video_id else v
                 for v in videos)
