"""The rejection every validation step raises, and how untrusted values appear in its reason."""

from __future__ import annotations

from typing import Any


class Rejected(ValueError):
    """The bundle is not accepted; the message is the one reason shown for it."""


def show(value: Any) -> str:
    """An untrusted value quoted for a message: repr escapes control characters; cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
