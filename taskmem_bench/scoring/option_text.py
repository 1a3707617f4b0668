"""Matching a reply's words to an option's text.

One normalisation serves the final-answer parser (:mod:`~taskmem_bench.scoring.extract`), the
abstention reader (:mod:`~taskmem_bench.scoring.abstention`) and the voting reader, so that
"The answer is a red circle." meets the option "Red circle" the same way everywhere.
"""

from __future__ import annotations

import re

_MARKDOWN = re.compile(r"[*_`#]")
_EDGE_PUNCT = ".,;:!?\"'()[]{}<> "
_WS = re.compile(r"\s+")
_ARTICLE = re.compile(r"^(?:the|an|a)\s+")


def normalise_answer(s: str) -> str:
    """Lowercase, markdown-free, single-spaced, without surrounding punctuation or a leading
    article, so "The answer is a red circle." meets the option "Red circle"."""
    return _ARTICLE.sub("", _WS.sub(" ", _MARKDOWN.sub("", s).lower()).strip(_EDGE_PUNCT))


def unique_option(norm: str, option_norm: dict[str, str]) -> str | None:
    """The label of the one option whose normalised text is ``norm``; None for none or
    several."""
    matches = [label for label, opt in option_norm.items() if opt and opt == norm]
    return matches[0] if len(matches) == 1 else None


def mentions_option(s: str, option_norm: dict[str, str]) -> bool:
    """Whether some option's normalised text stands in ``s`` as whole words."""
    norm = normalise_answer(s)
    return any(
        opt and re.search(rf"(?<!\w){re.escape(opt)}(?!\w)", norm)
        for opt in option_norm.values()
    )
