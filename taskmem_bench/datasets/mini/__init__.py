"""``mini``: the synthetic, fully ground-truthed streaming benchmark (docs/MINI.md)."""

from taskmem_bench.datasets.mini.dataset import Config, MiniDataset, plan_episode
from taskmem_bench.datasets.mini.mix import CATEGORIES, ENVIRONMENTS, TaskMix, parse_mix

__all__ = [
    "CATEGORIES", "ENVIRONMENTS", "Config", "MiniDataset", "TaskMix", "parse_mix", "plan_episode",
]
