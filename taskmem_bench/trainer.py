"""Commands a policy package ships: ``taskmem-bench train NAME ...`` and ``taskmem-bench
reproduce NAME ...`` hand their arguments to the command registered as ``NAME`` under the
entry-point group ``taskmem_bench.trainers`` or ``taskmem_bench.reproductions``.

A command owns its command-line options (``add_arguments``) and its work; the harness only
finds it, so a policy package can ship the command that retrains its models and the one that
reproduces its paper's figures.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from typing import ClassVar

from taskmem_bench.plugins import load, registered


class PackageCommand(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""
    group: ClassVar[str]
    kind: ClassVar[str]

    @classmethod
    @abstractmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None: ...

    @abstractmethod
    def run(self, args: argparse.Namespace) -> int:
        """Do the work; the command's exit code."""

    @classmethod
    def available(cls) -> dict[str, str]:
        return registered(cls.group)

    @classmethod
    def load(cls, name: str) -> type[PackageCommand]:
        return load(cls.group, cls.kind, name, cls)


class Trainer(PackageCommand):
    """Retrains a policy's models (``taskmem-bench train``)."""

    group = "taskmem_bench.trainers"
    kind = "trainer"


class Reproduction(PackageCommand):
    """Reproduces a paper's figures end to end (``taskmem-bench reproduce``)."""

    group = "taskmem_bench.reproductions"
    kind = "reproduction"
