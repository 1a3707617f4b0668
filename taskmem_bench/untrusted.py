"""How text from untrusted input (a bundle, a manifest on disk) appears in one-line messages.

A value may hold a newline, a terminal escape or a bidi control; printed raw it could start a
line of its own in a log or hide what follows it, so messages show it escaped, and cut short.
"""

from __future__ import annotations

from typing import Any


def show(value: Any) -> str:
    """An untrusted value quoted for a message: repr escapes control characters; cut short."""
    return cut(repr(value), 80)


def printable_name(name: str) -> str:
    """A name (a file's, a manifest key's) as messages and logs print it: unquoted, but with
    backslashes and every non-printable character (newline, escape, bidi control) escaped, so
    that a name cannot start a line of its own or move the terminal's cursor in a CI log."""
    return "".join(
        "\\\\" if c == "\\" else c if c.isprintable() else repr(c)[1:-1] for c in name
    )


def cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``...`` where it was cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
