"""Decoding an untrusted Parquet member within bounds.

A Parquet file is compressed twice over (dictionary encoding, then a codec), so a few kilobytes
can decode to hundreds of megabytes: one 280 KB text repeated in every row, or a long text in a
stream's memory log repeated thousands of times. Validation costs time in proportion to the
decoded text (the answer parser, token counting, snapshot digests), so the schema, the row count
and every text column's largest cell and total are read first from a lazy scan, which polars
answers from the metadata and the dictionary pages without materialising the table; only a
table within every cap is decoded.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class TableCaps:
    """How much one table may hold once decoded."""

    rows: int
    text_bytes: int
    """Decoded text of all string cells together."""
    cell_bytes: int
    """Largest string cell, unless ``cell_overrides`` names the column."""
    cell_overrides: Mapping[str, int] = field(default_factory=dict)

    def cell_cap(self, column: str) -> int:
        return self.cell_overrides.get(column, self.cell_bytes)


class TableError(ValueError):
    """The member is not a readable Parquet table within its caps; the message says why."""


def read_table(data: bytes, name: str, schema: Mapping[str, Any], caps: TableCaps) -> pl.DataFrame:
    """``data`` as a DataFrame with exactly ``schema``, decoded only if it is within ``caps``."""
    try:
        scan = pl.scan_parquet(io.BytesIO(data))
        found = scan.collect_schema()
    except (Exception, pl.exceptions.PanicException) as exc:
        raise TableError(f"{name} is not a readable Parquet file ({str(exc)[:120]})") from None
    if list(found) != list(schema):
        raise TableError(f"{name} has columns {', '.join(found)[:300]}; expected {', '.join(schema)}")
    for column, dtype in schema.items():
        if found[column] != dtype:
            raise TableError(f"{name}: column {column} is {found[column]}, expected {dtype}")
    texts = [column for column, dtype in schema.items() if dtype == pl.String]
    try:
        height = scan.select(pl.len()).collect().item()
        if height > caps.rows:
            raise TableError(f"{name} has {height} rows, over its limit of {caps.rows}")
        lengths = scan.select(
            *(pl.col(c).str.len_bytes().cast(pl.UInt64).max().alias(f"max {c}") for c in texts),
            *(pl.col(c).str.len_bytes().cast(pl.UInt64).sum().alias(f"sum {c}") for c in texts),
        ).collect(engine="streaming").row(0, named=True)
        for column in texts:
            longest = lengths[f"max {column}"] or 0
            if longest > caps.cell_cap(column):
                raise TableError(f"{name}: a {column} cell holds {longest} bytes, over the "
                                 f"{caps.cell_cap(column)}-byte limit per cell")
        total = sum(lengths[f"sum {c}"] or 0 for c in texts)
        if total > caps.text_bytes:
            raise TableError(f"{name} decodes to {total} bytes of text, over its "
                             f"{caps.text_bytes}-byte limit")
        return scan.collect()
    except TableError:
        raise
    except (Exception, pl.exceptions.PanicException) as exc:
        raise TableError(f"{name} is not a readable Parquet file ({str(exc)[:120]})") from None
