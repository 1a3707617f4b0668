"""The reader contract: question, options and a memory snapshot in; raw text out."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from taskmem_bench.backends.base import VideoPart
from taskmem_bench.memory import MemorySnapshot
from taskmem_bench.plugins import load, registered
from taskmem_bench.policy import NoConfig

ENTRY_POINT_GROUP = "taskmem_bench.readers"


@dataclass(frozen=True)
class ReaderInput:
    """Everything a reader may see. Nothing else reaches it: no paths, gold or hints.

    ``options`` carry no labels; they are labelled A, B, ... by position, and for multiple choice
    the extra label after the last option means "cannot be determined from memory".

    ``frames`` is always ``None`` for memory-only policies. Only a control that declares
    ``memory_only = False`` (recent-frames) hands the reader frames it kept, which puts its runs
    outside the memory-only tracks.
    """

    question: str
    options: tuple[str, ...]
    memory: MemorySnapshot
    answer_format: Literal["multiple_choice", "open"] = "multiple_choice"
    frames: VideoPart | None = None


@dataclass(frozen=True)
class ReaderOutput:
    """A reader's reply to one input. The runner takes nothing else: a result that is not a
    ``ReaderOutput`` with a ``str`` ``raw`` fails its question (``reader_error``, naming the
    type)."""

    raw: str


class Reader(ABC):
    """Base class of readers. Subclasses set ``name``, ``version`` and ``prompt``."""

    name: ClassVar[str]
    version: ClassVar[str] = "0"
    Config: ClassVar[type] = NoConfig
    prompt: ClassVar[str] = ""
    """The prompt template (or a description of the rule for model-free readers), hashed into
    the run manifest so that two runs with different prompts never look alike."""
    deterministic: ClassVar[bool] = False
    """True when the same inputs always give byte-identical raw outputs (no sampling, no
    model, no hardware dependence): the leaderboard then re-runs the reader on a submitted
    bundle's questions and memory instead of trusting its raw outputs."""

    def __init__(self, config: Any = None, *, seed: int = 0) -> None:
        self.config = config if config is not None else self.Config()
        self.seed = seed

    @classmethod
    def prompt_hash(cls) -> str:
        return hashlib.sha256(cls.prompt.encode()).hexdigest()[:16]

    @abstractmethod
    def answer(self, inputs: Sequence[ReaderInput]) -> list[ReaderOutput]:
        """One output per input, in order. If it raises, the runner asks again input by input
        to find the failing question, unless the backend is down (``BackendUnavailable``)."""


def available_readers() -> dict[str, str]:
    return registered(ENTRY_POINT_GROUP)


def load_reader(name: str) -> type[Reader]:
    return load(ENTRY_POINT_GROUP, "reader", name, Reader)
