"""The memory store: append-only, snapshots by clip end, rendering, budgets."""

from __future__ import annotations

import pytest

from taskmem_bench.memory import (
    MemoryEntry,
    MemorySnapshot,
    MemoryStore,
    count_tokens,
    render_time,
    truncate_tokens,
)
from taskmem_bench.readers import ReaderInput
from taskmem_bench.readers.prompts import render_prompt
from taskmem_bench.schema import MemoryBudget


def test_snapshot_holds_entries_of_clips_ended_by_t() -> None:
    store = MemoryStore("s")
    store.write(0, 10.0, [MemoryEntry(0, 10, "a")])
    store.write(1, 20.0, [MemoryEntry(10, 20, "b"), MemoryEntry(12, 15, "c")])
    store.write(2, 25.5, [MemoryEntry(20, 25.5, "d")])
    assert [e.text for e in store.snapshot(9.99).entries] == []
    assert [e.text for e in store.snapshot(20.0).entries] == ["a", "b", "c"]
    assert [e.text for e in store.snapshot(25.4).entries] == ["a", "b", "c"]
    assert store.snapshot(30).digest != store.snapshot(20).digest


def test_entries_claiming_other_times_are_still_cut_by_the_clip_that_wrote_them() -> None:
    store = MemoryStore("s")
    store.write(0, 10.0, [MemoryEntry(50, 60, "claims the future")])
    assert store.snapshot(9.0).entries == ()


def test_store_is_append_only_in_time_order() -> None:
    store = MemoryStore("s")
    store.write(1, 20.0, [])
    with pytest.raises(ValueError, match="append-only"):
        store.write(0, 10.0, [])


def test_store_rejects_non_entries() -> None:
    with pytest.raises(TypeError, match="MemoryEntry"):
        MemoryStore("s").write(0, 10.0, ["just a string"])


def test_render_uses_paper_blocks_in_time_order() -> None:
    store = MemoryStore("s")
    store.write(0, 3700.0, [MemoryEntry(3605, 3612.5, "later"), MemoryEntry(5, 9, "early")])
    assert store.snapshot(3700).render() == "00:00:05-00:00:09\nearly\n\n01:00:05-01:00:12\nlater"


def test_token_count_and_truncation() -> None:
    assert count_tokens("The red circle, on the shelf.") == 8
    assert truncate_tokens("The red circle, on the shelf.", 4) == "The red circle,"
    assert truncate_tokens("short", 10) == "short"


def test_per_clip_budget_truncates_then_drops_and_reports() -> None:
    store = MemoryStore("s", MemoryBudget(tokens_per_clip=5))
    report = store.write(0, 10.0, [MemoryEntry(0, 10, "one two three"), MemoryEntry(0, 10, "four five six"), MemoryEntry(0, 10, "seven")])
    assert [e.entry.text for e in store.log] == ["one two three", "four five"]
    assert store.log[1].entry.meta == {"truncated": True}
    assert report.dropped_tokens == 2 and report.exceeded
    assert store.write(1, 20.0, [MemoryEntry(10, 20, "fits")]).dropped_tokens == 0
    assert store.dropped_tokens == 2


def test_per_minute_budget_counts_the_last_sixty_seconds() -> None:
    store = MemoryStore("s", MemoryBudget(tokens_per_minute=6))
    store.write(0, 10.0, [MemoryEntry(0, 10, "a b c d")])
    assert store.write(1, 20.0, [MemoryEntry(10, 20, "e f g")]).dropped_tokens == 1
    assert store.write(2, 69.0, [MemoryEntry(60, 69, "h")]).dropped_tokens == 1  # a-d and e,f still count
    assert store.write(3, 75.0, [MemoryEntry(69, 75, "i j k l")]).dropped_tokens == 0  # 10 s clip aged out


def test_stored_entries_are_copies_that_later_mutation_cannot_change() -> None:
    import numpy as np

    shared = {"score": np.float32(0.5)}
    store = MemoryStore("s")
    store.write(0, 10.0, [MemoryEntry(np.float64(0), 10, "a", meta=shared)])
    before = store.snapshot(10).digest
    shared["score"] = 9
    assert store.snapshot(10).digest == before
    assert store.log[0].entry.meta == {"score": 0.5}


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        (MemoryEntry(0, float("inf"), "x"), "finite"),
        (MemoryEntry(5, 1, "x"), "t_start <= t_end"),
        (MemoryEntry(0, 1, "x", meta={"f": object()}), "JSON-serialisable"),
    ],
)
def test_malformed_entries_are_refused_with_the_reason(entry: MemoryEntry, error: str) -> None:
    with pytest.raises((TypeError, ValueError), match=error):
        MemoryStore("s").write(0, 10.0, [entry])


def test_times_past_a_day_carry_the_day() -> None:
    """A week-long EgoLife stream renders DAY<d> HH:MM:SS (day 1 from 0 s), on every entry and
    the ask time once the snapshot is past day 1; streams within a day keep plain HH:MM:SS."""
    assert render_time(3723.9) == "01:02:03"
    assert render_time(86400 + 3723) == "DAY2 01:02:03"
    assert render_time(3723, with_day=True) == "DAY1 01:02:03"
    week = MemorySnapshot("jake", 2 * 86400 + 60.0, (MemoryEntry(30.0, 40.0, "a"),
                                                     MemoryEntry(86400 + 5.0, 86400 + 15.0, "b")))
    assert week.render() == "DAY1 00:00:30-DAY1 00:00:40\na\n\nDAY2 00:00:05-DAY2 00:00:15\nb"
    assert render_prompt(ReaderInput("Where?", ("x", "y"), week)).count("asked at DAY3 00:01:00") == 1
    day = MemorySnapshot("v", 95.0, (MemoryEntry(30.0, 40.0, "a"),))
    assert day.render() == "00:00:30-00:00:40\na"
