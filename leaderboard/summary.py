"""The summary's claims: every number in summary.json is what this package computes.

The site shows the numbers this package computes, and a bundle's memory sizes only once they
are checked here: ``results.summarize`` over the rows must give the summary's scores
(Acc/Cov/Prec, their intervals, counts, per-category scores, failures) within ``TOLERANCE``,
the memory totals must be the memory log's, and the per-hour rates must follow from them and
the summary's video hours, once ``plan_check.video_hours`` has held those to the dataset's (a
real release's within ``MEDIA_TOLERANCE`` a stream: the runner divided by what it measured).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from leaderboard.bundle import Bundle
from leaderboard.errors import Rejected
from leaderboard.plan_check import MEDIA_TOLERANCE, stated_hours, video_hours
from taskmem_bench.datasets.base import PlannedStream
from taskmem_bench.manifest import Manifest
from taskmem_bench.memory import count_tokens
from taskmem_bench.results import summarize
from taskmem_bench.scoring.metrics import Scores
from taskmem_bench.taskconfig import TaskConfig
from taskmem_bench.untrusted import show

TOLERANCE = 1e-9


def check_summary(
    bundle: Bundle, m: Manifest, shipped: TaskConfig, plan: Sequence[PlannedStream] | None
) -> tuple[Scores, float]:
    """The summary states what ``results.summarize`` computes from the rows with the shipped
    task's scoring (never one the bundle names: nothing it names is imported); returns the
    scores and the video hours (``plan_check.video_hours``)."""
    summary = bundle.summary
    for key, value in (("task", m.task.name), ("policy", m.policy.name), ("reader", m.reader.name)):
        if summary.get(key) != value:
            raise Rejected(f"summary.json {key} is not the manifest's")
    try:
        expected = summarize(bundle.rows, {}, scoring=shipped.scoring)
    except ValueError as exc:  # contradictory flags: score() names them
        raise Rejected(f"rows cannot be scored: {exc}") from None
    problem = _mismatch(summary, expected, "")
    if problem:
        raise Rejected(problem)
    hours = video_hours(bundle, plan, 0.0 if m.dataset.synthetic else MEDIA_TOLERANCE)
    _check_memory_size(summary["memory"], bundle.memory, stated_hours(summary))
    return Scores.from_dict(expected), hours


def _mismatch(stated: Any, ours: Any, path: str) -> str | None:
    """The first place where ``stated`` (the bundle's summary) departs from ``ours``."""
    if isinstance(ours, Mapping):
        if not isinstance(stated, Mapping):
            return f"summary.json {path or 'root'} is not an object"
        if path and set(stated) != set(ours):
            return f"summary.json {path} lists {show(sorted(stated))[:200]}, re-scoring gives {sorted(ours)}"
        for key in ours:
            found = _mismatch(stated.get(key), ours[key], f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    if _equal(stated, ours):
        return None
    return f"summary.json states {path} = {show(stated)}, re-scoring the rows gives {ours!r}"


def _equal(stated: Any, ours: Any) -> bool:
    """Numbers within ``TOLERANCE``; ``None``, booleans and strings exactly."""
    if isinstance(ours, (int, float)) and not isinstance(ours, bool):
        return (isinstance(stated, (int, float)) and not isinstance(stated, bool)
                and math.isfinite(stated) and abs(stated - ours) <= TOLERANCE)
    return type(stated) is type(ours) and stated == ours


def _check_memory_size(stated: Mapping[str, Any], memory: pl.DataFrame, hours: float) -> None:
    """Totals equal the log's; per-hour values follow from them and the video hours (which the
    runner rounds to 4 decimals, and the rates to 1)."""
    totals = {  # chars first: a vectorised count, which rejects a bloated log before tokenising
        "chars": lambda: int(memory["text"].str.len_chars().sum()),
        "tokens": lambda: sum(map(count_tokens, memory["text"].to_list())),
    }
    for unit, count in totals.items():
        total = count()
        if stated.get(f"{unit}_total") != total:
            raise Rejected(f"summary.json states memory.{unit}_total = "
                           f"{show(stated.get(f'{unit}_total'))}, the memory log holds {total}")
        rate = stated.get(f"{unit}_per_hour")
        if hours == 0:
            ok = rate is None
        else:
            ok = (isinstance(rate, (int, float)) and not isinstance(rate, bool)
                  and total / (hours + 5e-5) - 0.05 <= rate <= total / max(hours - 5e-5, 1e-12) + 0.05)
        if not ok:
            raise Rejected(f"summary.json memory.{unit}_per_hour = {show(rate)} does not follow "
                           f"from {total} {unit} over {hours} video hours")
