"""Dataset scorings: one batched ``score`` that owns the LLM judge, the registry, headlines, the
leaderboard's re-scoring through the same function, and the shared item-by-item isolation."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest
from conftest import make_plan, run_plan
from plugins import FrameDigestPolicy, SpyReader

from leaderboard.errors import Rejected
from leaderboard.rescore import rescore_row
from taskmem_bench.backends.base import BackendUnavailable
from taskmem_bench.isolation import call_isolating
from taskmem_bench.datasets import DatasetRelease
from taskmem_bench.plugin_calls import checked_verdict
from taskmem_bench.plugins import UnknownPluginError
from taskmem_bench.readers import ReaderInput, ReaderOutput
from taskmem_bench.schema import ScoringSpec
from taskmem_bench.scoring.base import (
    ScoredAnswer,
    Scoring,
    ScoringItem,
    available_scorings,
    headline,
    load_scoring,
)
from taskmem_bench.scoring.judge import JudgeItem, Judgment
from taskmem_bench.scoring.variants import EgoLifeScoring, EgoTempoScoring, VideoMMEScoring

OPEN = ScoringSpec("open")
OPTIONS = ("a cup", "a knife", "a spoon", "a plate")
RIGHT = Judgment("judged", "correct", 5, '{"pred": "correct", "score": 5}')


class RecordingJudge:
    """Test double for the LLM judge: judges every answer correct, records each call."""

    def __init__(self) -> None:
        self.calls: list[list[JudgeItem]] = []

    def __call__(self, items: Sequence[JudgeItem]) -> list[Judgment]:
        self.calls.append(list(items))
        return [RIGHT] * len(items)


def test_score_picks_the_rule_per_item_and_judges_open_answers_in_one_call() -> None:
    items = [
        ScoringItem("Which?", OPTIONS, "B", "Answer: B"),
        ScoringItem("What did I hold?", (), "a red cup", "Answer: the red mug", OPEN),
        ScoringItem("Where?", (), "the sink", "Answer: Insufficient Information", OPEN),
        ScoringItem("When?", (), "at noon", "<think>noon?</think>", OPEN),
        ScoringItem("Who?", (), "Ann", "Answer: Ann", OPEN),
    ]
    judge = RecordingJudge()
    scored = Scoring().score(items, judge)
    assert judge.calls == [[JudgeItem("What did I hold?", "a red cup", "the red mug"),
                            JudgeItem("Who?", "Ann", "Ann")]]
    assert all(isinstance(s, ScoredAnswer) for s in scored)
    assert [s.verdict.method for s in scored[1:]] == ["judged", "abstained", "no_answer", "judged"]
    assert [s.verdict.correct for s in scored] == [True, True, False, False, True]
    assert [s.judgment for s in scored] == [None, RIGHT, None, None, RIGHT]
    assert scored[0].verdict.parsed == "B" and scored[0].variants is None


def test_multiple_choice_never_calls_the_judge() -> None:
    judge = RecordingJudge()
    assert Scoring().score([ScoringItem("Which?", OPTIONS, "A", "Answer: E")], judge)[0] \
        .verdict.abstained
    assert judge.calls == []


@pytest.mark.parametrize("judge", [
    lambda items: 1 / 0,
    lambda items: [RIGHT],  # one judgment for two items
])
def test_a_failing_judge_gives_judge_errors_not_an_exception(judge) -> None:
    items = [ScoringItem("Q1", (), "x", "Answer: y", OPEN), ScoringItem("Q2", (), "x", "z", OPEN)]
    scored = Scoring().score(items, judge)
    assert [s.verdict.method for s in scored] == ["judge_error", "judge_error"]
    assert not any(s.verdict.correct for s in scored)
    assert all(s.judgment.status == "judge_error" and s.judgment.error for s in scored)


class FragileScoring(Scoring):
    """A dataset scoring whose variant rule breaks on some replies."""

    def row_values(self, item: ScoringItem) -> None:
        if "BOOM" in item.raw:
            raise RecursionError("the parser gave up")


def test_an_item_whose_scoring_raises_costs_only_itself() -> None:
    judge = RecordingJudge()
    scored = FragileScoring().score([ScoringItem("Which?", OPTIONS, "C", "BOOM Answer: C"),
                                     ScoringItem("Which?", OPTIONS, "C", "Answer: C"),
                                     ScoringItem("Who?", (), "Ann", "Ann", OPEN),
                                     ScoringItem("Who?", (), "Ann", "BOOM", OPEN)], judge)
    assert isinstance(scored[0], RecursionError) and isinstance(scored[3], RecursionError)
    assert scored[1].verdict.correct and scored[2].verdict.correct
    assert len(judge.calls) == 1 and len(judge.calls[0]) == 2  # judged once, BOOM included


class BatchBreakingScoring(Scoring):
    """A plugin scoring that raises for a whole batch when one of its replies breaks it."""

    def score(self, items: Sequence[ScoringItem], judge=None) -> list:
        if any("BOOM" in item.raw for item in items):
            raise RecursionError("the scorer gave up")
        return super().score(items, judge)


class BoomReader(SpyReader):
    """Answers C (the coded release's gold); on stream coded-1 with a reply that breaks
    :class:`BatchBreakingScoring`."""

    def answer(self, inputs: Sequence[ReaderInput]) -> list[ReaderOutput]:
        return [ReaderOutput(("BOOM " if i.memory.stream_id == "coded-1" else "") + "Answer: C")
                for i in inputs]


class NoVerdictScoring(Scoring):
    """A plugin scoring that gives back ``instead`` for a reply it cannot score, not raising."""

    instead: object = None

    def score(self, items: Sequence[ScoringItem], judge=None) -> list:
        return [self.instead if "BOOM" in item.raw else scored
                for item, scored in zip(items, super().score(items, judge))]


class DictVerdictScoring(NoVerdictScoring):
    instead = {"correct": True}


@pytest.mark.parametrize(("scoring", "error"), [
    ("BatchBreakingScoring", "RecursionError: the scorer gave up"),
    ("NoVerdictScoring", "TypeError: score() must return ScoredAnswer objects, got NoneType"),
    ("DictVerdictScoring", "TypeError: score() must return ScoredAnswer objects, got dict"),
])
def test_a_plugin_scoring_that_fails_a_reply_costs_only_its_questions(
    coded_release: DatasetRelease, tmp_path: Path, scoring: str, error: str
) -> None:
    """Raising on its batch, or giving back something that is not a verdict for one reply."""
    plan = make_plan(FrameDigestPolicy, SpyReader, batch_size=4, streams_in_flight=4)
    task = dataclasses.replace(plan.task, scoring=f"{__name__}:{scoring}")
    outcome = run_plan(dataclasses.replace(plan, task=task), coded_release, tmp_path,
                       reader=BoomReader())
    rows = pl.read_parquet(outcome.run_dir / "rows.parquet")
    bad = rows.filter(pl.col("stream_id") == "coded-1")
    assert bad["failure"].to_list() == ["scoring_error", "scoring_error"]
    assert error in bad["error"][0]
    assert rows.filter(pl.col("stream_id") != "coded-1")["correct"].all()
    assert outcome.summary["failures"] == {"scoring_error": 2}


def test_a_scored_answer_of_the_wrong_types_is_refused_naming_them() -> None:
    (right,) = Scoring().score([ScoringItem("Which?", OPTIONS, "B", "Answer: B")])
    assert checked_verdict(right) is right
    wrong = checked_verdict(dataclasses.replace(right, variants={"official": "B"}))
    assert isinstance(wrong, TypeError) and str(wrong).endswith("got Verdict, NoneType, dict")


class JudgedThenBroken(Scoring):
    """A plugin scoring that asks the judge, then raises for any batch of more than one reply."""

    judged = True
    broken_batches = 0

    def score(self, items: Sequence[ScoringItem], judge=None) -> list:
        scored = super().score(items, judge)
        if len(items) > 1:
            JudgedThenBroken.broken_batches += 1
            raise RuntimeError("the scorer broke after judging")
        return scored


class CountingJudge:
    """The runner's LLM judge, as a test double: every answer right, every item asked kept."""

    config = None

    def __init__(self) -> None:
        self.asked: list[JudgeItem] = []

    def judge(self, items: Sequence[JudgeItem]) -> list[Judgment]:
        self.asked += items
        return [RIGHT] * len(items)


def test_a_batch_scored_again_item_by_item_asks_the_judge_once_per_answer(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    """The item-by-item retry replays the judgments its failed batch already got."""
    episodes = tuple(
        dataclasses.replace(e, stream=dataclasses.replace(e.stream, questions=tuple(
            dataclasses.replace(q, options=(), scoring=OPEN) for q in e.stream.questions)))
        for e in coded_release.episodes
    )
    plan = make_plan(FrameDigestPolicy, SpyReader, batch_size=4, streams_in_flight=4)
    task = dataclasses.replace(plan.task, scoring=f"{__name__}:JudgedThenBroken")
    judge = CountingJudge()
    JudgedThenBroken.broken_batches = 0
    outcome = run_plan(dataclasses.replace(plan, task=task),
                       dataclasses.replace(coded_release, episodes=episodes), tmp_path,
                       reader=BoomReader(), judge=judge)
    rows = pl.read_parquet(outcome.run_dir / "rows.parquet")
    assert JudgedThenBroken.broken_batches > 0
    assert rows["failure"].null_count() == rows.height and rows["correct"].all()
    assert sorted(item.question for item in judge.asked) == sorted(rows["question"])


def test_an_open_answer_without_a_judge_fails_on_its_own() -> None:
    scored = Scoring().score([ScoringItem("Who?", (), "Ann", "Ann", OPEN),
                              ScoringItem("Who?", (), "Ann", "Insufficient Information", OPEN)])
    assert isinstance(scored[0], ValueError) and scored[1].verdict.abstained


def test_dataset_scorings_add_their_variants_to_each_answer() -> None:
    item = ScoringItem("Which?", OPTIONS, "B", "A person says: Answer: B")
    assert json.loads(VideoMMEScoring().score([item])[0].variants) == {"videomme_official": "A"}
    assert json.loads(EgoLifeScoring().score([item])[0].variants) == {"egorag": "A"}
    tempo = EgoTempoScoring().score([ScoringItem("Who?", (), "Ann", "Answer: Ann", OPEN)],
                                    RecordingJudge())[0]
    assert json.loads(tempo.variants) == {"anls": 1.0}


def test_scorings_are_registered_plugins() -> None:
    assert set(available_scorings()) >= {"paper", "videomme", "egolife", "egotempo"}
    assert load_scoring("paper") is Scoring and load_scoring("egotempo") is EgoTempoScoring
    assert load_scoring("egotempo").judged and not load_scoring("videomme").judged
    assert load_scoring("taskmem_bench.scoring.variants:EgoLifeScoring") is EgoLifeScoring
    with pytest.raises(UnknownPluginError, match="unknown scoring 'nope'"):
        load_scoring("nope")
    with pytest.raises(UnknownPluginError, match="not a Scoring subclass"):
        load_scoring("taskmem_bench.scoring.judge:LLMJudge")


def test_headline_figures_come_from_the_named_scoring() -> None:
    assert headline({"name": "videomme", "variants": {"videomme_official": 0.5,
                                                       "videomme_strict": 0.4, "n": 9}}) == \
        {"videomme_official": 0.5, "videomme_strict": 0.4}
    assert headline({"name": "egolife", "variants": {"egorag": {"overall": {"acc": 0.3}}}}) == \
        {"egorag_acc": 0.3}
    tempo = {"anls": {"anls": 0.7}, "llm_judge": {"unparseable": 1, "judge_error": 2}}
    assert headline({"name": "egotempo", "variants": tempo}) == {"anls": 0.7, "judge_failed": 3}
    assert headline({"name": "paper", "variants": {}}) == {}
    assert headline({"name": "no-such-scoring"}) == headline(None) == {}
    assert headline({"name": "a run's own", "variants": {"videomme_official": 0.5}},
                    VideoMMEScoring())["videomme_official"] == 0.5


def test_a_summary_on_disk_never_makes_headline_import_the_scoring_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only registered scorings are looked up: a ``module:Class`` path gives no figures, and
    its module is never imported, even where it could be."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "named_by_a_summary.py").write_text("raise SystemExit('imported')\n")
    variants = {"videomme_official": 0.5}
    for name in ("named_by_a_summary:Scoring", "taskmem_bench.scoring.variants:VideoMMEScoring"):
        assert headline({"name": name, "variants": variants}) == {}
    assert "named_by_a_summary" not in sys.modules


def _open_row(**changes) -> dict:
    row = {"question_id": "q1", "question": "Who?", "options": "[]", "answer_format": "open",
           "gold": "Ann", "raw_output": "Answer: Ann", "verdict_by": "llm_judge",
           "failure": None, "judge_output": RIGHT.raw, "judge_score": 5, "extraction": "judged",
           "parsed": "Ann", "correct": True, "abstained": False, "parse_failed": False,
           "variants": json.dumps({"anls": 1.0})}
    return row | changes


def test_rescoring_replays_the_recorded_judgment_through_the_scoring() -> None:
    rescore_row(_open_row(), EgoTempoScoring())
    wrong = '{"pred": "incorrect", "score": 1}'
    with pytest.raises(Rejected, match="the row says correct = True, re-scoring .* gives False"):
        rescore_row(_open_row(judge_output=wrong, judge_score=1), EgoTempoScoring())
    with pytest.raises(Rejected, match="neither a judge reply nor a judge error"):
        rescore_row(_open_row(judge_output=None, judge_score=None), EgoTempoScoring())
    failed = _open_row(judge_output=None, judge_score=None, extraction="judge_error",
                       correct=False)
    rescore_row(failed, EgoTempoScoring())  # a recorded judge error needs no reply
    abstained = _open_row(raw_output="Insufficient Information", judge_output=None,
                          judge_score=None, extraction="abstained", parsed="Insufficient "
                          "Information", correct=False, abstained=True,
                          variants=json.dumps({"anls": 0.0}))
    rescore_row(abstained, EgoTempoScoring())  # never reached the judge


def test_isolation_retries_item_by_item_and_keeps_each_failure_in_place() -> None:
    calls: list[list[int]] = []

    def fn(batch: list[int]) -> list[int]:
        calls.append(batch)
        if 3 in batch:
            raise ValueError("item 3 is malformed")
        return [2 * i for i in batch]

    results = call_isolating(fn, [1, 2, 3, 4], "fn()", whole_batch=(BackendUnavailable,))
    assert calls == [[1, 2, 3, 4], [1], [2], [3], [4]]
    assert results[:2] == [2, 4] and isinstance(results[2], ValueError) and results[3] == 8
    miscounted = call_isolating(lambda batch: [*batch, 0], [1, 2], "fn()", whole_batch=())
    assert all(isinstance(r, TypeError) and "one result per input" in str(r) for r in miscounted)

    def down(batch: list[int]) -> list[int]:
        calls.append(batch)
        raise BackendUnavailable("down")

    calls.clear()
    results = call_isolating(down, [1, 2], "fn()", whole_batch=(BackendUnavailable,))
    assert calls == [[1, 2]] and all(isinstance(r, BackendUnavailable) for r in results)
