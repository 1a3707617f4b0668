"""How the site names a run: its policy, and what tells it apart from the other runs of that policy.

Two runs of one policy may differ only in its config (TaskMem with ``adapt=off`` and with
``adapt=both``); named by the policy alone they read as one. So a run's name adds the config
settings whose values differ among the accepted runs of its policy name (``taskmem ·
adapt=off``), computed once per build from all of them; a policy whose runs share one config
keeps its bare name. Only the manifests' recorded configs are read, never a policy's code.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from leaderboard.accepted import AcceptedRun
from leaderboard.display import model_label
from leaderboard.tracks import OPEN
from taskmem_bench.untrusted import cut, printable_name

VALUE_CHARS = 24
"""Characters of one setting's value; the run page's provenance shows the whole config."""
SETTINGS_CHARS = 60
"""Characters of all of a name's settings together."""


@dataclass(frozen=True)
class RunNames:
    """The names of one build's runs."""

    settings: Mapping[str, str]
    """By run id: the config settings that set the run apart (``adapt=off``), "" for none."""

    @classmethod
    def of(cls, runs: Iterable[AcceptedRun]) -> RunNames:
        """The names of ``runs``, which must be every accepted run of the build: a setting is
        shown when its value is not the same in every run of the policy."""
        by_policy: dict[str, list[AcceptedRun]] = defaultdict(list)
        for run in runs:
            by_policy[run.policy].append(run)
        settings = {}
        for group in by_policy.values():
            configs = [{key: _json(value) for key, value in run.manifest.policy.config.items()}
                       for run in group]  # compared as JSON: ``1`` is not ``true`` or ``1.0``
            differing = sorted({key for config in configs for key in config
                                if any(other.get(key) != config[key] for other in configs)})
            for run in group:
                config = run.manifest.policy.config
                shown = ", ".join(f"{key}={_compact(config[key])}"
                                  for key in differing if key in config)
                settings[run.run_id] = cut(printable_name(shown), SETTINGS_CHARS)
        return cls(settings)

    def name(self, run: AcceptedRun) -> str:
        """The policy name, with the config settings that set the run apart."""
        settings = self.settings[run.run_id]
        return f"{run.policy} · {settings}" if settings else run.policy

    def label(self, run: AcceptedRun) -> str:
        """The name and what else sets this run apart from others of the same policy on the
        same benchmark: its model, another reader, fewer side channels."""
        label = self.name(run)
        if run.manifest.policy.model is not None:
            label += f" · {model_label(run.manifest.policy.model)}"
        if run.track == OPEN:
            label += f" · reader {run.manifest.reader.name}"
        if set(run.side_channels) != set(run.manifest.side_channels.available):
            label += f" · side channels: {run.side_label}"
        return label


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _compact(value: Any) -> str:
    """A setting's value as a name shows it: a string without quotes, anything else as compact
    JSON, cut short."""
    return cut(value if isinstance(value, str) else _json(value), VALUE_CHARS)
