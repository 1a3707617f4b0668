"""Real-benchmark bundles: checked against the question manifest shipped for their revision,
re-scored with the dataset's scoring, and ranked; each mismatch gets its one reason."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from leaderboard import tables
from leaderboard.bundle import export_bundle, read_bundle
from leaderboard.errors import Rejected
from leaderboard.figures import judge_label
from leaderboard.plan_check import MEDIA_TOLERANCE
from leaderboard.site import build_site
from leaderboard.tracks import CONTROL, OPEN
from leaderboard.validate import validate_bundle
from leaderboard_real_support import (
    PUBLIC_EGOTEMPO, egolife_fixture_bundles, egotempo_fixture_bundles, videomme_fixture_bundles,
)
from leaderboard_support import Parts, consistent, rewrite_bundle
from taskmem_bench import question_manifest
from taskmem_bench.cli import main
from taskmem_bench.testing.releases.egotempo_public import lay_out

PUBLIC_CLIP = "0d270946-95c5-4e71-ae49-b9e802548147_120.0_180.0"
"""A clip of the public release, not of the fixture release."""
FIXTURE_SECONDS = (3.0, 2.7, 3.5, 2.5, 3.0)
"""The EgoTempo fixture manifest's stream durations, in run order."""


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, mini_cache: Path,
            tiny_text_model: Path) -> dict[str, Path]:
    return egotempo_fixture_bundles(tmp_path_factory.mktemp("egotempo-bundles"), tiny_text_model)


@pytest.fixture(scope="module")
def videomme_bundles(tmp_path_factory: pytest.TempPathFactory, mini_cache: Path) -> dict[str, Path]:
    return videomme_fixture_bundles(tmp_path_factory.mktemp("videomme-bundles"))


def test_a_fixture_release_bundle_is_accepted(bundles: dict[str, Path]) -> None:
    blind, subtitles = (validate_bundle(read_bundle(bundles[k])) for k in ("blind", "subtitles"))
    assert (blind.track, subtitles.track) == (CONTROL, OPEN)
    # the run skipped two questions for missing media, which the manifest does not have either
    assert (subtitles.coverage.streams, subtitles.coverage.of, subtitles.coverage.excluded) == (5, 5, 0)
    assert subtitles.coverage.full and subtitles.scores.n == 6
    assert subtitles.video_hours == pytest.approx(sum(FIXTURE_SECONDS) / 3600)
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


def _seconds(seconds: float) -> Callable[[Parts], None]:
    def edit(parts: Parts) -> None:
        parts.summary["memory"]["video_hours"] = round(seconds / 3600, 4)

    return edit


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
    "hours past the media tolerance": (
        _seconds(sum(FIXTURE_SECONDS) + 5 * MEDIA_TOLERANCE + 0.6),
        "the dataset's streams last 0.0041 hours"),
    "a stream's media cut short": (
        _seconds(sum(FIXTURE_SECONDS) - 3.0),
        "a run whose media lacked part of a stream (an EgoLife clip, say) is not a run on the "
        "whole release"),
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


def test_a_fixture_release_is_refused_outside_tests(
    bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fixture manifests ship beside the real ones, but a 6-question run on a fixture release
    is never ranked as EgoTempo: only tests enable them (``fixture_manifests_enabled``)."""
    monkeypatch.setattr(question_manifest, "_fixtures_enabled", False)
    with pytest.raises(Rejected, match=r"^egotempo revision 'egotempo:parser1:[0-9a-f]{16}' is a "
                                       r"test fixture release .* real releases only$"):
        validate_bundle(read_bundle(bundles["subtitles"]))


def test_ask_times_and_hours_may_differ_as_probed_media_do(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    """A real release's ask times and durations come from probing its media, which another
    decoder measures a little differently: within MEDIA_TOLERANCE a stream they are accepted,
    and memory per hour still divides by the manifest's durations."""
    def probed(parts: Parts) -> None:
        _row("q-odd-17", ask_time=3.5 + MEDIA_TOLERANCE - 0.1)(parts)
        _seconds(sum(FIXTURE_SECONDS) + 5 * (MEDIA_TOLERANCE - 0.05))(parts)

    run = validate_bundle(read_bundle(rewrite_bundle(bundles["subtitles"], tmp_path / "p.tar.gz",
                                                     consistent(probed))))
    assert run.video_hours == pytest.approx(sum(FIXTURE_SECONDS) / 3600)


def _partial(streams: int, skipped: tuple[str, ...] = ()) -> Callable[[Parts], None]:
    """The run as if made with ``--limit streams`` (the manifest streams kept whole) and with
    the questions ``skipped`` listed as missing media, their rows and emptied streams gone."""
    def edit(parts: Parts) -> None:
        parts.manifest["limit"] = streams
        parts.manifest["dataset"]["skipped"] += [
            {"item_id": q, "reason": "no media", "kind": "missing_media"} for q in skipped]
        parts.rows = parts.rows.filter(~pl.col("question_id").is_in(list(skipped)))
        kept = parts.rows["stream_id"].unique(maintain_order=True).to_list()[:streams]
        parts.rows = parts.rows.filter(pl.col("stream_id").is_in(kept))
        parts.summary["streams"] = {**parts.summary["streams"], "total": streams,
                                    "finished": streams}
        order = [s for s in STREAMS if s in kept]
        _seconds(sum(FIXTURE_SECONDS[STREAMS.index(s)] for s in order))(parts)

    return consistent(edit)


STREAMS = ("27470817-f803-45b4-b9d4-e754cb3196bc_368.4019995568589_371.56079044314106",
           "0ece1a2a-2da0-4b28-ac8c-bf9f04c0d17c_2.35_5.05",
           "0ece1a2a-2da0-4b28-ac8c-bf9f04c0d17c_4.0_7.5",
           "01f5ee9f-09e9-4d3d-b682-aa64b6a57858_-0.034_2.5",
           "106e9447-8a09-4e89-964e-61c927827a56_3.0_12.0")
"""The EgoTempo fixture manifest's streams, in run order (``FIXTURE_SECONDS``)."""


def test_exclusions_count_within_the_streams_covered_and_key_the_entry(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    """A question skipped past the streams a partial run covers is not its exclusion; runs that
    skipped different questions are different entries with different blind controls."""
    def accepted(name: str, edit: Callable[[Parts], None], policy: str = "subtitles"):
        return validate_bundle(read_bundle(rewrite_bundle(bundles[policy],
                                                          tmp_path / f"{name}.tar.gz", edit)))

    first_two = accepted("two", _partial(2))
    skipped_later = accepted("two-skip", _partial(2, ("q-odd-17",)))
    assert (skipped_later.coverage.excluded, skipped_later.coverage.key) == (
        0, first_two.coverage.key)
    assert skipped_later.entry_key == first_two.entry_key
    fourth = f"{STREAMS[3]}_0"
    skip_third, skip_fourth, no_skip = (accepted("a", _partial(4, ("q-odd-17",))),
                                        accepted("b", _partial(4, (fourth,))),
                                        accepted("c", _partial(4)))
    assert (skip_third.coverage.excluded, skip_fourth.coverage.excluded) == (1, 1)
    assert len({skip_third.coverage.key, skip_fourth.coverage.key, no_skip.coverage.key}) == 3
    assert len({skip_third.entry_key, skip_fourth.entry_key, no_skip.entry_key}) == 3
    blind_skip_third = accepted("blind", _partial(4, ("q-odd-17",)), "blind")
    gains = dict(tables.runs_frame([blind_skip_third, skip_third, no_skip])
                 .select("run_id", "gain").iter_rows())
    assert gains[skip_third.run_id] is not None and gains[no_skip.run_id] is None


def test_a_videomme_bundle_is_checked_against_its_manifest(
    videomme_bundles: dict[str, Path], tmp_path: Path
) -> None:
    """The Video-MME fixture release: the run is accepted (the video whose media is missing is
    not in the manifest either); edited options and a memory log filed under another stream
    are rejected with their reasons."""
    run = validate_bundle(read_bundle(videomme_bundles["subtitles"]))
    assert run.coverage.full and run.scores.n == 12 and run.bundle.memory.height > 0
    assert validate_bundle(read_bundle(videomme_bundles["blind"])).track == CONTROL

    def other_stream(parts: Parts) -> None:
        index = parts.memory["stream_index"][0]
        parts.memory = parts.memory.with_columns(
            stream_id=pl.when(pl.col("stream_index") == index).then(pl.lit("005"))
            .otherwise(pl.col("stream_id")))

    edits = {
        "options": (_row("001-1", options=json.dumps(["one", "two", "three", "four"])),
                    "question '001-1': the row's options do not hash to the question manifest's"),
        "memory": (other_stream, "memory.parquet: stream 0 is '001' in the dataset, not '005'"),
    }
    for name, (edit, reason) in edits.items():
        forged = rewrite_bundle(videomme_bundles["subtitles"], tmp_path / f"{name}.tar.gz",
                                consistent(edit))
        with pytest.raises(Rejected) as caught:
            validate_bundle(read_bundle(forged))
        assert reason in str(caught.value)


def test_real_benchmark_pages_show_their_dataset_figures(
    videomme_bundles: dict[str, Path], bundles: dict[str, Path], tmp_path: Path, mini_cache: Path
) -> None:
    """Each real benchmark's page has its own figures beside Acc/Cov/Prec: Video-MME official
    and strict by duration, EgoLife by question type and evidence delay, EgoTempo's judge."""
    results = tmp_path / "results"
    results.mkdir()
    sources = [*videomme_bundles.values(), *egolife_fixture_bundles(tmp_path / "egolife").values(),
               *bundles.values()]
    for source in sources:
        shutil.copy(source, results / source.name)
    built = build_site(results, tmp_path / "site")
    assert built.rejected == [] and len(built.accepted) == len(sources)
    pages = built.site / "benchmarks"
    videomme_page = (pages / "videomme_stream_subtitles.html").read_text()
    assert "Video-MME official and strict, by duration" in videomme_page
    for column in ("official short", "strict short", "official medium", "strict long"):
        assert f"<th>{column}</th>" in videomme_page
    egolife_page = (pages / "egolife_stream.html").read_text()
    assert "EgoRAG accuracy by question type" in egolife_page
    assert "EgoRAG accuracy by evidence delay" in egolife_page
    assert "Judged accuracy by question type" in (pages / "egotempo_stream.html").read_text()
    assert "Published in the paper" in egolife_page


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
