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

After deployment the policy adapts to its environment's tasks (Phase Two, ``taskmem.phase_two``;
``--set adapt=off|adapter|prompt|both``, default ``both`` as the authors' code): it learns across
streams, so the runner runs streams in waves and the policy changes only in ``end_wave``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from taskmem_bench.backends import BackendSettings, ChatRequest, Generation, release_backend
from taskmem_bench.memory import MemoryEntry, count_tokens
from taskmem_bench.model_policy import GenerationConfig, ModelPolicy, Step, generate_all
from taskmem_bench.schema import Clip, StreamInfo, TaskNotice

from taskmem import phase_two
from taskmem.candidates import chat_request
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
    # Phase Two (taskmem.phase_two): what adapts, when, and on what
    adapt: Literal["off", "adapter", "prompt", "both"] = "both"
    adapter_kind: Literal["steering", "lora"] = "steering"
    retrain_at: tuple[int, ...] = (10, 30, 50)
    """Tasks seen at which a new adapter is trained (at the first barrier between waves that
    reaches each)."""
    buffer_clips: int = 24
    candidates: int = 4
    examples: int = 5
    dpo_steps: int = 10
    fidelity_judge: Literal["consensus", "llm"] = "consensus"
    """``consensus``: the CPU stand-in (self-consistency of the samples; no facts);
    ``llm``: Phase One's LLM claim judge on ``judge_*``."""
    consensus_share: float = 0.5
    usefulness_judge: Literal["overlap", "llm"] = "overlap"
    """``overlap``: the CPU stand-in (words shared with the example questions and options);
    ``llm``: a pairwise prompt on ``judge_*``."""
    judge_backend: str = "openai"
    judge_model: str = ""
    judge_base_url: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.window_seconds > 0:
            raise ValueError("window_seconds must be positive")
        if self.frame_size < 28 or self.new_frames < 1 or self.context_frames < 0:
            raise ValueError("frame_size >= 28, new_frames >= 1 and context_frames >= 0")
        if any(c < 1 for c in self.retrain_at) or list(self.retrain_at) != sorted(set(self.retrain_at)):
            raise ValueError("retrain_at must be increasing task counts of at least 1")
        if self.buffer_clips < 1 or self.candidates < 2 or self.examples < 1 or self.dpo_steps < 1:
            raise ValueError("buffer_clips, examples and dpo_steps >= 1; candidates >= 2")
        if self.adapt in ("adapter", "both"):
            if self.lora_path:
                raise ValueError("Phase Two trains its own adapter: lora_path goes with adapt=off "
                                 "or adapt=prompt")
            if self.backend != "transformers":
                raise ValueError(
                    f"adapt={self.adapt} deploys the adapter it trains, and only the transformers "
                    f"backend loads a new one in place (backend '{self.backend}': openai ignores "
                    "adapters, vllm would start an engine per adapter); use adapt=prompt or off")
        if "llm" in (self.fidelity_judge, self.usefulness_judge) and not self.judge_model:
            raise ValueError("an llm judge needs judge_model (and judge_backend, judge_base_url)")

    @property
    def judge_settings(self) -> BackendSettings:
        return BackendSettings(backend=self.judge_backend, model=self.judge_model,
                               base_url=self.judge_base_url)

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
    seen: tuple[phase_two.BufferedClip, ...] = ()
    """The stream's latest clips for Phase Two's buffer (kept only when the policy adapts)."""


class TaskMemPolicy(ModelPolicy[MemorizerState]):
    """TaskMem's memorizer; see the module docstring."""

    name = "taskmem"
    version = "1"
    Config = TaskMemConfig
    default_models = {"mini": SHIPPED_MINI}
    """Models used when none is named, by dataset (see ``Policy.default_models``)."""

    def __init__(self, config: TaskMemConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self.adapting = phase_two.Learner(self.config, seed)

    @property
    def learns_across_streams(self) -> bool:
        return self.config.adapt != "off"

    def initial_state(self, info: StreamInfo) -> MemorizerState:
        self.adapting.started(info.stream_id)
        return MemorizerState(Window(self.config.window_seconds, self.config.frames))

    def notice(self, notice: TaskNotice) -> None:
        self.adapting.noticed(notice)

    def end_stream(self, stream_id: str) -> None:
        state = self.states.get(stream_id)
        if state is not None:
            self.adapting.stream_ended(state.seen)
        super().end_stream(stream_id)

    def end_wave(self, stream_ids: Sequence[str], workspace: Path) -> Mapping[str, Any] | None:
        """Phase Two's barrier (``phase_two.Learner.end_wave``); a replaced adapter's model
        copy is released, so adapting three times never holds four."""
        before = self.adapted_settings()
        record = self.adapting.end_wave(workspace)
        if before is not None and before != self.adapted_settings():
            release_backend(before)
        return record

    def adapted_settings(self) -> BackendSettings | None:
        """The backend settings with the deployed adapter; None before Phase Two trained one."""
        if self.adapting.adapter is None:
            return None
        return dataclasses.replace(self.config.backend_settings(),
                                   lora_path=str(self.adapting.adapter))

    def generations(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        """The memorizer's completions, through the latest adapter Phase Two trained."""
        return generate_all(self.adapted_settings() or self.config, requests)

    def step(
        self, clips: Sequence[Clip], states: Sequence[MemorizerState]
    ) -> list[Step[MemorizerState]]:
        budgets = [self.budget(c, state.spent) for c, state in zip(clips, states)]
        frames = [state.window.new_frames(c) for c, state in zip(clips, states)]
        supplement = self.adapting.supplement
        prompts = [state.window.prompt(c, new, b, supplement)
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
            seen = self.adapting.remember(state.seen, state.window, clip, new, budget)
            steps.append(Step(entries, MemorizerState(window, spent, seen)))
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
        return chat_request(prompt, self.sampling(clip, "description"))

