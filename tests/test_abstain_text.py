"""A question's ``abstain_text`` is one value from the dataset to the runner's verdict and the
leaderboard's re-scoring; here a dataset's own, not the default."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest
from conftest import make_plan, run_plan
from plugins import FrameDigestPolicy, SpyReader

from leaderboard.errors import Rejected
from leaderboard.plan_check import abstain_texts
from leaderboard.rescore import rescore_row
from taskmem_bench.datasets import DatasetRelease
from taskmem_bench.datasets.base import PlannedQuestion, PlannedStream
from taskmem_bench.readers import ReaderInput, ReaderOutput
from taskmem_bench.schema import ScoringSpec
from taskmem_bench.scoring.base import Scoring

NOT_KNOWN = "Not in the notes"


class NotKnownReader(SpyReader):
    def answer(self, inputs: Sequence[ReaderInput]) -> list[ReaderOutput]:
        return [ReaderOutput(f"Answer: {NOT_KNOWN}") for _ in inputs]


class NoJudge:
    """An abstention never reaches the judge."""

    config = None

    def judge(self, items):
        raise AssertionError(f"judged {items}")


@pytest.fixture
def open_release(coded_release: DatasetRelease) -> DatasetRelease:
    episode = coded_release.episodes[0]
    spec = ScoringSpec("open", abstain_text=NOT_KNOWN)
    questions = tuple(dataclasses.replace(q, options=(), scoring=spec)
                      for q in episode.stream.questions)
    stream = dataclasses.replace(episode.stream, questions=questions)
    return dataclasses.replace(coded_release, episodes=(dataclasses.replace(episode, stream=stream),))


def test_the_questions_abstain_text_decides_the_verdict_in_the_run_and_on_the_leaderboard(
    open_release: DatasetRelease, tmp_path: Path
) -> None:
    assert ScoringSpec().abstain_text != NOT_KNOWN
    outcome = run_plan(make_plan(FrameDigestPolicy, NotKnownReader), open_release, tmp_path,
                       reader=NotKnownReader(), judge=NoJudge())
    rows = pl.read_parquet(outcome.run_dir / "rows.parquet")
    assert rows["abstained"].all() and rows["extraction"].to_list() == ["abstained"] * rows.height

    episode = open_release.episodes[0]
    plan = [PlannedStream(episode.stream.id, episode.stream.duration, tuple(
        PlannedQuestion.of(q, episode.hidden[q.id]) for q in episode.stream.questions))]
    texts = abstain_texts(rows, plan)
    assert set(texts.values()) == {NOT_KNOWN}
    for row in rows.iter_rows(named=True):
        rescore_row(row, Scoring(), texts[row["question_id"]])
        with pytest.raises(Rejected, match="neither a judge reply"):
            rescore_row(row, Scoring())  # under the default text it would have needed a judge
    assert set(abstain_texts(rows, None).values()) == {ScoringSpec().abstain_text}
