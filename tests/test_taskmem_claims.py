"""Claim precision and richness, the benchmark's measures of what a memorizer wrote."""

from __future__ import annotations

from taskmem.claims import claimed_kind, tally_log, window_facts
from taskmem.minidata import training_config
from taskmem_bench.datasets.mini.dataset import plan_episode
from taskmem_bench.memory import MemoryEntry, StoredEntry


def test_sentences_get_the_kind_their_wording_claims():
    assert claimed_kind("The sign shows the word EXIT.") == "text"
    assert claimed_kind("There are 5 red stars on the rug.") == "count"
    assert claimed_kind("Alice says the dog is called Rex.") == "speech"
    assert claimed_kind("The red star is left of the blue circle.") == "location"
    assert claimed_kind("The red star has a dotted pattern.") == "attribute"
    assert claimed_kind("A red star appears on the table.") == "object"
    assert claimed_kind("At the shelf, the person waves.") == "action"
    assert claimed_kind("Something else.") == "other"


def test_a_log_is_scored_against_the_facts_of_each_clips_window():
    world = plan_episode(training_config("dev", 1), 0).world
    first = world.facts[0]
    end = 10.0 if first.span.start < 10.0 else 20.0
    entries = [
        StoredEntry(end, 0, MemoryEntry(0.0, end, f"{first.text} The sign shows the word NOWHERE.")),
        StoredEntry(end, 0, MemoryEntry(0.0, end, first.text)),  # the same fact twice counts once
    ]
    tally = tally_log(entries, world)
    assert (first.text, first.kind) in window_facts(world, end, 50.0)
    assert sum(tally.written.values()) == 3 and sum(tally.true.values()) == 2
    assert tally.true_facts == 1
    assert tally.clips == 12  # every clip of the 120 s episode counts, written or not
    assert tally.precision == 2 / 3 and tally.richness == 1 / 12
