"""What a run's manifest records about its invocation (git state, hardware, library versions),
and the manifest built from a plan (``manifest.Manifest``)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import taskmem_bench
from taskmem_bench.manifest import MANIFEST_VERSION, Manifest, hashed_plan
from taskmem_bench.taskconfig import config_hash


def git_state() -> dict[str, Any] | None:
    """Commit and dirtiness of the source checkout the package runs from, if it is one."""
    source = Path(taskmem_bench.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info


def library_versions(names: tuple[str, ...] = ("av", "numpy", "polars", "pillow")) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def build_manifest(plan: Mapping[str, Any], command: list[str]) -> Manifest:
    """``plan`` is what determines results (task, dataset, policy, reader, seed, run settings,
    package version); its hash decides whether a run directory may be resumed. The rest records
    where and how the run happened."""
    record = {
        "git": git_state(),
        "libraries": library_versions(),
        "hardware": hardware(),
        "command": command,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return Manifest.parse({
        "manifest_version": MANIFEST_VERSION,
        **plan,
        "plan_hash": config_hash(hashed_plan(plan)),
        **record,
    })
