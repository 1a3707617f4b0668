"""Canonical fact sentences: the single source for fact texts and for question claims.

A question option is true exactly when one of its claim sentences is the text of a fact that had
begun by the ask time, so facts and claims must be written by the same functions.
"""

from __future__ import annotations

from taskmem_bench.datasets.mini.vocab import GROUP_ZONE, Item, place_phrase


def person_place(zone: str) -> str:
    """Where the person stands, e.g. 'at the shelf', 'on the rug'."""
    return f"on the {zone}" if zone == GROUP_ZONE else f"at the {zone}"


def appears(item: Item, zone: str) -> str:
    article = "An" if item.name[0] in "aeiou" else "A"
    return f"{article} {item.name} appears {place_phrase(zone)}."


def disappears(item: Item, zone: str) -> str:
    return f"The {item.name} disappears from the {zone}."


def has_pattern(item: Item, pattern: str) -> str:
    return f"The {item.name} has a {pattern} pattern."


def beside(item: Item, side: str, other: Item) -> str:
    return f"The {item.name} is {side} of the {other.name}."


def person_does(zone: str, doing: str) -> str:
    """An action at a zone; ``doing`` is a verb phrase: 'waves', 'picks up the red star'."""
    where = person_place(zone)
    return f"{where[0].upper()}{where[1:]}, the person {doing}."


def picks_up(item: Item) -> str:
    return f"picks up the {item.name}"


def places(item: Item) -> str:
    return f"places the {item.name}"


def sign_shows(word: str) -> str:
    return f"The sign shows the word {word}."


def there_are(count: int, item: Item, zone: str) -> str:
    return f"There are {count} {item.name}s {place_phrase(zone)}."


def says(speaker: str, statement: str) -> str:
    return f"{speaker} says {statement}."


def heard_line(speaker: str, statement: str) -> str:
    """A speech line as the side text delivers it, e.g. 'Ann: the password is TIGER'."""
    return f"{speaker}: {statement}"
