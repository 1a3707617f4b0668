"""Where taskmem-bench keeps its caches (mini data, prepared manifests, HTTP responses):
one rule for all of them, so one variable moves them all."""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """``$TASKMEM_BENCH_CACHE``, else ``$XDG_CACHE_HOME/taskmem-bench``, else
    ``~/.cache/taskmem-bench``."""
    base = os.environ.get("TASKMEM_BENCH_CACHE") or (
        Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "taskmem-bench"
    )
    return Path(base).expanduser()
