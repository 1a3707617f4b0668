"""Phase Two's DPO step on the shipped mini memorizer: wall time and peak memory of one
adaptation (``taskmem.dpo.train_adapter``) per adapter kind.

Each kind trains in its own process (so one kind's model and allocations cannot touch the
other's figures; ``train_adapter`` reports its own peak, see ``taskmem.dpo.peak_rss_mib``) on
``--pairs`` realistic pairs: mini training-split clips walked as the policy walks a stream
(``streams.Window.prompt``: 6 frames of the new clip, the last frame of each earlier clip in
the 50 s window, the descriptions already written, heard speech), with 5 of the episode's
questions as the supplement; chosen and rejected are two warm-start style descriptions of the
clip's true facts (``streams.compose_target``). Prints one line per kind, then one JSON line.

    python benchmarks/taskmem_dpo.py [--pairs 16] [--steps 10] [--kinds steering lora]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taskmem.dpo import AdapterConfig, peak_rss_mib, train_adapter
from taskmem.minidata import training_config
from taskmem.policy import SHIPPED_MINI
from taskmem.protocol import FrameSpec, Prompt, format_reply
from taskmem.stages import slim_split
from taskmem.streams import Window, clip_facts, compose_target
from taskmem_bench.backends.packaged import resolve
from taskmem_bench.datasets.mini.dataset import plan_episode

BUDGET = 24


@dataclass(frozen=True)
class Pair:
    """A ``taskmem.dpo.PreferencePair`` made from the clip's facts instead of sampled."""

    prompt: Prompt
    chosen_completion: str
    rejected_completion: str


def mini_pairs(count: int, seed: int = 0) -> list[Pair]:
    """``count`` pairs from the training split's first episodes, one per clip with facts."""
    rng = np.random.default_rng(seed)
    episodes = 1 + count // 8
    config = training_config("train", episodes)
    pairs: list[Pair] = []
    for index, samples in enumerate(slim_split("train", episodes, FrameSpec())):
        questions = [q.text for q, _ in plan_episode(config, index).questions][:5]
        window = Window(50.0, FrameSpec())
        for sample in samples:
            new = window.new_frames(sample.clip)
            stated = window.stated(sample.clip)
            facts = clip_facts(sample)
            chosen = compose_target(facts, stated, BUDGET, rng)
            rejected = compose_target(facts, stated, BUDGET, rng)
            if chosen and rejected and chosen != rejected and len(pairs) < count:
                prompt = window.prompt(sample.clip, new, BUDGET, supplement=questions)
                pairs.append(Pair(prompt, format_reply(chosen), format_reply(rejected)))
            window = window.advanced(sample.clip, new, chosen)
    if len(pairs) < count:
        raise SystemExit(f"only {len(pairs)} pairs in {episodes} episodes")
    return pairs


def measure(kind: str, pairs: int, steps: int) -> dict:
    made = mini_pairs(pairs)
    before = peak_rss_mib()
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        result = train_adapter(Path(resolve(SHIPPED_MINI)), made,
                               AdapterConfig(kind=kind, steps=steps), Path(out) / kind)
        wall = time.perf_counter() - started
    return {"kind": kind, "pairs": result.pairs, "steps": len(result.steps),
            "wall_seconds": round(wall, 1), "peak_rss_mib": result.peak_rss_mib,
            "rss_before_training_mib": before, "first_loss": result.losses[0],
            "last_loss": result.losses[-1], "last_margin": result.steps[-1].margin}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--kinds", nargs="+", default=["steering", "lora"])
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child process: one kind, JSON out
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.pairs, args.steps)))
        return
    rows = []
    for kind in args.kinds:
        child = subprocess.run(
            [sys.executable, __file__, "--one", kind, "--pairs", str(args.pairs),
             "--steps", str(args.steps)], capture_output=True, text=True, check=True)
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{kind:9s} {r['pairs']} pairs, {r['steps']} steps: {r['wall_seconds']:6.1f} s, "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB ({r['rss_before_training_mib']:.0f} before "
              f"training), loss {r['first_loss']:.3f} -> {r['last_loss']:.3f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
