"""The streaming runtime: many streams in flight, clips in time order, questions at their time.

The runner orchestrates; each job it hands out has its own module: the order of a stream's clips
and questions and each round's batches (``schedule``), calling plugins under a deadline and
isolating their failures (``plugin_calls``), verdicts (the task's ``Scoring``, which calls the
LLM judge), the rows (``question_rows``) and the closing summary (``run_summary``). What stays
here is the policy's lifecycle per stream and the round that ties the jobs together: advance
every stream to its next clip, answer what is due, observe a batch. A policy that learns across
streams runs them in waves (``schedule.waves``) and adapts between them (``adaptation``).

A failing policy, decoder or reader costs only the stream (or question) it failed on: the
failure is recorded with its traceback and the run goes on. That holds for what a plugin raises
(``SystemExit`` included), for what it returns (checked where it enters the runner), for a call
that runs past ``call_timeout_s`` (``plugin_calls.CallGuard``), and for scoring a reply. A
policy or reader whose constructor raises fails every stream of the run instead of ending it.
"""

from __future__ import annotations

import functools
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from taskmem_bench.adaptation import end_wave, learns_across_streams
from taskmem_bench.backends import loaded_backend
from taskmem_bench.backends.base import BackendSettings, VideoPart
from taskmem_bench.datasets import DatasetRelease
from taskmem_bench.isolation import call_isolating
from taskmem_bench.manifest import Manifest
from taskmem_bench.media import iter_clips
from taskmem_bench.memory import MemoryStore
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
from taskmem_bench.results import RunDir
from taskmem_bench.run_summary import Timing, write_summary
from taskmem_bench.schedule import Checkpoint, LiveStream, causal_order, round_batches, waves
from taskmem_bench.schema import Clip, Episode, Question, StreamInfo, TaskNotice
from taskmem_bench.scoring.base import RememberingJudge, ScoredAnswer, ScoringItem
from taskmem_bench.scoring.judge import JudgeItem, Judgment, LLMJudge
from taskmem_bench.taskconfig import ConfigError


def schedule(episode: Episode, plan: RunPlan) -> Iterator[Clip | Question | Checkpoint]:
    """One stream's items in causal order (``schedule.causal_order``): its clips as the plan
    cuts and samples them, cut at every ask time, with only the allowed side channels."""
    stream, settings = episode.stream, plan.task.stream
    clips = iter_clips(
        stream,
        clip_seconds=settings.clip_seconds,
        sample_fps=settings.sample_fps,
        cuts=sorted({q.ask_time for q in stream.questions}),
        channels=plan.task.side_channels.allowed,
        max_side=settings.max_side,
    )
    return causal_order(stream.questions, clips)


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    summary: dict[str, Any]
    failed_streams: tuple[str, ...]
    resumed_streams: int


class StreamingRunner:
    """Runs one policy over one dataset release into one run directory."""

    def __init__(
        self,
        plan: RunPlan,
        release: DatasetRelease,
        run_dir: Path,
        *,
        policy: Policy | None = None,
        reader: Reader | None = None,
        judge: LLMJudge | None = None,
        on_progress: Callable[[str, str], None] = lambda event, stream_id: None,
    ) -> None:
        plan.check_release(release)
        self.judge = judge or plan.make_judge()
        open_ended = [
            q.id for e in release.episodes for q in e.stream.questions
            if q.scoring.kind == "open"
        ]
        if open_ended and self.judge is None:
            raise ConfigError(
                f"{len(open_ended)} open-answer questions (e.g. {open_ended[0]}) need an LLM "
                f"judge, and task {plan.task.name}'s scoring '{plan.task.scoring}' has none; "
                "use a task whose scoring judges open answers (egotempo)"
            )
        self.plan = plan
        self.release = release
        self.episodes = plan.episodes(release)
        self.run_dir = RunDir(run_dir)
        self.policy, policy_failure = constructed("policy", policy, plan.make_policy)
        self.learns, learns_failure = learns_across_streams(self.policy)
        self.reader, reader_failure = constructed("reader", reader, plan.make_reader)
        # every stream's failure, if any
        self.unusable = policy_failure or learns_failure or reader_failure
        self.policy_calls = CallGuard("policy", plan.settings.call_timeout_s)
        self.reader_calls = CallGuard("reader", plan.settings.call_timeout_s)
        self.scoring = plan.scoring
        self.on_progress = on_progress  # ("clip" | "question" | "stream", stream id) done
        self.timing = Timing()
        self.rounds = 0
        self.streams_seen = self.questions_seen = 0  # given to the policy; adaptations record them

    def run(self, manifest: Manifest, *, resume: bool = False) -> RunOutcome:
        started = time.perf_counter()
        if resume and self.learns and self.run_dir.finished_streams():
            raise ConfigError(
                f"cannot resume {self.run_dir.path}: policy '{self.plan.policy_name}' learns "
                "across streams, and what it learned from the finished streams cannot be "
                "restored; run it again with another --out"
            )
        finished = self.run_dir.open(manifest, resume=resume)
        kept = {i for i, failed in finished.items()
                if not failed and not self.run_dir.has_failed_questions(i)}
        for i in sorted(kept):
            self.on_progress("stream", self.episodes[i].stream.id)
        pending = [(i, episode) for i, episode in enumerate(self.episodes) if i not in kept]
        wave_streams = self.plan.task.learning.wave_streams if self.learns else None
        for wave in waves(pending, wave_streams):
            self._run_streams(wave)
            if self.learns and self.unusable is None:
                self._end_wave(wave)
        summary = write_summary(self.run_dir, self.plan, self.episodes, len(self.release.skipped),
                                self.timing, time.perf_counter() - started)
        self._record_backends()
        failed = tuple(
            self.episodes[i].stream.id
            for i, was_failed in sorted(self.run_dir.finished_streams().items())
            if was_failed
        )
        return RunOutcome(self.run_dir.path, summary, failed, resumed_streams=len(kept))

    def _run_streams(self, streams: list[tuple[int, Episode]]) -> None:
        """Run these streams to their end, up to ``streams_in_flight`` at a time."""
        queue = deque(streams)
        active: list[LiveStream] = []
        while queue or active:
            while queue and len(active) < self.plan.settings.streams_in_flight:
                active.append(self._start(*queue.popleft()))
            self.rounds += 1
            self._round(active)
            for stream in [s for s in active if s.done]:
                self._finish(stream)
                active.remove(stream)

    def _end_wave(self, wave: list[tuple[int, Episode]]) -> None:
        """The barrier after a wave: the policy adapts (``adaptation.end_wave``) and the call
        is recorded. One that raises costs no stream; one abandoned at its deadline may still
        be changing the policy, so every later stream fails with that reason: when it would
        stop, and so which streams it would change, depends on the clock."""
        number = wave[0][0] // self.plan.task.learning.wave_streams
        adaptation = end_wave(
            self.policy, self.policy_calls, self.plan.settings.adapt_limit,
            wave=number, stream_ids=[episode.stream.id for _, episode in wave],
            workspace=self.run_dir.adaptation_folder(number),
            streams_seen=self.streams_seen, questions_seen=self.questions_seen,
        )
        self.run_dir.append_adaptation(adaptation)
        if adaptation.timed_out:
            self.unusable = self.unusable or (
                "policy_error", f"the policy's end_wave after wave {number} was abandoned at its "
                f"deadline ({adaptation.error}); later streams are not run against a policy that "
                "may still be adapting")

    def _record_backends(self) -> None:
        """What each loaded backend reports about its model (resolved dtype and device, file
        hashes, adapters), as loaded by this invocation; policies that never loaded a model
        record nothing."""
        configs = {"policy": self.plan.policy_config, "reader": self.plan.reader_config,
                   "judge": self.judge.config if self.judge is not None else None}
        loaded = {
            role: backend.describe()
            for role, config in configs.items()
            if isinstance(config, BackendSettings) and (backend := loaded_backend(config))
        }
        if loaded:
            self.run_dir.record_backends(loaded)

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

    def _start(self, index: int, episode: Episode) -> LiveStream:
        stream = episode.stream
        state = LiveStream(
            index=index,
            episode=episode,
            store=MemoryStore(stream.id, self.plan.task.memory),
            items=schedule(episode, self.plan),
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

    def _finish(self, stream: LiveStream) -> None:
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
        self.run_dir.write_stream(stream.index, stream.id, stream.rows, stream.store.log, stream.failure)
        self.on_progress("stream", stream.id)


_FAILED = object()
"""What ``_recall`` returns for a question it failed."""
