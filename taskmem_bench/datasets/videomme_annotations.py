"""Video-MME's question table as released: where the parquet is, which upload (edition) it is,
and whether its columns and rows can be used at all.

Everything here stops the load with a :class:`VideoMMEError` naming the file (and row); the
adapter (:mod:`~taskmem_bench.datasets.videomme`) builds streams from what passes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from taskmem_bench.datasets.files import sha256_file
from taskmem_bench.datasets.jsonload import AnnotationError
from taskmem_bench.schema import ANSWER_LABELS

HF_REPO = "lmms-lab/Video-MME"
ANNOTATIONS = Path("videomme") / "test-00000-of-00001.parquet"
REQUIRED_COLUMNS = ("video_id", "duration", "domain", "sub_category", "videoID", "question_id",
                    "task_type", "question", "options", "answer")
TEXT_COLUMNS = (*(c for c in REQUIRED_COLUMNS if c != "options"), "language")
"""Columns whose values are used as text (``language`` where the edition has it)."""
CURRENT_COLUMNS = frozenset({*REQUIRED_COLUMNS, "url"})
KNOWN_EDITIONS = {("current", 2700), ("language", 2541), ("language", 2544),
                  ("language+Subtitle", 2700)}


class VideoMMEError(AnnotationError):
    """The annotations cannot be used as they are; the message names the file and record."""


@dataclass(frozen=True)
class Annotations:
    """The question table and what names it."""

    frame: pl.DataFrame
    name: str
    """The parquet relative to the root (or ``hf:lmms-lab/Video-MME``)."""
    sha256: str
    edition: str

    @property
    def known(self) -> bool:
        return (self.edition, self.frame.height) in KNOWN_EDITIONS


def read_annotations(root: Path, source: str, parquet: str | None) -> Annotations:
    """The parquet (or, with ``source="hf"``, the HF copy) as a DataFrame, its columns checked;
    ``parquet`` is the adapter's ``annotations`` setting."""
    if source == "hf":
        frame = _read_hf()
        name, digest = f"hf:{HF_REPO}", hashlib.sha256(frame.write_ndjson().encode()).hexdigest()
    else:
        path = _find_parquet(parquet, root)
        try:
            frame = pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise VideoMMEError(f"{path}: not a readable parquet file ({exc})") from exc
        name, digest = _relative(root, path), sha256_file(path)
    return Annotations(frame, name, digest, _edition(frame, name))


def _find_parquet(parquet: str | None, root: Path) -> Path:
    if parquet is not None:
        path = Path(parquet).expanduser()
        if not path.is_file():
            raise VideoMMEError(f"videomme annotations {path}: no such file")
        return path
    if (root / ANNOTATIONS).is_file():
        return root / ANNOTATIONS
    found = sorted(root.rglob("test-*-of-*.parquet"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise VideoMMEError(f"no Video-MME parquet under {root} (expected {ANNOTATIONS}); "
                            "set annotations=PATH")
    raise VideoMMEError(f"several Video-MME parquets under {root}: "
                        f"{', '.join(str(p) for p in found)}; set annotations=PATH")


def _read_hf() -> pl.DataFrame:
    try:
        import datasets
    except ImportError as exc:
        raise VideoMMEError("videomme source=hf needs the `datasets` package") from exc
    try:
        table = datasets.load_dataset(HF_REPO, "videomme", split="test").data.table
    except Exception as exc:  # offline without a cached copy, hub errors: all end here
        raise VideoMMEError(f"cannot load {HF_REPO} through datasets ({exc}); download the "
                            "parquet and use source=local") from exc
    return pl.from_arrow(table)


def _edition(frame: pl.DataFrame, name: str) -> str:
    """Which upload this is, by its columns; unusable layouts stop here."""
    columns = set(frame.columns)
    if {"questions", "answers"} <= columns or "duration_category" in columns:
        raise VideoMMEError(f"{name}: the first Video-MME upload (one row per video) is not "
                            "supported; download the current parquet (one row per question)")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise VideoMMEError(f"{name}: missing column(s) {', '.join(missing)}; "
                            f"columns found: {', '.join(frame.columns)}")
    _check_dtypes(frame, name)
    extra = columns - CURRENT_COLUMNS
    if not extra:
        return "current"
    if extra == {"language"}:
        return "language"
    if extra == {"language", "Subtitle"}:
        return "language+Subtitle"
    return "custom:" + "+".join(sorted(extra))


def _check_dtypes(frame: pl.DataFrame, name: str) -> None:
    """Text columns must hold strings and ``options`` lists of them: an edited parquet with,
    say, integer answers is refused here, naming the column, not converted."""
    schema = frame.schema
    wrong = [f"{c} ({schema[c]})" for c in TEXT_COLUMNS if c in schema and not _text(schema[c])]
    options = schema["options"]
    if not (isinstance(options, pl.List) and _text(options.inner)):
        wrong.append(f"options ({options})")
    if wrong:
        raise VideoMMEError(f"{name}: column(s) of the wrong type: {', '.join(wrong)}; text "
                            "columns must be strings and options a list of strings")


def _text(dtype: pl.DataType) -> bool:
    """Whether the column's values are ``str`` (categories too: pandas saves labels so)."""
    return dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum))


def _relative(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def check_row(name: str, index: int, row: Mapping[str, Any]) -> None:
    """Stop the load at a row with an empty required field or an unusable option list."""
    for column in REQUIRED_COLUMNS:
        value = row[column]
        if value is None or (isinstance(value, str) and not value.strip()):
            raise VideoMMEError(f"{name} row {index} (question_id {row['question_id']!r}): "
                                f"{column} is empty")
    if not row["options"] or any(not isinstance(o, str) for o in row["options"]):
        raise VideoMMEError(f"{name} row {index} (question_id {row['question_id']!r}): "
                            "options must be a non-empty list of strings")
    if len(row["options"]) > len(ANSWER_LABELS) - 1:
        raise VideoMMEError(f"{name} row {index} (question_id {row['question_id']!r}): "
                            f"{len(row['options'])} options")

