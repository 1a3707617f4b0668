"""Phase Two inside the deployed policy: learn what to memorize from the environment's tasks.

The ``taskmem`` policy keeps the task notices it is sent (a question's text, options and
category; never an answer) and a bounded buffer of recent clips. At a barrier between waves
(``Policy.end_wave``), once the tasks seen reach the next retraining cutoff (10, 30, 50 by
default), it runs the paper's steps on the buffered clips, each its own module:

1. candidates from the frozen memorizer with the supplement prompt (``taskmem.candidates``);
2. the fidelity filter, Phase One's quality judge (``taskmem.fidelity``);
3. the pairwise usefulness judge, both orders (``taskmem.usefulness``);
4. one preference pair per clip (``taskmem.pairs``);
5. DPO of a fresh adapter, a steering vector or a LoRA (``taskmem.dpo``).

Which parts reach the deployed memorizer is the variant: ``adapter`` (the trained adapter),
``prompt`` (the supplement with the latest example questions) or ``both``. An adaptation that
fails is recorded with its error and the policy keeps its previous adapter.

Everything here is ordered by (stream position, ask time or clip index), never by arrival, so
what is learned does not depend on how the runner batched the wave.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskmem_bench.backends import BackendSettings
from taskmem_bench.backends.hf import resolved_device
from taskmem_bench.backends.packaged import resolve
from taskmem_bench.schema import Clip, TaskNotice

from taskmem.candidates import ClipKey, ClipPrompt, sample_candidates, supplement_line
from taskmem.dpo import AdapterConfig, AdapterResult, peak_rss_mib, reset_peak_rss, train_adapter
from taskmem.fidelity import ConsensusJudge, fidelity_filter
from taskmem.judges import LLMClaimJudge
from taskmem.pairs import PreferencePair, select_pairs
from taskmem.protocol import Frame
from taskmem.rewards import ClaimJudge
from taskmem.streams import Window
from taskmem.usefulness import (
    LLMUsefulnessJudge, QuestionOverlapJudge, UsefulnessJudge, judge_both_orders,
)

if TYPE_CHECKING:
    from taskmem.policy import TaskMemConfig


@dataclass(frozen=True)
class BufferedClip:
    """A clip as the memorizer saw it: its window before the clip, the clip without its frames
    (its times and side text), the frames it was shown and its budget. ``order`` is
    (stream position, clip index): the buffer's order whatever the batching."""

    order: tuple[int, int]
    window: Window
    clip: Clip
    new: tuple[Frame, ...]
    budget: int | None

    @classmethod
    def of(cls, position: int, window: Window, clip: Clip, new: Sequence[Frame],
           budget: int | None) -> BufferedClip:
        bare = dataclasses.replace(clip, frames=clip.frames[:0], timestamps=clip.timestamps[:0])
        return cls((position, clip.index), window, bare, tuple(new), budget)

    @property
    def frames(self) -> list[Frame]:
        """The frames it holds: its own and its window's (shared with its neighbours)."""
        return [*self.new, *(f for w in self.window.written for f in w.frames)]

    def prompt(self, questions: Sequence[str]) -> ClipPrompt:
        """The clip's prompt with ``questions`` as the supplement."""
        prompt = self.window.prompt(self.clip, self.new, self.budget, supplement=questions)
        return ClipPrompt(ClipKey(self.clip.stream_id, self.clip.index), prompt, tuple(questions),
                          frozenset(self.window.stated(self.clip)), self.budget)


@dataclass
class ClipBuffer:
    """The ``size`` most recent clips by ``order``: adding in any order keeps the same ones."""

    size: int
    clips: list[BufferedClip] = field(default_factory=list)

    def add(self, clips: Iterable[BufferedClip]) -> None:
        self.clips = sorted([*self.clips, *clips], key=lambda b: b.order)[-self.size:]

    @property
    def nbytes(self) -> int:
        """The memory its frames take, each frame counted once (neighbouring clips' windows
        share frames)."""
        frames = {id(f.image): f.image.nbytes for b in self.clips for f in b.frames}
        return sum(frames.values())


@dataclass(frozen=True)
class Judges:
    """The two judges Phase Two asks: fidelity (claims) and usefulness (pairs)."""

    fidelity: ClaimJudge
    usefulness: UsefulnessJudge


@dataclass(frozen=True)
class Recipe:
    """How one adaptation samples and trains (the policy's settings, gathered)."""

    base: BackendSettings
    """The frozen memorizer: the policy's backend settings without an adapter."""
    candidates: int
    max_new_tokens: int
    seed: int
    adapter: AdapterConfig
    judges: Judges


def examples(tasks: Sequence[TaskNotice], cutoff: int, count: int) -> tuple[str, ...]:
    """The supplement's example questions at ``cutoff``: the last ``count`` of the first
    ``cutoff`` tasks, as supplement lines."""
    return tuple(supplement_line(t) for t in tasks[:cutoff][-count:])


def preference_pairs(buffer: Sequence[BufferedClip], questions: Sequence[str], recipe: Recipe,
                     tally: dict[str, Any]) -> list[PreferencePair]:
    """Steps 1-4 on the buffered clips; ``tally`` gets what each step kept."""
    prompts = [b.prompt(questions) for b in buffer]
    sampled = sample_candidates(recipe.base, prompts, recipe.candidates, seed=recipe.seed,
                                max_new_tokens=recipe.max_new_tokens)
    filtered = fidelity_filter(prompts, sampled, recipe.judges.fidelity)
    wins = judge_both_orders(recipe.judges.usefulness, filtered)
    pairs = select_pairs(wins)
    tally.update(
        clips=len(prompts), candidates=sum(len(s) for s in sampled),
        unparseable=sum(f.unparseable for f in filtered),
        overlong=sum(f.overlong for f in filtered),
        fidelity_failures=sum(f.judge_failures for f in filtered),
        kept=sum(len(f.kept) for f in filtered),
        correct=sum(k.correct for f in filtered for k in f.kept),
        comparisons=sum(w.asked for w in wins), wins=sum(len(w.wins) for w in wins),
        judge_errors=sum(w.errors for w in wins), gave_up=sum(w.gave_up for w in wins),
        pairs=len(pairs),
    )
    return pairs


def train(buffer: Sequence[BufferedClip], questions: Sequence[str], recipe: Recipe,
          out: Path) -> tuple[AdapterResult | None, dict[str, Any]]:
    """Steps 1-5: a fresh adapter trained at ``out`` (None when no pair was found) and the
    record of every step."""
    began = time.perf_counter()
    reset_peak_rss()  # the peak of this adaptation's steps, not of the process so far
    tally: dict[str, Any] = {"rss_start_mb": peak_rss_mib()}  # right after a reset: the RSS now
    pairs = preference_pairs(buffer, questions, recipe, tally)
    peak = peak_rss_mib()  # train_adapter measures its own from a reset
    result = None
    if pairs:
        result = train_adapter(Path(resolve(recipe.base.model)), pairs, recipe.adapter, out)
        peak = max(peak, result.peak_rss_mib)
        tally.update(
            dpo_losses=list(result.losses), dpo_margins=[s.margin for s in result.steps],
            adapter={"kind": recipe.adapter.kind, "folder": str(result.folder),
                     "sha256": result.weights_sha256},
        )
    tally.update(wall_s=round(time.perf_counter() - began, 2), peak_rss_mb=peak)
    return result, tally


class Learner:
    """What the policy learns across streams (Phase Two): the tasks it was sent, its clip
    buffer, the supplement and adapter it deploys. Changes only in :meth:`end_wave`; the
    tasks and clips of a wave are ordered by stream position there, not by arrival."""

    def __init__(self, config: TaskMemConfig, seed: int) -> None:
        self.config, self.seed = config, seed
        self.positions: dict[str, int] = {}
        self.waiting: list[TaskNotice] = []
        self.ended = ClipBuffer(config.buffer_clips)
        self.tasks: list[TaskNotice] = []
        self.buffer = ClipBuffer(config.buffer_clips)
        self.trained_at = 0
        self.supplement: tuple[str, ...] = ()
        self.adapter: Path | None = None

    @property
    def on(self) -> bool:
        """Whether the policy adapts at all (``adapt`` is not ``off``)."""
        return self.config.adapt != "off"

    def started(self, stream_id: str) -> None:
        self.positions.setdefault(stream_id, len(self.positions))

    def noticed(self, notice: TaskNotice) -> None:
        if self.on:
            self.waiting.append(notice)

    def remember(self, seen: tuple[BufferedClip, ...], window: Window, clip: Clip,
                 new: Sequence[Frame], budget: int | None) -> tuple[BufferedClip, ...]:
        """A stream's latest clips with ``clip`` added (none when the policy does not adapt):
        kept in the stream's state, so only committed steps reach the buffer."""
        if not self.on:
            return ()
        fresh = BufferedClip.of(self.positions[clip.stream_id], window, clip, new, budget)
        return (*seen, fresh)[-self.config.buffer_clips:]

    def stream_ended(self, seen: Sequence[BufferedClip]) -> None:
        """A stream's latest clips, held (as many as the buffer keeps, the same ones whatever
        the order streams end in) until the barrier adds them to the buffer."""
        self.ended.add(seen)

    def end_wave(self, workspace: Path) -> dict[str, Any] | None:
        """Take in the wave's tasks; at a retraining cutoff, adapt (see the module docstring),
        saving the adapter in ``workspace``. What the policy deploys changes only once the
        whole adaptation succeeded: one that raises leaves the previous supplement and adapter
        (the runner records the error)."""
        self.waiting.sort(key=lambda n: (self.positions[n.stream_id], n.ask_time, n.question_id))
        self.tasks += self.waiting
        self.buffer.add(self.ended.clips)
        self.waiting, self.ended = [], ClipBuffer(self.config.buffer_clips)
        due = [c for c in self.config.retrain_at if self.trained_at < c <= len(self.tasks)]
        if not due:
            return None
        cutoff = due[-1]
        questions = examples(self.tasks, cutoff, self.config.examples)
        record: dict[str, Any] = {
            "cutoff": cutoff, "tasks": len(self.tasks), "examples": list(questions),
            "buffer_clips": len(self.buffer.clips), "buffer_bytes": self.buffer.nbytes,
        }
        adapter = self.adapter
        if self.config.adapt in ("adapter", "both"):
            result, tally = train(self.buffer.clips, questions, self.recipe(),
                                  workspace / f"adapter-{cutoff:04d}")
            record.update(tally)
            adapter = result.folder if result is not None else adapter
        supplement = questions if self.config.adapt in ("prompt", "both") else ()
        record["adapted"] = (adapter, supplement) != (self.adapter, self.supplement)
        self.adapter, self.supplement, self.trained_at = adapter, supplement, cutoff
        return record

    def recipe(self) -> Recipe:
        c = self.config
        fidelity = (ConsensusJudge(c.consensus_share) if c.fidelity_judge == "consensus"
                    else LLMClaimJudge(c.judge_settings))
        usefulness = (QuestionOverlapJudge() if c.usefulness_judge == "overlap"
                      else LLMUsefulnessJudge(c.judge_settings))
        base = dataclasses.replace(c, lora_path=None).backend_settings()
        device = "cuda" if resolved_device(c.device).startswith("cuda") else "cpu"
        adapter = AdapterConfig(kind=c.adapter_kind, steps=c.dpo_steps, seed=self.seed,
                                device=device, dtype="float32" if device == "cpu" else "bfloat16")
        return Recipe(base, c.candidates, c.max_new_tokens, self.seed, adapter,
                      Judges(fidelity, usefulness))

