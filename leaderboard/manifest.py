"""The parts of a run manifest the leaderboard relies on, as a typed, strictly checked view.

The manifest comes from an untrusted bundle; parsing it once into this view means every later
step reads fields that exist and have the right types, and a malformed manifest is rejected
with the path of its first bad field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

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
    model: ModelView | None = None  # absent for components that use no model


class ModelView(_View):
    """A model's identity (``backends.identity.model_identity``): typed where the site shows
    it; the rest (file hashes, weight sizes, a LoRA) is kept, as it pins the model too."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
    backend: str
    model: str | None
    hub_revision: str | None = None
    files: dict[str, str] | None = None
    """The definition files' sha256 of a local model folder; absent for other models."""


class GitView(_View):
    commit: str | None = None


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
    limit: Annotated[int, Field(ge=1)] | None
    side_channels: SideChannelsView
    created_at: str
    git: GitView | None = None


class ManifestError(ValueError):
    """The manifest lacks a field the leaderboard needs, or has it with the wrong type."""


def parse_manifest(manifest: Mapping[str, Any]) -> ManifestView:
    try:
        return ManifestView.model_validate(dict(manifest))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise ManifestError(f"manifest.json: {where}: {first['msg']}") from None
