"""Shared by the real-benchmark leaderboard tests: short runs on the fixture releases (whose
question manifests the package ships, marked ``fixture``), exported as bundles."""

from __future__ import annotations

from pathlib import Path

from leaderboard.bundle import export_bundle
from taskmem_bench.cli import main
from taskmem_bench.testing.releases import egolife, egotempo, videomme

PUBLIC_EGOTEMPO = Path(__file__).parent / "data" / "egotempo_v1.0" / "egotempo_openQA.json"
"""The public EgoTempo v1.0 annotation file (CC BY 4.0; see its README)."""


def egotempo_fixture_bundles(folder: Path, judge_model: Path) -> dict[str, Path]:
    """The blind control and the ``subtitles`` policy (which writes nothing: EgoTempo has no
    side channel) on the fixture release, both with the deterministic ``cpu`` reader (so the
    judge, configured on ``judge_model``, is never asked: every answer abstains); keyed
    blind, subtitles."""
    root = egotempo.write_release(folder / "release")
    runs = folder / "runs"
    assert main(["run", "--task", "egotempo_stream", "--policy", "blind,subtitles", "--reader",
                 "cpu", "--set", f"root={root}", "--set", "judge.backend=transformers",
                 "--set", f"judge.model={judge_model}", "--out", str(runs)]) == 0
    return {name: export_bundle(runs / "egotempo_stream" / name, folder / f"{name}.tar.gz")
            for name in ("blind", "subtitles")}


def fixture_bundles(folder: Path, task: str, root: Path, policies: tuple[str, ...]) -> dict[str, Path]:
    """``policies`` on ``task`` over the release at ``root`` with the deterministic ``cpu``
    reader, exported; keyed by policy."""
    runs = folder / "runs"
    assert main(["run", "--task", task, "--policy", ",".join(policies), "--reader", "cpu",
                 "--set", f"root={root}", "--out", str(runs)]) == 0
    return {name: export_bundle(runs / task / name, folder / f"{task}-{name}.tar.gz")
            for name in policies}


def videomme_fixture_bundles(folder: Path) -> dict[str, Path]:
    """The blind control and ``subtitles`` (which writes the subtitles it is allowed) on the
    Video-MME fixture release, task ``videomme_stream_subtitles``."""
    root = folder / "videomme"
    videomme.write_release(root)
    return fixture_bundles(folder, "videomme_stream_subtitles", root, ("blind", "subtitles"))


def egolife_fixture_bundles(folder: Path) -> dict[str, Path]:
    """The blind control on the EgoLife fixture release, task ``egolife_stream``."""
    return fixture_bundles(folder, "egolife_stream", egolife.write_release(folder / "egolife"),
                           ("blind",))
