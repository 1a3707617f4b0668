"""ANLS, an offline proxy for judged open answers (EgoTempo), reported under its own name.

ANLS as lmms-eval computes it (``lmms_eval/api/metrics.py``, metric ``anls``, after Qwen-VL's
``infographicsvqa_eval.py``), quirk included:

* both strings are stripped, lower-cased and their whitespace runs collapsed to one space; the
  Levenshtein distance is taken between these normalised strings;
* the distance is divided by the longer of the two *raw* strings (``len(s.upper())``: the
  lengths before stripping and collapsing), so surrounding or repeated spaces in the gold
  answer lower the distance ratio;
* similarity = 1 - min over the references of that ratio (a ratio of 0 when both are empty),
  set to 0 when below the threshold 0.5 (exactly 0.5 is kept).

What is compared is the reply's final answer: the text of its last ``Answer: ...`` line after
any thinking (the paper reader's open format), else the whole reply after thinking. A final
answer that says "Insufficient Information" (any case, punctuation and markup ignored) is an
abstention: ANLS 0 and not covered. Summary: ``anls`` (mean over all questions; failed rows and
abstentions score 0), ``cov`` (not abstained / all; failed rows count as covered, as in
:mod:`~taskmem_bench.scoring.metrics`), ``anls_prec`` = anls / cov (mean over covered).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from taskmem_bench.backends.base import split_thinking
from taskmem_bench.readers.vote import open_answer

THRESHOLD = 0.5
ABSTAIN_TEXT = "Insufficient Information"
_NOT_ALNUM = re.compile(r"[\W_]+")


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character, each cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def anls(prediction: str, references: Sequence[str], threshold: float = THRESHOLD) -> float:
    """lmms-eval's per-question ANLS of ``prediction`` against ``references``."""
    if not references:
        raise ValueError("anls needs at least one reference")
    predicted = " ".join(prediction.strip().lower().split())
    ratios = []
    for reference in references:
        gold = " ".join(reference.strip().lower().split())
        length = max(len(reference.upper()), len(prediction.upper()))
        ratios.append(0.0 if length == 0 else levenshtein(gold, predicted) / length)
    similarity = 1 - min(ratios)
    return 0.0 if similarity < threshold else similarity


def is_abstention(answer: str, abstain_text: str = ABSTAIN_TEXT) -> bool:
    """``answer`` says ``abstain_text``, ignoring case, punctuation, markup and spacing."""
    return _letters(answer) == _letters(abstain_text)


def _letters(text: str) -> str:
    return _NOT_ALNUM.sub("", text.lower())


def final_answer(raw: str) -> str:
    """The last ``Answer: ...`` line's text after any thinking, else the reply after thinking."""
    return open_answer(raw) or split_thinking(raw)[1]


@dataclass(frozen=True)
class OpenProxy:
    """One reply scored by the proxy: its final answer, ANLS, and whether it abstained."""

    answer: str
    anls: float
    abstained: bool


def open_proxy(raw: str, gold: str, abstain_text: str = ABSTAIN_TEXT) -> OpenProxy:
    answer = final_answer(raw)
    return _proxy(answer, gold, is_abstention(answer, abstain_text))


def _proxy(answer: str, gold: str, abstained: bool) -> OpenProxy:
    return OpenProxy(answer, 0.0, True) if abstained else OpenProxy(answer, anls(answer, [gold]),
                                                                      False)


def score_rows(rows: pl.DataFrame, by: str = "question_type") -> dict[str, Any]:
    """``anls``, ``cov``, ``anls_prec`` and counts of an open-answer run's rows (columns
    ``raw_output``, ``gold``, ``failure``, ``abstained``, ``tags`` (JSON)), overall and per
    ``by`` tag. A row abstains as its verdict says (decided with its question's own abstain
    text), so the proxy and the judged figures count the same abstentions."""
    proxies = [
        _proxy(final_answer(raw), gold, bool(abstained))
        if raw is not None and failure is None else None
        for raw, gold, failure, abstained in zip(
            rows["raw_output"].to_list(), rows["gold"].to_list(), rows["failure"].to_list(),
            rows["abstained"].to_list())
    ]
    groups = [json.loads(t or "{}").get(by, "unknown") for t in rows["tags"].to_list()]
    return {
        "metric": "anls (lmms-eval, threshold 0.5; proxy for the LLM judge)",
        **_summary(proxies),
        f"by_{by}": {g: _summary([p for p, k in zip(proxies, groups) if k == g])
                     for g in sorted(set(groups))},
    }


def _summary(proxies: Sequence[OpenProxy | None]) -> dict[str, Any]:
    n = len(proxies)
    total = sum(p.anls for p in proxies if p is not None)
    abstained = sum(1 for p in proxies if p is not None and p.abstained)
    anls_mean = total / n if n else None
    cov = (n - abstained) / n if n else None
    return {
        "n": n,
        "abstained": abstained,
        "failed": sum(1 for p in proxies if p is None),
        "anls": anls_mean,
        "cov": cov,
        "anls_prec": anls_mean / cov if cov else None,
    }
