"""Dataset adapters: each turns a release on disk into :class:`~taskmem_bench.schema.Episode` s."""

from __future__ import annotations

import importlib

from taskmem_bench.datasets.base import DatasetAdapter, DatasetRelease, Irregularity, SkippedItem
from taskmem_bench.datasets.jsonload import AnnotationError
from taskmem_bench.plugins import UnknownPluginError

_ADAPTERS = {
    "egolife": "taskmem_bench.datasets.egolife:EgoLifeDataset",
    "egotempo": "taskmem_bench.datasets.egotempo:EgoTempoDataset",
    "mini": "taskmem_bench.datasets.mini:MiniDataset",
    "videomme": "taskmem_bench.datasets.videomme:VideoMME",
}


def available_datasets() -> list[str]:
    return sorted(_ADAPTERS)


def load_adapter(name: str) -> type[DatasetAdapter]:
    if name not in _ADAPTERS:
        raise UnknownPluginError("dataset", name, available_datasets())
    module, _, attr = _ADAPTERS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


__all__ = [
    "AnnotationError",
    "DatasetAdapter",
    "DatasetRelease",
    "Irregularity",
    "SkippedItem",
    "available_datasets",
    "load_adapter",
]
