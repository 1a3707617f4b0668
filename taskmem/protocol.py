"""The memorizer's protocol, shared by the policy, the trainers and the rewards.

What the memorizer sees for each new clip (the paper's protocol, see ``docs/taskmem.md``): a
sliding window of the stream (the newest clip is new, earlier clips give context), the
descriptions it already wrote for the earlier clips of the window, and the allowed side text.
Frames go in as images, each after its stream time as text, so a model that reads images only
(trl's trainers, any OpenAI-compatible server) sees the true times; see :func:`window_frames`.

What it answers: thinking, exactly one ``</think>``, then one JSON object with exactly one key,
``description``, holding one or two sentences (:func:`parse_reply`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from taskmem_bench.memory import count_tokens, render_time
from taskmem_bench.schema import Clip, TextEvent

CONTEXT = (
    "You write the memory of a live video stream: one entry for each new segment. The frames "
    "run from {window_start} to {end}; the new segment runs from {new_start} to {end}."
)
PRECEDING = "Your descriptions of the earlier segments:\n{lines}"
NO_PRECEDING = "No earlier descriptions."
SIDE_TEXT = "Heard during the new segment:\n{lines}"
RULES = (
    "Describe what is new in the new segment: the objects and how they look, what the person "
    "does, what is said, and any visible text. State facts directly. Do not repeat the earlier "
    "descriptions. Leave out an action that is cut off at the end. Write short sentences{limit}."
)
LIMIT = ", at most {tokens} words in all"
FORMAT = 'Think first, then after </think> reply with one JSON object: {"description": "..."}'
SUPPLEMENT = (
    "Focus on what would answer questions similar to these recent ones:\n{questions}"
)


@dataclass(frozen=True)
class Frame:
    """One frame the memorizer is shown, at its time on the stream's timeline."""

    time: float
    image: np.ndarray  # (h, w, 3) uint8


@dataclass(frozen=True)
class Written:
    """A clip still in a stream's window, the frames kept from it, and what the policy wrote
    for it (empty when it wrote nothing)."""

    t_start: float
    t_end: float
    frames: tuple[Frame, ...]
    description: str


@dataclass(frozen=True)
class FrameSpec:
    """How frames are chosen and sized: ``new_frames`` evenly over the new clip, the last
    ``context_frames`` of each earlier clip in the window, all resized to ``size`` pixels."""

    size: int = 128
    new_frames: int = 6
    context_frames: int = 1


def pick_frames(clip: Clip, count: int, size: int) -> tuple[Frame, ...]:
    """``count`` frames spread evenly over the clip (all of them when it has fewer), resized."""
    n = len(clip.frames)
    if n == 0 or count <= 0:
        return ()
    picks = sorted({int(round(i)) for i in np.linspace(0, n - 1, min(count, n))})
    return tuple(Frame(float(clip.timestamps[i]), resize(clip.frames[i], size)) for i in picks)


def resize(frame: np.ndarray, size: int) -> np.ndarray:
    if frame.shape[0] == size and frame.shape[1] == size:
        return frame
    image = Image.fromarray(frame).resize((size, size), Image.Resampling.BILINEAR)
    return np.array(image)  # writable: the processors turn frames into tensors in place


@dataclass(frozen=True)
class Prompt:
    """One memorizer prompt as ordered parts: text strings and frames."""

    parts: tuple[str | Frame, ...]

    @property
    def text(self) -> str:
        """The prompt's text with ``<image>`` where a frame goes (logs and tests)."""
        return "".join(p if isinstance(p, str) else "<image>" for p in self.parts)


def build_prompt(
    clip_start: float,
    clip_end: float,
    new_frames: Sequence[Frame],
    earlier: Sequence[Written],
    side: Sequence[TextEvent],
    *,
    budget_tokens: int | None,
    supplement: Sequence[str] = (),
) -> Prompt:
    """The memorizer's prompt for a new clip; ``earlier`` are the window's earlier clips."""
    window_start = min([w.t_start for w in earlier] + [clip_start])
    head = CONTEXT.format(
        window_start=render_time(window_start),
        new_start=render_time(clip_start),
        end=render_time(clip_end),
    )
    lines = [f"{render_time(w.t_start)}-{render_time(w.t_end)} {w.description}"
             for w in earlier if w.description]
    preceding = PRECEDING.format(lines="\n".join(lines)) if lines else NO_PRECEDING
    heard = [e.text.strip() for e in side if e.text.strip()]
    blocks = [preceding]
    if heard:
        blocks.append(SIDE_TEXT.format(lines="\n".join(heard)))
    if supplement:
        blocks.append(SUPPLEMENT.format(questions="\n".join(f"- {q}" for q in supplement)))
    limit = LIMIT.format(tokens=budget_tokens) if budget_tokens is not None else ""
    blocks += [RULES.format(limit=limit), FORMAT]
    parts: list[str | Frame] = [head + "\n"]
    for frame in [f for w in earlier for f in w.frames] + list(new_frames):
        parts += [f"{render_time(frame.time)} ", frame]
    parts.append("\n" + "\n\n".join(blocks))
    return Prompt(tuple(parts))


@dataclass(frozen=True)
class Reply:
    """A parsed memorizer reply: ``description`` is None when the format was broken, and
    ``error`` then says how."""

    thinking: str
    description: str | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.description is not None


_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```$", re.S)


def parse_reply(completion: str) -> Reply:
    """Thinking, exactly one ``</think>``, then a JSON object with exactly the key
    ``description`` (a non-empty string); a code fence around the JSON is stripped first.

    The ``<think>`` opener may sit in the prompt (thinking models' templates open it), so only
    the closing tag is required in the completion."""
    if completion.count("</think>") != 1:
        return Reply("", None, f"expected exactly one </think>, found {completion.count('</think>')}")
    thinking, _, tail = completion.partition("</think>")
    thinking = thinking.removeprefix("<think>").strip()
    tail = tail.strip()
    fenced = _FENCE.match(tail)
    if fenced:
        tail = fenced.group(1).strip()
    try:
        value = json.loads(tail)
    except ValueError:
        return Reply(thinking, None, "the answer after </think> is not one JSON object")
    if not isinstance(value, dict) or set(value) != {"description"}:
        return Reply(thinking, None, 'the JSON object must have exactly the key "description"')
    description = value["description"]
    if not isinstance(description, str) or not description.strip():
        return Reply(thinking, None, "the description must be a non-empty string")
    return Reply(thinking, " ".join(description.split()))


def format_reply(description: str, thinking: str = "") -> str:
    """The completion a memorizer should produce for ``description`` (warm-start targets)."""
    return f"{thinking}\n</think>\n" + json.dumps({"description": description})


_SENTENCE = re.compile(r"[^.!?]+[.!?]?")


def sentences(description: str) -> list[str]:
    """The description's sentences, each stripped, in order."""
    return [s.strip() for s in _SENTENCE.findall(description) if s.strip()]


def within_budget(description: str, tokens: int | None) -> str:
    """The description cut to whole sentences that fit ``tokens`` (memory.py's count), so the
    store never has to cut a sentence in half."""
    if tokens is None:
        return description
    kept, used = [], 0
    for sentence in sentences(description):
        cost = count_tokens(sentence)
        if used + cost > tokens:
            break
        kept.append(sentence)
        used += cost
    return " ".join(kept)
