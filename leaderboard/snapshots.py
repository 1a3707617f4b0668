"""Each row's memory snapshot is what its stream's memory log held at the ask time.

The memory log is parsed once into ``memorylog.MemoryLog`` (the type the runner and the run
directory use) and each row's snapshot rebuilt from it (``memorylog.row_snapshots``: the
entries written by the ask time, with the stated digest, token and character counts). The
rebuilt snapshots are what ``reproduce`` re-runs the reader on.
"""

from __future__ import annotations

import polars as pl

from leaderboard.errors import Rejected
from taskmem_bench.memory import MemorySnapshot
from taskmem_bench.memorylog import MemoryLog, MemoryLogError, row_snapshots
from taskmem_bench.untrusted import show


def check_memory(rows: pl.DataFrame, memory: pl.DataFrame) -> dict[str, MemorySnapshot]:
    """Each row's snapshot is the memory its stream had written by the ask time, as stated;
    returns the rebuilt snapshots by question id."""
    try:
        logs = MemoryLog.from_frame(memory)
    except MemoryLogError as exc:
        raise Rejected(f"memory.parquet: {exc.reason(show)}") from None
    try:
        return row_snapshots(rows, logs)
    except MemoryLogError as exc:
        raise Rejected(exc.reason(show)) from None
