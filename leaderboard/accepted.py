"""What validation hands the site: an accepted run with the keys it is grouped by, or a
rejection with its one reason.

An accepted run carries the scores this package computed from its rows, never the bundle's
own, and the keys that decide which runs are one leaderboard entry (``entry_key``) and which
share a blind control (``reader_key``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from leaderboard.bundle import Bundle
from leaderboard.plan_check import Coverage
from taskmem_bench.manifest import Manifest, ModelIdentity
from taskmem_bench.scoring.metrics import Scores


@dataclass(frozen=True)
class AcceptedRun:
    """A bundle that passed every check, with the scores this package computed from its rows."""

    bundle: Bundle
    manifest: Manifest
    track: str
    scores: Scores
    video_hours: float
    """The hours memory per hour divides by, as validation derived them."""
    reproduced: bool
    """Whether the raw outputs were reproduced by re-running the reader."""
    coverage: Coverage
    """The streams the run covers of its benchmark; its ``limit`` is the run's normalised one."""

    @property
    def task(self) -> str:
        return self.manifest.task.name

    @property
    def policy(self) -> str:
        return self.manifest.policy.name

    @property
    def side_channels(self) -> tuple[str, ...]:
        return tuple(self.manifest.side_channels.allowed)

    @property
    def side_label(self) -> str:
        return ", ".join(sorted(self.side_channels)) or "none"

    @cached_property
    def run_id(self) -> str:
        """Stable, URL-safe and unique per bundle content."""
        return f"{_slug(self.task)}-{_slug(self.policy)}-{self.bundle.digest[:10]}"

    @cached_property
    def reader_key(self) -> str:
        """The reader's identity: runs with equal keys had the same reader, prompt, config and
        model."""
        r = self.manifest.reader
        return json.dumps([r.name, r.version, r.prompt_hash, r.config, _identity(r.model)],
                          sort_keys=True)

    @cached_property
    def entry_key(self) -> str:
        """One leaderboard row: the same policy, config and model, reader, side channels, seed,
        dataset revision and coverage (normalised stream limit and questions skipped); an entry
        holds at most one run per task."""
        m = self.manifest
        return json.dumps(
            [m.policy.name, m.policy.version, m.policy.config, _identity(m.policy.model),
             self.reader_key, sorted(self.side_channels), m.seed, m.dataset.revision,
             self.coverage.key],
            sort_keys=True,
        )

    @property
    def tokens_per_hour(self) -> float | None:
        tokens = self.bundle.summary["memory"]["tokens_total"]
        return round(tokens / self.video_hours, 1) if self.video_hours else None


@dataclass(frozen=True)
class Rejection:
    source: str
    reason: str


def _identity(model: ModelIdentity | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:32] or "x"
