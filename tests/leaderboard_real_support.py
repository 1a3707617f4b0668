"""Shared by the real-benchmark leaderboard tests: short runs on the EgoTempo fixture release
(whose question manifest the package ships), exported as bundles."""

from __future__ import annotations

from pathlib import Path

from leaderboard.bundle import export_bundle
from taskmem_bench.cli import main
from taskmem_bench.testing.releases import egotempo

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
