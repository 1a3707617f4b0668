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

from baselines.prompting import GenerationConfig, ModelPolicy
from taskmem_bench.backends import ChatRequest, ImagePart, Message, TextPart
from taskmem_bench.memory import MemoryEntry, count_tokens
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


class TaskMemPolicy(ModelPolicy):
    """TaskMem's memorizer; see the module docstring."""

    name = "taskmem"
    version = "1"
    Config = TaskMemConfig
    default_models = {"mini": SHIPPED_MINI}
    """Models used when none is named, by dataset (see ``Policy.default_model``)."""

    def __init__(self, config: TaskMemConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self.windows: dict[str, Window] = {}
        self.spent: dict[str, tuple[tuple[float, int], ...]] = {}
        """Per stream, (clip end, tokens written) of the last minute, for a per-minute budget."""

    def start_stream(self, info: StreamInfo) -> None:
        super().start_stream(info)
        self.windows[info.stream_id] = Window(self.config.window_seconds, self.config.frames)
        self.spent[info.stream_id] = ()

    def end_stream(self, stream_id: str) -> None:
        super().end_stream(stream_id)
        self.windows.pop(stream_id, None)
        self.spent.pop(stream_id, None)

    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        prompts = [self.windows[c.stream_id].prompt(c, self.budget(c)) for c in clips]
        requests = [self.request(c, p) for c, p in zip(clips, prompts)]
        answers = [g.text for g in self.generations(requests)]
        entries, windows, spent = [], {}, {}
        for clip, answer in zip(clips, answers):
            reply = parse_reply(answer)
            text = within_budget(reply.description or "", self.budget(clip))
            entries.append([MemoryEntry(clip.t_start, clip.t_end, text, "description")]
                           if text else [])
            windows[clip.stream_id] = self.windows[clip.stream_id].advanced(clip, text)
            spent[clip.stream_id] = tuple(
                (t, n) for t, n in self.spent[clip.stream_id] if t > clip.t_end - 60.0
            ) + ((clip.t_end, count_tokens(text)),)
        self.windows.update(windows)  # committed only once the whole batch succeeded
        self.spent.update(spent)
        return entries

    def budget(self, clip: Clip) -> int | None:
        """What this clip may still write: the per-clip cap and what the per-minute cap leaves
        after the last 60 s of this stream's writes (as ``MemoryStore`` counts them)."""
        budget = self.info[clip.stream_id].budget
        allowance = budget.tokens_per_clip
        if budget.tokens_per_minute is not None:
            recent = sum(n for t_end, n in self.spent[clip.stream_id] if t_end > clip.t_end - 60.0)
            left = max(budget.tokens_per_minute - recent, 0)
            allowance = left if allowance is None else min(allowance, left)
        return allowance

    def request(self, clip: Clip, prompt: Prompt) -> ChatRequest:
        content = tuple(TextPart(p) if isinstance(p, str) else ImagePart(p.image)
                        for p in prompt.parts)
        return ChatRequest((Message("user", content),), self.sampling(clip, "description"))
