"""The memorization-policy plugin contract and its registry.

A policy sees a stream the way a deployed agent would: metadata first (no questions), then clips
in time order, possibly batched with clips of other streams so one model call serves many
streams. It answers each batch with memory entries. After a question has been answered it may
get a :class:`TaskNotice` (the question, never its answer).

Register a policy under the entry-point group ``taskmem_bench.policies``::

    [project.entry-points."taskmem_bench.policies"]
    my-policy = "my_package.policy:MyPolicy"

or pass ``--policy my_package.policy:MyPolicy`` for an unpublished one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from taskmem_bench.backends.base import VideoPart
from taskmem_bench.memory import MemoryEntry
from taskmem_bench.plugins import load, registered
from taskmem_bench.schema import Clip, StreamInfo, TaskNotice

ENTRY_POINT_GROUP = "taskmem_bench.policies"


@dataclass(frozen=True)
class NoConfig:
    """Config of a policy that takes no settings."""


class Policy(ABC):
    """Base class of memorization policies.

    Contract with the runner:

    * ``start_stream`` is called once per stream before any of its clips;
    * ``observe`` gets at most one clip per stream per call, each stream's clips in time order,
      and returns one list of entries per clip, in the same order;
    * if ``observe`` raises, the runner retries the batch one clip at a time to find the failing
      stream, so a policy must not commit per-stream state for a batch that raises;
    * ``notice`` and ``end_stream`` are optional hooks; so is ``end_wave``, for a policy that
      ``learns_across_streams``.

    Subclasses set ``name`` and ``version``, and ``Config`` to a frozen dataclass of settings
    (``--set key=value`` on the command line fills it).
    """

    name: ClassVar[str]
    version: ClassVar[str] = "0"
    Config: ClassVar[type] = NoConfig
    privileged: ClassVar[bool] = False
    """Privileged policies (the oracle control) receive ground-truth facts; synthetic tasks only."""
    default_models: ClassVar[Mapping[str, str]] = {}
    """For a model-using policy: the model it runs when none is named, by dataset name (e.g. a
    checkpoint shipped for a synthetic benchmark). Elsewhere a model must be named."""
    memory_only: ClassVar[bool] = True
    """False for controls that hand the reader frames they kept (recent-frames) besides their
    text memory. Such runs are not memory-only: the manifest says so and the leaderboard lists
    them as controls."""
    learns_across_streams: bool = False
    """True for a policy that changes what it writes from what it saw on earlier streams (e.g.
    trains on the task notices it got). It may change only in ``end_wave``: the runner then runs
    streams in index order in waves of the task's ``learning.wave_streams`` and calls
    ``end_wave`` between them, so its rows do not depend on batching. A subclass may override it
    with a property that depends on its config."""

    def __init__(self, config: Any = None, *, seed: int = 0) -> None:
        self.config = config if config is not None else self.Config()
        self.seed = seed

    @abstractmethod
    def start_stream(self, info: StreamInfo) -> None: ...

    @abstractmethod
    def observe(self, clips: Sequence[Clip]) -> Sequence[Sequence[MemoryEntry]]: ...

    def notice(self, notice: TaskNotice) -> None:
        """A question on this stream was just answered; its text, options and category."""

    def end_stream(self, stream_id: str) -> None:
        """The stream is over; release its state."""

    def end_wave(self, stream_ids: Sequence[str], workspace: Path) -> Mapping[str, Any] | None:
        """Every stream of a wave has ended (``end_stream`` was called); ``stream_ids`` are the
        wave's, in stream index order; ``workspace`` is an empty folder of the run directory
        for what the adaptation writes (an adapter, say), kept with the run. Called only when ``learns_across_streams``; the one place
        such a policy may adapt. Returns a JSON-able record of what it did (kept in the run
        directory's ``adaptations.jsonl``), or None when it did nothing. If it raises or runs
        past its deadline the error is recorded and the run goes on."""
        return None

    def recall(self, stream_id: str, t: float) -> VideoPart | None:
        """Frames for the reader of a question asked at ``t`` (controls with ``memory_only =
        False`` only; the runner never calls it for other policies). Frames must come from clips
        already observed; the runner rejects any timestamp after ``t``."""
        return None


def available_policies() -> dict[str, str]:
    return registered(ENTRY_POINT_GROUP)


def load_policy(name: str) -> type[Policy]:
    return load(ENTRY_POINT_GROUP, "policy", name, Policy)
