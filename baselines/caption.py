"""Caption baselines: a VLM describes the stream clip by clip, with no idea of the tasks ahead.

* ``caption`` is the paper's base-model baseline at its plainest: each clip alone, a generic
  description request, the reply stored as the clip's memory.
* ``caption-window`` follows the paper's memorizer protocol without task focus: the model sees
  a sliding window of the last ``window_seconds`` (50 s; the newest clip is the new content)
  and the descriptions it already wrote for the clips still in the window, and answers with
  ``{"description": "..."}`` of one or two sentences. The paper also tags faces (``<face_k>``);
  no face preprocessing exists here, so the prompt does not ask for tags.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taskmem_bench.backends import ChatRequest
from taskmem_bench.memory import render_time
from taskmem_bench.model_policy import GenerationConfig, ModelPolicy, Step, window_video
from taskmem_bench.schema import Clip, StreamInfo

from baselines.prompting import (
    CaptioningPolicy,
    Timed,
    clip_entries,
    join,
    parse_description,
    side_text,
    timed_lines,
    user_request,
)

WINDOW_CONTEXT = (
    "You keep a written memory of a live video stream: one short description for each new "
    "segment. You see the stream from {window_start} to {end}. The part before {new_start} is "
    "already described; the new segment runs from {new_start} to {end}."
)
WINDOW_PRECEDING = "Descriptions already in memory for the earlier part:\n{lines}"
NO_PRECEDING = "Nothing earlier is in memory yet."
WINDOW_INSTRUCTIONS = (
    "Describe the new segment in one or two sentences: the people and how they look, what they "
    "do, what is said, and the context (the place, the objects, any visible text). Add only "
    "what the descriptions already in memory do not say. State the facts directly; do not open "
    'with phrases such as "The video shows" or "In this segment". If the segment ends in the '
    "middle of an action, leave that action out: the next segment will cover it.\n"
    'Reply with a JSON object and nothing after it: {"description": "<one or two sentences>"}'
)


class CaptionPolicy(CaptioningPolicy[None]):
    """One generic description per clip, from the clip's frames and side-channel text."""

    name = "caption"
    version = "1"

    def step(self, clips: Sequence[Clip], states: Sequence[None]) -> list[Step[None]]:
        answers = self.generate([self.caption_request(clip) for clip in clips])
        return [Step(clip_entries(clip, answer, "caption"), None)
                for clip, answer in zip(clips, answers)]


@dataclass(frozen=True)
class CaptionWindowConfig(GenerationConfig):
    """``window_seconds``: how much of the recent stream the model sees with each new clip (the
    paper: 50 s). Frames of earlier clips are kept only while they lie in the window."""

    window_seconds: float = 50.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.window_seconds > 0:
            raise ValueError("window_seconds must be positive")


@dataclass(frozen=True)
class _Described:
    """A clip still in some stream's window, with the description the policy wrote for it
    (empty when its reply was empty)."""

    clip: Clip
    description: str


_Window = tuple[_Described, ...]
"""A caption-window stream's state: its clips still in the window, oldest first."""


class CaptionWindowPolicy(ModelPolicy[_Window]):
    """The paper's memorizer protocol without task focus; see the module docstring.

    Each entry's ``meta["format_error"]`` says whether the reply missed the JSON format, in
    which case the whole reply (thinking removed) is the description.
    """

    name = "caption-window"
    version = "1"
    Config = CaptionWindowConfig

    def initial_state(self, info: StreamInfo) -> _Window:
        return ()

    def step(self, clips: Sequence[Clip], states: Sequence[_Window]) -> list[Step[_Window]]:
        earlier = [self.earlier_in_window(c, window) for c, window in zip(clips, states)]
        answers = self.generate([self.request(c, e) for c, e in zip(clips, earlier)])
        steps = []
        for clip, before, answer in zip(clips, earlier, answers):
            description, format_error = parse_description(answer)
            entries = clip_entries(clip, description, "description", format_error=format_error)
            steps.append(Step(entries, (*before, _Described(clip, description))))
        return steps

    def earlier_in_window(self, clip: Clip, window: _Window) -> _Window:
        """The clips of ``window`` that overlap the window ending at this clip's end."""
        start = clip.t_end - self.config.window_seconds
        return tuple(d for d in window if d.clip.t_end > start)

    def request(self, clip: Clip, earlier: Sequence[_Described]) -> ChatRequest:
        start = clip.t_end - self.config.window_seconds
        window_clips = [d.clip for d in earlier] + [clip]
        context = WINDOW_CONTEXT.format(
            window_start=render_time(max(start, window_clips[0].t_start)),
            new_start=render_time(clip.t_start),
            end=render_time(clip.t_end),
        )
        lines = timed_lines([Timed(d.clip.t_start, d.clip.t_end, d.description) for d in earlier])
        preceding = WINDOW_PRECEDING.format(lines=lines) if lines else NO_PRECEDING
        text = join(context, preceding, side_text(clip.text), WINDOW_INSTRUCTIONS)
        video = window_video(self.info[clip.stream_id], window_clips, since=start)
        return user_request(text, self.sampling(clip, "description"), video)
