"""Decoding and the model overlapped: the runner with decode workers against the ideal
``max(total decode / workers, total model time)``.

The streams are camera-like video (H.264 with moving grain, 30 fps, 854x480 by default; no
questions), decoded for real by the runner, sampled at 1 fps at full resolution as the real
benchmarks' tasks do. The model is ``batching.py``'s ``SimulatedBackend`` under the real
``caption`` policy: each generate call sleeps a fixed latency whatever its batch size, as a GPU
serving a batch does, and leaves the CPU idle.

It measures the total decode (every stream decoded once, front to back, as the runner cuts it:
CPU seconds of this process, decoder threads included), the model time (the calls the run made
× the latency), the run without decode workers (``decode_workers=0``: one process decodes a
round, then waits for the model; the sequential ``decode + model``), and the run with
``--workers`` decode processes and ``--prefetch`` clips ahead. It prints each, the ideal, and
last ``ratio ideal/actual`` (targets: ≥ 0.9 when the model dominates, ≥ 0.8 when decode per
worker and model take equal time; ``--latency balanced`` picks that latency from the measured
decode).

    python benchmarks/pipeline.py [--streams 8] [--seconds 120] [--height 480]
        [--latency 6 | balanced] [--workers 2] [--prefetch 2] [--batch-size 8]

Each run also writes to stderr the runner process's CPU seconds, its wait for clips and the
policy's time (a diagnostic of where the time above the ideal went).

``--sizing`` prints instead the decode cost per video-hour on one core (this process pinned to
one CPU) at 480p, 720p and 1080p, for the README's sizing table.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

from batching import BACKEND, SimulatedBackend

from taskmem_bench.backends import get_backend
from taskmem_bench.datasets import DatasetAdapter, DatasetRelease
from taskmem_bench.media import iter_clips
from taskmem_bench.plan import RunPlan
from taskmem_bench.policy import NoConfig, load_policy
from taskmem_bench.provenance import build_manifest
from taskmem_bench.readers import load_reader
from taskmem_bench.runner import StreamingRunner, clip_job
from taskmem_bench.schema import Episode, MediaSegment, Stream
from taskmem_bench.taskconfig import RunSettings, StreamSettings, TaskConfig
from taskmem_bench.testing.videos import write_video


def camera_release(folder: Path, streams: int, seconds: int, height: int) -> DatasetRelease:
    """``streams`` grainy videos of ``seconds`` at 30 fps, 16:9 at ``height`` lines (even
    sizes, as yuv420p needs)."""
    width = round(height * 16 / 9 / 2) * 2
    episodes = []
    for k in range(streams):
        path = write_video(folder / f"camera-{height}p-{k}.mp4", seconds * 30, width=width,
                           height=height, fps=30, grain=24)
        stream = Stream(id=f"camera-{k}", segments=(MediaSegment(path, 0.0, float(seconds)),),
                        duration=float(seconds))
        episodes.append(Episode(stream=stream, hidden={}))
    return DatasetRelease(name="camera", revision="1", synthetic=True, episodes=tuple(episodes))


def caption_plan(batch_size: int, workers: int, prefetch: int) -> RunPlan:
    policy_cls, reader_cls = load_policy("caption"), load_reader("cpu")
    return RunPlan(
        task=TaskConfig(name="camera", dataset="camera",
                        stream=StreamSettings(clip_seconds=10.0, sample_fps=1.0)),
        adapter=DatasetAdapter, dataset_config=NoConfig(),
        policy_name="caption", policy_cls=policy_cls,
        policy_config=policy_cls.Config(backend=BACKEND, model="simulated"),
        reader_name="cpu", reader_cls=reader_cls, reader_config=reader_cls.Config(),
        settings=RunSettings(batch_size=batch_size, streams_in_flight=batch_size,
                             decode_workers=workers, prefetch_clips=prefetch),
    )


def total_decode(release: DatasetRelease, plan: RunPlan) -> float:
    """CPU seconds to decode every stream once as the runner cuts it."""
    began = time.process_time()
    for episode in release.episodes:
        job = clip_job(episode.stream, plan)
        for _ in iter_clips(job.stream, **job.options()):
            pass
    return time.process_time() - began


def timed_run(plan: RunPlan, release: DatasetRelease, out: Path) -> tuple[float, int]:
    """Wall seconds of the run, and the generate calls it made."""
    backend = get_backend(plan.policy_config)
    assert isinstance(backend, SimulatedBackend)
    backend.call_sizes.clear()
    manifest = build_manifest(plan.describe(release), sys.argv)
    began, cpu = time.perf_counter(), time.process_time()
    outcome = StreamingRunner(plan, release, out).run(manifest)
    wall = time.perf_counter() - began
    assert not outcome.failed_streams, outcome.failed_streams
    timing = outcome.summary["timing"]
    print(f"  runner process CPU {time.process_time() - cpu:.2f} s; waiting for clips "
          f"{timing['decode_s']:.2f} s; observe {timing['observe_s']:.2f} s", file=sys.stderr)
    return wall, len(backend.call_sizes)


def sizing(seconds: int) -> None:
    """Decode cost per video-hour on one core, as the runner decodes (1 fps kept, full size)."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    plan = caption_plan(8, 0, 1)
    print(f"decode cost on one core ({seconds} s of 30 fps video with grain, 1 fps kept)")
    with tempfile.TemporaryDirectory() as tmp:
        for height in (480, 720, 1080):
            release = camera_release(Path(tmp), 1, seconds, height)
            began = time.perf_counter()
            total_decode(release, plan)
            wall = time.perf_counter() - began
            print(f"{height}p: {wall / seconds * 3600 / 60:.1f} core-minutes per video-hour "
                  f"({seconds * 30 / wall:.0f} frames/s)")


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=120, help="length of each stream")
    parser.add_argument("--height", type=int, default=480, help="480, 720, 1080 ...")
    parser.add_argument("--latency", default="6",
                        help="seconds per generate call, or 'balanced': "
                        "model time = decode / workers")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--prefetch", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sizing", action="store_true", help="the sizing table instead")
    args = parser.parse_args(argv)
    if args.sizing:
        sizing(args.seconds)
        return 0.0

    with tempfile.TemporaryDirectory() as tmp:
        release = camera_release(Path(tmp), args.streams, args.seconds, args.height)
        sequential = caption_plan(args.batch_size, 0, args.prefetch)
        ahead = dataclasses.replace(sequential, settings=dataclasses.replace(
            sequential.settings, decode_workers=args.workers))
        decode_s = total_decode(release, sequential)
        # the calls a run makes do not depend on the latency: count them in a run without one
        SimulatedBackend.latency_s = 0.0
        _, calls = timed_run(ahead, release, Path(tmp) / "count")
        latency = (decode_s / args.workers / calls if args.latency == "balanced"
                   else float(args.latency))
        SimulatedBackend.latency_s = latency
        model_s = calls * latency
        print(f"{args.streams} streams of {args.seconds} s, {args.height}p 30 fps with grain; "
              f"batch_size {args.batch_size}; {calls} generate calls of {latency:.3f} s")
        print(f"total decode: {decode_s:.2f} s (CPU, one process)")
        print(f"total model: {model_s:.2f} s")
        print(f"sequential decode + model: {decode_s + model_s:.2f} s")
        wall_sequential, _ = timed_run(sequential, release, Path(tmp) / "sequential")
        print(f"run without decode workers: {wall_sequential:.2f} s")
        wall, _ = timed_run(ahead, release, Path(tmp) / "ahead")
        ideal = max(decode_s / args.workers, model_s)
        print(f"run with {args.workers} decode workers, prefetch {args.prefetch}: {wall:.2f} s")
        print(f"ideal max(decode / workers, model): {ideal:.2f} s")
        print(f"ratio ideal/actual {ideal / wall:.3f}")
    return ideal / wall


if __name__ == "__main__":
    main()
