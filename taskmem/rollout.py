"""On-policy streaming rollouts for Phase One, as the authors train: a rolling batch of
episodes, each advanced by one clip per step, where the earlier descriptions in a prompt are
the policy's own earlier outputs (the first parseable rollout of each clip).

trl's ``GRPOTrainer`` reads prompts from a (datasets) ``IterableDataset`` built on
:meth:`StreamingRollouts.prompts`, and :meth:`StreamingRollouts.record` runs as a reward term of
weight 0 (the one hook where trl hands over the completions) to write each clip's chosen rollout
into its stream's window. The loader fetches one batch ahead, so the rolling batch is split into
``groups`` that take turns: a stream's next prompt is built only after its previous step has
been scored. A prompt whose history is not yet recorded is an error, never a silent stale
window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from taskmem.minidata import ClipSample
from taskmem.protocol import Frame, FrameSpec, parse_reply, sentences
from taskmem.rewards import completion_text
from taskmem.streams import Window, clip_facts, trl_prompt


@dataclass
class _Slot:
    """One place in the rolling batch: the episode being walked and its window."""

    samples: list[ClipSample]
    window: Window
    position: int = 0
    pending: ClipSample | None = None
    pending_frames: tuple[Frame, ...] = ()
    """The pending clip's frames as its prompt showed them, for the window's next step."""

    @property
    def done(self) -> bool:
        return self.position >= len(self.samples)


@dataclass
class StreamingRollouts:
    """The rolling batch. ``episodes`` yields training episodes (lists of clips) forever or
    until exhausted; ``streams`` slots advance in ``groups`` turns."""

    episodes: Iterator[list[ClipSample]]
    streams: int
    groups: int = 2
    budget: int | None = 24
    window_seconds: float = 50.0
    spec: FrameSpec = FrameSpec()
    slots: list[_Slot] = field(default_factory=list)
    steps: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.streams % self.groups:
            raise ValueError(f"streams ({self.streams}) must be a multiple of groups ({self.groups})")
        self.__name__ = "history"  # trl logs each reward term under its name

    def prompts(self) -> Iterator[dict[str, Any]]:
        """Rows for trl: the prompt (conversational, with images) plus the judges' columns."""
        per_group = self.streams // self.groups
        while True:
            group = self.steps % self.groups
            for k in range(group * per_group, (group + 1) * per_group):
                row = self._next_row(k)
                if row is None:
                    return
                yield row
            self.steps += 1

    def _next_row(self, k: int) -> dict[str, Any] | None:
        while len(self.slots) <= k:
            self.slots.append(_Slot([], Window(self.window_seconds, self.spec)))
        slot = self.slots[k]
        if slot.pending is not None:
            raise RuntimeError(
                f"stream slot {k} asked for its next prompt before its last clip was scored; "
                "raise `groups` so the loader's look-ahead cannot outrun the rewards"
            )
        if slot.done:
            fresh = next(self.episodes, None)
            if fresh is None:
                return None
            slot = self.slots[k] = _Slot(fresh, Window(self.window_seconds, self.spec))
        sample = slot.samples[slot.position]
        slot.pending = sample
        slot.pending_frames = slot.window.new_frames(sample.clip)
        prompt, images = trl_prompt(
            slot.window.prompt(sample.clip, slot.pending_frames, self.budget))
        start = sample.clip.t_end - self.window_seconds
        return {
            "prompt": prompt,
            "images": images,
            "slot": k,
            "group": f"{sample.episode}:{sample.clip.index}:{k}",
            "window_facts": [f.text for f in sample.facts_between(start, sample.clip.t_end)],
            "clip_facts": clip_facts(sample),
            "stated": sorted(slot.window.stated(sample.clip)),
            "budget": self.budget,
        }

    def record(self, prompts, completions, slot, **columns) -> list[float]:
        """Write each scored clip's first parseable rollout (or nothing) into its window."""
        chosen: dict[int, str] = {}
        for k, completion in zip(slot, completions):
            reply = parse_reply(completion_text(completion))
            if k not in chosen or (not chosen[k] and reply.ok):
                chosen[k] = reply.description or ""
        for k, description in chosen.items():
            s = self.slots[k]
            if s.pending is None:
                continue
            s.window = s.window.advanced(s.pending.clip, s.pending_frames, description)
            s.position += 1
            s.pending = None
            self.history.append({"slot": k, "clip": s.position - 1,
                                 "sentences": len(sentences(description))})
        return [0.0] * len(completions)


def endless(loaders: Sequence[Callable[[], list[ClipSample]]], rng: np.random.Generator
            ) -> Iterator[list[ClipSample]]:
    """Episodes in a fresh random order on each pass; each is loaded (decoded) only when the
    rolling batch needs it, so a long real dataset never sits in memory whole."""
    while True:
        for i in rng.permutation(len(loaders)):
            yield loaders[i]()
