"""Real-benchmark bundles: checked against the question manifest shipped for their revision,
re-scored with the dataset's scoring, and ranked; each mismatch gets its one reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from leaderboard import tables
from leaderboard.bundle import export_bundle, read_bundle
from leaderboard.errors import Rejected
from leaderboard.figures import judge_label
from leaderboard.site import build_site
from leaderboard.tracks import CONTROL, OPEN
from leaderboard.validate import validate_bundle
from leaderboard_real_support import PUBLIC_EGOTEMPO, egotempo_fixture_bundles
from leaderboard_support import Parts, consistent, rewrite_bundle
from taskmem_bench.cli import main
from taskmem_bench.testing.releases.egotempo_public import lay_out

PUBLIC_CLIP = "0d270946-95c5-4e71-ae49-b9e802548147_120.0_180.0"
"""A clip of the public release, not of the fixture release."""


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, mini_cache: Path,
            tiny_text_model: Path) -> dict[str, Path]:
    return egotempo_fixture_bundles(tmp_path_factory.mktemp("egotempo-bundles"), tiny_text_model)


def test_a_fixture_release_bundle_is_accepted(bundles: dict[str, Path]) -> None:
    blind, subtitles = (validate_bundle(read_bundle(bundles[k])) for k in ("blind", "subtitles"))
    assert (blind.track, subtitles.track) == (CONTROL, OPEN)
    # the run skipped two questions for missing media, which the manifest does not have either
    assert (subtitles.coverage.streams, subtitles.coverage.of, subtitles.coverage.excluded) == (5, 5, 0)
    assert subtitles.coverage.full and subtitles.scores.n == 6
    assert subtitles.video_hours == pytest.approx((3.0 + 2.7 + 3.5 + 2.5 + 3.0) / 3600)
    assert judge_label(subtitles).endswith("(transformers)")  # the tiny judge, by its files


def _row(question_id_part: str, **values: object) -> Callable[[Parts], None]:
    def edit(parts: Parts) -> None:
        hit = pl.col("question_id").str.contains(question_id_part, literal=True)
        parts.rows = parts.rows.with_columns(
            pl.when(hit).then(pl.lit(v)).otherwise(pl.col(k)).alias(k) for k, v in values.items())

    return edit


def _drop(parts: Parts) -> None:
    parts.rows = parts.rows.filter(~pl.col("question_id").str.contains("q-odd-17", literal=True))


def _hours(parts: Parts) -> None:
    parts.summary["memory"]["video_hours"] = 1.0


def _revision(parts: Parts) -> None:
    parts.manifest["dataset"]["revision"] = "egotempo:parser1:0123456789abcdef"


MISMATCHES = {
    "dropped question": (consistent(_drop), "rows.parquet lacks question 'q-odd-17' of the dataset"),
    "edited gold": (consistent(_row("q-odd-17", gold="In the drawer.")),
                    "question 'q-odd-17': the row's gold 'In the drawer.' is not the dataset's"),
    "changed ask time": (consistent(_row("q-odd-17", ask_time=1.0)),
                         "question 'q-odd-17': the row's ask_time 1.0 is not the dataset's 3.5"),
    "edited question text": (consistent(_row("q-odd-17", question="Where is the fork?")),
                             "question 'q-odd-17': the row's question text does not hash to the "
                             "question manifest's"),
    "stream from another release": (consistent(_row("q-odd-17", stream_id=PUBLIC_CLIP)),
                                    "the row's stream_id '0d270946"),
    "forged durations": (_hours, "summary.json states memory.video_hours = 1.0; the dataset's "
                                 "streams last 0.0041 hours"),
    "unknown revision": (_revision, "no question manifest of egotempo revision "
                                    "'egotempo:parser1:0123456789abcdef' ships"),
}


@pytest.mark.parametrize("kind", sorted(MISMATCHES))
def test_each_mismatch_with_the_manifest_is_rejected_with_its_reason(
    kind: str, bundles: dict[str, Path], tmp_path: Path
) -> None:
    edit, reason = MISMATCHES[kind]
    forged = rewrite_bundle(bundles["subtitles"], tmp_path / "forged.tar.gz", edit)
    with pytest.raises(Rejected) as caught:
        validate_bundle(read_bundle(forged))
    assert reason in str(caught.value)


def test_a_question_skipped_for_missing_media_is_excluded_and_counted(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    """A run may lack a question only if its manifest lists it as skipped for missing media;
    the exclusion is counted and keeps the run out of the ranking of full runs."""
    def skip(parts: Parts) -> None:
        _drop(parts)
        parts.manifest["dataset"]["skipped"].append(
            {"item_id": "q-odd-17", "reason": "no media", "kind": "missing_media"})
        parts.summary["streams"] = {**parts.summary["streams"], "total": 4, "finished": 4}
        parts.summary["memory"]["video_hours"] = round((3.0 + 2.7 + 2.5 + 3.0) / 3600, 4)

    run = validate_bundle(read_bundle(rewrite_bundle(bundles["subtitles"], tmp_path / "s.tar.gz",
                                                     consistent(skip))))
    assert (run.coverage.streams, run.coverage.of, run.coverage.excluded) == (4, 5, 1)
    assert tables.group_of(run) == tables.PARTIAL and run.scores.n == 5


@pytest.mark.slow
def test_a_run_on_the_public_egotempo_release_is_accepted_and_ranked(
    tmp_path: Path, mini_cache: Path, tiny_text_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Done-when run: EgoTempo v1.0 laid out from its public annotations (tiny media), the
    paper reader and the LLM judge on a tiny model, every one of the 500 questions: the bundle
    is accepted and ranked with its judge named; the same bundle with one gold edited is
    rejected with its reason; a blind control (cpu reader) is accepted beside it."""
    root = lay_out(PUBLIC_EGOTEMPO, tmp_path / "egotempo")
    runs, results = tmp_path / "runs", tmp_path / "results"
    common = ["--set", "judge.backend=transformers", "--set", f"judge.model={tiny_text_model}",
              "--set", "judge.max_new_tokens=2", "--set", f"root={root}", "--out", str(runs),
              "--progress-every", "600"]
    assert main(["run", "--task", "egotempo_stream", "--policy", "subtitles", "--set",
                 "backend=transformers", "--set", f"model={tiny_text_model}", "--set",
                 "max_new_tokens=2", *common]) == 0
    assert main(["run", "--task", "egotempo_stream", "--policy", "blind", "--reader", "cpu",
                 *common]) == 0
    for name in ("subtitles", "blind"):
        export_bundle(runs / "egotempo_stream" / name, results / f"{name}.tar.gz")
    rewrite_bundle(results / "subtitles.tar.gz", results / "tampered.tar.gz",
                   consistent(_row(PUBLIC_CLIP, gold="A fork.")))
    built = build_site(results, tmp_path / "site")
    ranked = {run.policy: run for run in built.accepted}
    assert set(ranked) == {"subtitles", "blind"}
    assert ranked["subtitles"].scores.n == 500 and ranked["subtitles"].coverage.full
    assert tables.group_of(ranked["subtitles"]) == tables.RANKED
    assert [(r.source, r.reason) for r in built.rejected] == [
        ("tampered.tar.gz", f"question {PUBLIC_CLIP!r}: the row's gold 'A fork.' is not the "
                            "dataset's 'A spoon.'")]
    page = (built.site / "benchmarks" / "egotempo_stream.html").read_text()
    assert "Judged accuracy by question type" in page
    assert judge_label(ranked["subtitles"]) in page and "Published in the paper" in page
