"""Video-MME from a fixture release in the official layout: adapter, scoring, export, a run."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from taskmem_bench.cli import main
from taskmem_bench.datasets.videomme import Config, VideoMME
from taskmem_bench.datasets.videomme_annotations import VideoMMEError
from taskmem_bench.export_videomme import results_json
from taskmem_bench.results import ROW_SCHEMA
from taskmem_bench.scoring.videomme import (
    NotVideoMMEError, extract_official, score_results_json, score_rows,
)
from taskmem_bench.testing.releases import videomme as fixture


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKMEM_BENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    fixture.write_release(tmp_path / "Video-MME")
    return tmp_path / "Video-MME"


def _load(root: Path, **changes: object):
    return VideoMME().load(Config(root=str(root), **changes))


def _streams(release):
    return {e.stream.id: e for e in release.episodes}


# --- adapter ----------------------------------------------------------------------------------


def test_streams_from_the_official_layout(root: Path) -> None:
    release = _load(root)
    streams = _streams(release)
    assert list(streams) == ["001", "002", "003", "005"]  # 004's media is missing
    paths = {k: e.stream.segments[0].path.relative_to(root).as_posix() for k, e in streams.items()}
    assert paths == {"001": "data/aB3-xY_9kLm.mp4", "002": "Zq8_RT1-aaa.MP4",
                     "003": "data/nested/mkvVIDEO001.mkv", "005": "Mid_Len-005.mp4"}
    for episode in release.episodes:
        stream = episode.stream
        assert stream.duration == pytest.approx(stream.segments[0].duration)
        assert stream.fps == fixture.FPS
        assert all(q.ask_time == stream.duration for q in stream.questions)  # at the video's end
    assert streams["001"].stream.duration == pytest.approx(3.0)
    assert not release.synthetic
    assert release.revision.startswith("videomme-v1:current:rows=15:sha256=")


def test_questions_options_gold_and_tags(root: Path) -> None:
    release = _load(root)
    episode = _streams(release)["001"]
    first = episode.stream.questions[0]
    assert first.id == "001-1" and first.text == "How many candles are lit?"
    assert first.options == ("1.", "4.", "2.", "3.")  # "A. " prefixes removed, order kept
    assert first.labels == "ABCD"
    assert first.category == "Counting Problem"
    assert dict(first.tags) == {"duration": "short", "domain": "Knowledge",
                                "sub_category": "Humanity & History",
                                "task_type": "Counting Problem", "video_id": "001"}
    hidden = episode.hidden["001-1"]
    assert hidden.gold == "C"
    assert hidden.raw["options"] == ["A. 1.", "B. 4.", "C. 2.", "D. 3."]
    assert "answer" not in first.tags  # gold only in Hidden
    mismatch = _streams(release)["002"].stream.questions[1]
    assert mismatch.options == ("It jumps.", "It sleeps.", "It runs.", "It eats.")


def test_subtitles_tags_stripped_missing_counted(root: Path) -> None:
    release = _load(root)
    streams = _streams(release)
    texts = {k: [(e.channel, e.t_start, e.t_end, e.text) for e in v.stream.text_events]
             for k, v in streams.items()}
    assert texts["001"] == [("subtitles", 0.0, 1.2, "Hello and welcome"),
                            ("subtitles", 1.5, 2.8, "to the history of trees")]
    assert texts["002"] == [("subtitles", 0.2, 1.0, "Meow")]
    assert texts["003"] == []
    assert (root / "subtitle/aB3-xY_9kLm.srt").read_text().count("<font") == 2
    assert release.details["subtitles"] == {"with": 3, "without": 1, "videos_without": ["003"]}
    assert set(release.files) == {"videomme/test-00000-of-00001.parquet",
                                  "subtitle/aB3-xY_9kLm.srt", "Zq8_RT1-aaa.srt",
                                  "Mid_Len-005.srt"}


def test_missing_media_excluded_visibly_and_irregularities_recorded(root: Path) -> None:
    release = _load(root)
    assert [(s.item_id, s.kind) for s in release.skipped] == [
        ("004-1", "missing_media"), ("004-2", "missing_media"), ("004-3", "missing_media")]
    assert "missingVID1" in release.skipped[0].reason
    assert sorted((i.item_id, i.kind) for i in release.irregular) == [
        ("002-2", "option_label_mismatch"), ("005", "duration_outside_bucket"),
        ("005", "subtitles_past_media_end")]


def test_durations_filter_and_revision(root: Path) -> None:
    release = _load(root, durations=("medium",))
    assert [e.stream.id for e in release.episodes] == ["005"]
    assert release.revision.endswith(":durations=medium")
    assert VideoMME().revision(Config(root=str(root), durations=("medium",))) == release.revision
    assert VideoMME().revision(Config(root=str(root))) == _load(root).revision


def test_older_edition_with_language_column(root: Path) -> None:
    records = [r | {"language": "English"} for r in fixture.rows(fixture.DEFAULT_VIDEOS)]
    fixture.write_parquet(root / fixture.PARQUET, records,
                          {**fixture.SCHEMA, "language": pl.String})
    release = _load(root)
    assert ":language:rows=15:" in release.revision
    assert release.details["edition"] == {"columns": "language", "rows": 15, "known": False}
    assert release.episodes[0].stream.questions[0].tags["language"] == "English"


def test_duplicate_media_prefers_mp4_and_is_recorded(root: Path) -> None:
    (root / "data/nested/mkvVIDEO001.mkv").rename(root / "mkvVIDEO001.mkv")
    fixture.write_release(root, fixture.replace_video(
        fixture.DEFAULT_VIDEOS, "003", media="data/mkvVIDEO001.mp4"))
    release = _load(root)
    assert _streams(release)["003"].stream.segments[0].path == root / "data/mkvVIDEO001.mp4"
    duplicate = [i for i in release.irregular if i.kind == "duplicate_media"]
    assert [i.item_id for i in duplicate] == ["003"] and "mkvVIDEO001.mkv" in duplicate[0].detail


def test_answer_that_labels_no_option_is_excluded(root: Path) -> None:
    records = fixture.rows(fixture.DEFAULT_VIDEOS)
    records[0]["answer"] = "E"
    fixture.write_parquet(root / fixture.PARQUET, records)
    release = _load(root)
    assert ("001-1", "invalid_answer") in [(s.item_id, s.kind) for s in release.skipped]
    assert [q.id for q in _streams(release)["001"].stream.questions] == ["001-2", "001-3"]


def test_corrupt_media_excluded(root: Path) -> None:
    (root / "Zq8_RT1-aaa.MP4").write_bytes(b"not a video at all" * 100)
    release = _load(root)
    assert "002" not in _streams(release)
    corrupt = [s for s in release.skipped if s.kind == "corrupt_media"]
    assert [s.item_id for s in corrupt] == ["002-1", "002-2", "002-3"]
    assert "Zq8_RT1-aaa.MP4" in corrupt[0].reason


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda p: p.write_bytes(b"PAR1 garbage, not parquet"), "not a readable parquet file"),
        (lambda p: fixture.write_parquet(p, [{k: v for k, v in r.items() if k != "answer"}
                                             for r in fixture.rows(fixture.DEFAULT_VIDEOS)],
                                         {k: v for k, v in fixture.SCHEMA.items()
                                          if k != "answer"}),
         "missing column(s) answer"),
        (lambda p: fixture.write_parquet(p, fixture.rows(fixture.DEFAULT_VIDEOS)
                                         + fixture.rows(fixture.DEFAULT_VIDEOS)[:1]),
         "duplicate question_id(s) 001-1"),
        (lambda p: fixture.write_parquet(p, [r | {"question": ""} if r["question_id"] == "002-3"
                                             else r for r in fixture.rows(fixture.DEFAULT_VIDEOS)]),
         "row 5 (question_id '002-3'): question is empty"),
        (lambda p: pl.DataFrame({"id": ["001"], "duration_category": ["short"],
                                 "questions": [["q"]], "answers": [["A"]]}).write_parquet(p),
         "first Video-MME upload"),
    ],
    ids=["not-parquet", "missing-column", "duplicate-id", "empty-field", "per-video-schema"],
)
def test_bad_annotations_name_the_file(root: Path, damage, needle: str) -> None:
    damage(root / fixture.PARQUET)
    with pytest.raises(VideoMMEError) as error:
        _load(root)
    assert needle in str(error.value)
    assert "test-00000-of-00001.parquet" in str(error.value)


def test_parquet_found_anywhere_and_root_required(root: Path, tmp_path: Path) -> None:
    (root / "videomme").rename(root / "annotations")
    assert len(_load(root).episodes) == 4
    with pytest.raises(ValueError, match="--set root=PATH"):
        VideoMME().load(Config())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoMMEError, match="no Video-MME parquet"):
        _load(empty)


# --- scoring ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "letter"),
    [
        ("C", "C"),
        ("(B)", "B"),
        ("The best answer is C.", "C"),
        ("The answer is D", "D"),
        ("Answer: A", "A"),
        ("Option: B", "B"),
        ("The correct option is C", "C"),  # "The correct option" is removed, " is C" remains
        ("Deep", "D"),  # letters inside words count
        ("Cats are cute", "C"),
        ("Best answer: C", "B"),  # the "Best answer:Best option:" concatenation: B of "Best"
        ("The best option is A", "A"),
        ("the answer is b", ""),  # lowercase is never a letter
        ("E", ""),  # the abstain label is not an answer: unanswered
        ("Answer: E", ""),
        ("After watching the whole video carefully I believe the answer is option B", "A"),
        ("i think it is probably the one with the long whiskers and a red hat", ""),
        ("   \n", ""),
        (None, ""),
    ],
)
def test_official_extractor_and_its_quirks(reply: str | None, letter: str) -> None:
    assert extract_official(reply) == letter


def _rows(replies: list[tuple[str, str | None, str, dict[str, str]]]) -> pl.DataFrame:
    """Result rows with the columns the scorer and exporter read."""
    records = []
    for qid, raw, gold, tags in replies:
        record = {k: None for k in ROW_SCHEMA}
        record |= {"question_id": qid, "raw_output": raw, "gold": gold,
                   "tags": json.dumps(tags, sort_keys=True), "question": f"question {qid}?",
                   "options": json.dumps(["one", "two", "three", "four"])}
        records.append(record)
    return pl.DataFrame(records, schema=ROW_SCHEMA)


def _tags(video_id: str, duration: str, domain: str, task_type: str) -> dict[str, str]:
    return {"video_id": video_id, "duration": duration, "domain": domain,
            "sub_category": f"{domain} sub", "task_type": task_type}


FIXED_REPLIES = [
    ("001-1", "A", "A", _tags("001", "short", "Knowledge", "OCR Problems")),           # right
    ("001-2", "Deep water", "B", _tags("001", "short", "Knowledge", "Counting Problem")),  # D: wrong
    ("001-3", "E", "C", _tags("001", "short", "Knowledge", "OCR Problems")),           # unanswered
    ("002-1", "Best answer: B", "B", _tags("002", "long", "Multilingual", "OCR Problems")),  # B: right
    ("002-2", "Best answer: C", "C", _tags("002", "long", "Multilingual", "OCR Problems")),  # B: wrong
    ("002-3", None, "D", _tags("002", "long", "Multilingual", "Counting Problem")),    # failed
    ("003-1", "The answer is D.", "D", _tags("003", "short", "Multilingual", "OCR Problems")),  # right
]


def test_scores_of_a_fixed_reply_set_by_hand() -> None:
    scores = score_rows(_rows(FIXED_REPLIES))
    # answered: 001-1, 001-2, 002-1, 002-2, 003-1 = 5; correct: 001-1, 002-1, 003-1 = 3
    assert (scores["n"], scores["answered"], scores["correct"]) == (7, 5, 3)
    assert scores["videomme_official"] == pytest.approx(3 / 5)
    assert scores["videomme_strict"] == pytest.approx(3 / 7)
    by = scores["by"]
    assert by["duration"]["short"] == {"videomme_official": pytest.approx(2 / 3),
                                            "videomme_strict": pytest.approx(2 / 4),
                                            "n": 4, "answered": 3, "correct": 2}
    assert by["duration"]["long"]["videomme_official"] == pytest.approx(1 / 2)
    assert by["duration"]["long"]["videomme_strict"] == pytest.approx(1 / 3)
    assert by["domain"]["Multilingual"]["correct"] == 2
    assert by["task_type"]["OCR Problems"] == {"videomme_official": pytest.approx(3 / 4),
                                                   "videomme_strict": pytest.approx(3 / 5),
                                                   "n": 5, "answered": 4, "correct": 3}
    assert by["task_type"]["Counting Problem"]["videomme_official"] == 0.0
    assert set(by["sub_category"]) == {"Knowledge sub", "Multilingual sub"}


def test_nothing_answered_scores_zero_like_the_official_script() -> None:
    rows = _rows([("001-1", "E", "A", _tags("001", "short", "Knowledge", "OCR Problems"))])
    scores = score_rows(rows)
    assert (scores["videomme_official"], scores["videomme_strict"]) == (0.0, 0.0)


# --- export -----------------------------------------------------------------------------------


def test_exported_json_scores_like_the_rows() -> None:
    rows = _rows(FIXED_REPLIES)
    exported = results_json(rows)
    assert [v["video_id"] for v in exported] == ["001", "002", "003"]
    video = exported[1]
    assert {k: video[k] for k in ("duration", "domain", "sub_category")} == {
        "duration": "long", "domain": "Multilingual", "sub_category": "Multilingual sub"}
    assert video["questions"][0] == {
        "question_id": "002-1", "task_type": "OCR Problems", "question": "question 002-1?",
        "options": ["A. one", "B. two", "C. three", "D. four"], "answer": "B",
        "response": "Best answer: B"}
    assert video["questions"][2]["response"] == ""  # failed question
    assert score_results_json(exported) == score_rows(rows)


def test_export_refuses_rows_without_videomme_tags() -> None:
    rows = _rows([("mini-1", "A", "A", {"environment": "mixed"})])
    with pytest.raises(NotVideoMMEError, match="mini-1 has no Video-MME tags"):
        results_json(rows)


def test_run_blind_then_export(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "runs"
    code = main(["run", "--task", "videomme_stream_subtitles", "--policy", "blind",
                 "--reader", "cpu", "--set", f"root={root}", "--out", str(out)])
    assert code == 0
    run_dir = out / "videomme_stream_subtitles" / "blind"
    rows = pl.read_parquet(run_dir / "rows.parquet")
    assert sorted(rows["question_id"]) == [f"{v}-{k}" for v in ("001", "002", "003", "005")
                                           for k in (1, 2, 3)]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [s["item_id"] for s in manifest["dataset"]["skipped"]] == ["004-1", "004-2", "004-3"]
    assert manifest["side_channels"]["allowed"] == ["subtitles"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["scoring"] == {"name": "videomme", "verdict_by": ["robust"],
                                  "variants": json.loads(json.dumps(score_rows(rows)))}
    assert set(summary["scoring"]["variants"]["by"]) == {"duration", "domain", "sub_category",
                                                         "task_type"}
    capsys.readouterr()
    assert main(["report", str(run_dir), "--format", "csv"]) == 0
    table = pl.read_csv(capsys.readouterr().out.encode())
    assert table["videomme_official"].to_list() == [summary["scoring"]["variants"]["videomme_official"]]
    letters = [json.loads(v)["videomme_official"] for v in rows["variants"]]
    assert letters == [extract_official(r) for r in rows["raw_output"]]
    target = tmp_path / "results.json"
    assert main(["export", str(run_dir), "--format", "videomme", "-o", str(target)]) == 0
    exported = json.loads(target.read_text())
    assert [v["video_id"] for v in exported] == ["001", "002", "003", "005"]
    assert exported[0]["questions"][0]["options"] == ["A. 1.", "B. 4.", "C. 2.", "D. 3."]
    assert score_results_json(exported) == score_rows(rows)
    assert main(["export", str(run_dir), "--format", "videomme"]) == 2
    assert "needs -o FILE" in capsys.readouterr().err
