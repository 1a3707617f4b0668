"""Annotation JSON files read with errors that name the file and the record.

A release's annotations are one JSON file holding an array of records (at the top level, or
under a key such as EgoTempo's ``annotations``). A syntax error deep in a 500-record file is
useless as "line 4211 column 7" alone, so :func:`load_json` also says which record of the array
it is in: the array is decoded again record by record up to the failing one.

Every way an annotation file can be unusable (unreadable, not UTF-8, malformed, nested deeper
than :data:`MAX_DEPTH`, the wrong shape, missing) is one :class:`AnnotationError`, which the
command line reports as one line with exit 2, never a traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from taskmem_bench.taskconfig import ConfigError

MAX_DEPTH = 32
"""Deepest nesting of arrays and objects accepted. Releases nest a few levels (EgoLife: array,
record, ``target_time`` list, moment); deeper JSON is refused here, before code that walks it
recursively (``repr``, ``json.dumps``, parsers of nested fields) runs out of stack."""
_SPACE = re.compile(r"\s*")


class AnnotationError(ConfigError):
    """A release whose annotations cannot be used; the message names the file and the problem
    (and the record, where one is at fault). A ``ConfigError``: like a wrong option, it stops
    the command before anything runs (exit 2)."""


def load_json(path: Path, records_key: str | None = None) -> Any:
    """Parse ``path``. ``records_key`` names the key of the record array (``None``: the top
    level is the array); it is used only to locate an error by record index."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: cannot read annotations: {exc}") from exc
    try:
        data = json.loads(text)
        too_deep = nesting(data) > MAX_DEPTH
    except json.JSONDecodeError as exc:
        raise AnnotationError(
            f"{path}: malformed JSON{_in_record(text, records_key)} at line {exc.lineno} "
            f"column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:  # nested past even the parser's own limit
        too_deep = True
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise AnnotationError(
            f"{path}: unreadable JSON{_in_record(text, records_key)}: {exc}") from None
    if too_deep:
        raise AnnotationError(f"{path}: JSON nested deeper than {MAX_DEPTH} levels"
                              f"{_in_record(text, records_key)}")
    return data


def nesting(value: Any) -> int:
    """How many arrays and objects deep ``value`` is (a scalar: 0), found without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _in_record(text: str, records_key: str | None) -> str:
    index = failing_record(text, records_key)
    return f" in record {index} (counting from 0)" if index is not None else ""


def failing_record(text: str, records_key: str | None = None) -> int | None:
    """Index of the first record of the array that does not decode, nests deeper than
    :data:`MAX_DEPTH` allows, or is not followed by ``,`` or ``]``; ``None`` when the array is
    not found or all its records are usable."""
    opening = (
        re.compile(r"\s*\[") if records_key is None
        else re.compile(r'"' + re.escape(records_key) + r'"\s*:\s*\[')
    )
    found = opening.match(text) if records_key is None else opening.search(text)
    if found is None:
        return None
    record_depth = MAX_DEPTH - (1 if records_key is None else 2)
    decoder = json.JSONDecoder()
    pos, index = _SPACE.match(text, found.end()).end(), 0
    if text.startswith("]", pos):
        return None
    while True:
        try:
            record, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            return index
        if nesting(record) > record_depth:
            return index
        pos = _SPACE.match(text, pos).end()
        if text.startswith("]", pos):
            return None
        if not text.startswith(",", pos):
            return index + 1 if pos < len(text) else index
        pos = _SPACE.match(text, pos + 1).end()
        index += 1
