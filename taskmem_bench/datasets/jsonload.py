"""Annotation JSON files read with errors that name the file and the record.

A release's annotations are one JSON file holding an array of records (at the top level, or
under a key such as EgoTempo's ``annotations``). A syntax error deep in a 500-record file is
useless as "line 4211 column 7" alone, so :func:`load_json` also says which record of the array
it is in: the array is decoded again record by record up to the failing one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_SPACE = re.compile(r"\s*")


class AnnotationError(ValueError):
    """An annotation file that cannot be read; the message names the file and the record."""


def load_json(path: Path, records_key: str | None = None) -> Any:
    """Parse ``path``. ``records_key`` names the key of the record array (``None``: the top
    level is the array); it is used only to locate a syntax error by record index."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: cannot read annotations: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        index = failing_record(text, records_key)
        where = f" in record {index} (counting from 0)" if index is not None else ""
        raise AnnotationError(
            f"{path}: malformed JSON{where} at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def failing_record(text: str, records_key: str | None = None) -> int | None:
    """Index of the first record of the array that does not decode (or is not followed by
    ``,`` or ``]``); ``None`` when the array is not found or all its records decode."""
    opening = (
        re.compile(r"\s*\[") if records_key is None
        else re.compile(r'"' + re.escape(records_key) + r'"\s*:\s*\[')
    )
    found = opening.match(text) if records_key is None else opening.search(text)
    if found is None:
        return None
    decoder = json.JSONDecoder()
    pos, index = _SPACE.match(text, found.end()).end(), 0
    if text.startswith("]", pos):
        return None
    while True:
        try:
            _, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return index
        pos = _SPACE.match(text, pos).end()
        if text.startswith("]", pos):
            return None
        if not text.startswith(",", pos):
            return index + 1 if pos < len(text) else index
        pos = _SPACE.match(text, pos + 1).end()
        index += 1
