"""Dataset scorings: the named scoring variants a task declares with ``scoring:`` in its YAML.

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
final-answer parser, multiple choice) or ``llm_judge`` (open answers).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from taskmem_bench.schema import ANSWER_LABELS
from taskmem_bench.scoring import anls, egolife, videomme

VERDICT_BY = {"multiple_choice": "robust", "open": "llm_judge"}
"""How a row's correct / abstained flags were decided, by answer format."""
JUDGMENT_STATUSES = ("judged", "unparseable", "judge_error")


@dataclass(frozen=True)
class DatasetScoring:
    """One ``scoring:`` choice: per-row variant values and the summary's variant scores."""

    name: str
    row_values: Callable[[str, Sequence[str], str], dict[str, Any]] | None = None
    """(raw reply, options, gold) -> the row's value under each variant."""
    summary: Callable[[pl.DataFrame], dict[str, Any]] | None = None
    judged: bool = False
    """Open answers whose verdicts come from an LLM judge."""

    def values(self, raw: str | None, options: Sequence[str], gold: str) -> str | None:
        """The ``variants`` column of one row (JSON), ``None`` without a reply or variants."""
        if raw is None or self.row_values is None:
            return None
        return json.dumps(self.row_values(raw, options, gold), sort_keys=True)


def _videomme_row(raw: str, options: Sequence[str], gold: str) -> dict[str, Any]:
    return {"videomme_official": videomme.extract_official(raw)}


def _egolife_row(raw: str, options: Sequence[str], gold: str) -> dict[str, Any]:
    return {"egorag": egolife.egorag_choice(raw, ANSWER_LABELS[: len(options) + 1])}


def _egotempo_row(raw: str, options: Sequence[str], gold: str) -> dict[str, Any]:
    return {"anls": anls.judge_anls(raw, gold).anls}


def _egotempo_summary(rows: pl.DataFrame) -> dict[str, Any]:
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


SCORINGS: Mapping[str, DatasetScoring] = {
    s.name: s
    for s in (
        DatasetScoring("paper"),
        DatasetScoring("videomme", _videomme_row, videomme.score_rows),
        DatasetScoring("egolife", _egolife_row, egolife.score_rows),
        DatasetScoring("egotempo", _egotempo_row, _egotempo_summary, judged=True),
    )
}


def get_scoring(name: str) -> DatasetScoring:
    try:
        return SCORINGS[name]
    except KeyError:
        raise ValueError(f"unknown scoring '{name}'; choose from: {', '.join(SCORINGS)}") from None


def headline(section: Mapping[str, Any] | None) -> dict[str, float | int | None]:
    """The few numbers of a summary's ``scoring`` section that a results table shows: each
    dataset's official figure(s) beside the paper's Acc / Cov / Prec."""
    variants = (section or {}).get("variants") or {}
    name = (section or {}).get("name")
    if name == "videomme":
        return {k: variants.get(k) for k in ("videomme_official", "videomme_strict")}
    if name == "egolife":
        return {"egorag_acc": (variants.get("egorag") or {}).get("overall", {}).get("acc")}
    if name == "egotempo":
        judge = variants.get("llm_judge") or {}
        return {"anls": (variants.get("anls") or {}).get("anls"),
                "judge_failed": judge.get("unparseable", 0) + judge.get("judge_error", 0)}
    return {}


def scoring_summary(name: str, rows: pl.DataFrame) -> dict[str, Any]:
    """The summary's ``scoring`` section: the scoring's name and its variants' scores."""
    scoring = get_scoring(name)
    verdicts = sorted({VERDICT_BY.get(f, f) for f in rows["answer_format"].unique().to_list()})
    variants = scoring.summary(rows) if scoring.summary is not None and len(rows) else {}
    return {"name": name, "verdict_by": verdicts, "variants": variants}
