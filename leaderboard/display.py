"""How a bundle's provenance is shown to visitors: models by name, without the submitter's paths.

A manifest records where things were on the submitter's machine: the command's program and
output folder, a dataset cache, a local model folder (``/tmp/…``, ``/home/<user>/.cache/…``),
and the rows' ``error`` column holds tracebacks (``File "/home/<user>/…"``). None of that helps
a visitor and some of it identifies the machine, so run pages and their row downloads show each
absolute or home path as ``LOCAL_PATH``; the bundle itself, and its checks, keep them.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import polars as pl

from taskmem_bench.manifest import ModelIdentity

LOCAL_PATH = "<local path>"
_PATH = re.compile(
    r"""(?<![^\s=:'"(\[{,;])"""  # at the start, or after a space, '=', ':', a quote or bracket
    r"""(?:file://|/(?=[^\s/])|~[\w.-]*/|[A-Za-z]:[\\/])"""  # /x (not a URL's //), ~/, C:\
    r"""[^\s'",;)\]}]*"""
)
"""An absolute POSIX, home-relative, Windows or ``file://`` path inside a text; another URL's
``//`` is not one."""


def redact_paths(value: Any) -> Any:
    """``value`` (JSON: nested mappings and lists) with every local path in its texts replaced
    by ``LOCAL_PATH``."""
    if isinstance(value, str):
        return _PATH.sub(LOCAL_PATH, value)
    if isinstance(value, dict):
        return {redact_paths(k): redact_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_paths(v) for v in value]
    return value


def published_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """A run's rows as the site publishes them: the ``error`` column's tracebacks with their
    local paths redacted, every other cell as the bundle has it."""
    errors = [redact_paths(error) for error in rows["error"].to_list()]
    return rows.with_columns(pl.Series("error", errors, dtype=pl.String))


def model_label(model: ModelIdentity) -> str:
    """A model as a visitor reads it: its name and backend, with the hub revision where one was
    recorded. A local folder (or a served model named by a path) is named by its last part and
    the digest of its definition files, which pin it, not by where it was."""
    name = model.model or "no model"
    if model.files is not None or _PATH.fullmatch(name):
        name = re.split(r"[\\/]", name.rstrip("/\\"))[-1] or "local model"
        if model.files:
            digest = hashlib.sha256(json.dumps(model.files, sort_keys=True).encode()).hexdigest()
            name += f" (files {digest[:8]})"
    if model.hub_revision:
        name += f" @ {model.hub_revision[:8]}"
    return f"{name} ({model.backend})"
