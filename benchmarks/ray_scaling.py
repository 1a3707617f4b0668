"""The Ray executor's speed-up: the local runner against ``--executor ray`` with 2 actors, on the
same CPU-bound workload.

The workload is the real runner on real ``mini`` streams (decoded as in any run) with
``BusyPolicy``, which spends a fixed amount of single-threaded CPU work per clip (rounds of
SHA-256 over the clip's frames) and writes one entry. The local run uses one process; the Ray
run spreads the streams over ``--actors`` actors of one CPU each on a local Ray instance of as
many CPUs, started before either run is timed (a cluster is started once, not per run; the
actors' start is timed). Both runs must give the same rows. Prints each wall time and, last,
``speed-up <local/ray>`` (target ≥ 1.6 with 2 actors on 2 cores).

    python benchmarks/ray_scaling.py [--episodes 12] [--rounds 400] [--actors 2]

At the defaults the local run takes about a minute on one core; the Ray run's fixed cost (its
actors' start, about a second here) is paid once per run, so a much smaller workload shows
it instead of the scaling. The rounds hash the frames without copying them: a copy per round
made the work memory-bound, and two processes sharing the memory bus were each 9% slower here
(the actors' ``observe_s`` against the local run's), a measure of the machine, not of Ray.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from taskmem_bench.datasets import DatasetRelease
from taskmem_bench.memory import MemoryEntry
from taskmem_bench.plan import RunPlan, build_plan
from taskmem_bench.policy import Policy
from taskmem_bench.provenance import build_manifest
from taskmem_bench.runner import StreamingRunner
from taskmem_bench.schema import Clip, StreamInfo
from taskmem_bench.taskconfig import load_task


@dataclass(frozen=True)
class BusyConfig:
    rounds: int = 400
    """SHA-256 passes over each clip's frames."""


class BusyPolicy(Policy):
    """CPU-bound memorization: ``rounds`` hashes of each clip's frames, one entry per clip."""

    name = "busy"
    version = "1"
    Config = BusyConfig

    def start_stream(self, info: StreamInfo) -> None:
        pass  # what it writes depends on the clip alone

    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        written = []
        for clip in clips:
            frames, digest = clip.frames.tobytes(), b""
            for _ in range(self.config.rounds):  # chained, without copying the frames again
                chain = hashlib.sha256(digest)
                chain.update(frames)
                digest = chain.digest()
            written.append([MemoryEntry(clip.t_start, clip.t_end, f"clip {digest.hex()[:16]}")])
        return written


def timed_run(plan: RunPlan, release: DatasetRelease, out: Path) -> tuple[float, pl.DataFrame]:
    manifest = build_manifest(plan.describe(release), sys.argv)
    began = time.perf_counter()
    outcome = StreamingRunner(plan, release, out).run(manifest)
    wall = time.perf_counter() - began
    assert not outcome.failed_streams, outcome.failed_streams
    return wall, pl.read_parquet(outcome.run_dir / "rows.parquet")


def main(argv: list[str] | None = None) -> float:
    import ray

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=12, help="mini has 12")
    parser.add_argument("--rounds", type=int, default=400, help="hash passes per clip")
    parser.add_argument("--actors", type=int, default=2)
    args = parser.parse_args(argv)

    # by module name, which the actors import too (this folder is on their path)
    local = build_plan(load_task("mini"), "ray_scaling:BusyPolicy",
                       overrides=[("rounds", args.rounds)], limit=args.episodes)
    on_ray = dataclasses.replace(local, settings=dataclasses.replace(
        local.settings, executor="ray", ray_actors=args.actors))
    release = local.adapter().load_first(local.dataset_config, args.episodes)
    here = str(Path(__file__).parent)
    ray.init(num_cpus=args.actors, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": here}})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local_s, local_rows = timed_run(local, release, Path(tmp) / "local")
            ray_s, ray_rows = timed_run(on_ray, release, Path(tmp) / "ray")
    finally:
        ray.shutdown()
    assert ray_rows.equals(local_rows), "the Ray run's rows differ from the local run's"
    print(f"mini: {len(release.episodes)} streams, BusyPolicy with {args.rounds} hash rounds per "
          f"clip; {local_rows.height} questions, the same rows on both executors")
    print(f"local runner: {local_s:.2f} s")
    print(f"ray executor, {args.actors} actors: {ray_s:.2f} s")
    print(f"speed-up {local_s / ray_s:.2f}")
    return local_s / ray_s


if __name__ == "__main__":
    main()
