"""The trainer plugin contract: ``taskmem-bench train NAME ...`` hands its arguments to the
trainer registered as ``NAME`` under the entry-point group ``taskmem_bench.trainers``.

A trainer owns its command-line options (``add_arguments``) and its stages; the harness only
finds it, so a policy package can ship the command that retrains its models.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from typing import ClassVar

from taskmem_bench.plugins import load, registered

ENTRY_POINT_GROUP = "taskmem_bench.trainers"


class Trainer(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None: ...

    @abstractmethod
    def train(self, args: argparse.Namespace) -> int:
        """Run the requested training; the command's exit code."""


def available_trainers() -> dict[str, str]:
    return registered(ENTRY_POINT_GROUP)


def load_trainer(name: str) -> type[Trainer]:
    return load(ENTRY_POINT_GROUP, "trainer", name, Trainer)
