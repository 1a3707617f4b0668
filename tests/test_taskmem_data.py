"""The mini memorizer's training data: seeds disjoint from every evaluation split, per-frame
labels that match what the renderer draws, and warm-start targets without a fixed focus."""

from __future__ import annotations

import numpy as np
import pytest

from taskmem.minidata import HEADS, IGNORE, TRAINING_SEEDS, frame_labels, training_config
from taskmem.protocol import FrameSpec
from taskmem.streams import Window, compose_target
from taskmem_bench.datasets.mini.dataset import Config as MiniConfig
from taskmem_bench.datasets.mini.dataset import plan_episode
from taskmem_bench.schema import Clip
from taskmem_bench.taskconfig import available_tasks, load_task


def test_training_seeds_are_disjoint_from_every_shipped_tasks_seed():
    """A shipped mini task draws its episodes from its dataset seed; training splits draw from
    TRAINING_SEEDS. Equal seeds would mean evaluation episodes seen in training."""
    shipped = {
        load_task(name).dataset_args.get("seed", MiniConfig().seed)
        for name in available_tasks()
        if load_task(name).dataset == "mini"
    }
    assert shipped, "no shipped mini task found"
    assert not shipped & set(TRAINING_SEEDS.values())
    assert len(set(TRAINING_SEEDS.values())) == len(TRAINING_SEEDS)  # train and dev apart too


def test_training_episodes_differ_from_the_evaluation_episodes():
    train = plan_episode(training_config("train", 1), 0).world
    evaluation = plan_episode(MiniConfig(), 0).world
    assert train.digest != evaluation.digest


def test_frame_labels_follow_the_simulated_world():
    world = plan_episode(training_config("train", 1), 0).world
    sign = world.signs[0]
    t = (sign.t0 + sign.t1) / 2
    labels = frame_labels(world, t)
    assert HEADS["sign"][labels["sign"]] == sign.word
    assert HEADS["sign"][frame_labels(world, sign.t1 + 0.01)["sign"]] != sign.word
    group = world.groups[0]
    mid = (group.t0 + group.t1) / 2
    labels = frame_labels(world, mid)
    assert labels["group_count"] == group.count
    assert HEADS["group_colour"][labels["group_colour"]] == group.item.colour
    assert frame_labels(world, group.t0 + 0.1)["group_count"] == IGNORE  # still popping in
    rest = next(r for r in world.resting if r.t1 - r.t0 > 3)
    labels = frame_labels(world, (rest.t0 + rest.t1) / 2)
    shapes = [HEADS[k][v] for k, v in labels.items() if k.endswith("_shape") and "group" not in k
              and "held" not in k and v > 0]
    assert rest.item.shape in shapes
    act = world.acts[0]
    assert labels_at_act(world, act) == act.zone


def labels_at_act(world, act):
    labels = frame_labels(world, (act.t0 + act.t1) / 2)
    return HEADS["person_zone"][labels["person_zone"]]


@pytest.mark.parametrize("seed", range(5))
def test_warm_targets_vary_fit_the_budget_and_never_repeat(seed):
    facts = ["The sign shows the word EXIT.", "There are 5 red stars on the rug.",
             "Alice says the dog is called Rex.", "A blue circle appears on the table."]
    rng = np.random.default_rng(seed)
    targets = {compose_target(facts, {facts[0]}, 24, rng) for _ in range(40)}
    assert len(targets) > 5  # subsets and orders vary: no fixed focus
    for target in targets:
        assert facts[0] not in target
        assert 0 < len(target.split()) <= 24


def test_state_captions_read_out_the_frame_in_a_fixed_order():
    from taskmem.perception import state_caption

    world = plan_episode(training_config("train", 1), 0).world
    group = world.groups[0]
    t = (group.t0 + group.t1) / 2
    labels = frame_labels(world, t)
    if any(v == IGNORE for k, v in labels.items() if k != "person_zone"):
        pytest.skip("an object is popping in at the group's midpoint in this episode")
    caption = state_caption(labels)
    assert f"There are {group.count} {group.item.colour} {group.item.shape}s on the rug." in caption
    sign = next((s.word for s in world.signs if s.t0 <= t < s.t1), None)
    assert caption.startswith(f"The sign shows the word {sign}." if sign else "The sign is blank.")
    assert caption.index("The shelf holds") < caption.index("The table holds") < caption.index("The person")
    popping = dict(labels, sign=IGNORE)
    assert state_caption(popping) is None


def test_a_clip_with_fewer_frames_than_context_frames_keeps_them_all():
    frames = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    clip = Clip("s", 0, 0.0, 10.0, frames, np.array([3.0, 8.0]))
    window = Window(spec=FrameSpec(size=32, new_frames=6, context_frames=3))
    [written] = window.advanced(clip, window.new_frames(clip), "A b.").written
    assert [f.time for f in written.frames] == [3.0, 8.0]
