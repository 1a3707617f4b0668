"""``mini``: the synthetic, fully ground-truthed streaming benchmark (docs/MINI.md)."""

from taskmem_bench.datasets.mini.dataset import Config, MiniDataset, plan_episode
from taskmem_bench.datasets.mini.questions import CATEGORIES, ENVIRONMENTS

__all__ = ["CATEGORIES", "ENVIRONMENTS", "Config", "MiniDataset", "plan_episode"]
