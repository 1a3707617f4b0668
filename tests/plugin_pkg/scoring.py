"""A scoring plugin: beside the paper's verdicts, whether each reply names the said number in
words (the dataset's own variant), and the share of questions whose reply does as its headline
figure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import polars as pl

from taskmem_bench.schema import ANSWER_LABELS
from taskmem_bench.scoring.base import Scoring, ScoringItem


class SaidNumberScoring(Scoring):
    def row_values(self, item: ScoringItem) -> dict[str, Any]:
        number = item.options[ANSWER_LABELS.index(item.gold)]
        return {"names_number": number in item.raw}

    def summary(self, rows: pl.DataFrame) -> dict[str, Any]:
        named = sum(json.loads(v)["names_number"] for v in rows["variants"].drop_nulls())
        return {"names_number": named / len(rows)}

    def headline(self, variants: Mapping[str, Any]) -> dict[str, float | int | None]:
        return {"names_number": variants.get("names_number")}
