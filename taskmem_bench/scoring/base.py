"""A dataset scoring: the one place that turns reader replies into verdicts.

A task names its scoring (``scoring:`` in its YAML); scorings are plugins like policies and
readers, registered in the entry-point group ``taskmem_bench.scorings`` or named by a
``module:Class`` path. :meth:`Scoring.score` decides a batch of replies: multiple choice by the
robust parser, open answers by the LLM judge it is handed (asked once per batch, only about
answers that neither abstain nor are empty; a judge that fails gives ``judge_error``
judgments, never an exception). The runner asks it for its rows' verdicts, and the leaderboard
re-scores a bundle's rows through it with a judge that replays the recorded replies, so the two
cannot drift apart. A subclass adds the dataset's own variants: a per-row value
(:meth:`Scoring.row_values`), the summary's scores (:meth:`Scoring.summary`) and the figures a
results table shows (:meth:`Scoring.headline`). The base class itself is the ``paper`` scoring:
the verdicts and nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import polars as pl

from taskmem_bench.plugins import UnknownPluginError, load, registered
from taskmem_bench.schema import ScoringSpec
from taskmem_bench.scoring.judge import JudgeItem, Judgment, judgment_of
from taskmem_bench.scoring.verdict import Verdict, answer_to_judge, verdict_choice, verdict_open

ENTRY_POINT_GROUP = "taskmem_bench.scorings"
VERDICT_BY = {"multiple_choice": "robust", "open": "llm_judge"}
"""How a row's correct / abstained flags are decided, by answer format."""

Judge = Callable[[Sequence[JudgeItem]], Sequence[Judgment]]
"""What a scoring asks about open answers: :meth:`LLMJudge.judge
<taskmem_bench.scoring.judge.LLMJudge.judge>`, or a replay of recorded judgments."""


class RememberingJudge:
    """A judge that asks ``judge`` only about items it has not judged yet and replays its
    judgments of the others. The runner hands one to a scoring for a round's replies, so a
    scoring whose batch raised, asked again item by item, costs no second judge call (nor judge
    time) for an answer already judged. A call that raises or miscounts is not remembered (the
    scoring turns it into ``judge_error`` judgments)."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.judged: dict[JudgeItem, Judgment] = {}

    def __call__(self, items: Sequence[JudgeItem]) -> Sequence[Judgment]:
        new = [item for item in items if item not in self.judged]
        if new:
            judgments = list(self.judge(new))
            if len(judgments) != len(new):
                return judgments
            self.judged.update(zip(new, judgments))
        return [self.judged[item] for item in items]


@dataclass(frozen=True)
class ScoringItem:
    """One reply to score, in plain values: the runner builds it from a question, the
    leaderboard from a bundle's row."""

    question: str
    options: tuple[str, ...]
    gold: str
    raw: str
    """The reader's raw reply."""
    spec: ScoringSpec = field(default_factory=ScoringSpec)


@dataclass(frozen=True)
class ScoredAnswer:
    """What scoring decided about one reply."""

    verdict: Verdict
    judgment: Judgment | None
    """The LLM judge's, where it was asked (an open answer that neither abstains nor is empty)."""
    variants: str | None
    """The row's value under each of the dataset's variants (JSON), None without variants."""


class Scoring:
    """The ``paper`` scoring (Acc / Cov / Prec from each row's verdict, nothing more), and the
    base of every dataset scoring."""

    judged: ClassVar[bool] = False
    """Its open answers are decided by an LLM judge: a run then needs ``judge.*`` settings."""

    def score(self, items: Sequence[ScoringItem], judge: Judge | None = None
              ) -> list[ScoredAnswer | Exception]:
        """Each item's verdict, in order: multiple choice by the robust parser, open answers by
        ``judge``, asked once about those that neither abstain nor are empty. An item whose
        scoring raises (a reply that breaks a parser) gets the exception in its place and
        costs no other item."""
        to_judge = [_attempt(answer_to_judge, item.raw, item.spec.abstain_text)
                    if item.spec.kind == "open" else None for item in items]
        asked = {i: JudgeItem(item.question, item.gold, answer)
                 for i, (item, answer) in enumerate(zip(items, to_judge))
                 if isinstance(answer, str)}
        judgments = dict(zip(asked, _judgments(judge, list(asked.values()))))
        return [found if isinstance(found, Exception) else
                _attempt(self._scored, item, judgments.get(i))
                for i, (item, found) in enumerate(zip(items, to_judge))]

    def _scored(self, item: ScoringItem, judgment: Judgment | None) -> ScoredAnswer:
        if item.spec.kind == "open":
            verdict = verdict_open(item.raw, item.spec.abstain_text, judgment)
        else:
            verdict = verdict_choice(item.raw, item.options, item.gold)
        values = self.row_values(item)
        variants = None if values is None else json.dumps(values, sort_keys=True)
        return ScoredAnswer(verdict, judgment, variants)

    def row_values(self, item: ScoringItem) -> dict[str, Any] | None:
        """The reply's value under each of the dataset's variants; None: no variants."""
        return None

    def summary(self, rows: pl.DataFrame) -> dict[str, Any]:
        """The variants' scores over a run's rows (the summary's ``scoring.variants``)."""
        return {}

    def headline(self, variants: Mapping[str, Any]) -> dict[str, float | int | None]:
        """The dataset's official figure(s) from :meth:`summary`'s result, which a results
        table shows beside the paper's Acc / Cov / Prec."""
        return {}


def _attempt(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or the exception it raised."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - fails only its item, kept in its place
        return exc


def _judgments(judge: Judge | None, items: list[JudgeItem]) -> list[Judgment | None]:
    """The judge's judgments of ``items`` (one call); a judge that raises or miscounts
    (``LLMJudge`` does neither, another judge might) gives ``judge_error`` judgments instead.
    Without a judge there are none, and each open answer that needed one fails on its own."""
    if not items or judge is None:
        return [None] * len(items)
    try:
        judgments = list(judge(items))
        if len(judgments) != len(items):
            raise TypeError(f"judge() returned {len(judgments)} judgments for {len(items)} items")
        return judgments
    except Exception as exc:  # noqa: BLE001
        return [judgment_of(exc) for _ in items]


def available_scorings() -> dict[str, str]:
    return registered(ENTRY_POINT_GROUP)


def load_scoring(name: str) -> type[Scoring]:
    return load(ENTRY_POINT_GROUP, "scoring", name, Scoring)


def scoring_summary(name: str, rows: pl.DataFrame) -> dict[str, Any]:
    """The summary's ``scoring`` section: the scoring's name and its variants' scores."""
    verdicts = sorted({VERDICT_BY.get(f, f) for f in rows["answer_format"].unique().to_list()})
    variants = load_scoring(name)().summary(rows) if len(rows) else {}
    return {"name": name, "verdict_by": verdicts, "variants": variants}


def headline(
    section: Mapping[str, Any] | None, scoring: Scoring | None = None
) -> dict[str, float | int | None]:
    """The headline figures of a summary's ``scoring`` section (:meth:`Scoring.headline`): by
    ``scoring``, the run's own where the caller planned the run, else by the scoring the section
    names. A summary read from disk is not trusted to name code, so its name is looked up among
    registered scorings (entry points) only, never imported as a ``module:Class`` path: a name
    this installation has not registered gives no headline figures."""
    section = section or {}
    if scoring is None:
        name = section.get("name")
        if not isinstance(name, str) or name not in available_scorings():
            return {}
        try:
            scoring = load_scoring(name)()
        except UnknownPluginError:  # a registered entry point that cannot be imported
            return {}
    return scoring.headline(section.get("variants") or {})
