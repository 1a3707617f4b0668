"""The dataset-adapter contract: a release on disk in, episodes and their provenance out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from taskmem_bench.policy import NoConfig
from taskmem_bench.schema import Episode, Hidden, Question


@dataclass(frozen=True)
class SkippedItem:
    """A stream or question the adapter excluded, and why; shown in the report, never hidden.
    ``kind`` is a short machine-readable cause (``missing_media``, ``malformed_record``, ...)
    so reports can count them by kind."""

    item_id: str
    reason: str
    kind: str = "other"


@dataclass(frozen=True)
class Irregularity:
    """A record the adapter kept but had to interpret or could not fully use (an evidence time
    after the query, a target time in an unusual form, a question past the media end): kept in
    the run, counted by ``kind`` in reports, listed with ids in the manifest."""

    item_id: str
    kind: str
    detail: str


@dataclass(frozen=True)
class DatasetRelease:
    """What an adapter hands the runner.

    ``revision`` names the exact data (annotation revision, generator version and seed);
    ``files`` maps each file the episodes use (relative to the release root) to its sha256.
    """

    name: str
    revision: str
    episodes: tuple[Episode, ...]
    synthetic: bool
    files: Mapping[str, str] = field(default_factory=dict)
    skipped: tuple[SkippedItem, ...] = ()
    irregular: tuple[Irregularity, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedQuestion:
    """A question as the dataset defines it, gold included, in the plain values a result row
    records for it: the leaderboard compares submitted rows with these."""

    stream_id: str
    question_id: str
    text: str
    options: tuple[str, ...]
    answer_format: str
    gold: str
    ask_time: float
    evidence_delay: float | None
    """Ask time minus the end of the latest evidence span; None without evidence."""
    category: str
    tags: Mapping[str, str]
    abstain_text: str
    """The question's ``ScoringSpec.abstain_text``, which rows do not record: the leaderboard
    re-scores its rows with it."""

    @classmethod
    def of(cls, question: Question, hidden: Hidden) -> PlannedQuestion:
        return cls(
            stream_id=question.stream_id, question_id=question.id, text=question.text,
            options=tuple(question.options), answer_format=question.scoring.kind,
            gold=hidden.gold, ask_time=question.ask_time,
            evidence_delay=question.evidence_delay,
            category=question.category, tags=dict(question.tags),
            abstain_text=question.scoring.abstain_text,
        )


@dataclass(frozen=True)
class PlannedStream:
    """One stream of a split as planned, before any media exist: enough to check a run's rows
    (which questions, in which stream, with which gold) and its video hours."""

    stream_id: str
    duration: float | None
    questions: tuple[PlannedQuestion, ...]


class DatasetAdapter(ABC):
    """Base class of dataset adapters; ``Config`` holds the adapter's ``dataset:`` task args."""

    name: ClassVar[str]
    Config: ClassVar[type] = NoConfig
    synthetic: ClassVar[bool] = False

    @abstractmethod
    def load(self, config: Any) -> DatasetRelease: ...

    def load_first(
        self, config: Any, limit: int | None, progress: Callable[[int, int], None] | None = None
    ) -> DatasetRelease:
        """The release for a run of its first ``limit`` streams (all when None): it may hold
        only those, under the whole split's revision. Adapters that build media on demand
        (mini) override this to build no more, calling ``progress(done, total)`` as they go;
        this default loads everything."""
        return self.load(config)

    @abstractmethod
    def revision(self, config: Any) -> str:
        """The ``revision`` that ``load(config)`` reports, computed without reading or generating
        data: the leaderboard uses it to tell whether a submitted run's data is known to this
        package version."""

    def planned_streams(self, config: Any) -> list[PlannedStream] | None:
        """The split's streams in run order, with their questions and gold answers, if the
        adapter can list them cheaply (no media decoded or rendered); None if it cannot. The
        leaderboard then requires a run's rows to be exactly these questions (of the first
        ``--limit`` streams), and derives video hours from the durations."""
        return None
