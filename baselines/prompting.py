"""What the model-using baselines share: the clip-caption request, prompt blocks, and parsing of
JSON replies.

Each baseline is a :class:`~taskmem_bench.model_policy.ModelPolicy` that writes only its step:
it builds all the requests of a batch first and sends them in one ``generate`` call, and
returns each clip's entries with its stream's next state, which the base class commits only
once the whole batch succeeded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

from taskmem_bench.backends import ChatRequest, Message, Sampling, TextPart, VideoPart
from taskmem_bench.memory import MemoryEntry, render_time
from taskmem_bench.model_policy import ModelPolicy
from taskmem_bench.schema import Clip, TextEvent

State = TypeVar("State")

CAPTION_PROMPT = (
    "Describe this video clip ({start}-{end} on the stream's clock) in a few sentences: who "
    "and what is visible, what happens, and any text that is shown."
)
SIDE_TEXT_PROMPT = "Text from the stream's side channels during this time, by channel:\n{lines}"


class CaptioningPolicy(ModelPolicy[State]):
    """A model policy that captions every clip with the generic request (``caption``,
    ``summary``, ``episodic-semantic``), text-only follow-ups riding in the same call."""

    def captions_with(
        self, clips: Sequence[Clip], followups: Mapping[int, ChatRequest]
    ) -> tuple[list[str], dict[int, str]]:
        """The caption of every clip and the answers to text-only follow-up requests (keyed by
        the position of the clip they ride with), all from one backend call."""
        captions = [self.caption_request(c) for c in clips]
        answers = self.generate(captions + list(followups.values()))
        return answers[: len(clips)], dict(zip(followups, answers[len(clips) :]))

    def caption_request(self, clip: Clip, purpose: str = "caption") -> ChatRequest:
        """The generic description request of one clip: its video, :data:`CAPTION_PROMPT`,
        and the clip's side-channel text labelled with its channel."""
        text = CAPTION_PROMPT.format(start=render_time(clip.t_start), end=render_time(clip.t_end))
        sampling = self.sampling(clip, purpose)
        return user_request(join(text, side_text(clip.text)), sampling, self.video(clip))


def clip_entries(clip: Clip, text: str, kind: str, **meta: Any) -> list[MemoryEntry]:
    """One entry spanning the clip, or none for an empty reply (nothing to remember)."""
    return [MemoryEntry(clip.t_start, clip.t_end, text, kind, meta)] if text else []


def user_request(text: str, sampling: Sampling, video: VideoPart | None = None) -> ChatRequest:
    """One user turn: the video first (when there is one), then the text."""
    content = (TextPart(text),) if video is None else (video, TextPart(text))
    return ChatRequest((Message("user", content),), sampling)


def side_text(events: Sequence[TextEvent]) -> str:
    """The side-channel lines of a clip, each prefixed by its channel (``[speech] Ann: hi``), as
    :data:`SIDE_TEXT_PROMPT`; empty when there are none."""
    lines = channel_lines(events)
    return SIDE_TEXT_PROMPT.format(lines="\n".join(lines)) if lines else ""


def channel_lines(events: Sequence[TextEvent]) -> list[str]:
    """``[channel] text`` per non-empty event: a model prompt names where each line came from."""
    return [f"[{e.channel}] {e.text.strip()}" for e in events if e.text.strip()]


def join(*blocks: str) -> str:
    """Non-empty prompt blocks separated by blank lines."""
    return "\n\n".join(b for b in blocks if b)


class Timed(NamedTuple):
    """A text about the span ``[t_start, t_end]`` of a stream (a caption, a description)."""

    t_start: float
    t_end: float
    text: str


def timed_lines(items: Sequence[Timed]) -> str:
    """``HH:MM:SS-HH:MM:SS text`` per non-empty item, as memory is rendered for readers."""
    return "\n".join(
        f"{render_time(a)}-{render_time(b)} {text}" for a, b, text in items if text
    )


_FENCE = re.compile(r"```[\w-]*\s*\n?(.*?)```", re.S)
_JSON_START = re.compile(r"[\[{]")


def json_tail(text: str) -> Any | None:
    """The JSON object or array that ends ``text`` (or ends its last fenced code block), or
    None. Prose before it is allowed, after it not: a reply must finish with its JSON."""
    body = text.strip()
    candidates = [body] + [block.strip() for block in reversed(_FENCE.findall(body))]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        # scanning from the right, the first start that decodes up to the very end is the
        # value that ends the candidate (values nested in it end earlier)
        for match in reversed(list(_JSON_START.finditer(candidate))):
            try:
                value, end = decoder.raw_decode(candidate, match.start())
            except json.JSONDecodeError:
                continue
            if not candidate[end:].strip():
                return value
    return None


def parse_description(answer: str) -> tuple[str, bool]:
    """``(description, format_error)`` from a reply that should end with
    ``{"description": "..."}``; on a format error the whole reply (stripped) stands in."""
    value = json_tail(answer)
    if isinstance(value, dict) and isinstance(value.get("description"), str):
        description = value["description"].strip()
        if description:
            return description, False
    return answer.strip(), True


_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s*")


def parse_list(answer: str, limit: int) -> tuple[list[str], bool]:
    """``(items, format_error)``: the strings of a JSON list ending the reply, else its
    lines with bullets or numbers removed (flagged), leaving out empty lines and headings that
    end with a colon; at most ``limit`` items."""
    value = json_tail(answer)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        items, error = [v.strip() for v in value], False
    else:
        items, error = [_BULLET.sub("", line).strip() for line in answer.splitlines()], True
    return [item for item in items if item and not item.endswith(":")][:limit], error
