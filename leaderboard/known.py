"""Is the run one this package version can verify? Its task, config and dataset must be ours.

Re-scoring is only as good as what it is checked against, so the run's task must be a shipped
task with a memory view the leaderboard ranks (not oracle-localised or category-informed:
``MemoryView.leaderboard_refusal``), with the shipped config outside ``FREE_TASK_KEYS``. A
synthetic dataset must be at the revision this package's adapter reports for the task's dataset
config (``DatasetAdapter.revision``: no data is read); a real one with the shipped dataset
settings but for where the release is read from (its revision must have a shipped question
manifest: ``question_plan.manifest_plan``, next, as no copy of the release is at hand). These
checks read only the manifest (and the shipped files), so they come first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leaderboard.errors import Rejected
from leaderboard.names import check_names
from leaderboard.question_plan import check_real_dataset
from taskmem_bench.datasets import load_adapter
from taskmem_bench.manifest import MANIFEST_VERSION, Manifest
from taskmem_bench.memory_view import load_memory_view
from taskmem_bench.taskconfig import (
    ConfigError,
    TaskConfig,
    available_tasks,
    config_hash,
    load_task,
    validate,
)
from taskmem_bench.untrusted import show

FREE_TASK_KEYS = ("description", "reader", "reader_args", "dataset_args", "side_channels.allowed")
"""Task-config keys a run may set differently from the shipped task: the reader (it decides the
track), the allowed side channels (displayed and filtered on), the dataset arguments (checked
through the dataset revision instead, so that cache location is free) and the description."""


def check_known(m: Manifest) -> TaskConfig:
    """The run's task and dataset are this package version's; returns the shipped task."""
    if m.manifest_version != MANIFEST_VERSION:
        raise Rejected(f"manifest version {m.manifest_version} is not {MANIFEST_VERSION}")
    check_names(m)
    if m.package.name != "taskmem-bench":
        raise Rejected(f"manifest is from package {show(m.package.name)}, not taskmem-bench")
    if m.task.name not in available_tasks():
        raise Rejected(f"task {show(m.task.name)} is not a task of this package version; "
                       f"known: {', '.join(available_tasks())}")
    shipped = load_task(m.task.name)
    refusal = load_memory_view(shipped.memory_view).leaderboard_refusal
    if refusal is not None:
        raise Rejected(f"task {m.task.name} shows the reader {refusal} memory (memory view "
                       f"{shipped.memory_view}); the leaderboard ranks causal runs only")
    if config_hash(m.task.config) != m.task.hash:
        raise Rejected("manifest task hash does not match its task config")
    differences = _differences(shipped.to_dict(), m.task.config)
    if differences:
        raise Rejected(f"task config differs from the shipped task {m.task.name} at "
                       f"{differences[0]}; only the reader and allowed side channels may differ")
    _check_dataset(m, shipped)
    if m.side_channels.model_dump() != m.task.config.get("side_channels"):
        raise Rejected("manifest side channels differ from its task config's")
    if not set(m.side_channels.allowed) <= set(m.side_channels.available):
        raise Rejected("manifest allows side channels the task does not have")
    if m.reader.name != m.task.config.get("reader"):
        raise Rejected("manifest reader differs from its task config's reader")
    return shipped


def _check_dataset(m: Manifest, shipped: TaskConfig) -> None:
    adapter = load_adapter(shipped.dataset)()
    if m.dataset.name != shipped.dataset:
        raise Rejected(f"dataset {show(m.dataset.name)} is not task {shipped.name}'s "
                       f"({shipped.dataset})")
    if m.dataset.config != m.task.config.get("dataset_args"):
        raise Rejected("manifest dataset config differs from its task config's dataset_args")
    if m.dataset.synthetic != adapter.synthetic:
        raise Rejected(f"manifest says synthetic={m.dataset.synthetic}; dataset "
                       f"{shipped.dataset} is synthetic={adapter.synthetic}")
    if m.policy.privileged and not adapter.synthetic:
        raise Rejected("a privileged policy ran on real data")
    if not adapter.synthetic:
        check_real_dataset(m, shipped, adapter)
        return
    try:
        ours = adapter.revision(validate(adapter.Config, shipped.dataset_args, "dataset"))
        theirs = adapter.revision(validate(adapter.Config, m.dataset.config, "dataset"))
    except ConfigError as exc:
        raise Rejected(f"dataset config is not valid for {shipped.dataset}: {exc}") from None
    if m.dataset.revision != theirs:
        raise Rejected(f"dataset revision {show(m.dataset.revision)} does not match the "
                       f"dataset config it states ({theirs})")
    if theirs != ours:
        raise Rejected(f"dataset revision {show(theirs)} is not the one task {shipped.name} "
                       f"uses in this package version ({ours})")


def _differences(shipped: Mapping[str, Any], theirs: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths where the two task configs differ, outside ``FREE_TASK_KEYS``."""
    found = []
    for key in sorted(set(shipped) | set(theirs)):
        path = f"{prefix}{key}"
        if path in FREE_TASK_KEYS:
            continue
        a, b = shipped.get(key), theirs.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            found += _differences(a, b, f"{path}.")
        elif a != b:
            found.append(f"{path} (run: {show(b)}, shipped: {show(a)})")
    return found
