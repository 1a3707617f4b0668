"""The TaskMem paper's fixed reader: a chat model answers from the whole rendered memory.

The prompt (``readers.prompts``) shows every memory entry, the question, options A.. plus one
"cannot be determined from the memory" label (or, for open answers, "Insufficient
Information"), and asks for reasoning then a final ``Answer: X`` line. All questions of one
``answer`` call, and all their samples, go to the backend in one batched ``generate`` call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from taskmem_bench.backends import BackendSettings, ChatRequest, Message, Sampling, get_backend
from taskmem_bench.readers import prompts
from taskmem_bench.readers.base import Reader, ReaderInput, ReaderOutput
from taskmem_bench.readers.vote import answer_by_vote, check_sampling


@dataclass(frozen=True)
class PaperReaderConfig(BackendSettings):
    """The model (inherited backend fields) and its decoding.

    ``samples`` > 1 votes over that many samples with seeds ``seed .. seed + samples - 1`` (the
    paper's EgoLife mode uses 3); raise ``temperature`` with it, or the samples of a local
    greedy model are identical (``readers.vote``).
    """

    max_new_tokens: int = 512
    temperature: float = 0.0
    samples: int = 1

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.samples < 1:
            raise ValueError(f"samples must be at least 1, got {self.samples}")


class PaperReader(Reader):
    """Reads the whole memory; what the prompt shows is :meth:`shown` (all of it, here)."""

    name = "paper"
    version = "1"
    Config = PaperReaderConfig
    templates: ClassVar[prompts.PromptTemplates] = prompts.PAPER_TEMPLATES
    prompt = templates.text

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's hashed ``prompt`` always follows its ``templates``."""
        super().__init_subclass__(**kwargs)
        cls.prompt = cls.templates.text

    def __init__(self, config: PaperReaderConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        check_sampling(self.config.samples, self.config.temperature)

    def shown(self, task: ReaderInput) -> ReaderInput:
        """The input as the prompt presents it; readers that show less memory override this."""
        return task

    def messages(self, task: ReaderInput) -> tuple[Message, ...]:
        return prompts.build_messages(self.shown(task), self.templates)

    def render_prompt(self, task: ReaderInput) -> str:
        """The text-only prompt this reader sends for ``task``, as one string (lm-eval)."""
        return prompts.render_prompt(self.shown(task), self.templates)

    def answer(self, inputs: Sequence[ReaderInput]) -> list[ReaderOutput]:
        if not inputs:
            return []
        sampling = Sampling(
            max_new_tokens=self.config.max_new_tokens,
            temperature=self.config.temperature,
            seed=self.seed,
        )
        requests = [ChatRequest(self.messages(task), sampling) for task in inputs]
        return answer_by_vote(get_backend(self.config), requests, inputs, self.config.samples)
