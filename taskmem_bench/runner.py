"""The streaming runtime: many streams in flight, clips in time order, questions at their time.

Each stream has a causal *schedule*: its clips (decoded once, in order, cut at every ask time)
interleaved with its questions. A question is answered from the memory snapshot at its
``ask_time`` before any later clip of its stream reaches the policy; the policy then gets a
task notice. Streams advance in lockstep rounds so that the policy sees batches holding one
clip from each of up to ``batch_size`` streams, which keeps a GPU backend busy.

A failing policy, decoder or reader costs only the stream (or question) it failed on: the
failure is recorded with its traceback and the run goes on. That holds for what a plugin raises
(``SystemExit`` included), for what it returns (checked where it enters the runner), for a call
that runs past ``call_timeout_s`` (:class:`CallGuard`), and for scoring a reply. A policy or
reader whose constructor raises fails every stream of the run instead of ending it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from taskmem_bench.backends import loaded_backend
from taskmem_bench.backends.base import BackendSettings, BackendUnavailable, VideoPart
from taskmem_bench.datasets import DatasetRelease
from taskmem_bench.datasets.egolife_window import paper_window
from taskmem_bench.media import iter_clips
from taskmem_bench.memory import MemorySnapshot, MemoryStore, StoredEntry, count_tokens
from taskmem_bench.plan import RunPlan
from taskmem_bench.policy import Policy
from taskmem_bench.readers import Reader, ReaderInput, ReaderOutput
from taskmem_bench.results import QuestionRow, RunDir, summarize, write_json, write_parquet
from taskmem_bench.schema import Clip, Episode, Question, StreamInfo, TaskNotice
from taskmem_bench.scoring.judge import JudgeItem, Judgment, LLMJudge, judgment_of
from taskmem_bench.scoring.variants import VERDICT_BY, get_scoring
from taskmem_bench.scoring.verdict import judge_choice, judge_open, open_reply
from taskmem_bench.taskconfig import ConfigError


class Checkpoint:
    """Marks the point after a clip and the questions at its end, before the next decode."""


CHECKPOINT = Checkpoint()


def schedule(episode: Episode, plan: RunPlan) -> Iterator[Clip | Question | Checkpoint]:
    """The causal order of one stream: each question right after the last clip ending at or
    before its ask time, and before the first clip after it.

    Questions at a clip's end (the usual case: clips are cut at ask times) come before anything
    later is decoded. A question that falls in a gap between segments is only known to be due
    once the next clip has been decoded (its start shows that nothing ended in between); that
    clip still reaches the policy only after the answer."""
    stream = episode.stream
    questions = deque(sorted(stream.questions, key=lambda q: q.ask_time))
    clips = iter_clips(
        stream,
        clip_seconds=plan.task.stream.clip_seconds,
        sample_fps=plan.task.stream.sample_fps,
        cuts=sorted({q.ask_time for q in questions}),
        channels=plan.task.side_channels.allowed,
        max_side=plan.task.stream.max_side,
    )
    for clip in clips:
        while questions and questions[0].ask_time <= clip.t_start:
            yield questions.popleft()
        yield clip
        while questions and questions[0].ask_time <= clip.t_end:
            yield questions.popleft()
        yield CHECKPOINT
    yield from questions


@dataclass
class _Stream:
    """A stream in flight."""

    index: int
    episode: Episode
    store: MemoryStore
    items: Iterator[Clip | Question | Checkpoint]
    pending: Clip | None = None
    waiting_since: int = 0  # the round in which the pending clip was decoded
    exhausted: bool = False
    failure: tuple[str, str] | None = None
    rows: list[QuestionRow] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.episode.stream.id

    @property
    def done(self) -> bool:
        return self.failure is not None or (self.exhausted and self.pending is None)


@dataclass
class Timing:
    clips: int = 0
    frames: int = 0
    video_s: float = 0.0
    questions: int = 0
    decode_s: float = 0.0
    observe_s: float = 0.0
    read_s: float = 0.0
    judge_s: float = 0.0

    def as_dict(self, wall_s: float) -> dict[str, float | None]:
        """Counts and seconds; ``realtime_factor`` is seconds of video memorized per second the
        policy spent, so ≥ 1 means memorization keeps up with a live stream."""
        return {
            "clips": self.clips,
            "frames": self.frames,
            "video_s": round(self.video_s, 3),
            "realtime_factor": round(self.video_s / self.observe_s, 2) if self.observe_s else None,
            "questions": self.questions,
            "decode_s": round(self.decode_s, 3),
            "observe_s": round(self.observe_s, 3),
            "read_s": round(self.read_s, 3),
            "judge_s": round(self.judge_s, 3),
            "wall_s": round(wall_s, 3),
        }


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
        self.policy, policy_failure = _constructed("policy", policy, plan.make_policy)
        self.reader, reader_failure = _constructed("reader", reader, plan.make_reader)
        self.unusable = policy_failure or reader_failure  # every stream's failure, if any
        self.policy_calls = CallGuard("policy", plan.settings.call_timeout_s)
        self.reader_calls = CallGuard("reader", plan.settings.call_timeout_s)
        self.scoring = get_scoring(plan.task.scoring)
        self.on_progress = on_progress  # ("clip" | "question" | "stream", stream id) done
        self.timing = Timing()
        self.rounds = 0

    def run(self, manifest: dict[str, Any], *, resume: bool = False) -> RunOutcome:
        started = time.perf_counter()
        finished = self.run_dir.open(manifest, resume=resume)
        kept = {i for i, failed in finished.items()
                if not failed and not self.run_dir.has_failed_questions(i)}
        queue = deque(
            (i, episode) for i, episode in enumerate(self.episodes) if i not in kept
        )
        for i in sorted(kept):
            self.on_progress("stream", self.episodes[i].stream.id)
        active: list[_Stream] = []
        while queue or active:
            while queue and len(active) < self.plan.settings.streams_in_flight:
                active.append(self._start(*queue.popleft()))
            self.rounds += 1
            self._round(active)
            for stream in [s for s in active if s.done]:
                self._finish(stream)
                active.remove(stream)
        summary = self._summarize(time.perf_counter() - started)
        self._record_backends()
        failed = tuple(
            self.episodes[i].stream.id
            for i, was_failed in sorted(self.run_dir.finished_streams().items())
            if was_failed
        )
        return RunOutcome(self.run_dir.path, summary, failed, resumed_streams=len(kept))

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
            self.run_dir.record("backends", loaded)

    # -- one round: advance every stream to its next clip, answer what is due, observe a batch

    def _round(self, active: list[_Stream]) -> None:
        stalled = [s for s in active if not s.done and s.pending is None]
        while stalled:
            due: list[tuple[_Stream, Question]] = []
            for stream in stalled:
                self._advance(stream, due)
            self._answer(due)
            # a stream that stopped for its questions goes on to its next clip once they are
            # answered, so it still has a clip in this round's batches
            asked = {id(s): s for s, _ in due}.values()
            stalled = [s for s in asked if not s.done and s.pending is None]
        ready = [s for s in active if s.pending is not None and s.failure is None]
        ready.sort(key=lambda s: s.waiting_since)  # stable: the longest-waiting clips first
        size = self.plan.settings.batch_size
        # only full batches while more clips are ready than one batch holds: the rest wait
        # (first in line) for the next round, when the streams observed now have new clips
        sent = len(ready) - len(ready) % size if len(ready) >= size else len(ready)
        for start in range(0, sent, size):
            self._observe(ready[start : start + size])

    def _start(self, index: int, episode: Episode) -> _Stream:
        stream = episode.stream
        state = _Stream(
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
        try:
            self.policy_calls.call("start_stream()", self.policy.start_stream, info)
        except PLUGIN_FAILURES:
            state.failure = ("policy_error", traceback.format_exc())
        return state

    def _advance(self, stream: _Stream, due: list[tuple[_Stream, Question]]) -> None:
        """Pull the stream's schedule up to its next clip, collecting the questions due first;
        stop at a checkpoint when questions are due, so they are answered before the decoder
        reads further."""
        began = time.perf_counter()
        asked = False
        try:
            for item in stream.items:
                if isinstance(item, Question):
                    due.append((stream, item))
                    asked = True
                elif isinstance(item, Clip):
                    stream.pending = item
                    stream.waiting_since = self.rounds
                    return
                elif asked:
                    return
            stream.exhausted = True
        except Exception:
            stream.failure = ("media_error", traceback.format_exc())
        finally:
            self.timing.decode_s += time.perf_counter() - began

    def _answer(self, due: list[tuple[_Stream, Question]]) -> None:
        if not due:
            return
        recalled = [(s, q, self._recall(s, q.ask_time)) for s, q in due]
        answerable = [
            (s, q, s.store.snapshot(q.ask_time), frames)
            for s, q, frames in recalled if frames is not _FAILED
        ]
        inputs = [
            ReaderInput(q.text, q.options, self._shown(q, snapshot), q.scoring.kind, frames)
            for s, q, snapshot, frames in answerable
        ]
        began = time.perf_counter()
        answer = functools.partial(self.reader_calls.call, "answer()", self.reader.answer)
        results = _call_isolating(answer, inputs, "answer()") if inputs else []
        outputs = [_checked_output(result) for result in results]
        self.timing.read_s += time.perf_counter() - began
        judgments = self._judge([(s, q) for s, q, _, _ in answerable], outputs)
        for (stream, question, snapshot, _), shown, output, judgment in zip(
            answerable, inputs, outputs, judgments, strict=True
        ):
            stream.rows.append(
                self._scored_row(stream, question, snapshot, output, judgment,
                                 shown=len(shown.memory.entries))
            )
            self.timing.questions += 1
            self.on_progress("question", stream.id)
            notice = TaskNotice(
                stream.id, question.id, question.ask_time, question.text, question.options,
                question.category,
            )
            try:
                self.policy_calls.call("notice()", self.policy.notice, notice)
            except PLUGIN_FAILURES:
                stream.failure = stream.failure or ("policy_error", traceback.format_exc())

    def _scored_row(
        self, stream: _Stream, question: Question, snapshot: MemorySnapshot,
        output: ReaderOutput | BaseException, judgment: Judgment | None, *, shown: int,
    ) -> QuestionRow:
        """The answered question's row; a reply that makes scoring raise fails only its
        question (``scoring_error``, no output kept: a failed row has none)."""
        try:
            return self._row(stream, question, snapshot, output, judgment=judgment, shown=shown)
        except Exception:
            failure = ("scoring_error", traceback.format_exc())
            return self._row(stream, question, snapshot, None, failure, shown=shown)

    def _shown(self, question: Question, snapshot: MemorySnapshot) -> MemorySnapshot:
        """What the reader sees of a snapshot: all of it, or under the ``paper_window`` view the
        entries near the query and the question's annotated evidence (harness-side spans)."""
        if self.plan.task.memory_view != "paper_window":
            return snapshot
        entries = paper_window(snapshot.entries, question.ask_time, question.evidence)
        return dataclasses.replace(snapshot, entries=entries)

    def _judge(
        self, asked: list[tuple[_Stream, Question]], outputs: list[ReaderOutput | BaseException]
    ) -> list[Judgment | None]:
        """The LLM judge's judgments of the open answers that neither abstain nor are empty, in
        one batch; ``None`` where no judgment is needed."""
        wanted: list[int] = []
        items: list[JudgeItem] = []
        for i, ((stream, question), output) in enumerate(zip(asked, outputs, strict=True)):
            if question.scoring.kind != "open" or not isinstance(output, ReaderOutput):
                continue
            try:
                answer, abstained = open_reply(output.raw, question.scoring.abstain_text)
            except Exception:
                continue  # it raises again when its row is scored, and fails that question
            if not abstained and answer.strip():
                wanted.append(i)
                gold = stream.episode.hidden[question.id].gold
                items.append(JudgeItem(question.text, gold, answer))
        judgments: list[Judgment | None] = [None] * len(outputs)
        if items:
            began = time.perf_counter()
            for i, judgment in zip(wanted, _judge_isolating(self.judge, items), strict=True):
                judgments[i] = judgment
            self.timing.judge_s += time.perf_counter() - began
        return judgments

    def _recall(self, stream: _Stream, t: float) -> VideoPart | None | object:
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

    def _observe(self, batch: list[_Stream]) -> None:
        clips = [s.pending for s in batch]
        # taken before the policy runs: what it does to a clip object cannot move its memory
        marks = [(c.index, c.t_start, c.t_end, len(c.frames)) for c in clips]
        began = time.perf_counter()
        observe = functools.partial(self.policy_calls.call, "observe()", self.policy.observe)
        results = _call_isolating(observe, clips, "observe()")
        self.timing.observe_s += time.perf_counter() - began
        for stream, (index, t_start, t_end, frames), result in zip(batch, marks, results, strict=True):
            stream.pending = None
            if isinstance(result, BaseException):
                stream.failure = ("policy_error", _format(result))
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

    def _row(
        self,
        stream: _Stream,
        question: Question,
        snapshot: MemorySnapshot | None,
        output: ReaderOutput | BaseException | None,
        failure: tuple[str, str] | None = None,
        *,
        judgment: Judgment | None = None,
        shown: int = 0,
    ) -> QuestionRow:
        """The row of one question: answered (``output``), or failed with ``failure``.
        ``snapshot`` is the stream's memory at the ask time (the log prefix); the reader was
        shown ``shown`` of its entries."""
        hidden = stream.episode.hidden[question.id]
        if isinstance(output, BaseException):
            failure = ("reader_error", _format(output))
        raw = output.raw if isinstance(output, ReaderOutput) else None
        verdict = None
        if raw is not None and question.scoring.kind == "open":
            verdict = judge_open(raw, question.scoring.abstain_text, judgment)
        elif raw is not None:
            verdict = judge_choice(raw, question.options, hidden.gold)
        return QuestionRow(
            task=self.plan.task.name,
            policy=self.plan.policy_name,
            reader=self.plan.reader_name,
            stream_id=stream.id,
            question_id=question.id,
            category=question.category,
            question=question.text,
            options=json.dumps(list(question.options)),
            answer_format=question.scoring.kind,
            ask_time=question.ask_time,
            evidence_delay=question.evidence_delay,
            memory_entries=len(snapshot.entries) if snapshot else 0,
            memory_shown=shown,
            memory_tokens=snapshot.n_tokens if snapshot else 0,
            memory_chars=snapshot.n_chars if snapshot else 0,
            memory_digest=snapshot.digest if snapshot else None,
            budget_dropped_tokens=stream.store.dropped_tokens,
            raw_output=raw,
            parsed=verdict.parsed if verdict else None,
            extraction=verdict.method if verdict else None,
            gold=hidden.gold,
            correct=verdict.correct if verdict else False,
            abstained=verdict.abstained if verdict else False,
            parse_failed=verdict.parse_failed if verdict else False,
            verdict_by=VERDICT_BY[question.scoring.kind],
            variants=self.scoring.values(raw, question.options, hidden.gold),
            judge_output=judgment.raw if judgment else None,
            judge_score=judgment.score if judgment else None,
            failure=failure[0] if failure else None,
            error=failure[1] if failure else judgment.error if judgment else None,
            tags=json.dumps(dict(question.tags), sort_keys=True),
        )

    def _finish(self, stream: _Stream) -> None:
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
                    stream.rows.append(self._row(stream, question, None, None, stream.failure))
        stream.rows.sort(key=lambda r: (r.ask_time, r.question_id))
        self.run_dir.write_stream(stream.index, stream.id, stream.rows, stream.store.log, stream.failure)
        self.on_progress("stream", stream.id)

    def _summarize(self, wall_s: float) -> dict[str, Any]:
        rows = self.run_dir.merged_rows()
        write_parquet(self.run_dir.rows_path, rows)
        finished = self.run_dir.finished_streams()
        summary = summarize(
            rows,
            {
                "task": self.plan.task.name,
                "policy": self.plan.policy_name,
                "reader": self.plan.reader_name,
                "streams": {
                    "total": len(self.episodes),
                    "finished": len(finished),
                    "failed": sum(finished.values()),
                },
                "stream_failures": self.run_dir.stream_failures(),
                "skipped": len(self.release.skipped),
                "memory": self._memory_size(finished),
                "memory_view": self.plan.task.memory_view,
                "timing": self.timing.as_dict(wall_s),
            },
            scoring=self.plan.task.scoring,
        )
        write_json(self.run_dir.summary_path, summary)
        return summary

    def _memory_size(self, finished: dict[int, bool]) -> dict[str, float | None]:
        """Memory written per hour of video (media time, not timeline span), over streams that
        finished."""
        tokens = chars = 0
        seconds = 0.0
        for index in finished:
            log = self.run_dir.memory_log(index)
            tokens += sum(count_tokens(s.entry.text) for s in log)
            chars += sum(len(s.entry.text) for s in log)
            seconds += self.episodes[index].stream.media_seconds or _last_written(log)
        hours = seconds / 3600
        return {
            "tokens_total": tokens,
            "chars_total": chars,
            "video_hours": round(hours, 4),
            "tokens_per_hour": round(tokens / hours, 1) if hours else None,
            "chars_per_hour": round(chars / hours, 1) if hours else None,
        }


_FAILED = object()
"""What ``_recall`` returns for a question it failed."""

T = TypeVar("T")

PLUGIN_FAILURES = (Exception, SystemExit)
"""What a policy or reader call may raise at the cost of only its stream or question:
``sys.exit()`` in a plugin must not end the run as a success. ``KeyboardInterrupt`` still
stops the run."""


class CallTimeout(TimeoutError):
    """A policy or reader call ran past ``call_timeout_s`` and was abandoned."""


class ComponentUnavailable(RuntimeError):
    """The policy or reader takes no call: it could not be constructed, or it is still running
    a call abandoned after ``call_timeout_s``."""


WHOLE_BATCH_FAILURES = (BackendUnavailable, CallTimeout, ComponentUnavailable)
"""Failures no single item caused: the backend is down, the call ran out of time, or the
component takes no call. Retrying item by item would only meet them once more per item (and
run a timed-out batch's items beside the abandoned call, on the same streams' state), so every
item gets the error."""


@dataclass
class CallGuard:
    """Makes one component's calls (the policy's, or the reader's) under ``timeout_s``.

    Without a timeout a call runs on the caller's thread. With one it runs on a daemon worker
    thread, which a timed-out call abandons (``CallTimeout``): Python cannot stop a thread, so
    it may keep running, and may still change the component's state, until it returns or the
    process ends. Until it returns, every further call to the component fails at once
    (``ComponentUnavailable``) instead of starting another thread beside it, so abandoned calls
    never pile up and a component (or a model engine that is not thread-safe) never runs two
    calls at once; after it returns, calls go through again. The runner never uses what an
    abandoned call returns and fails every stream or question it was for. A hang cannot
    corrupt the run's own records: the worker touches nothing but its result."""

    component: str
    timeout_s: float | None
    _abandoned: tuple[str, threading.Event] | None = None  # the call, and set once it returned

    def call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, named ``<component>.<what>`` in errors."""
        what = f"{self.component}.{what}"
        self._check_free(what)
        if self.timeout_s is None:
            return fn(*args)
        outcome: list[tuple[bool, Any]] = []
        returned = threading.Event()

        def work() -> None:
            try:
                outcome.append((True, fn(*args)))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
                outcome.append((False, exc))
            finally:
                returned.set()

        threading.Thread(target=work, name=f"taskmem {what}", daemon=True).start()
        if not returned.wait(self.timeout_s):
            self._abandoned = (what, returned)
            raise CallTimeout(
                f"{what} exceeded call_timeout_s={self.timeout_s:g} s; the call was abandoned"
            )
        done, value = outcome[0]
        if not done:
            raise value
        return value

    def _check_free(self, what: str) -> None:
        if self._abandoned is None:
            return
        abandoned, returned = self._abandoned
        if not returned.is_set():
            raise ComponentUnavailable(
                f"{self.component} still busy with a call abandoned after "
                f"call_timeout_s={self.timeout_s:g} s ({abandoned}); {what} was not made"
            )
        self._abandoned = None


def _constructed(
    role: str, given: T | None, make: Callable[[], T]
) -> tuple[T | None, tuple[str, str] | None]:
    """The ``given`` component, else a new one; a constructor that raises (``SystemExit``
    included) gives none, and the failure (reason, traceback) that every stream then gets."""
    if given is not None:
        return given, None
    try:
        return make(), None
    except PLUGIN_FAILURES as exc:
        error = ComponentUnavailable(
            f"the {role} could not be constructed: {type(exc).__name__}: {exc}"
        )
        error.__cause__ = exc
        return None, (f"{role}_error", _format(error))


def _last_written(log: Sequence[StoredEntry]) -> float:
    return max((s.written_at for s in log), default=0.0)


def _call_isolating(
    fn: Callable[[list[Any]], Sequence[Any] | None], items: list[Any], what: str
) -> list[Any]:
    """``fn(items)``, checked to return one result per item. If it raises, ``fn`` is called on
    each item alone, so only the items that fail on their own get the exception (returned in
    their place) and one bad stream does not sink its batch; a ``WHOLE_BATCH_FAILURES`` error
    goes to every item not yet answered, without further calls."""

    def checked(batch: list[Any]) -> list[Any]:
        results = fn(batch)
        if results is None or len(results) != len(batch):
            got = "None" if results is None else f"{len(results)} results"
            raise TypeError(f"{what} must return one result per input; got {got} for {len(batch)}")
        return list(results)

    try:
        return checked(items)
    except PLUGIN_FAILURES as exc:
        if len(items) == 1 or isinstance(exc, WHOLE_BATCH_FAILURES):
            return [exc] * len(items)
    results: list[Any] = []
    for item in items:
        try:
            results.extend(checked([item]))
        except WHOLE_BATCH_FAILURES as exc:
            return results + [exc] * (len(items) - len(results))
        except PLUGIN_FAILURES as exc:
            results.append(exc)
    return results


def _checked_output(result: object) -> ReaderOutput | BaseException:
    """A reader's result as the runner accepts it: a ``ReaderOutput`` holding a ``str``, or an
    exception (its question's ``reader_error``) naming what came instead."""
    if isinstance(result, BaseException):
        return result
    if not isinstance(result, ReaderOutput):
        return TypeError(f"answer() must return ReaderOutput objects, got {type(result).__name__}")
    if not isinstance(result.raw, str):
        return TypeError(f"ReaderOutput.raw must be a str, got {type(result.raw).__name__}")
    return result


def _judge_isolating(judge: LLMJudge, items: list[JudgeItem]) -> list[Judgment]:
    """The judge's judgments; a judge that raises or miscounts (``LLMJudge`` does neither, a
    substituted one might) gives ``judge_error`` judgments instead of stopping the run."""
    try:
        judgments = judge.judge(items)
        if len(judgments) != len(items):
            raise TypeError(f"judge() returned {len(judgments)} judgments for {len(items)} items")
        return list(judgments)
    except Exception as exc:
        return [judgment_of(exc) for _ in items]


def _format(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))

