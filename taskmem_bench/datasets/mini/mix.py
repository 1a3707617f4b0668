"""Environments: how often each question category is asked, by name or as a mix a user writes.

A written mix such as ``counting:0.4,ocr:0.4`` gives each named category its weight, and the
categories it does not name share what is left equally. It is parsed and checked here only, into
a :class:`TaskMix` whose canonical form (categories sorted, each weight in Python's shortest
float form) names it in the revision and the question tags and seeds its episodes: the same mix
written two ways is the same split. A mix equal to a named environment is that environment.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

CATEGORIES = (
    "object_recognition", "attribute_perception", "counting", "ocr",
    "action_recognition", "temporal_order", "spatial", "speech",
)
SUM_TOLERANCE = 1e-9  # weights written in decimals rarely sum to exactly 1 in floating point


def _mix(**heavy: float) -> dict[str, float]:
    """A task mix: the named categories get their weight, the rest share what is left."""
    rest = [c for c in CATEGORIES if c not in heavy]
    left = 1.0 - sum(heavy[c] for c in CATEGORIES if c in heavy)
    share = left / len(rest) if rest and abs(left) > SUM_TOLERANCE else 0.0
    return {c: heavy.get(c, share) for c in CATEGORIES}


ENVIRONMENTS: dict[str, dict[str, float]] = {
    "mixed": _mix(),
    "count_ocr": _mix(counting=0.4, ocr=0.4),
    "action_time": _mix(action_recognition=0.3, temporal_order=0.3, spatial=0.3),
}
EXAMPLE = "counting:0.4,ocr:0.4"


@dataclass(frozen=True)
class TaskMix:
    """A checked environment. ``name`` is a named environment or a mix's canonical form;
    ``slug`` is what stream ids and cache folders carry (a mix's form has ``:`` and ``,``);
    ``seed_key`` picks the episodes: a named environment's index in ``ENVIRONMENTS`` (as it
    always was), else a number from the form's hash, above any index."""

    name: str
    weights: tuple[float, ...]  # in CATEGORIES order
    slug: str
    seed_key: int


def parse_mix(text: str) -> TaskMix:
    """The environment ``text`` names or writes; ValueError (one line) says what is wrong."""
    if text in ENVIRONMENTS:
        return _named(text)
    heavy = _entries(text)
    total = sum(heavy[c] for c in CATEGORIES if c in heavy)
    if total > 1 + SUM_TOLERANCE:
        raise ValueError(f"mini environment {text!r}: weights sum to {total:g}, over 1")
    if len(heavy) == len(CATEGORIES) and total < 1 - SUM_TOLERANCE:
        raise ValueError(f"mini environment {text!r} names every category, so its weights "
                         f"must sum to 1 (they sum to {total:g})")
    weights = _mix(**heavy)
    for name, named in ENVIRONMENTS.items():
        if named == weights:
            return _named(name)
    canonical = ",".join(f"{c}:{heavy[c]!r}" for c in sorted(heavy))
    digest = hashlib.sha256(canonical.encode()).digest()
    return TaskMix(canonical, tuple(weights[c] for c in CATEGORIES),
                   slug=f"mix-{digest.hex()[:12]}",
                   seed_key=int.from_bytes(digest[:8], "big") | 1 << 64)


def _named(name: str) -> TaskMix:
    weights = ENVIRONMENTS[name]
    return TaskMix(name, tuple(weights[c] for c in CATEGORIES), slug=name,
                   seed_key=tuple(ENVIRONMENTS).index(name))


def _entries(text: str) -> dict[str, float]:
    """``category:weight`` entries separated by commas, each category once."""
    if ":" not in text:
        raise ValueError(f"unknown mini environment {text!r}; choose from "
                         f"{', '.join(ENVIRONMENTS)} or write a mix such as {EXAMPLE}")
    heavy: dict[str, float] = {}
    for entry in text.split(","):
        category, sep, number = (part.strip() for part in entry.partition(":"))
        if not sep or not category or not number:
            raise ValueError(f"mini environment {text!r}: entry {entry.strip()!r} is not "
                             f"category:weight (e.g. {EXAMPLE})")
        if category not in CATEGORIES:
            raise ValueError(f"mini environment {text!r}: unknown category {category!r}; "
                             f"categories: {', '.join(CATEGORIES)}")
        if category in heavy:
            raise ValueError(f"mini environment {text!r}: category {category!r} is given twice")
        try:
            weight = float(number)
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"mini environment {text!r}: weight {number!r} of {category} is "
                             "not a number from 0 to 1")
        heavy[category] = weight + 0.0  # -0.0 and 0.0 are one weight
    return heavy
