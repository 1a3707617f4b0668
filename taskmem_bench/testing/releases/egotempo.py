"""An EgoTempo release in the official layout, small enough for tests.

``egotempo_openQA.json`` (``{"info": ..., "annotations": [...]}``, every value a string) and
index-coded media: pre-trimmed ``<clip_id>.mp4`` files or full videos at Ego4D's
``v2/video_540ss/<uid>.mp4``, whose clip windows the adapter decodes by seeking. The default
release has uids with hyphens, a slightly negative start, two overlapping clips of one video, a
window running past its video's end, a clip without media, a ``question_id`` that is not
``<clip_id>_<k>``, and malformed and duplicate records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskmem_bench.testing.videos import write_video

FPS = 10
ANNOTATIONS = "egotempo_openQA.json"
INFO = {"release date": "29.01.2025", "version": "1.0"}


@dataclass(frozen=True)
class FixtureClip:
    uid: str
    start: str
    end: str
    """Seconds into the full video, written as in the clip id."""
    media: str | None
    """``pre_trimmed``, ``full`` (``v2/video_540ss/<uid>.mp4``) or None (not downloaded)."""
    video_seconds: int
    """Length of the file written: the trimmed clip's, or the full video's."""
    questions: tuple[tuple[str | None, str, str, str], ...]
    """(question_id or None for ``<clip_id>_<k>``, question_type, question, answer)."""

    @property
    def clip_id(self) -> str:
        return f"{self.uid}_{self.start}_{self.end}"

    @property
    def media_path(self) -> Path | None:
        if self.media == "pre_trimmed":
            return Path("clips") / f"{self.clip_id}.mp4"
        if self.media == "full":
            return Path("v2") / "video_540ss" / f"{self.uid}.mp4"
        return None

    def records(self) -> list[dict[str, str]]:
        return [
            {"question_id": qid if qid is not None else f"{self.clip_id}_{k}",
             "clip_id": self.clip_id, "question_type": kind, "question": text, "answer": answer}
            for k, (qid, kind, text, answer) in enumerate(self.questions)
        ]


UID_A = "27470817-f803-45b4-b9d4-e754cb3196bc"
UID_B = "0ece1a2a-2da0-4b28-ac8c-bf9f04c0d17c"
UID_C = "01f5ee9f-09e9-4d3d-b682-aa64b6a57858"
UID_D = "106e9447-8a09-4e89-964e-61c927827a56"
UID_E = "0919b674-ec6a-431d-8eec-12781b6d5775"

DEFAULT_CLIPS: tuple[FixtureClip, ...] = (
    FixtureClip(UID_A, "368.4019995568589", "371.56079044314106", "pre_trimmed", 3, (
        (None, "object-specific action", "What does the person pick up first?",
         "The oil remover spray."),
        (None, "action sequence", "What happens after rubbing hands?", "A wiping cloth. "),
    )),
    FixtureClip(UID_B, "2.35", "5.05", "full", 9, (
        (None, "counting actions", "How many times does the person stir?", "Three times."),
    )),
    FixtureClip(UID_B, "4.0", "7.5", "full", 9, (  # overlaps the previous clip
        ("q-odd-17", "locating object", "Where is the knife?", "On the cutting board."),
    )),
    FixtureClip(UID_C, "-0.034", "2.5", "full", 4, (
        (None, "future action prediction", "What will the person do next?", "Open the fridge."),
    )),
    FixtureClip(UID_D, "3.0", "12.0", "full", 6, (  # the video ends 6 s before the window
        (None, "counting objects", "How many cups are on the table?", "Two cups."),
    )),
    FixtureClip(UID_E, "10.0", "20.0", None, 0, (
        (None, "spatial relationship", "What is left of the sink?", "A dish rack."),
        (None, "temporal event ordering", "What came first?", "Washing hands."),
    )),
)

MALFORMED_RECORDS: tuple[dict[str, Any], ...] = (
    {"question_id": "bad-answer", "clip_id": DEFAULT_CLIPS[0].clip_id,
     "question_type": "counting actions", "question": "How many?", "answer": 3},
    {"question_id": "bad-clip", "clip_id": "no-window-here", "question_type": "counting actions",
     "question": "How many?", "answer": "Three."},
    DEFAULT_CLIPS[1].records()[0],  # the same question_id again
)


def write_release(
    root: Path,
    clips: tuple[FixtureClip, ...] = DEFAULT_CLIPS,
    extra_records: tuple[dict[str, Any], ...] = MALFORMED_RECORDS,
) -> Path:
    """Write the release under ``root``; returns ``root``."""
    records = [r for clip in clips for r in clip.records()] + list(extra_records)
    root.mkdir(parents=True, exist_ok=True)
    (root / ANNOTATIONS).write_text(
        json.dumps({"info": INFO, "annotations": records}, indent=2), encoding="utf-8")
    for clip in clips:
        if clip.media_path is None or (root / clip.media_path).exists():
            continue
        path = root / clip.media_path
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, clip.video_seconds * FPS, fps=FPS, gop=7)
    return root
