"""The run manifest as one typed model: the runner writes it and everything else reads it back
(the run directory on resume, the leaderboard from an untrusted bundle, the lm-eval bridge).

A manifest is one flat JSON object of two parts. The *plan part* (``PlanPart``: task, dataset,
policy, reader, judge, memory view, seed, limit, side channels, budget) decides the rows and is
hashed into ``plan_hash``, except the sections that change speed or location only
(``UNHASHED_PLAN_KEYS``), so a run may resume with other values there. The *record part*
(``RecordPart``: git, libraries, hardware, command, time) says where and how the run was
invoked; each resume appends its own to ``resumes``, and the loaded models' ``backends`` are
added once known.

Reading is strict (no coercion: ``"0"`` is not a seed) and names the first bad field
(``ManifestError``: one line, whatever the manifest's keys hold). Sections nothing reads back
(configs, hardware, the dataset's file hashes) are plain JSON objects, and keys this version
does not know are kept, so a manifest written through the model is the JSON it was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from taskmem_bench.untrusted import cut, printable_name

MANIFEST_VERSION = 1
UNHASHED_PLAN_KEYS = ("run", "dataset_details")
"""Plan sections that change speed or location, not results (throughput settings, where the
data lives): a run may resume with other values."""

JsonObject = dict[str, Any]


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class PackageInfo(_Part):
    name: str
    version: str


class TaskInfo(_Part):
    name: str
    config: JsonObject
    hash: str


class DatasetInfo(_Part):
    name: str
    revision: str
    synthetic: bool
    config: JsonObject
    files_hash: str
    files: dict[str, str]
    """Each file the episodes use (relative to the release root) and its sha256."""
    skipped: list[JsonObject]
    irregular: list[JsonObject]


class ModelIdentity(_Part):
    """A model's identity (``backends.identity.model_identity``): typed where the leaderboard
    shows it; the rest (file hashes, weight sizes, a LoRA) is kept, as it pins the model too."""

    backend: str
    model: str | None
    hub_revision: str | None = None
    files: dict[str, str] | None = None
    """The definition files' sha256 of a local model folder; absent for other models."""


class PluginInfo(_Part):
    name: str
    cls: str = Field(alias="class")
    version: str
    config: JsonObject
    model: ModelIdentity | None = None
    """Absent for components that call no model."""


class PolicyInfo(PluginInfo):
    privileged: bool
    memory_only: bool = True  # absent from manifests written before the field existed


class ReaderInfo(PluginInfo):
    prompt_hash: str


class SideChannelsInfo(_Part):
    available: list[str]
    allowed: list[str]


class GitState(_Part):
    commit: str | None = None
    dirty: bool | None = None


class PlanPart(_Part):
    """What decides a run's rows (``plan.RunPlan.describe``)."""

    package: PackageInfo
    task: TaskInfo
    dataset: DatasetInfo
    dataset_details: JsonObject
    policy: PolicyInfo
    reader: ReaderInfo
    judge: JsonObject | None
    memory_view: JsonObject
    seed: int
    limit: Annotated[int, Field(ge=1)] | None
    side_channels: SideChannelsInfo
    memory_budget: JsonObject
    run: JsonObject


class RecordPart(_Part):
    """Where, when and how one invocation ran (``provenance``)."""

    git: GitState | None = None  # None: not run from a git checkout
    libraries: dict[str, str]
    hardware: JsonObject
    command: list[str]
    created_at: str


class Resume(RecordPart):
    """A resume's record, with the unhashed plan sections it ran under."""

    run: JsonObject
    dataset_details: JsonObject


class ManifestError(ValueError):
    """A manifest that lacks a field or has one of the wrong type; the message names the first."""


class Manifest(RecordPart, PlanPart):
    """A run's ``manifest.json``."""

    manifest_version: int
    plan_hash: str
    resumes: list[Resume] = Field(default_factory=list)
    backends: dict[str, JsonObject] | None = None
    """What each loaded backend reports (``Backend.describe``), by role; absent for runs that
    loaded no model."""

    @classmethod
    def parse(cls, manifest: Mapping[str, Any]) -> Manifest:
        """``manifest`` (JSON values, e.g. untrusted) checked strictly, or ``ManifestError``."""
        try:
            return cls.model_validate(dict(manifest))
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            raise ManifestError(f"manifest.json: {_where(first['loc'])}: {first['msg']}") from None

    def to_json(self) -> dict[str, Any]:
        """The manifest as JSON values, exactly the keys it was given."""
        return self.model_dump(by_alias=True, exclude_unset=True)

    def updated(self, **sections: Any) -> Manifest:
        """A copy with ``sections`` set, checked like a manifest read back."""
        return self.parse(self.to_json() | sections)

    def resumed_by(self, other: Manifest) -> Manifest:
        """This run's manifest once ``other`` (an equal plan) resumed it: ``other``'s record
        and unhashed plan sections appended to ``resumes``; the rest stays this run's."""
        given = other.to_json()
        resume = {key: given.get(key) for key in Resume.model_fields}
        return self.updated(resumes=[*self.to_json().get("resumes", []), resume])


def _where(location: tuple[int | str, ...]) -> str:
    """A field's place as a dotted path for the one-line reason. Its keys may be a bundle's
    (a ``libraries`` key), so each is escaped (``untrusted.printable_name``: no newline or bidi
    control gets through) and the path is cut short."""
    return cut(".".join(printable_name(str(part)) for part in location), 160)


_NOT_HASHED = {"manifest_version", "plan_hash", "resumes", "backends", *RecordPart.model_fields,
               *UNHASHED_PLAN_KEYS}


def hashed_plan(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a manifest (or of a plan) that decides a run's rows; equal parts may resume."""
    return {k: v for k, v in manifest.items() if k not in _NOT_HASHED}
