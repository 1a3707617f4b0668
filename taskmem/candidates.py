"""Phase Two, step 1: candidate descriptions of a buffered clip from the frozen memorizer.

The memorizer is prompted as at deployment, with the *supplement*: "focus on what would answer
questions similar to these recent ones", followed by example questions: the environment's most
recent tasks, whatever their category (``phase_two.examples``). The authors' code draws them
from the current task's category instead (TASKMEM.md, Phase Two) because it regenerates memory
per category; a deployed agent writes one memory per stream before it knows the next question's
category, so it can only follow the recent tasks. It samples ``n`` completions per clip
(temperature 0.6, top_p 0.95, top_k 20, the paper's values), each with its own seed derived
from the clip and the sample's number, so a rerun samples the same text. A candidate keeps its
whole completion, thinking included, because DPO trains on exactly what the model wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taskmem_bench.backends import (
    BackendSettings, ChatRequest, ImagePart, Message, Sampling, TextPart,
)
from taskmem_bench.memory import count_tokens
from taskmem_bench.model_policy import generate_all, request_seed
from taskmem_bench.schema import TaskNotice

from taskmem.protocol import Prompt, parse_reply


def supplement_line(notice: TaskNotice) -> str:
    """One example question as the supplement lists it: its text and its options, on one line
    (no category, and nothing the policy was not sent)."""
    text = " ".join(notice.text.split())
    options = [" ".join(o.split()) for o in notice.options]
    return f"{text} Options: {'; '.join(options)}" if options else text


def chat_request(prompt: Prompt, sampling: Sampling) -> ChatRequest:
    """A memorizer prompt as one user turn of text and images, in order."""
    content = tuple(TextPart(p) if isinstance(p, str) else ImagePart(p.image) for p in prompt.parts)
    return ChatRequest((Message("user", content),), sampling)


@dataclass(frozen=True)
class ClipKey:
    """Which clip of which stream a candidate describes."""

    stream_id: str
    index: int


@dataclass(frozen=True, eq=False)
class ClipPrompt:
    """A buffered clip as the memorizer is asked about it: the prompt (built with the
    supplement ``questions``), the sentences its window's earlier descriptions already state,
    and its token budget. What the quality judge and the usefulness judge need, and DPO's
    prompt; built by ``phase_two.BufferedClip.prompt``."""

    key: ClipKey
    prompt: Prompt
    questions: tuple[str, ...]
    stated: frozenset[str] = frozenset()
    budget: int | None = None


@dataclass(frozen=True)
class Candidate:
    """One sampled completion for a clip: ``description`` is None when the reply broke the
    format; ``tokens`` is the description's length in memory.py's count (0 when None)."""

    key: ClipKey
    completion: str
    description: str | None
    tokens: int

    @classmethod
    def of(cls, key: ClipKey, completion: str) -> Candidate:
        description = parse_reply(completion).description
        return cls(key, completion, description, count_tokens(description or ""))


def sample_candidates(
    settings: BackendSettings,
    prompts: Sequence[ClipPrompt],
    n: int,
    *,
    seed: int,
    max_new_tokens: int,
    temperature: float = 0.6,
    top_p: float = 0.95,
    top_k: int | None = 20,
) -> list[list[Candidate]]:
    """``n`` candidates per prompt, in order, from one backend call; candidate ``k`` of a clip
    is sampled with ``request_seed(seed, stream, clip, "candidate-k")``."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    requests = [
        chat_request(p.prompt, Sampling(
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
            seed=request_seed(seed, p.key.stream_id, p.key.index, f"candidate-{k}")))
        for p in prompts for k in range(n)
    ]
    generations = generate_all(settings, requests)
    return [[Candidate.of(p.key, g.text) for g in generations[i * n:(i + 1) * n]]
            for i, p in enumerate(prompts)]
