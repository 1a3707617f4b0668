"""Which track a run competes on, and what a control run must be to stand as a reference.

*Fixed-reader* runs use the task's pinned reader exactly, so they compare policies alone; *open*
runs use any other reader; *controls* (the control policies, privileged policies and those
that hand the reader more than memory) are reference points, never ranked. The blind
control's Acc is every policy's memory-gain baseline, so a control must be this package's
control class, the blind control must have written nothing, and a control's reader must be
one whose raw outputs validation can reproduce.
"""

from __future__ import annotations

import dataclasses
import json

import polars as pl

from leaderboard.errors import Rejected
from taskmem_bench.manifest import Manifest
from taskmem_bench.policy import available_policies
from taskmem_bench.readers import Reader, load_reader
from taskmem_bench.taskconfig import TaskConfig, validate
from taskmem_bench.untrusted import show

CONTROL_POLICIES = ("blind", "oracle", "oracle-priority", "recent-frames")
FIXED, OPEN, CONTROL = "fixed-reader", "open", "control"
TRACKS = (FIXED, OPEN, CONTROL)


def track(m: Manifest, shipped: TaskConfig) -> str:
    """Controls are the control policies, privileged and non-memory-only policies; fixed-reader runs use the
    task's pinned reader exactly (name, version, prompt and config); the rest are open."""
    if m.policy.name in CONTROL_POLICIES or m.policy.privileged or not m.policy.memory_only:
        return CONTROL
    if m.reader.name != shipped.reader:
        return OPEN
    pinned = load_reader(shipped.reader)
    config = dataclasses.asdict(validate(pinned.Config, shipped.reader_args, "reader"))
    same = (
        m.reader.version == pinned.version
        and m.reader.prompt_hash == pinned.prompt_hash()
        and m.reader.config == json.loads(json.dumps(config))
    )
    return FIXED if same else OPEN


def check_control_policy(m: Manifest, memory: pl.DataFrame) -> None:
    """A policy named like a control is this package's control class (lookalike names were
    refused by ``names.check_names``), and the blind control's memory log is empty."""
    if m.policy.name in CONTROL_POLICIES:
        ours = available_policies().get(m.policy.name)
        if ours != m.policy.cls:
            raise Rejected(f"policy {m.policy.name} is a control name, but its class "
                           f"{show(m.policy.cls)} is not this package's ({ours or 'none'})")
    if m.policy.name == "blind" and memory.height:
        raise Rejected(f"a blind control writes no memory, but this bundle's memory log has "
                       f"{memory.height} entries")


def check_control_reader(m: Manifest, run_track: str, reader: Reader | None) -> None:
    """A control run's ``reader`` (``reproduce.reproducible_reader``) must exist: its raw outputs
    are then re-run, not taken on trust."""
    if reader is None and run_track == CONTROL:
        raise Rejected(f"a control run must use a registered deterministic reader at its "
                       f"installed version and prompt, so that its raw outputs can be "
                       f"reproduced; reader {show(m.reader.name)} is not one")
