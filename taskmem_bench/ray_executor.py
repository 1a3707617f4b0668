"""Streams spread over Ray actors: ``run --executor ray [--ray-address ADDR]`` (``[ray]`` extra).

Each actor (``StreamActor``) holds its own policy, reader, judge and backends, placed by the
resources it asks for (``ray_gpus_per_actor`` 1: one GPU, and so one vLLM engine, per actor;
Ray sets the actor's ``CUDA_VISIBLE_DEVICES``), and runs the streams it is given through a
``StreamEngine``, ``streams_in_flight`` at a time, decoding as the plan says. It reports to the
driver between rounds: after each round that finishes streams, else at most every 10 s (with
the clips and questions done, for the progress display). The driver writes each finished
stream's part exactly as a local run does (atomic parts, memory logs, then summary and
manifest), so ``--resume``, ``report``, ``export`` and the leaderboard see one kind of run
directory. Results do not depend on which actor ran a stream or with which others (the
batching-independence contract), so the rows equal a local run's.

An actor that dies (or reports nothing within ``ray_progress_timeout_s`` and is killed) is lost
with its unfinished streams: they go back to the queue, a fresh actor replaces it, and a stream
that was lost before runs alone, so one that keeps killing its actor costs no other stream.
A stream started ``ray_stream_attempts`` times is not started again: its questions fail with
``executor_error``. An error the actor's own code raises fails its unfinished streams at once
(it would raise again).

A policy that learns across streams is refused: it adapts between waves in one process, and
actors would each learn from a share of the streams. Its runs use the local executor.

Every node needs the package (and any plugin module the plan names) installed, and the media
at the paths the driver's release gives; outputs are written only by the driver.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from taskmem_bench.engine import StreamEngine, StreamPart, failed_part
from taskmem_bench.plan import RunPlan
from taskmem_bench.run_summary import Timing
from taskmem_bench.schema import Episode
from taskmem_bench.taskconfig import ConfigError
from taskmem_bench.untrusted import cut

try:
    import ray
    from ray.exceptions import GetTimeoutError, RayError, RayTaskError
except ImportError:  # the [ray] extra is not installed: RayExecutor says so
    ray = None

_STARTUP_TIMEOUT_S = 600.0
"""How long the actors may take to start (their models load later, on first use)."""
_HEARTBEAT_S = 10.0
"""How often an actor whose rounds finish no stream still reports that it works (more often
under a ``ray_progress_timeout_s`` below 40 s)."""


class StreamActor:
    """One actor's engine; made a Ray actor class by ``RayExecutor`` with its resources."""

    def __init__(self, plan: RunPlan) -> None:
        from taskmem_bench.runner import scheduled  # the runner imports this module lazily

        self._events: list[tuple[str, str]] = []  # progress since the last report
        self.engine = StreamEngine(plan, judge=plan.make_judge(),
                                   on_progress=lambda *event: self._events.append(event))
        self._resources = ExitStack()
        self.schedule = self._resources.enter_context(scheduled(plan))  # its decode workers
        self._reported = Timing()

    def learns(self) -> bool:
        return self.engine.learns

    def run(
        self, streams: list[tuple[int, Episode]]
    ) -> Iterator[tuple[list[StreamPart], Timing, list[tuple[str, str]]]]:
        """The parts of the streams each round finished, with the counts and seconds spent
        and the progress events since the last report (a Ray streaming generator); a report
        without parts every
        ``_HEARTBEAT_S`` (at most a quarter of the progress timeout) while rounds finish no
        stream."""
        every = min(_HEARTBEAT_S, self.engine.plan.settings.ray_progress_timeout_s / 4)
        yield [], Timing(), []  # started: a fresh actor's construction is over
        reported_at = time.monotonic()
        for finished in self.engine.run_streams(streams, self.schedule):
            if finished or time.monotonic() - reported_at >= every:
                timing = self.engine.timing - self._reported
                self._reported = dataclasses.replace(self.engine.timing)
                reported_at = time.monotonic()
                events, self._events = self._events, []
                yield finished, timing, events

    def describe_backends(self) -> dict[str, dict[str, Any]]:
        return self.engine.describe_backends()

    def close(self) -> None:
        """Stop the decode workers."""
        self._resources.close()


@dataclass
class _Assignment:
    """Streams handed to one actor in one call, those not yet back, when it last reported
    (whether it has: the first report comes once a fresh actor is constructed), and whether it
    was killed for not reporting."""

    actor: Any
    unfinished: dict[int, Episode]
    reported_at: float
    reported: bool = False
    killed: bool = False

    def deadline(self, timeout_s: float) -> float:
        """When it is killed without a report: a fresh actor gets the start-up time too."""
        return self.reported_at + (
            timeout_s if self.reported else max(timeout_s, _STARTUP_TIMEOUT_S))


class RayExecutor:
    """Runs a plan's streams on Ray actors (see the module doc); a context that starts the
    actors (and a local Ray instance, when none runs and no address is given) and stops them."""

    learns = False

    def __init__(
        self, plan: RunPlan,
        on_progress: Callable[[str, str], None] = lambda event, stream_id: None,
    ) -> None:
        if ray is None:
            raise ConfigError("--executor ray needs Ray: pip install 'taskmem-bench[ray]'")
        self.plan = plan
        self.settings = plan.settings
        self.on_progress = on_progress  # the actors' clip and question events, as they report
        self.timing = Timing()
        self.lost_workers: list[str] = []  # one line per actor lost during the run
        self._actors: list[Any] = []
        self._started_ray = False

    def __enter__(self) -> RayExecutor:
        if not ray.is_initialized():
            ray.init(address=self.settings.ray_address, include_dashboard=False,
                     logging_level=logging.WARNING)
            self._started_ray = True
        try:
            self._actor_class = ray.remote(
                num_cpus=self.settings.actor_cpus, num_gpus=self.settings.ray_gpus_per_actor,
            )(StreamActor)
            self._actors = [self._new_actor() for _ in range(self._actor_count())]
            try:
                learns = ray.get([a.learns.remote() for a in self._actors],
                                 timeout=_STARTUP_TIMEOUT_S)
            except (RayError, GetTimeoutError) as exc:
                raise ConfigError(f"the Ray actors did not start: {_one_line(exc)}") from None
            if any(learns):
                raise ConfigError(
                    f"policy '{self.plan.policy_name}' learns across streams (it adapts between "
                    "waves in one process), and the ray executor spreads streams over actors "
                    "that would each learn from a share of them; run it with --executor local"
                )
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the actors: their decode workers first (a few seconds at most), then them."""
        try:
            ray.wait([a.close.remote() for a in self._actors],
                     num_returns=len(self._actors), timeout=10)
        finally:
            for actor in self._actors:
                ray.kill(actor)
            self._actors = []
            if self._started_ray:
                ray.shutdown()

    def run(self, streams: list[tuple[int, Episode]], write: Callable[[StreamPart], None]) -> None:
        """Hand streams to idle actors, ``streams_in_flight`` (or an even share) at a time,
        and a stream that was lost before alone; write each part as it comes, and retry a lost
        actor's unfinished streams."""
        queue = deque(streams)
        started: Counter[int] = Counter()
        running: dict[Any, _Assignment] = {}
        idle = list(self._actors)
        while queue or running:
            while idle and queue:
                share = math.ceil(len(queue) / (len(idle) + len(running)))
                size = 1 if started[queue[0][0]] else min(share, self.settings.streams_in_flight)
                chunk = [queue.popleft() for _ in range(size)]
                started.update(i for i, _ in chunk)
                actor = idle.pop()
                calls = actor.run.options(num_returns="streaming").remote(chunk)
                running[calls] = _Assignment(actor, dict(chunk), time.monotonic())
            timeout = self.settings.ray_progress_timeout_s
            deadline = min((a.deadline(timeout) for a in running.values() if not a.killed),
                           default=time.monotonic() + timeout)
            ready, _ = ray.wait(list(running), num_returns=1,
                                timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                self._kill_silent(running)
                continue
            calls = ready[0]
            assignment = running[calls]
            try:
                finished, timing, events = ray.get(next(calls))
            except StopIteration:
                del running[calls]
                if assignment.killed:  # it finished as it was killed: all its streams came
                    self.lost_workers.append(self._killed_line())
                    self._replace(assignment.actor, idle, queue)
                else:
                    idle.append(assignment.actor)
                continue
            except RayError as exc:
                del running[calls]
                lost = not isinstance(exc, RayTaskError)
                for part in self._after_loss(assignment, exc, lost, queue, started):
                    write(part)
                self._replace(assignment.actor, idle, queue)
                continue
            assignment.reported_at, assignment.reported = time.monotonic(), True
            self.timing += timing
            for event in events:
                self.on_progress(*event)
            for part in finished:
                del assignment.unfinished[part.index]
                write(part)

    def describe_backends(self) -> dict[str, dict[str, Any]]:
        """What the actors' loaded backends report, each role from the first actor that loaded
        it (an actor loads a model on first use)."""
        described: dict[str, dict[str, Any]] = {}
        for actor in self._actors:
            try:
                loaded = ray.get(actor.describe_backends.remote(), timeout=60)
            except (RayError, GetTimeoutError):
                continue
            for role, description in loaded.items():
                described.setdefault(role, description)
        return described

    def _after_loss(
        self, assignment: _Assignment, exc: BaseException, lost: bool, queue: deque,
        started: Counter[int],
    ) -> list[StreamPart]:
        """The unfinished streams of a call that ended in an error: queued again (first in
        line) while they have attempts left after a lost actor; otherwise their failed parts."""
        if lost:
            self.lost_workers.append(
                self._killed_line() if assignment.killed else _one_line(exc))
        failed = []
        for index, episode in sorted(assignment.unfinished.items(), reverse=True):
            if lost and started[index] < self.settings.ray_stream_attempts:
                queue.appendleft((index, episode))
            elif lost:
                failed.append(failed_part(self.plan, index, episode, (
                    "executor_error",
                    f"the Ray actor running this stream was lost {started[index]} times "
                    f"(ray_stream_attempts={self.settings.ray_stream_attempts}); the last: "
                    f"{self.lost_workers[-1]}")))
            else:
                failed.append(failed_part(self.plan, index, episode, (
                    "executor_error", f"the Ray actor's own code raised: {exc}")))
        return failed

    def _actor_count(self) -> int:
        """``ray_actors``, or as many as the cluster has room for; refused when it has no room
        for the actors asked for (they would wait for resources for ever)."""
        resources = ray.cluster_resources()
        cpus, gpus = self.settings.actor_cpus, self.settings.ray_gpus_per_actor
        room = min(
            math.floor(resources.get("CPU", 0) / cpus) if cpus else math.inf,
            math.floor(resources.get("GPU", 0) / gpus) if gpus else math.inf,
        )
        wanted = self.settings.ray_actors or (room if room != math.inf else 1)
        if wanted > room or wanted < 1:
            raise ConfigError(
                f"the Ray cluster has {resources.get('CPU', 0):g} CPUs and "
                f"{resources.get('GPU', 0):g} GPUs: room for {room} actors of "
                f"{cpus:g} CPUs and {gpus:g} GPUs, not {wanted}; set ray_actors, "
                "ray_cpus_per_actor (default: 1 + decode_workers) or ray_gpus_per_actor"
            )
        return int(wanted)

    def _replace(self, actor: Any, idle: list[Any], queue: deque) -> None:
        """Kill an actor whose state is unknown (if it is still there) and, while streams
        wait, start a fresh one in its place."""
        ray.kill(actor)
        self._actors.remove(actor)
        if queue:
            self._actors.append(self._new_actor())
            idle.append(self._actors[-1])

    def _killed_line(self) -> str:
        return ("killed after no report within ray_progress_timeout_s="
                f"{self.settings.ray_progress_timeout_s:g}")

    def _new_actor(self) -> Any:
        return self._actor_class.options(max_restarts=0).remote(self.plan)

    def _kill_silent(self, running: dict[Any, _Assignment]) -> None:
        """Kill the actors that reported nothing within ``ray_progress_timeout_s``: their calls
        then end as lost ones."""
        now = time.monotonic()
        for assignment in running.values():
            if not assignment.killed and now >= assignment.deadline(
                self.settings.ray_progress_timeout_s
            ):
                assignment.killed = True
                ray.kill(assignment.actor)


def _one_line(exc: BaseException) -> str:
    """What Ray says on one line, cut short: its messages run over many lines, the first says
    what happened and the last, for an error raised in the actor, what was raised."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    said = " … ".join(dict.fromkeys([lines[0], lines[-1]])) if lines else ""
    return cut(f"{type(exc).__name__}: {said}", 400)
