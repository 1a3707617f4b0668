"""Task configs: declarative YAML shipped in ``taskmem_bench.tasks``, plus ``--set`` overrides.

A task file names a dataset adapter and its arguments, how streams are cut into clips, which
side channels exist and which the run allows, the memory budget and the default reader::

    name: mini
    dataset: mini
    dataset_args: {environment: mixed}
    stream: {clip_seconds: 10, sample_fps: 2}
    side_channels: {available: [speech], allowed: [speech]}
    memory: {tokens_per_clip: 16}
    learning: {wave_streams: 8}   # streams per wave of a policy that learns across streams
    reader: cpu
    reader_args: {}          # also policy_args, judge_args: see below
    scoring: paper           # or videomme / egolife / egotempo (scoring/variants.py)
    memory_view: full        # or paper_window (memory near query and evidence), or module:Class

``include: other.yaml`` merges another task file underneath (its keys are overridden).

Every setting has one route (``plan.build_plan``): its config's default, then the task's value,
then ``--set``. The stream, side-channel, budget and learning sections are the task's own; the
dataset, policy, reader and judge are plugins, whose settings the task gives as ``dataset_args``,
``policy_args``, ``reader_args`` and ``judge_args``, all applied by one rule: they are that
component's starting values, validated with its ``Config`` (a key it lacks is an error), while
the component is the task's: ``reader_args`` only while the task's reader is used (another
``--reader`` starts from its own defaults), ``judge_args`` only for a scoring that judges. A
task's ``policy_args`` hold for every policy run on it, so a task sets only settings its
policies share (e.g. ``ModelPolicy``'s decoding).
"""

from __future__ import annotations

import dataclasses
import re
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import pydantic
import yaml

from taskmem_bench.memory_view import load_memory_view
from taskmem_bench.plugins import UnknownPluginError
from taskmem_bench.schema import MemoryBudget
from taskmem_bench.scoring.base import load_scoring


class ConfigError(ValueError):
    """A task file or an override that cannot be used; the message names the problem."""


@dataclass(frozen=True)
class StreamSettings:
    """How streams are cut and sampled. The paper uses 10 s clips."""

    clip_seconds: float = 10.0
    sample_fps: float = 1.0
    max_side: int | None = None

    def __post_init__(self) -> None:
        if not all(math.isfinite(x) and x > 0 for x in (self.clip_seconds, self.sample_fps)):
            raise ValueError("clip_seconds and sample_fps must be positive and finite")
        if self.max_side is not None and self.max_side < 1:
            raise ValueError("max_side must be at least 1 (or none)")


@dataclass(frozen=True)
class SideChannels:
    """Side channels the dataset has, and the ones this run passes to policies."""

    available: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class LearningSettings:
    """How a policy that learns across streams (``Policy.learns_across_streams``) meets them:
    streams run in index order in waves of ``wave_streams``, and it adapts only between waves.
    It changes such a policy's rows, so it is hashed into the plan; other policies ignore it."""

    wave_streams: int = 8

    def __post_init__(self) -> None:
        if self.wave_streams < 1:
            raise ValueError("wave_streams must be at least 1")


@dataclass(frozen=True)
class RunSettings:
    """Throughput knobs and the call deadlines; they change speed, never a result that was
    computed (a call past the deadline fails its stream or questions, recorded as failures)."""

    batch_size: int = 8
    streams_in_flight: int = 16  # twice batch_size keeps the model's batches full (benchmarks/batching.py)
    call_timeout_s: float | None = None
    """Wall-clock limit of each policy and reader call (``plugin_calls.CallGuard``); None: none."""
    adapt_timeout_s: float | None = 3600.0
    """Wall-clock limit of each ``Policy.end_wave`` (adapting may train for far longer than a
    call takes); None: ``call_timeout_s`` applies."""
    decode_workers: int = 0
    """Processes that decode streams ahead of the model (``decode``); 0: the runner decodes
    each clip itself when it needs it."""
    prefetch_clips: int = 2
    """With decode workers: decoded clips each stream in flight may have waiting."""
    decode_timeout_s: float = 600.0
    """With decode workers: the longest wait for one clip before its stream fails."""
    executor: str = "local"
    """Where streams run: ``local`` (this process) or ``ray`` (actors, ``ray_executor``)."""
    ray_address: str | None = None
    """The Ray cluster to join (``ray.init(address=...)``); None: a running one, else a new
    local one."""
    ray_actors: int | None = None
    """Actors that streams are spread over; None: as many as the cluster has GPUs (when
    ``ray_gpus_per_actor`` > 0) or CPUs for them."""
    ray_cpus_per_actor: float | None = None
    """CPUs Ray reserves for each actor; None: one, plus one per decode worker."""
    ray_gpus_per_actor: float = 0.0
    """GPUs Ray reserves for each actor (1: one model engine per GPU)."""
    ray_stream_attempts: int = 3
    """Actors a stream may be started on before an actor's loss fails it."""
    ray_progress_timeout_s: float = 3600.0
    """The longest an actor may go without a report before it is killed (its unfinished
    streams are then retried like a lost actor's). It reports between rounds only, after each
    that finishes a stream and else at most every 10 s, so this bounds one round, an actor's
    first, in which it loads its models, included."""

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.streams_in_flight < 1:
            raise ValueError("batch_size and streams_in_flight must be at least 1")
        if self.decode_workers < 0 or self.prefetch_clips < 1:
            raise ValueError("decode_workers must be at least 0 and prefetch_clips at least 1")
        if self.executor not in ("local", "ray"):
            raise ValueError(f"executor must be 'local' or 'ray', got {self.executor!r}")
        if (self.ray_actors is not None and self.ray_actors < 1) or self.ray_stream_attempts < 1:
            raise ValueError("ray_actors and ray_stream_attempts must be at least 1")
        if not (self.actor_cpus >= 0 and self.ray_gpus_per_actor >= 0):
            raise ValueError("ray_cpus_per_actor and ray_gpus_per_actor must be at least 0")
        for name in ("call_timeout_s", "adapt_timeout_s", "decode_timeout_s",
                     "ray_progress_timeout_s"):
            limit = getattr(self, name)
            if limit is not None and not 0 < limit < math.inf:
                raise ValueError(f"{name} must be positive and finite (or none)")

    @property
    def actor_cpus(self) -> float:
        """CPUs each Ray actor reserves: ``ray_cpus_per_actor``, else its engine and its
        decode workers, one each."""
        if self.ray_cpus_per_actor is not None:
            return self.ray_cpus_per_actor
        return 1.0 + self.decode_workers

    @property
    def adapt_limit(self) -> tuple[str, float | None]:
        """The setting that bounds ``end_wave`` and its seconds."""
        if self.adapt_timeout_s is not None:
            return "adapt_timeout_s", self.adapt_timeout_s
        return "call_timeout_s", self.call_timeout_s


@dataclass(frozen=True)
class TaskConfig:
    name: str
    dataset: str
    description: str = ""
    dataset_args: Mapping[str, Any] = field(default_factory=dict)
    stream: StreamSettings = StreamSettings()
    side_channels: SideChannels = SideChannels()
    memory: MemoryBudget = MemoryBudget()
    learning: LearningSettings = LearningSettings()
    reader: str = "cpu"
    reader_args: Mapping[str, Any] = field(default_factory=dict)
    policy_args: Mapping[str, Any] = field(default_factory=dict)
    judge_args: Mapping[str, Any] = field(default_factory=dict)
    scoring: str = "paper"
    memory_view: str = "full"

    def to_dict(self) -> dict[str, Any]:
        """The task as a run's manifest records it (JSON values), for a task whose
        ``dataset_args`` and ``reader_args`` are given: a loaded one. A plan's task has them
        resolved into its configs instead, so its record is ``RunPlan.task_record``.
        ``policy_args`` and ``judge_args`` are left out: a run records the configs they went
        into (the manifest's ``policy.config``, ``judge.config``), and so a task without them
        records what it recorded before they existed. ``learning`` is left out while it holds
        its defaults, for the same reason; a task or ``--set`` that changes it is recorded (and
        hashed)."""
        record = json.loads(json.dumps(dataclasses.asdict(self)))
        del record["policy_args"], record["judge_args"]
        if self.learning == LearningSettings():
            del record["learning"]
        return record


def config_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _task_dir() -> Path:
    return Path(str(files("taskmem_bench.tasks")))


def available_tasks() -> list[str]:
    return sorted(p.stem for p in _task_dir().glob("*.yaml"))


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        raise ConfigError(f"task file {path.name} includes itself")
    try:
        data = load_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"task file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"task file {path} must hold a mapping")
    include = data.pop("include", None)
    if include is None:
        return data
    included = path.parent / include
    if not included.is_file():
        raise ConfigError(f"task file {path.name} includes {include}, which does not exist")
    base = _read_yaml(included, (*seen, path))
    return _deep_merge(base, data)


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


class _Loader(yaml.SafeLoader):
    """YAML with only ``true``/``false`` as booleans (YAML 1.2): PyYAML's 1.1 rules read
    ``off``, ``on``, ``yes`` and ``no`` as booleans, so ``--set adapt=off`` would reach a
    setting whose choices are words as ``False``. A boolean setting still takes those words:
    its validation reads them."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_yaml(text: str) -> Any:
    """Task files and ``--set`` values, read with :class:`_Loader`."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


INT64_RANGE = (-(2**63), 2**63 - 1)
"""Every integer setting (and ``--seed``, ``--limit``) fits a signed 64-bit integer: manifests
are read back as 64-bit columns (results, the leaderboard) and passed to backends that take one."""


def check_int64(value: Any, what: str) -> None:
    """Refuse an integer, anywhere in ``value`` (nested in lists or mappings), outside
    ``INT64_RANGE``, naming where it is."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            check_int64(item, f"{what}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_int64(item, f"{what}[{index}]")
    elif isinstance(value, int) and not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
        raise ConfigError(f"{what} = {value} is outside the signed 64-bit integer range")


def validate(cls: type, values: Mapping[str, Any], what: str) -> Any:
    """Build the dataclass ``cls`` from ``values``, converting strings, with a readable error."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{what}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    try:
        config = pydantic.TypeAdapter(cls).validate_python(dict(values))
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors()
        )
        raise ConfigError(f"{what}: {problems}") from None
    check_int64(dataclasses.asdict(config), what)  # after conversion: a quoted "9…9" is an int now
    return config


def load_task(name_or_path: str) -> TaskConfig:
    """A shipped task by name, or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix and "/" not in name_or_path:
        path = _task_dir() / f"{name_or_path}.yaml"
        if not path.exists():
            raise ConfigError(
                f"unknown task '{name_or_path}'; choose from: {', '.join(available_tasks())}"
            )
    elif not path.exists():
        raise ConfigError(f"task file not found: {path}")
    data = _read_yaml(path)
    data.setdefault("name", path.stem)
    sections = {"stream": StreamSettings, "side_channels": SideChannels, "memory": MemoryBudget,
                "learning": LearningSettings}
    for key, cls in sections.items():
        data[key] = validate(cls, data.get(key) or {}, f"task {path.name}: {key}")
    task = validate(TaskConfig, data, f"task {path.name}")
    check_side_channels(task)
    check_choices(task)
    return task


def check_choices(task: TaskConfig) -> None:
    """The task's scoring and memory view (``taskmem_bench.memory_view``) can be loaded, and
    it gives ``judge_args`` only to a scoring that has a judge."""
    try:
        judged = load_scoring(task.scoring).judged
        load_memory_view(task.memory_view)
    except (ValueError, UnknownPluginError) as exc:
        raise ConfigError(f"task {task.name}: {exc}") from None
    if task.judge_args and not judged:
        raise ConfigError(f"task {task.name}: judge_args given, but scoring '{task.scoring}' "
                          "judges no answers")


def check_side_channels(task: TaskConfig) -> None:
    """A run may only allow side channels the task's data has."""
    channels = task.side_channels
    extra = sorted(set(channels.allowed) - set(channels.available))
    if extra:
        raise ConfigError(
            f"side channels {', '.join(extra)} are allowed but task {task.name} does not have "
            f"them; available: {', '.join(channels.available) or 'none'}"
        )


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with a YAML value (``none`` means no value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"malformed --set '{text}'; expected key=value, e.g. --set sample_fps=2")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed --set '{text}': {exc}") from None
    if isinstance(value, str) and value.lower() == "none":
        value = None
    return key.strip(), value


@dataclass
class Overridable:
    """One settings section that ``--set`` can reach: its name and its current values."""

    name: str
    cls: type
    values: dict[str, Any]
    bare_keys: bool = True
    """Whether a bare ``--set key=`` reaches this section; if not, only ``name.key`` does."""

    @property
    def field_names(self) -> set[str]:
        return {f.name for f in dataclasses.fields(self.cls)}

    def takes(self, key: str, *, bare: bool) -> bool:
        return key in self.field_names and (self.bare_keys or not bare)


def apply_overrides(
    sections: Iterable[Overridable], overrides: Iterable[tuple[str, Any]], *, strict: bool = True
) -> dict[str, Any]:
    """Apply ``--set`` pairs to the sections; returns each section's validated dataclass.

    A bare key goes to every section that has a field of that name (``model`` reaches both the
    policy and the reader); ``section.key`` reaches one, and wins over a bare key whatever
    their order. A key no section has is an error that lists the valid keys, unless ``strict``
    is off (the caller checked keys across several plans, e.g. a key only one of several
    policies has).
    """
    sections = list(sections)
    by_name = {s.name: s for s in sections}
    for key, value in sorted(overrides, key=lambda pair: "." in pair[0]):  # bare keys first
        section_name, dot, field_name = key.rpartition(".")
        if dot:
            targets = [by_name[section_name]] if section_name in by_name else []
        else:
            targets = sections
        targets = [s for s in targets if s.takes(field_name, bare=not dot)]
        if not targets and strict:
            valid = sorted(f"{s.name}.{f}" for s in sections for f in s.field_names)
            raise ConfigError(f"unknown --set key '{key}'; valid keys: {', '.join(valid)}")
        for section in targets:
            section.values[field_name] = value
    return {s.name: validate(s.cls, s.values, s.name) for s in sections}
