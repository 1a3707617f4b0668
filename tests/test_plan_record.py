"""The manifest's plan section is derived from the plan's validated configs, one copy each, and
is still, byte for byte, the section the committed runs recorded."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from taskmem_bench.datasets import DatasetRelease
from taskmem_bench.manifest import hashed_plan
from taskmem_bench.plan import build_plan
from taskmem_bench.taskconfig import config_hash, load_task

RESULTS = Path(__file__).parent.parent / "results"


def _manifest(bundle: str) -> dict[str, Any]:
    with tarfile.open(RESULTS / f"{bundle}.tar.gz") as tar:
        return json.load(tar.extractfile("manifest.json"))


@pytest.mark.parametrize("bundle", ["mini-blind", "mini-oracle"])
def test_a_plan_describes_itself_as_the_committed_run_did(bundle: str) -> None:
    recorded = _manifest(bundle)
    plan = build_plan(load_task(recorded["task"]["name"]), recorded["policy"]["name"],
                      seed=recorded["seed"], limit=recorded["limit"])
    data = recorded["dataset"]
    release = DatasetRelease(name=data["name"], revision=data["revision"], episodes=(),
                             synthetic=data["synthetic"], files=data["files"])
    described = json.loads(json.dumps(plan.describe(release)))
    assert {k: described[k] for k in hashed_plan(described)} == hashed_plan(recorded)
    assert config_hash(hashed_plan(described)) == recorded["plan_hash"]
