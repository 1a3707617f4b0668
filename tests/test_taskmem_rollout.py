"""Phase One's streaming rollouts: a rolling batch advanced one clip per step, whose prompts
carry the policy's own earlier descriptions."""

from __future__ import annotations

import itertools

import pytest

from taskmem.minidata import split_samples, training_config
from taskmem.protocol import format_reply
from taskmem.rollout import StreamingRollouts


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    config = training_config("train", 2)
    config = type(config)(**{**config.__dict__, "cache_dir": str(tmp_path_factory.mktemp("mini"))})
    return list(split_samples(config))


def prompt_text(row) -> str:
    return "".join(part.get("text", "<image>") for part in row["prompt"][0]["content"])


def test_the_policys_first_parseable_rollout_becomes_the_history(episodes):
    rollouts = StreamingRollouts(iter(episodes), streams=2, groups=2)
    rows = rollouts.prompts()
    first = next(rows)  # slot 0, clip 0
    assert first["slot"] == 0 and "No earlier descriptions." in prompt_text(first)
    said = "The sign shows the word HOTEL."
    rollouts.record(None, ["broken", format_reply(said), format_reply("Ignored.")],
                    slot=[0, 0, 0])
    second = next(rows)  # slot 1, the other group
    assert second["slot"] == 1
    rollouts.record(None, [format_reply("Other.")], slot=[1])
    third = next(rows)  # slot 0 again, clip 1: its history is what the policy wrote
    assert third["slot"] == 0 and said in prompt_text(third)
    assert said in third["stated"]
    assert third["group"] != first["group"]
    assert len(first["images"]) == 6 and len(third["images"]) == 7  # + the earlier clip's last


def test_a_prompt_before_its_history_is_recorded_is_an_error(episodes):
    rollouts = StreamingRollouts(iter(episodes), streams=2, groups=2)
    rows = rollouts.prompts()
    next(rows), next(rows)
    with pytest.raises(RuntimeError, match="before its last clip was scored"):
        next(rows)


def test_the_rolling_batch_stops_when_it_can_no_longer_fill_a_slot(episodes):
    """Training feeds an endless episode stream; a finite one ends the prompts at the first
    slot that cannot be refilled, so every step keeps its full batch of prompts."""
    rollouts = StreamingRollouts(iter(episodes), streams=2, groups=2)
    seen = []
    for row in itertools.islice(rollouts.prompts(), 100):
        seen.append(row["group"])
        rollouts.record(None, [format_reply("Nothing new.")], slot=[row["slot"]])
    n0, n1 = map(len, episodes)
    assert len(seen) == (2 * n0 if n0 <= n1 else 2 * n1 + 1)
    assert len(set(seen)) == len(seen)


def test_windows_hold_only_the_last_fifty_seconds(episodes):
    rollouts = StreamingRollouts(iter(episodes[:1]), streams=2, groups=2)
    rows = rollouts.prompts()
    for row in itertools.islice(rows, 8):
        rollouts.record(None, [format_reply(f"Clip {row['group']}.")], slot=[row["slot"]])
    window = rollouts.slots[0].window
    assert window.written and all(w.t_end > window.written[-1].t_end - 50 for w in window.written)
