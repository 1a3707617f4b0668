"""Batching efficiency: how close the runner comes to handing the model only full batches.

The model is simulated by a backend that sleeps a fixed latency per ``generate`` call and
answers at once. That is the right stand-in here: a GPU serves a batch of up to ``batch_size``
requests in about the time of one, so a memorizer's cost is close to (number of calls) x
(latency per call), and a fixed latency makes any gap between actual and ideal time the
runner's own (partial batches, work between calls), never the model's speed. The policy is the
real ``caption`` baseline, which sends each observe batch as one call, run by the real runner
on the real ``mini`` streams (decoded as in any run) with the CPU reader.

For each ``streams_in_flight`` setting it prints clips, calls, mean batch fill, wall time, the
ideal ceil(clips / batch_size) x latency, the time spent in the model (calls x latency), the
runner's decode and reader time, ``packing`` = ideal / model time (how full the batches were,
independent of machine load), and the ratio ideal / wall (target at least 0.9); the ratios
again on the last lines.

    python benchmarks/batching.py [--latency 0.5] [--batch-size 8] [--streams-in-flight 8 16]
                                  [--episodes 12] [--episode-seconds 120]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from taskmem_bench.backends import Backend, BackendSettings, ChatRequest, Generation, get_backend
from taskmem_bench.datasets import DatasetRelease
from taskmem_bench.plan import RunPlan, build_plan
from taskmem_bench.provenance import build_manifest
from taskmem_bench.runner import StreamingRunner
from taskmem_bench.taskconfig import load_task


class SimulatedBackend(Backend):
    """A model whose every call costs ``latency_s`` whatever its batch size; records the size
    of each call."""

    name = "simulated"
    latency_s: ClassVar[float] = 0.5

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self.call_sizes: list[int] = []

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        time.sleep(self.latency_s)
        self.call_sizes.append(len(requests))
        return [Generation("A person moves an object.") for _ in requests]


BACKEND = f"{SimulatedBackend.__module__}:SimulatedBackend"


@dataclass(frozen=True)
class Measurement:
    streams_in_flight: int
    batch_size: int
    latency_s: float
    clips: int
    calls: int
    wall_s: float
    decode_s: float
    read_s: float

    @property
    def fill(self) -> float:
        """Mean requests per call over the batch size."""
        return self.clips / (self.calls * self.batch_size) if self.calls else 0.0

    @property
    def ideal_s(self) -> float:
        return math.ceil(self.clips / self.batch_size) * self.latency_s

    @property
    def model_s(self) -> float:
        return self.calls * self.latency_s

    @property
    def packing(self) -> float:
        """Ideal over model time: 1 when every call but the last was a full batch."""
        return self.ideal_s / self.model_s

    @property
    def ratio(self) -> float:
        return self.ideal_s / self.wall_s


def plan_for(args: argparse.Namespace, streams_in_flight: int) -> RunPlan:
    overrides = [
        ("backend", BACKEND), ("model", "simulated"),
        ("batch_size", args.batch_size), ("streams_in_flight", streams_in_flight),
        ("episodes", args.episodes), ("episode_seconds", args.episode_seconds),
    ]
    return build_plan(load_task(args.task), "caption", reader="cpu", overrides=overrides,
                      limit=args.episodes)


def measure(plan: RunPlan, release: DatasetRelease, latency_s: float, out: Path) -> Measurement:
    SimulatedBackend.latency_s = latency_s
    backend = get_backend(plan.policy_config)
    assert isinstance(backend, SimulatedBackend)
    backend.call_sizes.clear()
    runner = StreamingRunner(plan, release, out)
    manifest = build_manifest(plan.describe(release), sys.argv)
    began = time.perf_counter()
    outcome = runner.run(manifest)
    wall = time.perf_counter() - began
    timing = outcome.summary["timing"]
    assert sum(backend.call_sizes) == timing["clips"], "one request per clip"
    return Measurement(
        streams_in_flight=plan.settings.streams_in_flight,
        batch_size=plan.settings.batch_size,
        latency_s=latency_s,
        clips=timing["clips"],
        calls=len(backend.call_sizes),
        wall_s=wall,
        decode_s=timing["decode_s"],
        read_s=timing["read_s"],
    )


def main(argv: Sequence[str] | None = None) -> list[Measurement]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mini")
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per generate call")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--streams-in-flight", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--episode-seconds", type=float, default=120.0)
    args = parser.parse_args(argv)

    plans = [plan_for(args, n) for n in args.streams_in_flight]
    release = plans[0].adapter().load(plans[0].dataset_config)  # generated before timing
    print(
        f"task {args.task}: {len(release.episodes)} streams of {args.episode_seconds:g} s, "
        f"batch_size {args.batch_size}, {args.latency:g} s per generate call"
    )
    header = (
        "in_flight", "clips", "calls", "fill", "wall_s", "ideal_s", "model_s", "decode_s",
        "read_s", "packing", "ratio",
    )
    print("  ".join(f"{h:>9}" for h in header))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, plan in enumerate(plans):
            m = measure(plan, release, args.latency, Path(tmp) / str(k))
            results.append(m)
            row = (m.streams_in_flight, m.clips, m.calls, f"{m.fill:.3f}", f"{m.wall_s:.2f}",
                   f"{m.ideal_s:.2f}", f"{m.model_s:.2f}", f"{m.decode_s:.2f}", f"{m.read_s:.2f}",
                   f"{m.packing:.3f}", f"{m.ratio:.3f}")
            print("  ".join(f"{v:>9}" for v in row))
    for m in results:
        print(
            f"ratio {m.ratio:.3f} (streams_in_flight={m.streams_in_flight}, "
            f"batch_size={m.batch_size})"
        )
    return results


if __name__ == "__main__":
    main()
