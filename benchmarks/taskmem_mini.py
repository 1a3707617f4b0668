"""TaskMem on mini: what each training stage's memory is worth to the fixed `cpu` reader, and
how true and rich it is.

Runs, on held-out mini episodes (the shipped tasks' seed, never a training seed) with the `cpu`
reader and the 24-token budget:

* ``warm``: the warm-start checkpoint (``--warm``, default the training output);
* ``phase-one``: the shipped checkpoint (or ``--phase-one``), one row per extra ``--seed-run``;
* ``caption-window (warm)``: the caption-window baseline on the warm-start checkpoint;
* ``oracle``: ground truth in time order (the budget's ceiling in that order);
* ``blind``: no memory.

For each it prints Acc, Cov and Prec with 95 % intervals, **claim precision** (share of written
sentences that are true facts of their window; overall and per fact kind), **richness**
(distinct true facts per clip) and tokens per clip, then one JSON line per policy.

    python benchmarks/taskmem_mini.py [--task mini_large] [--limit 40] [--warm DIR]
        [--phase-one DIR] [--seed-run NAME=DIR ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from taskmem.claims import merge, tally_log
from taskmem_bench.cli import main as cli
from taskmem_bench.datasets.mini.dataset import Config as MiniConfig
from taskmem_bench.datasets.mini.dataset import plan_episode
from taskmem_bench.results import RunDir
from taskmem_bench.taskconfig import load_task


def run(task: str, limit: int, policy: str, out: Path, *settings: str) -> Path:
    args = ["run", "--task", task, "--policy", policy, "--limit", str(limit), "--out", str(out),
            "--reader", "cpu"]
    for s in settings:
        args += ["--set", s]
    code = cli(args)
    if code not in (0, 1):
        raise SystemExit(f"run of {policy} failed with exit code {code}")
    return out / task / policy


def claims(run_dir: Path, config: MiniConfig, limit: int):
    log = RunDir(run_dir).memory_log
    tallies = []
    for index in range(limit):
        plan = plan_episode(config, index)
        tallies.append(tally_log(log(index), plan.world, [q.ask_time for q, _ in plan.questions]))
    return merge(tallies)


def pct(value) -> str:
    return "  -  " if value is None else f"{100 * value:5.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="mini_large")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--warm", type=Path, default=Path("runs/train/taskmem/warm/model"))
    parser.add_argument("--phase-one", default="package:taskmem/checkpoints/mini")
    parser.add_argument("--seed-run", action="append", default=[], metavar="NAME=DIR",
                        help="another Phase One checkpoint to evaluate (e.g. another seed)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    task = load_task(args.task)
    config = MiniConfig(**task.dataset_args)
    out = args.out or Path(tempfile.mkdtemp(prefix="taskmem-mini-"))
    budget = f"tokens_per_clip={task.memory.tokens_per_clip}"
    entries = []
    if args.warm.is_dir():
        entries.append(("warm", "taskmem", f"model={args.warm.resolve()}"))
    else:
        print(f"(no warm-start checkpoint at {args.warm}: warm rows skipped)")
    entries.append(("phase-one", "taskmem", f"model={args.phase_one}"))
    for item in args.seed_run:
        name, _, folder = item.partition("=")
        entries.append((name, "taskmem", f"model={Path(folder).resolve()}"))
    if args.warm.is_dir():
        entries.append(("caption-window (warm)", "caption-window", f"model={args.warm.resolve()}"))
    entries += [("oracle", "oracle", "policy.order=time"), ("blind", "blind", None)]

    results = []
    for name, policy, setting in entries:
        settings = [budget] + ([setting] if setting else [])
        if policy == "taskmem":
            settings.append("adapt=off")  # the memorizer as trained; Phase Two is reproduce's
        run_dir = run(args.task, args.limit, policy, out / name.replace(" ", "_"), *settings)
        summary = json.loads((run_dir / "summary.json").read_text())
        tally = claims(run_dir, config, args.limit)
        results.append({"name": name, "acc": summary["acc"], "acc_ci": (summary["acc_ci_low"], summary["acc_ci_high"]),
                        "cov": summary["cov"], "prec": summary["prec"], "n": summary["n"],
                        **tally.as_dict()})

    print(f"\n{args.task}, first {args.limit} episodes (seed {config.seed}), cpu reader, {budget}")
    print(f"{'policy':24} {'Acc [95% CI]':>20} {'Cov':>6} {'Prec':>6} {'claimP':>7} "
          f"{'rich':>5} {'tok/clip':>8}")
    for r in results:
        low, high = r["acc_ci"]
        print(f"{r['name']:24} {pct(r['acc'])} [{pct(low)},{pct(high)}] {pct(r['cov'])} "
              f"{pct(r['prec'])} {pct(r['claim_precision']):>7} {r['richness']:5.2f} "
              f"{r['tokens_per_clip']:8.1f}")
    print("\nclaim precision by kind (sentences written):")
    for r in results:
        kinds = ", ".join(f"{k} {100 * v:.0f}% ({r['written_by_kind'][k]})"
                          for k, v in r["precision_by_kind"].items())
        print(f"  {r['name']:24} {kinds or '-'}")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
