"""`taskmem-bench prepare` and the machinery every adapter shares: file discovery by stem,
fingerprints, SRT reading, the media index that runs reuse."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from taskmem_bench.cli import main
from taskmem_bench.datasets.files import FileIndex, fingerprint, sha256_file
from taskmem_bench.datasets.prepare import MediaIndex, manifest_path, prepare
from taskmem_bench.datasets.srt_text import SrtError, read_srt, strip_markup
from taskmem_bench.datasets.videomme import Config, VideoMME
from taskmem_bench.media import MediaError
from taskmem_bench.testing.releases import videomme as fixture
from taskmem_bench.testing.videos import write_video


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKMEM_BENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    fixture.write_release(tmp_path / "Video-MME")
    return tmp_path / "Video-MME"


# --- SRT --------------------------------------------------------------------------------------


def test_srt_markup_stripped_times_kept(tmp_path: Path) -> None:
    path = tmp_path / "x.srt"
    path.write_bytes(
        "\ufeff1\n00:00:01,000 --> 00:00:02,500\n"
        '<font color="#ffffff" size=".72c">{\\an8}Hello <i>there</i></font>\n\n'
        "2\n00:00:03,000 --> 00:00:04,000\n<font color=\"#fff\"></font>\n\n"
        "3\n00:00:05,000 --> 00:00:06,250\nif a < b then\nsay  it\n\n".encode())
    events = read_srt(path, "subtitles")
    assert [(e.channel, e.t_start, e.t_end, e.text) for e in events] == [
        ("subtitles", 1.0, 2.5, "Hello there"),  # the empty cue 2 is dropped
        ("subtitles", 5.0, 6.25, "if a < b then say it"),
    ]
    assert strip_markup("<b>bold</b>\n\n  <u>x</u> ") == "bold\nx"


def test_srt_pick_and_offset_for_bilingual_transcripts(tmp_path: Path) -> None:
    path = tmp_path / "DAY1_11000000.srt"
    path.write_text("1\n00:00:10,000 --> 00:00:12,000\n我们走吧\nLet's go\n\n"
                    "2\n00:01:00,000 --> 00:01:01,000\n好\n\n", encoding="utf-8")
    english = read_srt(path, "transcript", offset=39600.0,
                       pick=lambda lines: lines[1] if len(lines) > 1 else None)
    assert [(e.t_start, e.t_end, e.text) for e in english] == [(39610.0, 39612.0, "Let's go")]


def test_malformed_srt_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.srt"
    path.write_text("this is not a subtitle file")
    with pytest.raises(SrtError, match="bad.srt: malformed SRT"):
        read_srt(path, "subtitles")


def test_malformed_subtitles_are_an_irregularity(root: Path) -> None:
    (root / "Zq8_RT1-aaa.srt").write_text("garbage only")
    release = VideoMME().load(Config(root=str(root)))
    stream = next(e.stream for e in release.episodes if e.stream.id == "002")
    assert stream.text_events == ()
    assert [(i.item_id, i.kind) for i in release.irregular if i.kind == "malformed_subtitles"] \
        == [("002", "malformed_subtitles")]


# --- files ------------------------------------------------------------------------------------


def test_files_found_by_exact_stem_any_depth_any_extension_case(tmp_path: Path) -> None:
    for name in ("a/b/Vid1.MP4", "Vid1.mkv", "c/vid1.mp4", "._Vid1.mp4", "Vid1.txt", "x/y.srt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "a" / "loop").symlink_to(tmp_path, target_is_directory=True)  # walked once
    index = FileIndex.scan(tmp_path, (".mp4", ".mkv"))
    assert [index.relative(p) for p in index.get("Vid1")] == ["Vid1.mkv", "a/b/Vid1.MP4"]
    assert [index.relative(p) for p in index.get("vid1")] == ["c/vid1.mp4"]
    assert index.get("y") == () and index.get("._Vid1") == ()


def test_fingerprint_reads_size_head_and_tail(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = bytearray(os.urandom(3 << 20))
    path.write_bytes(data)
    base = fingerprint(path)
    data[(3 << 20) // 2] ^= 0xFF  # the middle MiB is not read: that is the trade-off
    path.write_bytes(data)
    assert fingerprint(path) == base
    for position in (0, (3 << 20) - 1):
        changed = bytearray(data)
        changed[position] ^= 0xFF
        path.write_bytes(changed)
        assert fingerprint(path) != base
    path.write_bytes(data + b"\0")  # size
    assert fingerprint(path) != base
    assert len(sha256_file(path)) == 64


# --- media index ------------------------------------------------------------------------------


def test_runs_reuse_probed_durations_until_a_file_changes(root: Path) -> None:
    first = VideoMME().load(Config(root=str(root)))
    assert first.details["media_index"]["probed"] == 4
    again = VideoMME().load(Config(root=str(root)))
    assert again.details["media_index"] | {"manifest": None} == {
        "manifest": None, "from_manifest": 4, "probed": 0}
    assert [e.stream.duration for e in again.episodes] == [e.stream.duration for e in first.episodes]
    video = root / "Mid_Len-005.mp4"
    write_video(video, 25, fps=fixture.FPS)  # replaced: 2.5 s now
    changed = VideoMME().load(Config(root=str(root)))
    assert changed.details["media_index"]["probed"] == 1
    assert changed.episodes[-1].stream.duration == pytest.approx(2.5)


def test_media_keys_stay_relative_through_a_linked_folder(root: Path, tmp_path: Path) -> None:
    (root / "data").rename(tmp_path / "other-disk")
    (root / "data").symlink_to(tmp_path / "other-disk", target_is_directory=True)
    prepare(VideoMME(), Config(root=str(root)))
    media = json.loads(manifest_path("videomme", root).read_text())["media"]
    assert "data/nested/mkvVIDEO001.mkv" in media and "data/aB3-xY_9kLm.mp4" in media


def test_probe_of_a_non_video_raises_and_is_remembered(tmp_path: Path) -> None:
    path = tmp_path / "x.mp4"
    path.write_bytes(b"nope" * 10)
    index = MediaIndex.open("demo", tmp_path)
    with pytest.raises(MediaError, match="x.mp4"):
        index.probe(path)
    index.save()
    reopened = MediaIndex.open("demo", tmp_path)
    with pytest.raises(MediaError, match="x.mp4"):
        reopened.probe(path)
    assert reopened.stats()["probed"] == 0


# --- prepare ----------------------------------------------------------------------------------


def test_prepare_report_counts_exactly(root: Path) -> None:
    report = prepare(VideoMME(), Config(root=str(root)))
    assert (report.streams, report.questions, report.media_files) == (4, 12, 4)
    assert report.hours == pytest.approx((3 + 2 + 2 + 2) / 3600)
    assert [m["id"] for m in report.missing_media] == ["004-1", "004-2", "004-3"]
    assert report.corrupt_media == []
    assert report.skipped == {"missing_media": ["004-1", "004-2", "004-3"]}
    assert report.irregular == {"duration_outside_bucket": ["005"],
                                "option_label_mismatch": ["002-2"],
                                "subtitles_past_media_end": ["005"]}
    assert report.side_channels == {"subtitles": {"streams": 3, "events": 5}}
    assert report.details["subtitles"]["videos_without"] == ["003"]

    manifest = json.loads(manifest_path("videomme", root).read_text())
    assert manifest["prepared"] is True and manifest["revision"] == report.revision
    parquet = "videomme/test-00000-of-00001.parquet"
    assert manifest["annotations"][parquet] == sha256_file(root / parquet)
    media = manifest["media"]
    assert sorted(media) == ["Mid_Len-005.mp4", "Zq8_RT1-aaa.MP4", "data/aB3-xY_9kLm.mp4",
                             "data/nested/mkvVIDEO001.mkv"]
    entry = media["data/nested/mkvVIDEO001.mkv"]
    assert entry["checked"] is True and entry["error"] is None
    assert entry["fingerprint"] == fingerprint(root / "data/nested/mkvVIDEO001.mkv")
    assert entry["duration"] == pytest.approx(2.0)
    assert manifest["report"]["questions"] == 12
    assert _stable(prepare(VideoMME(), Config(root=str(root)))) == _stable(report)


def _stable(report) -> dict:
    """The report less where this load took its durations from (manifest or probe)."""
    data = report.to_dict()
    data["details"].pop("media_index")
    return data


def test_prepare_finds_a_cut_off_download(root: Path) -> None:
    video = root / "data/nested/mkvVIDEO001.mkv"
    write_video(video, 100, fps=fixture.FPS, grain=30)  # a 10 s file ...
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])  # ... cut in half
    report = prepare(VideoMME(), Config(root=str(root)))
    assert [m["id"] for m in report.corrupt_media] == ["003-1", "003-2", "003-3"]
    assert "cut off" in report.corrupt_media[0]["reason"]
    assert (report.streams, report.questions) == (3, 9)
    assert report.skipped == {"corrupt_media": ["003-1", "003-2", "003-3"],
                              "missing_media": ["004-1", "004-2", "004-3"]}
    # a run now excludes the file visibly, from the manifest, without decoding it again
    release = VideoMME().load(Config(root=str(root)))
    assert [s.item_id for s in release.skipped if s.kind == "corrupt_media"] == [
        "003-1", "003-2", "003-3"]
    assert _stable(prepare(VideoMME(), Config(root=str(root)))) == _stable(report)


def test_prepare_command(root: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["prepare", "videomme", "--root", str(root)]) == 0
    printed = capsys.readouterr().out
    for line in ("streams       4", "questions     12", "missing_media: 3 (004-1, 004-2, 004-3)",
                 "missing     004-1: video 004: no missingVID1.mp4/.mkv",
                 "option_label_mismatch: 1 (002-2)", "subtitles: 5 events in 3 streams"):
        assert line in printed
    assert main(["prepare", "videomme", "--root", str(root), "--set", "durations=[long]"]) == 0
    assert "streams       0" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["prepare", "mini", "--root", "."], "no release folder (it is generated)"),
        (["prepare", "videomme", "--root", "/no/such/folder"], "is not a folder"),
        (["prepare", "videomme", "--root", ".", "--set", "colour=red"], "unknown key(s) colour"),
        (["prepare", "nope", "--root", "."], "unknown dataset 'nope'"),
    ],
)
def test_prepare_command_errors(args: list[str], needle: str, capsys) -> None:
    assert main(args) == 2
    assert needle in " ".join(capsys.readouterr().err.split())
