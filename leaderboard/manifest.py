"""The parts of a run manifest the leaderboard relies on, as a typed, strictly checked view.

The manifest comes from an untrusted bundle; parsing it once into this view means every later
step reads fields that exist and have the right types, and a malformed manifest is rejected
with the path of its first bad field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True, populate_by_name=True)


class PackageView(_View):
    name: str
    version: str


class TaskView(_View):
    name: str
    config: dict[str, Any]
    hash: str


class DatasetView(_View):
    name: str
    revision: str
    synthetic: bool
    config: dict[str, Any]


class _PluginView(_View):
    name: str
    cls: str = Field(alias="class")
    version: str
    config: dict[str, Any]


class PolicyView(_PluginView):
    privileged: bool
    memory_only: bool = True  # absent from manifests written before the field existed


class ReaderView(_PluginView):
    prompt_hash: str


class SideChannelsView(_View):
    available: list[str]
    allowed: list[str]


class ManifestView(_View):
    manifest_version: int
    package: PackageView
    task: TaskView
    dataset: DatasetView
    policy: PolicyView
    reader: ReaderView
    seed: int
    limit: int | None
    side_channels: SideChannelsView
    created_at: str


class ManifestError(ValueError):
    """The manifest lacks a field the leaderboard needs, or has it with the wrong type."""


def parse_manifest(manifest: Mapping[str, Any]) -> ManifestView:
    try:
        return ManifestView.model_validate(dict(manifest))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise ManifestError(f"manifest.json: {where}: {first['msg']}") from None
