"""`taskmem-bench reproduce taskmem`: one command runs every arm, prints the paper's table, the
paired gain after the first adaptation and the control, and refuses what would make its figures
wrong. Here on the first 4 streams of each environment (two waves of 2: TaskMem adapts after
the first) with fewer candidates and DPO steps, so that the bundles stay ones the leaderboard
accepts (only the stream limit and policy settings differ from the shipped tasks)."""

from __future__ import annotations

import json

import pytest

from taskmem_bench.cli import main as cli

SMALL = ["--limit", "4", "--set", "candidates=2", "--set", "buffer_clips=2",
         "--set", "dpo_steps=1"]


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    results = out / "bundles"
    assert cli(["reproduce", "taskmem", "--out", str(out), "--results", str(results), *SMALL]) == 0
    return out, results


def test_reproduce_prints_the_table_the_gains_and_the_costs(reproduced, capsys):
    out, _ = reproduced
    summary = json.loads((out / "reproduce.json").read_text())
    assert set(summary["table"]) == {"count_ocr", "action_time", "mixed"}
    for env, arms in summary["table"].items():
        assert set(arms) == {"blind", "oracle", "phase_one", "taskmem"}
        assert arms["blind"]["acc"] == 0.0 and arms["oracle"]["n"] == arms["taskmem"]["n"] > 0
        gain = summary["gain_after_first_adaptation"][env]
        assert gain is not None and gain["streams"] == 2  # the second wave, after adapting
        assert summary["identical_before_first_adaptation"][env] is True
        assert [a["cutoff"] for a in summary["adaptations"][env]] == [10, 30]
    text = (out / "reproduce.md").read_text()
    assert text.startswith("| policy | count_ocr | action_time | mixed |")
    assert "| Phase One |" in text and "| TaskMem |" in text and "Cross-environment control" in text


def test_reproduce_exports_its_runs_as_bundles(reproduced):
    _, results = reproduced
    names = sorted(p.name for p in results.glob("*.tar.gz"))
    assert len(names) == 12 and "mini-count-ocr-large-taskmem.tar.gz" in names


def test_a_second_reproduce_reuses_finished_runs_and_refuses_an_adapt_override(reproduced):
    out, results = reproduced
    assert cli(["reproduce", "taskmem", "--out", str(out), "--no-export", *SMALL]) == 0
    assert cli(["reproduce", "taskmem", "--out", str(out), "--no-export", "--set", "adapt=prompt",
                *SMALL]) == 2
    assert cli(["reproduce", "taskmem", "--out", str(out), "--no-export"]) == 2  # other limit
    (out / "count_ocr" / "taskmem").rename(out / "kept")
    (out / "count_ocr" / "taskmem").mkdir()  # a run that was stopped half-way
    assert cli(["reproduce", "taskmem", "--out", str(out), "--no-export", *SMALL]) == 2
