"""The training record written beside every checkpoint: what made it, step by step.

One JSON file per stage (``training_record.json`` in the stage's folder): the stage, its
resolved config, the seeds (run seed and mini data seeds), every logged step (losses, reward
terms, learning rate), the final metrics, wall time, the package version, library versions and
the git commit of the source that trained it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import taskmem_bench
from taskmem_bench.provenance import git_state, hardware, library_versions
from taskmem_bench.results import write_json

from taskmem.minidata import TRAINING_SEEDS

RECORD_NAME = "training_record.json"


@dataclass
class TrainingRecord:
    stage: str
    config: Mapping[str, Any]
    seed: int
    data_seeds: Mapping[str, int] = field(default_factory=lambda: dict(TRAINING_SEEDS))
    parent: Mapping[str, Any] | None = None
    steps: list[Mapping[str, Any]] = field(default_factory=list)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0
    package_version: str = taskmem_bench.__version__
    libraries: Mapping[str, str] = field(
        default_factory=lambda: library_versions(("torch", "transformers", "trl", "peft", "av"))
    )
    git: Mapping[str, Any] | None = field(default_factory=git_state)
    hardware: Mapping[str, Any] = field(default_factory=hardware)
    started: float = field(default_factory=time.time)

    def finish(self, steps: list[Mapping[str, Any]], metrics: Mapping[str, Any]) -> None:
        self.steps = steps
        self.metrics = metrics
        self.wall_seconds = round(time.time() - self.started, 1)

    def write(self, folder: Path) -> Path:
        path = Path(folder) / RECORD_NAME
        write_json(path, asdict(self))
        return path


def read_record(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / RECORD_NAME).read_text())
