"""EgoLife scoring: two named answer extractions, Acc / Cov / Prec, by type and evidence delay.

Extractions (each a named variant in the result):

* ``egorag``: EgoRAG's ``extract_single_option_answer`` (EgoLife repo, ``EgoRAG/egorag/utils/
  util.py``): the first ``\\b[A-D]\\b`` anywhere in the reply, case-sensitive, so an article
  ("A person ...") counts as a letter. The harness offers a fifth label, E = "cannot be
  determined from memory"; here the character class runs to that label (``[A-E]``) and E is
  an abstention, the paper's Cov/Prec convention. No match is a parse failure;
* ``robust``: the harness's final-answer parser (:func:`~taskmem_bench.scoring.verdict.
  verdict_choice`), the one the runner writes into the rows.

Acc / Cov / Prec and their stream-clustered intervals come from :mod:`~taskmem_bench.scoring.
metrics` (parse failures and failed rows are wrong and not abstained). Breakdowns: by the
question ``type`` (EgoLife's five categories) and by evidence delay, in calendar days between
the day the latest evidence ends and the day of the query, on the week timeline where day ``d``
is ``[(d-1)*86400, d*86400)``: ``same_day``, ``1_day``, ``2+_days``, and ``after_query`` for
evidence annotated after the question (kept by the adapter, reported). Questions without known
evidence are left out of the delay breakdown only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import polars as pl

from taskmem_bench.schema import ANSWER_LABELS
from taskmem_bench.scoring.metrics import Scores, score
from taskmem_bench.scoring.verdict import Verdict, verdict_choice

DAY_SECONDS = 86400.0
EXTRACTIONS = ("egorag", "robust")
DELAY_BUCKETS = ("same_day", "1_day", "2+_days", "after_query")


@lru_cache(maxsize=8)
def _first_letter(labels: str) -> re.Pattern[str]:
    return re.compile(rf"\b([{labels}])\b")


def egorag_choice(reply: str | None, labels: str = "ABCD") -> str | None:
    """EgoRAG's extraction: the first standalone capital letter of ``labels`` in the reply."""
    match = _first_letter(labels).search(reply or "")
    return match.group(1) if match else None


def verdict_egorag(reply: str | None, options: Sequence[str], gold: str) -> Verdict:
    """A verdict by EgoRAG's extraction over the option labels plus the abstain label."""
    abstain = ANSWER_LABELS[len(options)]
    label = egorag_choice(reply, ANSWER_LABELS[: len(options) + 1])
    return Verdict(
        parsed=label,
        correct=label is not None and label == gold,
        abstained=label == abstain,
        parse_failed=label is None,
        method="egorag_first_letter" if label is not None else "no_choice",
    )


def delay_bucket(ask_time: float, evidence_delay: float | None) -> str | None:
    """The calendar-day distance from the latest evidence to the query; None if unknown."""
    if evidence_delay is None or math.isnan(evidence_delay):
        return None
    if evidence_delay < 0:
        return "after_query"
    evidence_end = ask_time - evidence_delay
    days = math.floor(ask_time / DAY_SECONDS) - math.floor(evidence_end / DAY_SECONDS)
    return "same_day" if days == 0 else "1_day" if days == 1 else "2+_days"


def score_rows(rows: pl.DataFrame) -> dict[str, Any]:
    """Named metrics and breakdowns of an EgoLife run's rows (columns ``raw_output``,
    ``options`` (JSON list), ``gold``, ``tags`` (JSON), ``evidence_delay``, ``ask_time``,
    ``stream_id``, ``failure``): ``{extraction: {"overall", "by_type", "by_delay"}}``, each
    value ``Scores.to_dict()``."""
    failed = rows["failure"].is_not_null().to_list()
    options = [tuple(json.loads(o)) for o in rows["options"].to_list()]
    replies, golds = rows["raw_output"].to_list(), rows["gold"].to_list()
    types = [json.loads(t or "{}").get("type", "unknown") for t in rows["tags"].to_list()]
    buckets = [delay_bucket(t, d) for t, d in
               zip(rows["ask_time"].to_list(), rows["evidence_delay"].to_list())]
    streams = rows["stream_id"].to_list()
    rules = {"egorag": verdict_egorag, "robust": verdict_choice}
    result: dict[str, Any] = {}
    for name in EXTRACTIONS:
        verdicts = [
            rules[name](reply, opts, gold) if reply is not None and not fail else None
            for reply, opts, gold, fail in zip(replies, options, golds, failed)
        ]
        result[name] = {
            "overall": _scores(verdicts, streams, range(len(verdicts))).to_dict(),
            "by_type": _grouped(verdicts, streams, types),
            "by_delay": _grouped(verdicts, streams, buckets, order=DELAY_BUCKETS),
        }
    return result


def _scores(verdicts: Sequence[Verdict | None], streams: Sequence[str],
            keep: Sequence[int]) -> Scores:
    """Scores of the rows ``keep``; a row without a verdict (no output) is a failed row."""
    picked = [verdicts[i] for i in keep]
    return score(
        correct=[v is not None and v.correct for v in picked],
        abstained=[v is not None and v.abstained for v in picked],
        clusters=[streams[i] for i in keep],
        parse_failed=[v is not None and v.parse_failed for v in picked],
        failed=[v is None for v in picked],
    )


def _grouped(verdicts: Sequence[Verdict | None], streams: Sequence[str],
             groups: Sequence[str | None], order: Sequence[str] = ()) -> dict[str, Any]:
    """Scores per group value (rows whose group is None are left out), in ``order`` then
    sorted."""
    members: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        if group is not None:
            members.setdefault(group, []).append(i)
    keys = [k for k in order if k in members] + sorted(k for k in members if k not in order)
    return {k: _scores(verdicts, streams, members[k]).to_dict() for k in keys}
