"""A run plan: the task, policy, reader and settings of one run, resolved and validated.

Everything that can change a run's rows is in the plan; its description is hashed into the
manifest, and a run directory resumes only under the same hash. Each setting reaches the plan by
one route (``build_plan``: the config's default, the task's value, ``--set``) and is kept once,
in its validated config; the manifest's plan section is derived from those configs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import taskmem_bench
from taskmem_bench.backends.base import BackendSettings
from taskmem_bench.backends.identity import model_identity
from taskmem_bench.backends.packaged import resolve
from taskmem_bench.datasets import DatasetAdapter, DatasetRelease, load_adapter
from taskmem_bench.memory_view import MemoryView, load_memory_view
from taskmem_bench.policy import Policy, load_policy
from taskmem_bench.readers import Reader, load_reader
from taskmem_bench.schema import Episode, MemoryBudget
from taskmem_bench.scoring.judge import JudgeConfig, LLMJudge
from taskmem_bench.scoring.base import Scoring, load_scoring
from taskmem_bench.taskconfig import (
    ConfigError,
    LearningSettings,
    Overridable,
    RunSettings,
    SideChannels,
    StreamSettings,
    TaskConfig,
    apply_overrides,
    check_side_channels,
    config_hash,
)


@dataclass(frozen=True)
class RunPlan:
    task: TaskConfig
    """The task with ``--set`` applied to its own sections and the reader chosen. Its
    components' settings live in the configs below only: its ``*_args`` are empty."""
    adapter: type[DatasetAdapter]
    dataset_config: Any
    policy_name: str
    policy_cls: type[Policy]
    policy_config: Any
    reader_name: str
    reader_cls: type[Reader]
    reader_config: Any
    seed: int = 0
    limit: int | None = None
    settings: RunSettings = RunSettings()
    judge_config: JudgeConfig | None = None
    """The LLM judge of open answers; set when the task's scoring is judged."""

    def make_policy(self) -> Policy:
        return self.policy_cls(self.policy_config, seed=self.seed)

    def make_reader(self) -> Reader:
        return self.reader_cls(self.reader_config, seed=self.seed)

    def make_judge(self) -> LLMJudge | None:
        return None if self.judge_config is None else LLMJudge(self.judge_config, seed=self.seed)

    @cached_property
    def memory_view(self) -> MemoryView:
        """What the reader is shown of each snapshot: the task's ``memory_view``."""
        return load_memory_view(self.task.memory_view)

    @cached_property
    def scoring(self) -> Scoring:
        """What turns the reader's replies into verdicts: the task's ``scoring``."""
        return load_scoring(self.task.scoring)()

    def episodes(self, release: DatasetRelease) -> tuple[Episode, ...]:
        """The release's episodes this plan runs: the first ``limit`` of them."""
        return release.episodes[: self.limit] if self.limit else release.episodes

    def check_release(self, release: DatasetRelease) -> None:
        if self.policy_cls.privileged and not release.synthetic:
            raise ConfigError(
                f"policy '{self.policy_name}' is privileged (it reads ground truth) and runs only "
                f"on synthetic tasks; task '{self.task.name}' uses real data"
            )

    def task_record(self) -> dict[str, Any]:
        """The task as run, as the manifest records it: the task with its dataset's and
        reader's configs as its ``dataset_args`` and ``reader_args`` (``TaskConfig.to_dict``)."""
        return dataclasses.replace(
            self.task, dataset_args=_as_dict(self.dataset_config),
            reader_args=_as_dict(self.reader_config),
        ).to_dict()

    def describe(self, release: DatasetRelease) -> dict[str, Any]:
        """The manifest's plan section; hashed to decide whether a run may be resumed."""
        task = self.task_record()
        return {
            "package": {"name": "taskmem-bench", "version": taskmem_bench.__version__},
            "task": {"name": self.task.name, "config": task, "hash": config_hash(task)},
            "dataset": {
                "name": release.name,
                "revision": release.revision,
                "synthetic": release.synthetic,
                "config": _as_dict(self.dataset_config),
                "files_hash": config_hash(dict(release.files)),
                "files": dict(release.files),
                "skipped": [dataclasses.asdict(s) for s in release.skipped],
                "irregular": [dataclasses.asdict(i) for i in release.irregular],
            },
            "dataset_details": _as_dict(release.details),
            "policy": {
                "name": self.policy_name,
                "class": _qualname(self.policy_cls),
                "version": self.policy_cls.version,
                "privileged": self.policy_cls.privileged,
                "memory_only": self.policy_cls.memory_only,
                "config": _as_dict(self.policy_config),
                **_model(self.policy_config),
            },
            "reader": {
                "name": self.reader_name,
                "class": _qualname(self.reader_cls),
                "version": self.reader_cls.version,
                "prompt_hash": self.reader_cls.prompt_hash(),
                "config": _as_dict(self.reader_config),
                **_model(self.reader_config),
            },
            "judge": judge.describe() if (judge := self.make_judge()) else None,
            "memory_view": {"kind": self.task.memory_view, **self.memory_view.describe()},
            "seed": self.seed,
            "limit": self.limit,
            "side_channels": _as_dict(self.task.side_channels),
            "memory_budget": _as_dict(self.task.memory),
            "run": _as_dict(self.settings),
        }


def _default_model(config: Any, model: str | None) -> Any:
    """A model-using config that names no model gets the policy's default for the dataset."""
    if model and _uses_model(config) and not config.model:
        return dataclasses.replace(config, model=model)
    return config


def _uses_model(config: Any) -> bool:
    """A component calls a model exactly when its config extends the backend settings."""
    return isinstance(config, BackendSettings)


def _model(config: Any) -> dict[str, Any]:
    """The model identity of a model-using policy or reader (see backends.identity)."""
    return {"model": model_identity(config)} if _uses_model(config) else {}


@dataclass(frozen=True)
class ModelUser:
    """A component of a plan that may call a model: its ``--set`` section, how a message names
    it, and its resolved config (``None`` where the plan has no such component)."""

    section: str
    label: str
    config: Any


def check_models(users: Iterable[ModelUser]) -> None:
    """Refuse a plan in which a model-using component names no model, in one line that says
    which and the ``--set`` that fixes it: otherwise the run starts, and every clip or question
    fails on the missing model."""
    users = [u for u in users if _uses_model(u.config)]
    missing = [u for u in users if not u.config.model]
    if missing:
        raise ConfigError("; ".join(
            f"{u.label} needs a model: --set {u.section}.model=PATH_OR_NAME (served: also "
            f"--set {u.section}.backend=openai --set {u.section}.base_url=URL)"
            for u in missing
        ))
    for user in users:  # a shipped checkpoint the installed package lacks: say so now
        try:
            resolve(user.config.model)
        except (ValueError, FileNotFoundError) as exc:
            raise ConfigError(f"{user.label}: {exc}") from None


def _qualname(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _as_dict(config: Any) -> Any:
    if dataclasses.is_dataclass(config):
        return {f.name: _as_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, tuple):
        return [_as_dict(v) for v in config]
    if isinstance(config, Mapping):
        return {k: _as_dict(v) for k, v in config.items()}
    return config


def overridable_sections(
    task: TaskConfig, policy_cls: type[Policy], reader: str | None
) -> list[Overridable]:
    """The settings sections ``--set`` can reach for this task, policy and reader choice, each
    starting from the task's values: its own sections', and its ``*_args`` for the components
    (``taskconfig``'s one rule: the reader's only while the task's reader is used)."""
    reader_cls = load_reader(reader or task.reader)
    task_reader = reader in (None, task.reader)  # egolife_paper's 3 samples are for its reader
    # no bare key reaches the judge: ``--set model=`` meant for the reader must not make the
    # reader its own judge, nor ``--set temperature=`` make the judge sample
    judged = load_scoring(task.scoring).judged
    judge = Overridable("judge", JudgeConfig, dict(task.judge_args), bare_keys=False)
    return [
        Overridable("dataset", load_adapter(task.dataset).Config, dict(task.dataset_args)),
        Overridable("stream", StreamSettings, _as_dict(task.stream)),
        Overridable("side_channels", SideChannels, _as_dict(task.side_channels)),
        Overridable("memory", MemoryBudget, _as_dict(task.memory)),
        Overridable("learning", LearningSettings, _as_dict(task.learning)),
        Overridable("policy", policy_cls.Config, dict(task.policy_args)),
        Overridable("reader", reader_cls.Config, dict(task.reader_args) if task_reader else {}),
        Overridable("run", RunSettings, {}),
        *([judge] if judged else []),
    ]


def build_plan(
    task: TaskConfig,
    policy: str,
    *,
    reader: str | None = None,
    overrides: Iterable[tuple[str, Any]] = (),
    seed: int = 0,
    limit: int | None = None,
    strict: bool = True,
) -> RunPlan:
    """Resolve names to classes and apply ``--set`` overrides to every section that has the key."""
    policy_cls = load_policy(policy)
    reader_name = reader or task.reader
    sections = overridable_sections(task, policy_cls, reader)
    resolved = apply_overrides(sections, overrides, strict=strict)
    task = dataclasses.replace(
        task,
        stream=resolved["stream"],
        side_channels=resolved["side_channels"],
        memory=resolved["memory"],
        learning=resolved["learning"],
        reader=reader_name,
        # resolved into the configs below, the one copy the plan keeps
        dataset_args={}, policy_args={}, reader_args={}, judge_args={},
    )
    check_side_channels(task)
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    judge_config = resolved.get("judge")
    resolved["policy"] = _default_model(resolved["policy"], policy_cls.default_models.get(task.dataset))
    check_models([
        ModelUser("policy", f"policy '{policy}'", resolved["policy"]),
        ModelUser("reader", f"reader '{reader_name}'", resolved["reader"]),
        ModelUser("judge", f"the LLM judge of task {task.name}'s open answers", judge_config),
    ])
    return RunPlan(
        task=task,
        adapter=load_adapter(task.dataset),
        dataset_config=resolved["dataset"],
        policy_name=policy,
        policy_cls=policy_cls,
        policy_config=resolved["policy"],
        reader_name=reader_name,
        reader_cls=load_reader(reader_name),
        reader_config=resolved["reader"],
        seed=seed,
        limit=limit,
        settings=resolved["run"],
        judge_config=judge_config,
    )
