"""Every plugin kind registers the same way: a package outside the core (``tests/plugin_pkg``)
adds a dataset, a scoring and a memory view by ``module:Class`` names in a task file alone, and
runs end to end through the CLI; the shipped ones are entry points of the same groups."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from plugin_pkg.view import LastEntries
from taskmem_bench.cli import main
from taskmem_bench.datasets import available_datasets
from taskmem_bench.datasets.egolife_window import PaperWindow
from taskmem_bench.memory import MemoryEntry, MemorySnapshot
from taskmem_bench.memory_view import FullMemory, MemoryView, available_memory_views
from taskmem_bench.schema import Question
from taskmem_bench.taskconfig import ConfigError, load_task

TASK = Path(__file__).parent / "plugin_pkg" / "said_numbers.yaml"


def test_a_plugin_package_runs_end_to_end_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Right after the number is said the view shows it and the reader answers (naming the
    number, the scoring's variant); at the end the view's last two entries are later talk, so
    the reader abstains. The run's results table shows the scoring's headline figure; a report
    read back from disk does not, as it imports no ``module:Class`` a summary names."""
    out = tmp_path / "runs"
    assert main(["run", "--task", str(TASK), "--policy", "subtitles", "--out", str(out),
                 "--set", f"root={tmp_path / 'data'}"]) == 0
    assert "names_number" in capsys.readouterr().out
    run = out / "said_numbers" / "subtitles"
    rows = pl.read_parquet(run / "rows.parquet").sort("question_id")
    assert rows["memory_entries"].to_list() == [1, 3, 1, 3]
    assert rows["memory_shown"].to_list() == [1, 2, 1, 2]
    assert rows["correct"].to_list() == [True, False, True, False]
    assert rows["abstained"].to_list() == [False, True, False, True]
    assert [json.loads(v)["names_number"] for v in rows["variants"]] == [True, False, True, False]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["dataset"]["name"] == "said-numbers"
    assert manifest["memory_view"] == {"kind": "plugin_pkg.view:LastEntries",
                                       "oracle_localised": False, "last": 2}
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["acc"], summary["cov"]) == (0.5, 0.5)
    assert summary["scoring"]["variants"] == {"names_number": 0.5}
    assert main(["report", str(out), "--format", "json"]) == 0
    assert "names_number" not in json.loads(capsys.readouterr().out)[0]


def test_shipped_datasets_and_memory_views_are_entry_points() -> None:
    assert set(available_datasets()) == {"egolife", "egotempo", "mini", "videomme"}
    assert set(available_memory_views()) == {"full", "paper_window"}


class _ByCategory(MemoryView):
    category_informed = True

    def keep(self, entries: tuple[MemoryEntry, ...], question: Question):
        return entries if question.category == "recall" else ()


def test_the_leaderboard_refuses_oracle_localised_and_category_informed_views() -> None:
    assert FullMemory().leaderboard_refusal is None
    assert LastEntries().leaderboard_refusal is None
    assert PaperWindow().leaderboard_refusal == "oracle-localised"
    assert _ByCategory().leaderboard_refusal == "category-informed"


class _Inventing(MemoryView):
    def keep(self, entries: tuple[MemoryEntry, ...], question: Question):
        return (*entries, MemoryEntry(0.0, 1.0, "never written"))


def test_a_memory_view_only_selects_from_the_snapshot() -> None:
    entries = tuple(MemoryEntry(float(t), t + 1.0, f"entry {t}") for t in range(3))
    snapshot = MemorySnapshot("s", 5.0, entries)
    question = Question("q", "s", 5.0, "Which?", ("a", "b"), "recall")
    assert FullMemory().select(snapshot, question) is snapshot
    assert LastEntries().select(snapshot, question).entries == entries[1:]
    with pytest.raises(ValueError, match="not in the snapshot"):
        _Inventing().select(snapshot, question)


def test_an_unknown_memory_view_is_a_config_error_naming_the_choices(tmp_path: Path) -> None:
    task = tmp_path / "bad_view.yaml"
    task.write_text("dataset: mini\nmemory_view: nope\n")
    with pytest.raises(ConfigError, match="unknown memory view 'nope'; choose from: full, "
                                          "paper_window"):
        load_task(str(task))
