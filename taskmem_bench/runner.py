"""The streaming runtime: a run directory filled with the rows of every stream of a plan.

The runner is the driver of a run: it opens (or resumes) the run directory, hands the pending
streams to an executor, writes each finished stream's part as it arrives, and closes the run
with its summary. Each job it hands out has its own module: running streams with one policy,
reader and judge (``engine``), the order of a stream's clips and questions (``schedule``),
decoding ahead in worker processes (``decode``), and spreading streams over Ray actors
(``ray_executor``). The local executor runs one engine in this process; a policy that learns
across streams runs its streams in waves (``schedule.waves``) and adapts between them
(``adaptation``).

A stream's clips are decoded in this process, in step with the run (nothing past an ask time
is decoded before its questions are answered), or, with ``decode_workers``, by worker
processes up to ``prefetch_clips`` ahead, as the harness's private work: either way the engine
hands a clip to the policy only after every question due before it has been answered.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from taskmem_bench.adaptation import end_wave
from taskmem_bench.datasets import DatasetRelease
from taskmem_bench.decode import ClipJob, DecodePool
from taskmem_bench.engine import Schedule, StreamEngine, StreamPart
from taskmem_bench.manifest import Manifest
from taskmem_bench.media import iter_clips
from taskmem_bench.plan import RunPlan
from taskmem_bench.policy import Policy
from taskmem_bench.readers import Reader
from taskmem_bench.results import RunDir
from taskmem_bench.run_summary import Timing, write_summary
from taskmem_bench.schedule import CausalOrder, waves
from taskmem_bench.schema import Clip, Episode, Stream
from taskmem_bench.scoring.judge import LLMJudge
from taskmem_bench.taskconfig import ConfigError


def clip_job(stream: Stream, plan: RunPlan) -> ClipJob:
    """How the plan cuts and samples ``stream`` into clips: cut at every ask time, with only
    the allowed side channels."""
    settings = plan.task.stream
    return ClipJob(
        stream,
        clip_seconds=settings.clip_seconds,
        sample_fps=settings.sample_fps,
        cuts=tuple(sorted({q.ask_time for q in stream.questions})),
        channels=tuple(plan.task.side_channels.allowed),
        max_side=settings.max_side,
    )


def schedule(
    episode: Episode, plan: RunPlan, clips: Iterator[Clip] | None = None
) -> CausalOrder:
    """One stream's items in causal order (``schedule.CausalOrder``): its clips (``clips``
    decoded elsewhere, else decoded here as ``clip_job`` says) and its questions."""
    if clips is None:
        job = clip_job(episode.stream, plan)
        clips = iter_clips(job.stream, **job.options())
    return CausalOrder(episode.stream.questions, clips)


@contextmanager
def scheduled(plan: RunPlan) -> Iterator[Schedule]:
    """Each stream's schedule for as long as the context lasts: clips decoded here, or with
    ``decode_workers`` by a ``DecodePool`` that the context starts and stops."""
    settings = plan.settings
    if not settings.decode_workers:
        yield functools.partial(schedule, plan=plan)
        return
    with DecodePool(settings.decode_workers, settings.prefetch_clips,
                    settings.decode_timeout_s) as pool:
        yield lambda episode: schedule(episode, plan, pool.clips(clip_job(episode.stream, plan)))


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    summary: dict[str, Any]
    failed_streams: tuple[str, ...]
    resumed_streams: int
    lost_workers: tuple[str, ...] = ()
    """Why each worker (Ray actor) lost during the run was lost; its unfinished streams were
    started again elsewhere, or failed once out of attempts."""


class Executor(Protocol):
    """Where streams run: ``run`` hands each finished stream to ``write`` as it arrives."""

    learns: bool  # the policy learns across streams: its runs cannot be resumed
    timing: Timing
    lost_workers: list[str]  # one line per worker lost during the run

    def run(
        self, streams: list[tuple[int, Episode]], write: Callable[[StreamPart], None]
    ) -> None: ...

    def describe_backends(self) -> dict[str, dict[str, Any]]: ...


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
        scoring_judge = judge or plan.make_judge()
        open_ended = [
            q.id for e in release.episodes for q in e.stream.questions
            if q.scoring.kind == "open"
        ]
        if open_ended and scoring_judge is None:
            raise ConfigError(
                f"{len(open_ended)} open-answer questions (e.g. {open_ended[0]}) need an LLM "
                f"judge, and task {plan.task.name}'s scoring '{plan.task.scoring}' has none; "
                "use a task whose scoring judges open answers (egotempo)"
            )
        self.plan = plan
        self.episodes = plan.episodes(release)
        self.skipped = len(release.skipped)
        self.run_dir = RunDir(run_dir)
        self.on_progress = on_progress  # ("clip" | "question" | "stream", stream id) done
        if plan.settings.executor == "local":
            engine = StreamEngine(plan, policy=policy, reader=reader, judge=scoring_judge,
                                  on_progress=on_progress)
            self.executor: Executor | None = LocalExecutor(engine, self.run_dir)
        elif policy is not None or reader is not None or judge is not None:
            raise ValueError("the ray executor makes its policy, reader and judge in each actor")
        else:
            self.executor = None  # the Ray actors start with the run

    def run(self, manifest: Manifest, *, resume: bool = False) -> RunOutcome:
        started = time.perf_counter()
        with self._executor() as executor:
            if resume and executor.learns and self.run_dir.finished_streams():
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
            executor.run(pending, self._write)
            backends = executor.describe_backends()
        summary = write_summary(self.run_dir, self.plan, self.episodes, self.skipped,
                                executor.timing, time.perf_counter() - started)
        if backends:
            self.run_dir.record_backends(backends)
        failed = tuple(
            self.episodes[i].stream.id
            for i, was_failed in sorted(self.run_dir.finished_streams().items())
            if was_failed
        )
        return RunOutcome(self.run_dir.path, summary, failed, resumed_streams=len(kept),
                          lost_workers=tuple(executor.lost_workers))

    @contextmanager
    def _executor(self) -> Iterator[Executor]:
        if self.executor is not None:
            yield self.executor
            return
        from taskmem_bench.ray_executor import RayExecutor  # the [ray] extra

        with RayExecutor(self.plan, self.on_progress) as executor:
            yield executor

    def _write(self, part: StreamPart) -> None:
        self.run_dir.write_stream(part.index, part.stream_id, part.rows, part.log, part.failure)
        self.on_progress("stream", part.stream_id)


class LocalExecutor:
    """Streams run in this process by one engine. A policy that learns across streams runs
    them in waves of the task's ``learning.wave_streams``, in index order, and adapts at each
    barrier (``_end_wave``)."""

    def __init__(self, engine: StreamEngine, run_dir: RunDir) -> None:
        self.engine = engine
        self.run_dir = run_dir
        self.plan = engine.plan
        self.learns = engine.learns
        self.timing = engine.timing
        self.lost_workers: list[str] = []  # one process: a lost worker is a lost run

    def run(self, streams: list[tuple[int, Episode]], write: Callable[[StreamPart], None]) -> None:
        wave_streams = self.plan.task.learning.wave_streams if self.learns else None
        with scheduled(self.plan) as schedule:
            for wave in waves(streams, wave_streams):
                for finished in self.engine.run_streams(wave, schedule):
                    for part in finished:
                        write(part)
                if self.learns and self.engine.unusable is None:
                    self._end_wave(wave)

    def describe_backends(self) -> dict[str, dict[str, Any]]:
        return self.engine.describe_backends()

    def _end_wave(self, wave: list[tuple[int, Episode]]) -> None:
        """The barrier after a wave: the policy adapts (``adaptation.end_wave``) and the call
        is recorded. One that raises costs no stream; one abandoned at its deadline may still
        be changing the policy, so every later stream fails with that reason: when it would
        stop, and so which streams it would change, depends on the clock."""
        engine = self.engine
        number = wave[0][0] // self.plan.task.learning.wave_streams
        adaptation = end_wave(
            engine.policy, engine.policy_calls, self.plan.settings.adapt_limit,
            wave=number, stream_ids=[episode.stream.id for _, episode in wave],
            workspace=self.run_dir.adaptation_folder(number),
            streams_seen=engine.streams_seen, questions_seen=engine.questions_seen,
        )
        self.run_dir.append_adaptation(adaptation)
        if adaptation.timed_out:
            engine.unusable = engine.unusable or (
                "policy_error", f"the policy's end_wave after wave {number} was abandoned at its "
                f"deadline ({adaptation.error}); later streams are not run against a policy that "
                "may still be adapting")
