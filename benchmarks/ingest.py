"""Ingest throughput: the harness streaming a video versus raw PyAV decoding of the same file.

The harness run is the real runner (schedule, clip assembly, frame sampling and conversion,
memory store, result files) with the ``blind`` policy, so the ratio is the harness's overhead
over the decoder it cannot avoid. Prints frames/s of each and, last, ``ratio <harness/raw>``;
the target is at least 0.9.

    python benchmarks/ingest.py [--seconds 300] [--fps 30] [--size 224] [--sample-fps 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av

from baselines.controls import BlindPolicy
from taskmem_bench.datasets import DatasetAdapter, DatasetRelease
from taskmem_bench.plan import RunPlan
from taskmem_bench.policy import NoConfig
from taskmem_bench.provenance import build_manifest
from taskmem_bench.readers import load_reader
from taskmem_bench.runner import StreamingRunner
from taskmem_bench.schema import Episode, MediaSegment, Stream
from taskmem_bench.taskconfig import StreamSettings, TaskConfig
from taskmem_bench.testing.videos import write_video


def raw_decode(path: Path) -> tuple[int, float]:
    began = time.perf_counter()
    frames = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            frames += 1
    return frames, time.perf_counter() - began


def harness(path: Path, seconds: float, sample_fps: float, out: Path) -> float:
    stream = Stream(
        id="ingest", segments=(MediaSegment(path, 0.0, seconds),), duration=seconds
    )
    release = DatasetRelease(
        name="ingest", revision="1", synthetic=True,
        episodes=(Episode(stream=stream, hidden={}),),
    )
    reader_cls = load_reader("cpu")
    plan = RunPlan(
        task=TaskConfig(
            name="ingest", dataset="ingest",
            stream=StreamSettings(clip_seconds=10.0, sample_fps=sample_fps),
        ),
        adapter=DatasetAdapter, dataset_config=NoConfig(),
        policy_name="blind", policy_cls=BlindPolicy, policy_config=NoConfig(),
        reader_name="cpu", reader_cls=reader_cls, reader_config=reader_cls.Config(),
    )
    began = time.perf_counter()
    StreamingRunner(plan, release, out).run(build_manifest(plan.describe(release), ["ingest"]))
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--sample-fps", type=float, default=2.0)
    parser.add_argument(
        "--grain", type=int, default=24,
        help="noise amplitude; 0 gives flat frames that decode far faster than real footage",
    )
    parser.add_argument("--repeats", type=int, default=3, help="best of N for each side")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "ingest.mp4"
        write_video(
            video, args.seconds * args.fps, width=args.size, height=args.size, fps=args.fps,
            grain=args.grain,
        )
        print(
            f"video: {args.seconds} s, {args.fps} fps, {args.size}x{args.size}, H.264, "
            f"grain {args.grain}"
        )
        raw_best = harness_best = float("inf")
        frames = 0
        for repeat in range(args.repeats):
            frames, raw_s = raw_decode(video)
            raw_best = min(raw_best, raw_s)
            harness_s = harness(video, args.seconds, args.sample_fps, Path(tmp) / f"run{repeat}")
            harness_best = min(harness_best, harness_s)
        raw_fps, harness_fps = frames / raw_best, frames / harness_best
        print(f"raw PyAV decode: {raw_fps:.0f} frames/s ({frames} frames in {raw_best:.2f} s)")
        print(
            f"harness (blind, sample_fps={args.sample_fps}): {harness_fps:.0f} frames/s "
            f"({harness_best:.2f} s)"
        )
        print(f"ratio {harness_fps / raw_fps:.3f}")


if __name__ == "__main__":
    main()
