"""Video-MME scoring as its authors do it, and as lmms-eval-style strict accuracy.

The official script (``eval_your_results.py``, github.com/thanku-all/parse_answer at afd52cf,
linked from the Video-MME README; an earlier copy lived in BradyFU/Video-MME/evaluation)
extracts an answer like this, and :func:`extract_official` reproduces it, quirks included:

1. strip surrounding whitespace, then delete every occurrence (anywhere, case-sensitive, in list
   order) of its answer prefixes. Two commas are missing in its list, so Python joins
   "The best option is" + "The correct option is" and "Best answer:" + "Best option:" into
   single strings: those four prefixes are in effect never removed on their own, and
   "Best answer: C" extracts the "B" of "Best";
2. more than 10 whitespace-separated words and no capital A-D → unanswered ("");
3. else the first capital A, B, C or D anywhere, inside words too ("Deep" → D, "A cat" → A);
   none → unanswered.

Metrics (both use that extractor):

* ``videomme_official``: correct / answered (the official denominator: unanswered replies are
  left out); 0.0 when nothing was answered, as the script prints;
* ``videomme_strict``: correct / all questions (unanswered and failed rows are wrong), the
  denominator lmms-eval uses.

A row without output (a failed question) counts as unanswered; the official script would stop
on it. Breakdowns by duration, domain, sub_category and task_type.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

# The official list, in its order, with Python's implicit concatenation of the two pairs that
# lack a comma between them written out.
ANSWER_PREFIXES = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option isThe correct option is",
    "Best answer:Best option:",
    "Answer:",
    "Option:",
    "The correct answer",
    "The correct option",
)
_LETTER = re.compile("[ABCD]")
BREAKDOWNS = ("duration", "domain", "sub_category", "task_type")
TAG_KEYS = ("video_id", "duration", "domain", "sub_category", "task_type")


class NotVideoMMEError(ValueError):
    """Rows that do not carry Video-MME's tags (another dataset's run)."""


def extract_official(reply: str | None) -> str:
    """The official extractor: a letter A-D, or "" (unanswered)."""
    if reply is None:
        return ""
    text = reply.strip()
    for prefix in ANSWER_PREFIXES:
        text = text.replace(prefix, "")
    match = _LETTER.search(text)
    if len(text.split()) > 10 and match is None:
        return ""
    return match.group(0) if match else ""


@dataclass(frozen=True)
class Tally:
    """Counts of one group of questions."""

    n: int = 0
    answered: int = 0
    correct: int = 0

    def add(self, answered: bool, correct: bool) -> Tally:
        return Tally(self.n + 1, self.answered + answered, self.correct + correct)

    def to_dict(self) -> dict[str, Any]:
        return {
            "videomme_official": self.correct / self.answered if self.answered else 0.0,
            "videomme_strict": self.correct / self.n if self.n else None,
            "n": self.n,
            "answered": self.answered,
            "correct": self.correct,
        }


def tally(items: Iterable[tuple[str | None, str, Mapping[str, str]]]) -> dict[str, Any]:
    """Scores of (reply, gold, tags) triples: overall and per breakdown key and value."""
    overall = Tally()
    groups: dict[str, dict[str, Tally]] = {key: defaultdict(Tally) for key in BREAKDOWNS}
    for reply, gold, tags in items:
        letter = extract_official(reply)
        answered, correct = letter != "", letter != "" and letter == gold
        overall = overall.add(answered, correct)
        for key in BREAKDOWNS:
            groups[key][tags[key]] = groups[key][tags[key]].add(answered, correct)
    return {
        **overall.to_dict(),
        "extractor": "videomme-official (eval_your_results.extract_characters_regex)",
        "by": {key: {value: t.to_dict() for value, t in sorted(groups[key].items())}
               for key in BREAKDOWNS},
    }


def row_tags(rows: pl.DataFrame) -> list[dict[str, str]]:
    """Each row's tags, checked to be Video-MME's."""
    parsed = [json.loads(t) if t else {} for t in rows["tags"].to_list()]
    for question_id, tags in zip(rows["question_id"].to_list(), parsed):
        missing = [k for k in TAG_KEYS if k not in tags]
        if missing:
            raise NotVideoMMEError(
                f"question {question_id} has no Video-MME tags ({', '.join(missing)} missing): "
                "these rows are not from a videomme task")
    return parsed


def score_rows(rows: pl.DataFrame) -> dict[str, Any]:
    """``videomme_official`` and ``videomme_strict`` of a run's rows (columns ``raw_output``,
    ``gold``, ``tags``), with counts and breakdowns."""
    tags = row_tags(rows)
    return tally(zip(rows["raw_output"].to_list(), rows["gold"].to_list(), tags))


def score_results_json(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The same scores from an official per-video results file (as ``export`` writes and the
    authors' script reads): ``response`` against ``answer``, tags from the video and question."""
    return tally(
        (q["response"], q["answer"],
         {"duration": video["duration"], "domain": video["domain"],
          "sub_category": video["sub_category"], "task_type": q["task_type"]})
        for video in results
        for q in video["questions"]
    )
