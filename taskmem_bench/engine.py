"""Running streams: the policy's lifecycle per stream and the rounds that tie its jobs together.

``StreamEngine`` holds one policy, reader and judge and runs streams to their end, up to
``streams_in_flight`` at a time, each round advancing every stream to its next clip, answering
what is due and observing a batch. It yields each finished stream as a ``StreamPart``; where
the parts go is the caller's: the runner writes them into its run directory, a Ray actor
(``ray_executor``) sends them to the driver that does. The schedule of a stream (its clips,
decoded here or by a decode worker, in causal order with its questions) comes from the caller.

A failing policy, decoder or reader costs only the stream (or question) it failed on: the
failure is recorded with its traceback and the run goes on. That holds for what a plugin raises
(``SystemExit`` included), for what it returns (checked where it enters the engine), for a call
that runs past ``call_timeout_s`` (``plugin_calls.CallGuard``), and for scoring a reply. A
policy or reader whose constructor raises fails every stream instead of ending the run.
"""

from __future__ import annotations

import functools
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from taskmem_bench.adaptation import learns_across_streams
from taskmem_bench.backends import loaded_backend
from taskmem_bench.backends.base import BackendSettings, VideoPart
from taskmem_bench.isolation import call_isolating
from taskmem_bench.memory import MemoryStore, StoredEntry
from taskmem_bench.plan import RunPlan
from taskmem_bench.plugin_calls import (
    PLUGIN_FAILURES,
    CallGuard,
    call_batch,
    checked_output,
    checked_verdict,
    constructed,
    failure_text,
)
from taskmem_bench.policy import Policy
from taskmem_bench.question_rows import answered_row, failed_row
from taskmem_bench.readers import Reader, ReaderInput, ReaderOutput
from taskmem_bench.results import QuestionRow
from taskmem_bench.run_summary import Timing
from taskmem_bench.schedule import CausalOrder, LiveStream, round_batches
from taskmem_bench.schema import Episode, Question, StreamInfo, TaskNotice
from taskmem_bench.scoring.base import RememberingJudge, ScoredAnswer, ScoringItem
from taskmem_bench.scoring.judge import JudgeItem, Judgment, LLMJudge

Schedule = Callable[[Episode], CausalOrder]
"""A stream's items in causal order (``runner.schedule``)."""


@dataclass(frozen=True)
class StreamPart:
    """One finished stream, as ``RunDir.write_stream`` stores it."""

    index: int
    stream_id: str
    rows: tuple[QuestionRow, ...]
    log: tuple[StoredEntry, ...]
    failure: tuple[str, str] | None


def failed_part(
    plan: RunPlan, index: int, episode: Episode, failure: tuple[str, str]
) -> StreamPart:
    """The part of a stream that never ran to its end where it was started: every question
    failed with ``failure``, no memory."""
    stream = LiveStream(index=index, episode=episode,
                        store=MemoryStore(episode.stream.id, plan.task.memory),
                        items=CausalOrder((), iter(())))
    rows = sorted((failed_row(plan, stream, q, failure) for q in episode.stream.questions),
                  key=lambda r: (r.ask_time, r.question_id))
    return StreamPart(index, episode.stream.id, tuple(rows), (), failure)


class StreamEngine:
    """Runs streams with one policy, reader and judge (given, or made from the plan)."""

    def __init__(
        self,
        plan: RunPlan,
        *,
        policy: Policy | None = None,
        reader: Reader | None = None,
        judge: LLMJudge | None = None,
        on_progress: Callable[[str, str], None] = lambda event, stream_id: None,
    ) -> None:
        self.plan = plan
        self.judge = judge
        self.policy, policy_failure = constructed("policy", policy, plan.make_policy)
        self.learns, learns_failure = learns_across_streams(self.policy)
        self.reader, reader_failure = constructed("reader", reader, plan.make_reader)
        # every stream's failure, if any
        self.unusable = policy_failure or learns_failure or reader_failure
        self.policy_calls = CallGuard("policy", plan.settings.call_timeout_s)
        self.reader_calls = CallGuard("reader", plan.settings.call_timeout_s)
        self.scoring = plan.scoring
        self.on_progress = on_progress  # ("clip" | "question", stream id) done
        self.timing = Timing()
        self.rounds = 0
        self.streams_seen = self.questions_seen = 0  # given to the policy; adaptations record them

    def run_streams(
        self, streams: Iterable[tuple[int, Episode]], schedule: Schedule
    ) -> Iterator[list[StreamPart]]:
        """Run these streams to their end, up to ``streams_in_flight`` at a time, each through
        its ``schedule``; after every round, yield the streams that finished in it (often none:
        a round is also a sign of progress, which a Ray actor reports)."""
        queue = deque(streams)
        active: list[LiveStream] = []
        while queue or active:
            while queue and len(active) < self.plan.settings.streams_in_flight:
                index, episode = queue.popleft()
                active.append(self._start(index, episode, schedule(episode)))
            self.rounds += 1
            self._round(active)
            finished = [s for s in active if s.done]
            for stream in finished:
                active.remove(stream)
            yield [self._finish(stream) for stream in finished]

    def describe_backends(self) -> dict[str, dict[str, Any]]:
        """What each loaded backend reports about its model (resolved dtype and device, file
        hashes, adapters), as loaded by this process; policies that never loaded a model
        report nothing."""
        configs = {"policy": self.plan.policy_config, "reader": self.plan.reader_config,
                   "judge": self.judge.config if self.judge is not None else None}
        return {
            role: backend.describe()
            for role, config in configs.items()
            if isinstance(config, BackendSettings) and (backend := loaded_backend(config))
        }

    # -- one round: advance every stream to its next clip, answer what is due, observe a batch

    def _round(self, active: list[LiveStream]) -> None:
        stalled = [s for s in active if s.needs_clip]
        while stalled:
            due = [(stream, question) for stream in stalled for question in self._advance(stream)]
            self._answer(due)
            # a stream that stopped for its questions goes on to its next clip once they are
            # answered, so it still has a clip in this round's batches
            asked = {id(s): s for s, _ in due}.values()
            stalled = [s for s in asked if s.needs_clip]
        for batch in round_batches(active, self.plan.settings.batch_size):
            self._observe(batch)

    def _advance(self, stream: LiveStream) -> list[Question]:
        began = time.perf_counter()
        try:
            return stream.advance(self.rounds)
        finally:
            self.timing.decode_s += time.perf_counter() - began

    def _start(self, index: int, episode: Episode, items: CausalOrder) -> LiveStream:
        stream = episode.stream
        state = LiveStream(
            index=index,
            episode=episode,
            store=MemoryStore(stream.id, self.plan.task.memory),
            items=items,
        )
        info = StreamInfo(
            stream_id=stream.id,
            fps=stream.fps,
            duration=stream.duration,
            clip_seconds=self.plan.task.stream.clip_seconds,
            sample_fps=self.plan.task.stream.sample_fps,
            side_channels=tuple(self.plan.task.side_channels.allowed),
            budget=self.plan.task.memory,
            facts=episode.facts if self.plan.policy_cls.privileged else (),
        )
        if self.unusable is not None:
            state.failure = self.unusable
            return state
        self.streams_seen += 1
        try:
            self.policy_calls.call("start_stream()", self.policy.start_stream, info)
        except PLUGIN_FAILURES:
            state.failure = ("policy_error", traceback.format_exc())
        return state

    def _answer(self, due: list[tuple[LiveStream, Question]]) -> None:
        """Ask the reader about every due question in one call, score the replies in one call,
        keep each question's row, then send the policy its task notices."""
        if not due:
            return
        recalled = [(s, q, self._recall(s, q.ask_time)) for s, q in due]
        answerable = [
            (s, q, s.store.snapshot(q.ask_time), frames)
            for s, q, frames in recalled if frames is not _FAILED
        ]
        inputs = [
            ReaderInput(q.text, q.options, self.plan.memory_view.select(snapshot, q),
                        q.scoring.kind, frames)
            for s, q, snapshot, frames in answerable
        ]
        began = time.perf_counter()
        answer = functools.partial(self.reader_calls.call, "answer()", self.reader.answer)
        results = call_batch(answer, inputs, "answer()") if inputs else []
        outputs = [checked_output(result) for result in results]
        self.timing.read_s += time.perf_counter() - began
        scored = self._score([(s, q) for s, q, _, _ in answerable], outputs)
        for (stream, question, snapshot, _), shown, output, verdict in zip(
            answerable, inputs, outputs, scored, strict=True
        ):
            stream.rows.append(answered_row(self.plan, stream, question, snapshot, output, verdict,
                                            shown=len(shown.memory.entries)))
            self.timing.questions += 1
            self.on_progress("question", stream.id)
            notice = TaskNotice(
                stream.id, question.id, question.ask_time, question.text, question.options,
                question.category,
            )
            try:
                self.policy_calls.call("notice()", self.policy.notice, notice)
                self.questions_seen += 1
            except PLUGIN_FAILURES:
                stream.failure = stream.failure or ("policy_error", traceback.format_exc())

    def _score(
        self, asked: list[tuple[LiveStream, Question]], outputs: list[ReaderOutput | BaseException]
    ) -> list[ScoredAnswer | BaseException | None]:
        """The scoring's verdicts on the replies, in one batch (the LLM judge included);
        ``None`` where the reader failed. The scoring keeps a reply that breaks it to its own
        question; a plugin scoring whose whole batch raises is asked item by item, with the
        judgments already made replayed (``RememberingJudge``), and a result that is not a
        ``ScoredAnswer`` fails its question (``checked_verdict``)."""
        answered = [i for i, output in enumerate(outputs) if isinstance(output, ReaderOutput)]
        items = []
        for i in answered:
            stream, question = asked[i]
            gold = stream.episode.hidden[question.id].gold
            items.append(ScoringItem(question.text, question.options, gold, outputs[i].raw,
                                     question.scoring))
        judge = RememberingJudge(self._judge) if self.judge is not None else None
        score = functools.partial(self.scoring.score, judge=judge)
        verdicts = call_isolating(score, items, "score()", whole_batch=(),
                                  failures=PLUGIN_FAILURES) if items else []
        scored: list[ScoredAnswer | BaseException | None] = [None] * len(outputs)
        for i, verdict in zip(answered, verdicts, strict=True):
            scored[i] = checked_verdict(verdict)
        return scored

    def _judge(self, items: Sequence[JudgeItem]) -> Sequence[Judgment]:
        """The LLM judge, as the scoring asks it, timed."""
        began = time.perf_counter()
        try:
            return self.judge.judge(items)
        finally:
            self.timing.judge_s += time.perf_counter() - began

    def _recall(self, stream: LiveStream, t: float) -> VideoPart | None | object:
        """Frames a non-memory-only control hands the reader; ``None`` for every memory-only
        policy. A raising ``recall`` or a frame from after ``t`` (a leak) fails the stream like
        any policy error; ``_FAILED`` is returned and the question is left to the failure rows."""
        if self.plan.policy_cls.memory_only:
            return None
        try:
            frames = self.policy_calls.call("recall()", self.policy.recall, stream.id, t)
            if frames is not None and float(np.max(frames.timestamps)) > t:
                raise ValueError(
                    f"recall() returned a frame at {float(np.max(frames.timestamps)):.3f} s for "
                    f"a question asked at {t:.3f} s"
                )
            return frames
        except PLUGIN_FAILURES:
            stream.failure = stream.failure or ("policy_error", traceback.format_exc())
            return _FAILED

    def _observe(self, batch: list[LiveStream]) -> None:
        clips = [s.pending for s in batch]
        # taken before the policy runs: what it does to a clip object cannot move its memory
        marks = [(c.index, c.t_start, c.t_end, len(c.frames)) for c in clips]
        began = time.perf_counter()
        observe = functools.partial(self.policy_calls.call, "observe()", self.policy.observe)
        results = call_batch(observe, clips, "observe()")
        self.timing.observe_s += time.perf_counter() - began
        for stream, (index, t_start, t_end, frames), result in zip(batch, marks, results, strict=True):
            stream.pending = None
            if isinstance(result, BaseException):
                stream.failure = ("policy_error", failure_text(result))
                continue
            try:
                stream.store.write(index, t_end, result)
            except PLUGIN_FAILURES:  # the policy's entries (their meta) run its code here
                stream.failure = ("policy_error", traceback.format_exc())
                continue
            self.timing.clips += 1
            self.on_progress("clip", stream.id)
            self.timing.frames += frames
            self.timing.video_s += t_end - t_start

    def _finish(self, stream: LiveStream) -> StreamPart:
        stream.items.close()  # releases the decoder of a stream that stopped early
        if self.unusable is None:  # else the policy never saw the stream (or does not exist)
            try:
                self.policy_calls.call("end_stream()", self.policy.end_stream, stream.id)
            except PLUGIN_FAILURES:
                stream.failure = stream.failure or ("policy_error", traceback.format_exc())
        if stream.failure is not None:
            answered = {r.question_id for r in stream.rows}
            for question in stream.episode.stream.questions:
                if question.id not in answered:
                    stream.rows.append(failed_row(self.plan, stream, question, stream.failure))
        stream.rows.sort(key=lambda r: (r.ask_time, r.question_id))
        return StreamPart(stream.index, stream.id, tuple(stream.rows), tuple(stream.store.log),
                          stream.failure)


_FAILED = object()
"""What ``_recall`` returns for a question it failed."""
