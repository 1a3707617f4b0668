"""Training data for the mini memorizer, made by mini's own generator from training seeds.

Every training split uses a seed in :data:`TRAINING_SEEDS`, disjoint from the seeds of every
shipped task (``tests/test_taskmem_data.py`` checks this), so no evaluation episode is ever seen
in training. Clips come out of the same decoder and the same causal cutting as in an evaluation
run (``media.iter_clips`` with the task's stream settings, clips cut at ask times), and carry:

* the simulator's per-frame labels (:func:`frame_labels`), for perception pretraining;
* the ground-truth facts of the window, for warm-start targets and the mini judge.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from taskmem_bench.datasets.mini.dataset import Config as MiniConfig
from taskmem_bench.datasets.mini.dataset import MiniDataset, plan_episode
from taskmem_bench.datasets.mini.layout import SLOTS, STAND
from taskmem_bench.datasets.mini.render import GROW_SECONDS
from taskmem_bench.datasets.mini.vocab import (
    COLOURS, GESTURES, ITEM_ZONES, PATTERNS, PERSON_ZONES, SHAPES, SIGN_WORDS,
)
from taskmem_bench.datasets.mini.world import Act, World, WorldFact
from taskmem_bench.media import iter_clips
from taskmem_bench.schema import Clip

TRAINING_SEEDS = {"train": 1000, "dev": 1001}
"""mini ``seed`` values of the memorizer's training split and of its held-out development split
(perception accuracy, claim precision during training). Shipped tasks use other seeds."""

CLIP_SECONDS, SAMPLE_FPS, CHANNELS = 10.0, 2.0, ("speech",)
"""The stream settings of the shipped mini tasks, so training clips are cut as in evaluation."""

IGNORE = -100
NONE = "none"

HEADS: dict[str, tuple[str, ...]] = {
    "sign": (NONE, *SIGN_WORDS),
    "group_count": tuple(str(n) for n in range(8)),  # 0: no group on the rug
    "group_colour": (NONE, *COLOURS),
    "group_shape": (NONE, *SHAPES),
    "person_zone": (NONE, *PERSON_ZONES),
    "person_act": (NONE, "reach", *GESTURES),
    "held_colour": (NONE, *COLOURS),
    "held_shape": (NONE, *SHAPES),
    **{
        f"{zone}{slot}_{part}": (NONE, *values)
        for zone in ITEM_ZONES
        for slot in range(len(SLOTS[zone]))
        for part, values in (("colour", COLOURS), ("shape", SHAPES), ("pattern", PATTERNS))
    },
}
"""Perception label families and their classes; class 0 means nothing there."""


def training_config(split: str, episodes: int, environment: str = "mixed") -> MiniConfig:
    """A mini split drawn from a training seed (``split`` names one of :data:`TRAINING_SEEDS`)."""
    return MiniConfig(environment=environment, episodes=episodes, seed=TRAINING_SEEDS[split])


@dataclass(frozen=True)
class ClipSample:
    """One clip of a training episode with the ground truth the trainers may use."""

    episode: int
    clip: Clip
    world: World | None
    """The simulated world on mini; None on real data, which has no ground-truth facts."""

    def facts_between(self, start: float, end: float) -> list[WorldFact]:
        """Facts whose span overlaps ``[start, end]`` (none without a world)."""
        return [] if self.world is None else overlapping(self.world, start, end)

    @property
    def facts(self) -> list[WorldFact]:
        """The facts of this clip: overlapping ``[t_start, t_end]``."""
        return self.facts_between(self.clip.t_start, self.clip.t_end)


def overlapping(world: World, start: float, end: float) -> list[WorldFact]:
    """The world's facts whose span overlaps ``[start, end]``: what a memorizer that saw that
    stretch of the stream can know (training targets, the mini judge, claim precision)."""
    return [f for f in world.facts if f.span.start < end and f.span.end > start]


def episode_samples(config: MiniConfig, index: int, episode_release) -> Iterator[ClipSample]:
    """The clips of one generated episode, decoded and cut as a mini evaluation run does."""
    world = plan_episode(config, index).world
    stream = episode_release.stream
    cuts = sorted({q.ask_time for q in stream.questions})
    for clip in iter_clips(stream, clip_seconds=CLIP_SECONDS, sample_fps=SAMPLE_FPS, cuts=cuts,
                           channels=CHANNELS):
        yield ClipSample(index, clip, world)


def split_samples(config: MiniConfig) -> Iterator[list[ClipSample]]:
    """Each episode of the split as its list of clips (media generated into the mini cache)."""
    release = MiniDataset().load(config)
    for index, episode in enumerate(release.episodes):
        yield list(episode_samples(config, index, episode))


# -- per-frame labels ------------------------------------------------------------------------


def frame_labels(world: World, t: float) -> dict[str, int]:
    """The class of every head at time ``t``; :data:`IGNORE` where the frame is ambiguous (an
    object popping in or out, the person between zones while walking)."""
    labels = {name: 0 for name in HEADS}
    sign = next((s.word for s in world.signs if s.t0 <= t < s.t1), None)
    if sign is not None:
        labels["sign"] = HEADS["sign"].index(sign)
    for group in world.groups:
        if group.t0 <= t < group.t1:
            if _popping(t, group.t0, group.t1, True, True):
                for name in ("group_count", "group_colour", "group_shape"):
                    labels[name] = IGNORE
            else:
                labels["group_count"] = group.count
                labels["group_colour"] = HEADS["group_colour"].index(group.item.colour)
                labels["group_shape"] = HEADS["group_shape"].index(group.item.shape)
    for rest in world.resting:
        if not rest.t0 <= t < rest.t1:
            continue
        zone, slot = _slot(rest.pos)
        prefix = f"{zone}{slot}_"
        popping = _popping(t, rest.t0, rest.t1, rest.grow, rest.shrink)
        for part, value in (("colour", rest.item.colour), ("shape", rest.item.shape),
                            ("pattern", rest.pattern)):
            labels[prefix + part] = IGNORE if popping else HEADS[prefix + part].index(value)
    for held in world.carried:
        if held.t0 <= t < held.t1:
            labels["held_colour"] = HEADS["held_colour"].index(held.item.colour)
            labels["held_shape"] = HEADS["held_shape"].index(held.item.shape)
    zone, act = person_state(world, t)
    labels["person_zone"] = IGNORE if zone is None else HEADS["person_zone"].index(zone)
    labels["person_act"] = HEADS["person_act"].index(act.kind) if act else 0
    return labels


def person_state(world: World, t: float) -> tuple[str | None, Act | None]:
    """Where the person stands (``none`` at the start, None while walking) and what they do."""
    act = next((a for a in world.acts if a.t0 <= t < a.t1), None)
    if act is not None:
        return act.zone, act
    if any(w.t0 <= t < w.t1 for w in world.walks):
        return None, None
    arrived = [w for w in world.walks if w.t1 <= t]
    if not arrived:
        return NONE, None
    last = max(arrived, key=lambda w: w.t1)
    return next((z for z, p in STAND.items() if math.dist(p, last.p1) < 1e-9), NONE), None


def _slot(pos: tuple[float, float]) -> tuple[str, int]:
    for zone, slots in SLOTS.items():
        for k, point in enumerate(slots):
            if math.dist(point, pos) < 1e-9:
                return zone, k
    raise ValueError(f"no slot at {pos}")


def _popping(t: float, t0: float, t1: float, grow: bool, shrink: bool) -> bool:
    """True while an object is drawn smaller than full size (render._pop)."""
    return (grow and t - t0 < GROW_SECONDS) or (shrink and t1 - t < GROW_SECONDS)


def label_vector(world: World, t: float) -> list[int]:
    labels = frame_labels(world, t)
    return [labels[name] for name in HEADS]
