"""``taskmem-bench train taskmem``: retrain the mini memorizer, stage by stage or all at once
(perception, captions, warm, phase-one).

    taskmem-bench train taskmem --stage all --out runs/train/taskmem
    taskmem-bench train taskmem --stage phase-one --out runs/train/taskmem --set steps=50 --seed 1

Each stage writes ``OUT/<stage>/model`` (the checkpoint and its ``training_record.json``) and
starts from the previous stage's ``OUT/<stage>/model`` unless ``--from`` names another folder.
``--resume`` continues a killed stage from its last periodic checkpoint. ``--set key=value``
fills the stage's Config (``--set stage.key=value`` with ``--stage all``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taskmem_bench.taskconfig import ConfigError, Overridable, apply_overrides, parse_override
from taskmem_bench.trainer import Trainer

from taskmem import phase_one, stages

STAGES: dict[str, tuple[type, Any]] = {
    "perception": (stages.PerceptionConfig, stages.perception),
    "captions": (stages.CaptionConfig, stages.captions),
    "warm": (stages.WarmConfig, stages.warm_start),
    "phase-one": (phase_one.PhaseOneConfig, phase_one.phase_one),
}
ORDER = tuple(STAGES)


class TaskMemTrainer(Trainer):
    name = "taskmem"
    description = "the mini memorizer: perception, captions, warm start, Phase One"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        return train(args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", choices=(*ORDER, "all"), required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/train/taskmem"))
    parser.add_argument("--from", dest="parent", type=Path, default=None,
                        help="checkpoint folder to start from (default: the previous stage's)")
    parser.add_argument("--seed", type=int, default=None, help="the stages' seed (default 0)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE")


def train(args: argparse.Namespace) -> int:
    names = ORDER if args.stage == "all" else (args.stage,)
    configs = stage_configs(names, [parse_override(o) for o in args.overrides], args.seed)
    for name in names:
        config_cls, run = STAGES[name]
        out = args.out / name
        if (out / stages.MODEL_DIR).is_dir() and not args.resume:
            raise ConfigError(f"{out / stages.MODEL_DIR} exists; pass --resume or another --out")
        if name == "perception":
            metrics = run(out, configs[name], resume=args.resume)
        else:
            parent = args.parent if args.parent and name == names[0] else \
                args.out / ORDER[ORDER.index(name) - 1] / stages.MODEL_DIR
            metrics = run(checkpoint(parent, name), out, configs[name], resume=args.resume)
        print(json.dumps({"stage": name, "checkpoint": str(out / stages.MODEL_DIR),
                          "metrics": metrics}, indent=2, default=str))
    return 0


def checkpoint(parent: Path, stage: str) -> Path | str:
    """A local checkpoint folder, or a Hugging Face Hub id (``Qwen/Qwen3-VL-30B-A3B-Thinking``)
    left to transformers; a local path without a checkpoint is an error now, not mid-load."""
    if (parent / "config.json").is_file():
        return parent
    text = str(parent)
    if not parent.exists() and text.count("/") == 1 and not text.startswith((".", "/", "~")):
        return text
    raise ConfigError(f"stage {stage} starts from {parent}, which holds no checkpoint")


def stage_configs(names: Sequence[str], overrides: list[tuple[str, Any]],
                  seed: int | None) -> dict[str, Any]:
    """Each stage's validated Config; a bare key reaches every named stage that has it."""
    sections = []
    for name in names:
        cls = STAGES[name][0]
        values = {f.name: f.default for f in dataclasses.fields(cls)}
        if seed is not None:
            values["seed"] = seed
        sections.append(Overridable(name, cls, values))
    return apply_overrides(sections, overrides)
