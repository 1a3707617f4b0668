"""The rejection every validation step raises, and how untrusted values appear in its reason."""

from __future__ import annotations

from typing import Any


class Rejected(ValueError):
    """The bundle is not accepted; the message is the one reason given for it."""


def show(value: Any) -> str:
    """An untrusted value quoted for a message: repr escapes control characters; cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def printable_name(name: str) -> str:
    """A bundle's file name as messages and logs print it: unquoted, but with backslashes and
    every non-printable character (newline, escape, bidi control) escaped, so that a name
    cannot start a line of its own or move the terminal's cursor in a CI log."""
    return "".join(
        "\\\\" if c == "\\" else c if c.isprintable() else repr(c)[1:-1] for c in name
    )
