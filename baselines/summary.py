"""The ``summary`` baseline: one rolling summary of the stream, rewritten every few clips under a
token budget.

Each clip is captioned by the VLM (the generic request of ``caption``); captions are working
notes, not memory. Once ``every_clips`` captions have gathered, the model is asked, in a
text-only request, to merge the previous summary and those captions into a new summary of at
most ``summary_tokens`` tokens (counted by :func:`taskmem_bench.memory.count_tokens`; a longer
reply is cut to the budget and flagged ``meta["truncated"]``).

What a reader sees: memory is append-only, so every rewrite appends one entry of kind
``summary`` spanning the stream from its first clip to the last clip the summary covers. All of
them start at the stream's start, so the rendered memory lists them oldest first and the
latest summary, which supersedes the others, comes last. Memory holds summaries only, so its
size shows what a bounded summary keeps; questions about clips not yet merged are unanswerable
from it, which is the cost of summarising.

Timing: the merge of clips ``k-n+1..k`` rides in the same batch call as the caption of clip
``k+1`` (each ``observe`` is one model call, so cross-stream batches stay whole); its entry is
therefore written one clip after the clips it covers, and captions gathered after a stream's
last merge never reach memory. Under a per-clip memory budget (``mini``: 24 tokens) the store
cuts a summary to that budget; run with ``--set tokens_per_clip=none`` to keep it whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taskmem_bench.backends import ChatRequest
from taskmem_bench.memory import MemoryEntry, count_tokens, truncate_tokens
from taskmem_bench.model_policy import GenerationConfig, Step
from taskmem_bench.schema import Clip, StreamInfo

from baselines.prompting import CaptioningPolicy, Timed, timed_lines, user_request

SUMMARY_PROMPT = (
    "You keep a running summary of a live video stream. Rewrite the summary so that it also "
    "covers the new clips described below, in at most {words} words. Keep what someone might "
    "later ask about: who did what, where and when, what was said or shown. Merge repeated "
    "facts and keep the order of events. Reply with the summary text only.\n\n"
    "Summary so far:\n{summary}\n\nNew clips:\n{captions}"
)
NO_SUMMARY = "(none yet: the stream has just begun)"


@dataclass(frozen=True)
class SummaryConfig(GenerationConfig):
    """``every_clips``: captions gathered per rewrite; ``summary_tokens``: the summary's budget
    (count_tokens units, about 1.2 per English word)."""

    every_clips: int = 3
    summary_tokens: int = 200

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.every_clips < 1 or self.summary_tokens < 1:
            raise ValueError("every_clips and summary_tokens must be at least 1")


@dataclass(frozen=True)
class _Rolling:
    """A stream's summary, when its first clip started, and the captions not yet merged."""

    summary: str = ""
    start: float | None = None
    captions: tuple[Timed, ...] = ()


class SummaryPolicy(CaptioningPolicy[_Rolling]):
    """A rolling summary; see the module docstring for cadence and what memory holds."""

    name = "summary"
    version = "1"
    Config = SummaryConfig

    def initial_state(self, info: StreamInfo) -> _Rolling:
        return _Rolling()

    def step(self, clips: Sequence[Clip], states: Sequence[_Rolling]) -> list[Step[_Rolling]]:
        due = {
            i: self.rewrite_request(clip, state)
            for i, (clip, state) in enumerate(zip(clips, states))
            if len(state.captions) >= self.config.every_clips
        }
        captions, rewrites = self.captions_with(clips, due)
        steps = []
        for i, (clip, state, caption) in enumerate(zip(clips, states, captions)):
            entries: list[MemoryEntry] = []
            if i in rewrites:
                state, entries = self.merged(state, rewrites[i])
            start = clip.t_start if state.start is None else state.start
            captioned = (*state.captions, Timed(clip.t_start, clip.t_end, caption))
            steps.append(Step(entries, _Rolling(state.summary, start, captioned)))
        return steps

    def rewrite_request(self, clip: Clip, state: _Rolling) -> ChatRequest:
        text = SUMMARY_PROMPT.format(
            words=max(1, self.config.summary_tokens * 3 // 4),
            summary=state.summary or NO_SUMMARY,
            captions=timed_lines(state.captions) or "(no description)",
        )
        return user_request(text, self.sampling(clip, "summary"))

    def merged(self, state: _Rolling, reply: str) -> tuple[_Rolling, list[MemoryEntry]]:
        """The state after a rewrite, and its summary entry (none for an empty reply, which
        keeps the previous summary)."""
        if not reply:
            return _Rolling(state.summary, state.start), []
        summary = truncate_tokens(reply, self.config.summary_tokens)
        truncated = count_tokens(reply) > self.config.summary_tokens
        assert state.start is not None  # a rewrite follows at least one clip
        entry = MemoryEntry(
            state.start, state.captions[-1].t_end, summary, "summary", {"truncated": truncated}
        )
        return _Rolling(summary, state.start), [entry]
