"""The ``taskmem`` policy: the paper's memorizer protocol on any backend.

For each new clip the model sees the window (the clip's frames and the last frames of the
earlier clips still inside ``window_seconds``), the descriptions it wrote for those clips, and the
allowed side text; it thinks, closes ``</think>`` and answers ``{"description": "..."}``
(``taskmem.protocol``). The description, cut to whole sentences within the stream's memory
budget, becomes the clip's one memory entry; an unparseable reply writes nothing and the window
remembers an empty description, as the authors' rollouts do.

With no model named, a mini task runs the shipped mini memorizer
(``package:taskmem/checkpoints/mini``, see :data:`SHIPPED_MINI`); for Qwen3-VL-30B-A3B name it
with ``--set model=...`` and any backend. An adapter (a LoRA, or a steering vector trained as a
PEFT BEFT bias) loads with ``--set lora_path=FOLDER``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taskmem_bench.backends import ChatRequest, ImagePart, Message, TextPart
from taskmem_bench.memory import MemoryEntry, count_tokens
from taskmem_bench.model_policy import GenerationConfig, ModelPolicy, Step
from taskmem_bench.schema import Clip, StreamInfo

from taskmem.protocol import FrameSpec, Prompt, parse_reply, within_budget
from taskmem.streams import Window

SHIPPED_MINI = "package:taskmem/checkpoints/mini"


@dataclass(frozen=True)
class TaskMemConfig(GenerationConfig):
    """The backend and decoding settings plus the memorizer's window and frames.

    ``frame_size``, ``new_frames`` and ``context_frames`` are the memorizer's own view of the
    stream (the shipped mini checkpoint was trained on 128 px, 6 frames of each new clip and the
    last frame of each earlier clip); the task's stream settings stay as they are.
    """

    max_new_tokens: int = 48
    window_seconds: float = 50.0
    frame_size: int = 128
    new_frames: int = 6
    context_frames: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.window_seconds > 0:
            raise ValueError("window_seconds must be positive")
        if self.frame_size < 28 or self.new_frames < 1 or self.context_frames < 0:
            raise ValueError("frame_size >= 28, new_frames >= 1 and context_frames >= 0")

    @property
    def frames(self) -> FrameSpec:
        return FrameSpec(self.frame_size, self.new_frames, self.context_frames)


Spent = tuple[tuple[float, int], ...]
"""(clip end, tokens written) of a stream's writes in the last minute, for a per-minute budget."""


@dataclass(frozen=True)
class MemorizerState:
    """A stream's window (its recent clips and what was written for them) and its recent
    writes."""

    window: Window
    spent: Spent = ()


class TaskMemPolicy(ModelPolicy[MemorizerState]):
    """TaskMem's memorizer; see the module docstring."""

    name = "taskmem"
    version = "1"
    Config = TaskMemConfig
    default_models = {"mini": SHIPPED_MINI}
    """Models used when none is named, by dataset (see ``Policy.default_models``)."""

    def initial_state(self, info: StreamInfo) -> MemorizerState:
        return MemorizerState(Window(self.config.window_seconds, self.config.frames))

    def step(
        self, clips: Sequence[Clip], states: Sequence[MemorizerState]
    ) -> list[Step[MemorizerState]]:
        budgets = [self.budget(c, state.spent) for c, state in zip(clips, states)]
        frames = [state.window.new_frames(c) for c, state in zip(clips, states)]
        prompts = [state.window.prompt(c, new, b)
                   for c, state, new, b in zip(clips, states, frames, budgets)]
        requests = [self.request(c, p) for c, p in zip(clips, prompts)]
        answers = [g.text for g in self.generations(requests)]
        steps = []
        for clip, state, new, budget, answer in zip(clips, states, frames, budgets, answers):
            text = within_budget(parse_reply(answer).description or "", budget)
            entries = [MemoryEntry(clip.t_start, clip.t_end, text, "description")] if text else []
            last_minute = tuple((t, n) for t, n in state.spent if t > clip.t_end - 60.0)
            spent = (*last_minute, (clip.t_end, count_tokens(text)))
            window = state.window.advanced(clip, new, text)
            steps.append(Step(entries, MemorizerState(window, spent)))
        return steps

    def budget(self, clip: Clip, spent: Spent) -> int | None:
        """What this clip may still write: the per-clip cap and what the per-minute cap leaves
        after the last 60 s of this stream's writes, ``spent`` (as ``MemoryStore`` counts
        them)."""
        budget = self.info[clip.stream_id].budget
        allowance = budget.tokens_per_clip
        if budget.tokens_per_minute is not None:
            recent = sum(n for t_end, n in spent if t_end > clip.t_end - 60.0)
            left = max(budget.tokens_per_minute - recent, 0)
            allowance = left if allowance is None else min(allowance, left)
        return allowance

    def request(self, clip: Clip, prompt: Prompt) -> ChatRequest:
        content = tuple(TextPart(p) if isinstance(p, str) else ImagePart(p.image)
                        for p in prompt.parts)
        return ChatRequest((Message("user", content),), self.sampling(clip, "description"))
