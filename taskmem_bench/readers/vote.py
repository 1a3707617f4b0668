"""n-sample majority vote for model-backed readers (the paper's EgoLife mode votes over 3).

A reader builds one :class:`ChatRequest` per question; :func:`answer_by_vote` sends every
question's samples (seeds ``seed + 0 .. n - 1``) to the backend in ONE ``generate`` call, parses
each sample, and votes:

* multiple choice: each sample's label by :func:`~taskmem_bench.scoring.extract.extract_choice`
  (the scorer's own parser); open answers: each sample's final "Answer: ..." text, compared
  after normalisation (case, markdown, punctuation, a leading article);
* the most common answer wins, ties go to the answer that appeared first; samples with no
  parseable answer do not vote; when none is parseable there is no answer (a parse failure).

With one sample the raw output is the model's text unchanged. With several, the raw output keeps
every sample inside a ``<think>`` block (so ``split_thinking`` and the scorer, which both read only
what follows the last ``</think>``, see none of them) followed by the tally and a final line
``Answer: X`` that the standard extractor parses to the voted answer.

Greedy decoding (temperature 0) with several samples is allowed, with a warning: a local greedy
model repeats itself, but hosted "temperature 0" models do not (the paper voted GPT-4o at
temperature ~0), and the distinct seeds keep the samples apart in response caches.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

from taskmem_bench.backends.base import Backend, ChatRequest, split_thinking
from taskmem_bench.readers.base import ReaderInput, ReaderOutput
from taskmem_bench.schema import ANSWER_LABELS
from taskmem_bench.scoring.extract import extract_choice
# the scorer's own normalisation, so open answers group as option texts match there
from taskmem_bench.scoring.option_text import normalise_answer

# "Answer: red car", "**Final answer:** red car": the text after the marker, markdown trimmed
_ANSWER_LINE = re.compile(
    r"(?im)^[\s*_#>]*(?:final\s+)?answer[\s*_]*:[\s*_]*(?P<text>.*?)[\s*_]*$"
)


@dataclass(frozen=True)
class Ballot:
    """One sample's vote: ``key`` compares answers (``None``: no parseable answer), ``written``
    is how the answer is written on the final line, ``note`` how the sample was read."""

    key: str | None
    written: str | None
    note: str


def check_sampling(samples: int, temperature: float) -> None:
    """Warn about a vote that a local greedy model makes pointless (see the module docstring)."""
    if samples > 1 and temperature == 0:
        warnings.warn(
            f"voting over {samples} samples at temperature 0: a deterministic backend returns "
            "the same reply for every sample; set temperature > 0 for a real vote",
            stacklevel=3,
        )


def sample_requests(request: ChatRequest, samples: int) -> list[ChatRequest]:
    """``samples`` copies of ``request`` with seeds ``seed, seed + 1, ...``."""
    seed = request.sampling.seed
    return [
        replace(request, sampling=replace(request.sampling, seed=seed + k)) for k in range(samples)
    ]


def open_answer(raw: str) -> str | None:
    """The text of the last "Answer: ..." line after any thinking, or ``None``."""
    lines = list(_ANSWER_LINE.finditer(split_thinking(raw)[1]))
    text = lines[-1]["text"].strip() if lines else ""
    return text or None


def ballot(raw: str, task: ReaderInput) -> Ballot:
    if task.answer_format == "open":
        text = open_answer(raw)
        if text is None or not normalise_answer(text):
            return Ballot(None, None, "no final 'Answer:' line")
        return Ballot(normalise_answer(text), text, repr(text))
    labels = ANSWER_LABELS[: len(task.options) + 1]
    found = extract_choice(raw, task.options, labels=labels)
    if found.label is None:
        return Ballot(None, None, f"unparsed ({found.failure})")
    return Ballot(found.label, found.label, f"{found.label} ({found.method})")


def tally(ballots: Sequence[Ballot]) -> dict[str, tuple[Ballot, int]]:
    """Each answer's first ballot and its number of votes, in order of first appearance;
    ballots without an answer do not vote."""
    counts: dict[str, tuple[Ballot, int]] = {}
    for b in ballots:
        if b.key is not None:
            first, count = counts.get(b.key, (b, 0))
            counts[b.key] = (first, count + 1)
    return counts


def combine(raws: Sequence[str], seeds: Sequence[int], task: ReaderInput) -> str:
    """The raw output of a vote: every sample, the tally, and the voted final answer (the most
    votes; ties to the answer seen first). No parseable sample: no final answer line."""
    if len(raws) == 1:
        return raws[0]
    n = len(raws)
    ballots = [ballot(raw, task) for raw in raws]
    samples = "\n\n".join(
        f"[sample {k + 1} of {n}, seed {seed}: {b.note}]\n{raw.strip()}"
        for k, (raw, seed, b) in enumerate(zip(raws, seeds, ballots))
    )
    counts = tally(ballots)
    if not counts:
        return f"<think>\n{samples}\n</think>\nNo vote: {n} of {n} samples unparsed."
    quote = repr if task.answer_format == "open" else str
    votes = [f"{quote(b.written)} x{count}" for b, count in counts.values()]
    unparsed = n - sum(count for _, count in counts.values())
    if unparsed:
        votes.append(f"unparsed x{unparsed}")
    winner, _ = max(counts.values(), key=lambda bc: bc[1])  # max keeps the first of equals
    return (
        f"<think>\n{samples}\n</think>\nVotes: {', '.join(votes)}.\nAnswer: {winner.written}"
    )


def answer_by_vote(
    backend: Backend, requests: Sequence[ChatRequest], tasks: Sequence[ReaderInput], samples: int
) -> list[ReaderOutput]:
    """Each task's request sampled ``samples`` times, all in one batched ``generate`` call, and
    each task's samples voted (:func:`combine`)."""
    if len(requests) != len(tasks):
        raise ValueError(f"{len(requests)} requests for {len(tasks)} questions")
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    batch = [r for request in requests for r in sample_requests(request, samples)]
    generations = backend.generate(batch) if batch else []
    if len(generations) != len(batch):
        raise RuntimeError(
            f"backend '{backend.name}' returned {len(generations)} generations for "
            f"{len(batch)} requests"
        )
    outputs = []
    for k, task in enumerate(tasks):
        chunk = slice(k * samples, (k + 1) * samples)
        raws = [g.text for g in generations[chunk]]
        seeds = [r.sampling.seed for r in batch[chunk]]
        outputs.append(ReaderOutput(combine(raws, seeds, task)))
    return outputs
