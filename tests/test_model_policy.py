"""The model-policy base: a policy writes only its step, and the base commits each stream's new
state only when the whole batch succeeded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from taskmem_bench.memory import MemoryEntry
from taskmem_bench.model_policy import ModelPolicy, Step
from taskmem_bench.schema import Clip, MemoryBudget, StreamInfo


class Counting(ModelPolicy[tuple[str, ...]]):
    """Remembers, per stream, the clips it has seen; a clip whose id is in ``broken`` makes
    the step raise after it has computed the other streams' states, and ``short`` makes it
    return one result too few."""

    name = "counting"

    def __init__(self) -> None:
        super().__init__()
        self.broken: set[str] = set()
        self.short = False

    def initial_state(self, info: StreamInfo) -> tuple[str, ...]:
        return ()

    def step(
        self, clips: Sequence[Clip], states: Sequence[tuple[str, ...]]
    ) -> list[Step[tuple[str, ...]]]:
        steps = []
        for clip, seen in zip(clips, states):
            if f"{clip.stream_id}{clip.index}" in self.broken:
                raise RuntimeError("the model failed")
            seen = (*seen, f"{clip.stream_id}{clip.index}")
            steps.append(Step([MemoryEntry(clip.t_start, clip.t_end, " ".join(seen))], seen))
        return steps[:-1] if self.short else steps


def started(policy: ModelPolicy, streams: str) -> None:
    for s in streams:
        policy.start_stream(StreamInfo(s, 10.0, None, 10.0, 2.0, (), MemoryBudget()))


def clip(stream_id: str, index: int) -> Clip:
    empty = np.empty((0, 0, 0, 3), np.uint8)
    return Clip(stream_id, index, 10.0 * index, 10.0 * (index + 1), empty, np.empty(0))


def test_a_successful_batch_commits_every_streams_state() -> None:
    policy = Counting()
    started(policy, "ab")
    assert policy.states == {"a": (), "b": ()}
    assert policy.observe([clip("a", 0), clip("b", 0)]) == [
        [MemoryEntry(0.0, 10.0, "a0")], [MemoryEntry(0.0, 10.0, "b0")]
    ]
    assert policy.observe([clip("b", 1)]) == [[MemoryEntry(10.0, 20.0, "b0 b1")]]
    assert policy.states == {"a": ("a0",), "b": ("b0", "b1")}


@pytest.mark.parametrize("failure", ["raises", "short"])
def test_a_failed_batch_leaves_every_streams_state_as_it_was(failure: str) -> None:
    policy = Counting()
    started(policy, "abc")
    policy.observe([clip("a", 0), clip("b", 0), clip("c", 0)])
    before = dict(policy.states)
    if failure == "raises":
        policy.broken = {"c1"}  # a and b were stepped before c raised
    else:
        policy.short = True
    with pytest.raises(RuntimeError):
        policy.observe([clip("a", 1), clip("b", 1), clip("c", 1)])
    assert policy.states == before
    # the runner's clip-by-clip retry then continues the healthy streams from their old state
    policy.short = False
    assert policy.observe([clip("a", 1)]) == [[MemoryEntry(10.0, 20.0, "a0 a1")]]


def test_ending_a_stream_drops_its_state_and_info() -> None:
    policy = Counting()
    started(policy, "ab")
    policy.end_stream("a")
    assert list(policy.states) == list(policy.info) == ["b"]
