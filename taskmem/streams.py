"""Walking a training episode the way the policy walks a stream: a sliding window, the
descriptions already written for it, and one prompt per new clip.

The same :class:`Window` serves the warm start (the history is the composed targets) and
Phase One (the history is the policy's own chosen rollouts), and mirrors what
``taskmem.policy.TaskMemPolicy`` keeps per stream at evaluation time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from taskmem.minidata import ClipSample
from taskmem.protocol import (
    Frame, FrameSpec, Prompt, Written, build_prompt, pick_frames, sentences,
)
from taskmem_bench.datasets.mini.sentences import heard_line
from taskmem_bench.datasets.mini.vocab import topic_named
from taskmem_bench.memory import count_tokens
from taskmem_bench.schema import Clip


@dataclass
class Window:
    """One stream's recent clips and what was written for them."""

    seconds: float = 50.0
    spec: FrameSpec = FrameSpec()
    written: list[Written] = field(default_factory=list)

    def earlier(self, clip: Clip) -> list[Written]:
        """Earlier clips that overlap the window ending at ``clip``'s end."""
        start = clip.t_end - self.seconds
        return [w for w in self.written if w.t_end > start]

    def new_frames(self, clip: Clip) -> tuple[Frame, ...]:
        """The frames of ``clip`` the memorizer is shown, picked and resized once for both
        :meth:`prompt` and :meth:`advanced`."""
        return pick_frames(clip, self.spec.new_frames, self.spec.size)

    def prompt(self, clip: Clip, new: Sequence[Frame], budget: int | None,
               supplement: Sequence[str] = ()) -> Prompt:
        """The prompt for ``clip``, whose :meth:`new_frames` are ``new``."""
        return build_prompt(clip.t_start, clip.t_end, new, self.earlier(clip), clip.text,
                            budget_tokens=budget, supplement=supplement)

    def advanced(self, clip: Clip, new: Sequence[Frame], description: str) -> Window:
        """The window after ``description`` was written for ``clip``, whose :meth:`new_frames`
        are ``new`` (a new object, so a batch that fails leaves the old one untouched)."""
        keep = tuple(new[-self.spec.context_frames:]) if self.spec.context_frames else ()
        written = [*self.earlier(clip), Written(clip.t_start, clip.t_end, keep, description)]
        return Window(self.seconds, self.spec, written)

    def stated(self, clip: Clip) -> set[str]:
        """Sentences the window's earlier descriptions already say."""
        return {s for w in self.earlier(clip) for s in sentences(w.description)}


def slimmed(sample: ClipSample, spec: FrameSpec) -> ClipSample:
    """The sample with only the frames the memorizer looks at, already resized: a window built
    from it picks exactly these (a training split's clips fit in memory this way)."""
    frames = pick_frames(sample.clip, spec.new_frames, spec.size)
    clip = dataclasses.replace(
        sample.clip,
        frames=np.stack([f.image for f in frames]) if frames else sample.clip.frames[:0],
        timestamps=np.array([f.time for f in frames], dtype=np.float64),
    )
    return dataclasses.replace(sample, clip=clip)


def clip_facts(sample: ClipSample) -> list[str]:
    """Fact sentences a memorizer can know from this clip: facts overlapping it, where a speech
    fact counts only in the clip whose side text delivers the line."""
    heard = {e.text.strip() for e in sample.clip.text}
    texts = []
    for fact in sample.facts:
        if fact.kind == "speech":
            statement = topic_named(fact.args["topic"]).say(fact.args["value"])
            if heard_line(fact.args["speaker"], statement) not in heard:
                continue
        if fact.text not in texts:
            texts.append(fact.text)
    return texts


def compose_target(facts: Sequence[str], stated: set[str], budget: int | None,
                   rng: np.random.Generator, keep: float = 0.8) -> str:
    """A warm-start description: the clip's facts not already stated, in random order, each kept
    with probability ``keep`` (at least one), as many as fit the budget. No kind is preferred,
    so the warm start learns to describe without any environment's focus."""
    fresh = [f for f in facts if f not in stated] or list(facts)
    if not fresh:
        return ""
    order = [fresh[i] for i in rng.permutation(len(fresh))]
    chosen = [f for f in order if rng.random() < keep] or order[:1]
    kept, used = [], 0
    for fact in chosen:
        cost = count_tokens(fact)
        if budget is not None and used + cost > budget:
            continue
        kept.append(fact)
        used += cost
    return " ".join(kept)


def trl_prompt(prompt: Prompt) -> tuple[list[dict], list[Image.Image]]:
    """A prompt as trl's conversational format: one user turn of text and image blocks, and
    its images in order."""
    content, images = [], []
    for part in prompt.parts:
        if isinstance(part, str):
            content.append({"type": "text", "text": part})
        else:
            content.append({"type": "image"})
            images.append(Image.fromarray(part.image))
    return [{"role": "user", "content": content}], images
