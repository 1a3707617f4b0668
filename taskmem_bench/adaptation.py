"""A policy that learns across streams adapts between waves: the ``end_wave`` call and its record.

Such a policy (``Policy.learns_across_streams``) changes only in ``end_wave``, which the runner
calls once every stream of a wave has ended. The call runs under a deadline
(``RunSettings.adapt_timeout_s``, else ``call_timeout_s``) and is isolated like every policy
call: whatever it raises or returns, the run goes on, and the call is recorded
(``results.Adaptation``) with what the policy reported or one line naming the problem.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskmem_bench.plugin_calls import (
    PLUGIN_FAILURES, CallGuard, CallTimeout, ComponentUnavailable, failure_text,
)
from taskmem_bench.policy import Policy
from taskmem_bench.results import Adaptation
from taskmem_bench.untrusted import cut, printable_name


def learns_across_streams(policy: Policy | None) -> tuple[bool, tuple[str, str] | None]:
    """Whether ``policy`` learns across streams, read once. The answer may be a property of
    its config, so it is plugin code: one that raises, or is not a bool, makes the policy
    unusable, and the second value is the failure (reason, traceback) every stream then gets."""
    if policy is None:
        return False, None
    try:
        learns = policy.learns_across_streams
        if not isinstance(learns, bool):
            raise TypeError(f"learns_across_streams must be a bool, got {type(learns).__name__}")
    except PLUGIN_FAILURES as exc:
        return False, ("policy_error", failure_text(exc))
    return learns, None


def end_wave(
    policy: Policy,
    guard: CallGuard,
    limit: tuple[str, float | None],
    *,
    wave: int,
    stream_ids: Sequence[str],
    workspace: Path,
    streams_seen: int,
    questions_seen: int,
) -> Adaptation:
    """Call ``policy.end_wave(stream_ids)`` under ``limit`` and record it; never raises for
    what the policy does."""
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    began = time.perf_counter()
    record, error, trace, timed_out = None, None, None, False
    try:
        workspace.mkdir(parents=True, exist_ok=True)
        record = _checked_record(guard.call("end_wave()", policy.end_wave, list(stream_ids),
                                            workspace, limit=limit))
    except PLUGIN_FAILURES as exc:
        # abandoned at its deadline, or not started because an abandoned call still runs: either
        # way the policy may change whenever that call ends
        abandoned = isinstance(exc, (CallTimeout, ComponentUnavailable))
        error, trace, timed_out = _one_line(exc), failure_text(exc), abandoned
    return Adaptation(
        wave=wave, stream_ids=tuple(stream_ids), streams_seen=streams_seen,
        questions_seen=questions_seen, started_at=started_at,
        wall_s=time.perf_counter() - began, record=record, error=error, traceback=trace,
        timed_out=timed_out,
    )


def _checked_record(record: object) -> dict[str, Any] | None:
    """What ``end_wave`` returned as the record keeps it: None, or a copy of a mapping of JSON
    values (finite numbers), so the policy cannot change it afterwards."""
    if record is None:
        return None
    if not isinstance(record, Mapping):
        raise TypeError(f"end_wave() must return a mapping or None, got {type(record).__name__}")
    try:
        return json.loads(json.dumps(dict(record), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"end_wave() returned a record that is not JSON: {exc}") from None


def _one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (control characters escaped), cut short: the error an
    adaptation record names."""
    return cut(printable_name(f"{type(exc).__name__}: {' '.join(str(exc).split())}"), 300)
