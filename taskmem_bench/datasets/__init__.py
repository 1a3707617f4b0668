"""Dataset adapters: each turns a release on disk into :class:`~taskmem_bench.schema.Episode` s.

Adapters are plugins like policies: registered under the entry-point group
``taskmem_bench.datasets``, or named by a ``module:Class`` path in a task's ``dataset:``.
"""

from __future__ import annotations

from taskmem_bench.datasets.base import DatasetAdapter, DatasetRelease, Irregularity, SkippedItem
from taskmem_bench.datasets.jsonload import AnnotationError
from taskmem_bench.plugins import load, registered

ENTRY_POINT_GROUP = "taskmem_bench.datasets"


def available_datasets() -> dict[str, str]:
    return registered(ENTRY_POINT_GROUP)


def load_adapter(name: str) -> type[DatasetAdapter]:
    return load(ENTRY_POINT_GROUP, "dataset", name, DatasetAdapter)


__all__ = [
    "AnnotationError",
    "DatasetAdapter",
    "DatasetRelease",
    "Irregularity",
    "SkippedItem",
    "available_datasets",
    "load_adapter",
]
