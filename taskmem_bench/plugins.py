"""The one plugin lookup of every kind (policies, readers, datasets, scorings, memory views,
backends, trainers, reproductions): a name in the kind's entry-point group, or a
``module:Class`` path, so a plugin nobody installed runs without an edit to this package."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TypeVar

T = TypeVar("T")


class UnknownPluginError(LookupError):
    """A name that is neither a registered plugin nor an importable ``module:Class`` path."""

    def __init__(self, kind: str, name: str, choices: list[str], detail: str = "") -> None:
        self.kind, self.name, self.choices = kind, name, choices
        extra = f" ({detail})" if detail else ""
        super().__init__(f"unknown {kind} '{name}'{extra}; choose from: {', '.join(choices)}")


PLUGIN_KINDS = ("policies", "readers", "backends", "datasets", "scorings", "memory-views",
                "trainers", "reproductions")
"""Every plugin kind; kind ``memory-views`` is the entry-point group
``taskmem_bench.memory_views``, and so on (``taskmem-bench list KIND``)."""


def registered(group: str) -> dict[str, str]:
    """Registered plugin names mapped to their ``module:attr`` targets."""
    return {ep.name: ep.value for ep in entry_points(group=group)}


def load(group: str, kind: str, name: str, base: type[T]) -> type[T]:
    """The subclass of ``base`` registered as ``name`` in ``group``, or imported from a
    ``module:Class`` path. Importing runs the plugin's module code: whatever it raises
    (``SystemExit`` included, which would otherwise end the program as a success) is this
    one-line error."""
    targets = registered(group)
    target = targets.get(name)
    if target is None and ":" not in name:
        raise UnknownPluginError(kind, name, sorted(targets))
    module_name, _, attr = (target or name).partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise UnknownPluginError(kind, name, sorted(targets), f"cannot import: {exc}") from exc
    except (Exception, SystemExit) as exc:
        raise UnknownPluginError(
            kind, name, sorted(targets), f"importing it raised {type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise UnknownPluginError(kind, name, sorted(targets), f"not a {base.__name__} subclass")
    return obj
