"""The dataset-adapter contract: a release on disk in, episodes and their provenance out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from taskmem_bench.policy import NoConfig
from taskmem_bench.schema import Episode


@dataclass(frozen=True)
class SkippedItem:
    """A stream or question the adapter excluded, and why; shown in the report, never hidden."""

    item_id: str
    reason: str


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
    details: Mapping[str, Any] = field(default_factory=dict)


class DatasetAdapter(ABC):
    """Base class of dataset adapters; ``Config`` holds the adapter's ``dataset:`` task args."""

    name: ClassVar[str]
    Config: ClassVar[type] = NoConfig
    synthetic: ClassVar[bool] = False

    @abstractmethod
    def load(self, config: Any) -> DatasetRelease: ...

    @abstractmethod
    def revision(self, config: Any) -> str:
        """The ``revision`` that ``load(config)`` reports, computed without reading or generating
        data: the leaderboard uses it to tell whether a submitted run's data is known to this
        package version."""
