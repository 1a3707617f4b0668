"""The shipped dataset scorings, the names a task declares with ``scoring:`` in its YAML.

Every run is scored the paper's way (Acc / Cov / Prec from each row's verdict, at the top of
``summary.json``). A dataset whose authors score it differently adds its own variants, each
named in the rows (column ``variants``: the per-question value) and in the summary
(``scoring.variants``: the scores with the dataset's breakdowns):

* ``paper``: nothing more (mini and any task without an official scorer);
* ``videomme``: ``videomme_official`` and ``videomme_strict`` (scoring/videomme.py);
* ``egolife``: the ``egorag`` and ``robust`` extractions by type and evidence delay
  (scoring/egolife.py);
* ``egotempo``: open answers judged by an LLM (row verdicts, ``judged = True``; the judgment
  counts under ``llm_judge``) and the ``anls`` proxy (scoring/anls.py).

The row verdict itself is named by the row's ``verdict_by``: ``robust`` (the harness's
final-answer parser, multiple choice) or ``llm_judge`` (open answers). Each scoring is a
:class:`~taskmem_bench.scoring.base.Scoring` registered under its name in the entry-point group
``taskmem_bench.scorings`` (``paper`` is the base class itself).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar

import polars as pl

from taskmem_bench.schema import ANSWER_LABELS
from taskmem_bench.scoring import anls, egolife, videomme
from taskmem_bench.scoring.base import Scoring, ScoringItem

JUDGMENT_STATUSES = ("judged", "unparseable", "judge_error")


class VideoMMEScoring(Scoring):
    def row_values(self, item: ScoringItem) -> dict[str, Any]:
        return {"videomme_official": videomme.extract_official(item.raw)}

    def summary(self, rows: pl.DataFrame) -> dict[str, Any]:
        return videomme.score_rows(rows)

    def headline(self, variants: Mapping[str, Any]) -> dict[str, float | int | None]:
        return {k: variants.get(k) for k in ("videomme_official", "videomme_strict")}


class EgoLifeScoring(Scoring):
    def row_values(self, item: ScoringItem) -> dict[str, Any]:
        return {"egorag": egolife.egorag_choice(item.raw, ANSWER_LABELS[: len(item.options) + 1])}

    def summary(self, rows: pl.DataFrame) -> dict[str, Any]:
        return egolife.score_rows(rows)

    def headline(self, variants: Mapping[str, Any]) -> dict[str, float | int | None]:
        return {"egorag_acc": (variants.get("egorag") or {}).get("overall", {}).get("acc")}


class EgoTempoScoring(Scoring):
    judged: ClassVar[bool] = True

    def row_values(self, item: ScoringItem) -> dict[str, Any]:
        return {"anls": anls.open_proxy(item.raw, item.gold, item.spec.abstain_text).anls}

    def summary(self, rows: pl.DataFrame) -> dict[str, Any]:
        """How the judge fared (every open row that was not abstained or empty was judged: its
        ``extraction`` is the judgment's status) and the ANLS proxy by question type."""
        open_rows = rows.filter(pl.col("answer_format") == "open")
        statuses = Counter(s for s in open_rows["extraction"].to_list() if s in JUDGMENT_STATUSES)
        scores = open_rows["judge_score"].drop_nulls()
        return {
            "llm_judge": {
                **{status: statuses[status] for status in JUDGMENT_STATUSES},
                "mean_score": round(float(scores.mean()), 4) if len(scores) else None,
                "note": "unparseable and judge_error judgments count as wrong (not dropped)",
            },
            "anls": anls.score_rows(rows),
        }

    def headline(self, variants: Mapping[str, Any]) -> dict[str, float | int | None]:
        judge = variants.get("llm_judge") or {}
        return {"anls": (variants.get("anls") or {}).get("anls"),
                "judge_failed": judge.get("unparseable", 0) + judge.get("judge_error", 0)}
