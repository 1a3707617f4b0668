"""The rejection every validation step raises; untrusted values in its reason are quoted by
``taskmem_bench.untrusted``."""

from __future__ import annotations


class Rejected(ValueError):
    """The bundle is not accepted; the message is the one reason given for it."""
