"""The ``episodic-semantic`` baseline, after M3-Agent's two kinds of memory.

* Episodic: every clip gets an entry of kind ``episodic``, the VLM's caption of it (the same
  generic request as ``caption``, so the two baselines differ only by the semantic layer).
* Semantic: after every ``semantic_every`` clips, a text-only request asks the model for one to
  three general facts (people, their roles and habits, where things are kept, the place) that
  the recent episodic entries support; each becomes an entry of kind ``semantic`` spanning
  those clips. The reply should be a JSON list of strings; otherwise its lines are taken and
  the entries flagged ``meta["format_error"]``.

The semantic request for clips ``k-n+1..k`` rides in the same batch call as the caption of clip
``k+1`` (each ``observe`` is one model call, so cross-stream batches stay whole); its entries are
written with that clip. Unlike M3-Agent there is no identity clustering over the whole video
(which would leak the future): everything is derived causally, clip by clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taskmem_bench.backends import ChatRequest
from taskmem_bench.memory import MemoryEntry
from taskmem_bench.model_policy import GenerationConfig, Step
from taskmem_bench.schema import Clip, StreamInfo

from baselines.prompting import (
    CaptioningPolicy,
    Timed,
    clip_entries,
    parse_list,
    timed_lines,
    user_request,
)

MAX_FACTS = 3
SEMANTIC_PROMPT = (
    "Below are descriptions of recent moments of a live video stream, in time order. Derive one "
    "to three general facts they support that will stay useful later: about the people (names, "
    "roles, appearance, habits, relations), the objects and where they are kept, and the place. "
    "Do not retell the events. Each fact is one short sentence.\n"
    'Reply with a JSON list of strings and nothing after it, e.g. ["...", "..."].\n\n'
    "Descriptions:\n{descriptions}"
)


@dataclass(frozen=True)
class EpisodicSemanticConfig(GenerationConfig):
    """``semantic_every``: episodic entries per semantic request (3 clips = 30 s by default)."""

    semantic_every: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.semantic_every < 1:
            raise ValueError("semantic_every must be at least 1")


_Recent = tuple[Timed, ...]
"""An episodic-semantic stream's state: its episodic captions since its last semantic request."""


class EpisodicSemanticPolicy(CaptioningPolicy[_Recent]):
    """Episodic captions per clip plus periodic semantic facts; see the module docstring."""

    name = "episodic-semantic"
    version = "1"
    Config = EpisodicSemanticConfig

    def initial_state(self, info: StreamInfo) -> _Recent:
        return ()

    def step(self, clips: Sequence[Clip], states: Sequence[_Recent]) -> list[Step[_Recent]]:
        due = {
            i: self.semantic_request(clip, recent)
            for i, (clip, recent) in enumerate(zip(clips, states))
            if len(recent) >= self.config.semantic_every
        }
        captions, replies = self.captions_with(clips, due)
        steps = []
        for i, (clip, kept, caption) in enumerate(zip(clips, states, captions)):
            entries: list[MemoryEntry] = []
            if i in replies:
                entries, kept = self.semantic_entries(kept, replies[i]), ()
            entries += clip_entries(clip, caption, "episodic")
            steps.append(Step(entries, (*kept, Timed(clip.t_start, clip.t_end, caption))))
        return steps

    def semantic_request(self, clip: Clip, recent: Sequence[Timed]) -> ChatRequest:
        text = SEMANTIC_PROMPT.format(descriptions=timed_lines(recent) or "(no description)")
        return user_request(text, self.sampling(clip, "semantic"))

    @staticmethod
    def semantic_entries(recent: Sequence[Timed], reply: str) -> list[MemoryEntry]:
        facts, format_error = parse_list(reply, MAX_FACTS)
        start, end = recent[0].t_start, recent[-1].t_end
        meta = {"format_error": format_error}
        return [MemoryEntry(start, end, fact, "semantic", meta) for fact in facts]
