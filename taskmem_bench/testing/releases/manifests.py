"""The question manifests the package ships for the fixture releases, made the way a maintainer
makes one (``prepare --publish-manifest``) from each default fixture release, then marked
``fixture`` so that the leaderboard refuses runs on them outside tests. A test checks
that the shipped ones are still what this gives; after a change to a fixture (or to the bytes a
library writes for it: the Video-MME parquet records the polars version), regenerate them::

    python -m taskmem_bench.testing.releases.manifests
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from taskmem_bench.cli import main
from taskmem_bench.question_manifest import read
from taskmem_bench.results import write_json
from taskmem_bench.testing.releases import egolife, egotempo, videomme

FIXTURES: dict[str, Callable[[Path], Path]] = {
    "egolife": egolife.write_release,
    "egotempo": egotempo.write_release,
    "videomme": lambda root: videomme.write_release(root) and root,
}
"""Each dataset's default fixture release, written under a root (which it returns)."""


def fixture_file(dataset: str) -> str:
    """The shipped file name of ``dataset``'s fixture manifest."""
    return f"fixture-{dataset}.json"


def publish_fixture(dataset: str, folder: Path) -> Path:
    """Write ``dataset``'s fixture release under ``folder`` and publish its manifest there,
    marked ``fixture``."""
    root = FIXTURES[dataset](folder / dataset)
    out = folder / fixture_file(dataset)
    code = main(["prepare", dataset, "--root", str(root), "--publish-manifest", str(out)])
    if code != 0:
        raise RuntimeError(f"prepare {dataset} exited {code}")
    write_json(out, read(out).model_copy(update={"fixture": True}).model_dump())
    return out


if __name__ == "__main__":
    shipped = Path(str(files("taskmem_bench").joinpath("question_manifests")))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TASKMEM_BENCH_CACHE"] = str(Path(tmp) / "cache")  # no trace in the real cache
        for name in FIXTURES:
            (shipped / fixture_file(name)).write_bytes(publish_fixture(name, Path(tmp)).read_bytes())
            print(shipped / fixture_file(name))
