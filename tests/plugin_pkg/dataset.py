"""A synthetic dataset plugin: in each stream someone says a number early on, and the same
question about it is asked right after and again at the end, when later talk has followed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taskmem_bench.datasets import DatasetAdapter, DatasetRelease
from taskmem_bench.schema import Episode, Hidden, MediaSegment, Question, Span, Stream, TextEvent
from taskmem_bench.taskconfig import ConfigError
from taskmem_bench.testing.videos import write_video

NUMBERS = ("three", "five", "seven", "nine")
SECONDS = 30
FPS = 2
ASK_TIMES = (5.0, 30.0)


@dataclass(frozen=True)
class SaidNumbersConfig:
    root: str = ""
    """The folder its videos are written to (``--set root=FOLDER``)."""
    streams: int = 2


class SaidNumbers(DatasetAdapter):
    name = "said-numbers"
    Config = SaidNumbersConfig
    synthetic = True

    def revision(self, config: SaidNumbersConfig) -> str:
        return f"said-numbers-1-{config.streams}"

    def load(self, config: SaidNumbersConfig) -> DatasetRelease:
        if not config.root:
            raise ConfigError("dataset said-numbers needs a folder: --set root=FOLDER")
        root = Path(config.root)
        root.mkdir(parents=True, exist_ok=True)
        episodes = tuple(_episode(root, i) for i in range(config.streams))
        return DatasetRelease(self.name, self.revision(config), episodes, synthetic=True)


def _episode(root: Path, index: int) -> Episode:
    stream_id = f"said-{index}"
    path = root / f"{stream_id}.mp4"
    if not path.exists():
        write_video(path, SECONDS * FPS, fps=FPS)
    number = NUMBERS[index % len(NUMBERS)]
    speech = (
        TextEvent("speech", 2.0, 3.0, f"The number said is {number}."),
        TextEvent("speech", 12.0, 13.0, "Nothing more about it."),
        TextEvent("speech", 22.0, 23.0, "Talk moved on to lunch."),
    )
    questions = tuple(
        Question(id=f"{stream_id}-q{k}", stream_id=stream_id, ask_time=t,
                 text="Which number was said?", options=NUMBERS, category="recall",
                 evidence=(Span(2.0, 3.0),))
        for k, t in enumerate(ASK_TIMES)
    )
    gold = "ABCD"[NUMBERS.index(number)]
    stream = Stream(id=stream_id, segments=(MediaSegment(path, 0.0, float(SECONDS)),),
                    questions=questions, text_events=speech, fps=FPS, duration=float(SECONDS))
    return Episode(stream=stream, hidden={q.id: Hidden(q.id, gold) for q in questions})
