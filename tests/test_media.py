"""media.py: which frames and text each clip gets, where clips start and end, and failures.

Test videos encode each frame's index in its pixels (tests/videos.py), so assertions name the
exact source frames a clip delivered, not just how many.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import psutil
import pytest

from taskmem_bench.media import MediaError, iter_clips, probe_duration, probe_fps
from taskmem_bench.schema import Clip, MediaSegment, Stream, TextEvent
from taskmem_bench.testing.videos import read_index, write_video

FPS = 30
SUFFIXES = ["mp4", "mkv", "h264"]  # h264: raw stream, no timestamps, no duration metadata


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Shared test videos: 90 frames (3 s) per container; ``gop10`` has a keyframe every 10."""
    root = tmp_path_factory.mktemp("videos")
    made = {suffix: write_video(root / f"v.{suffix}", 90) for suffix in SUFFIXES}
    made["gop10"] = write_video(root / "gop10.mp4", 120, gop=10)
    return made


def one_segment(path: Path, **stream_fields: Any) -> Stream:
    return Stream(id="s", segments=(MediaSegment(path, t_start=0.0),), **stream_fields)


def clips(
    stream: Stream, *, clip_seconds: float = 1.0, sample_fps: float = FPS, **options: Any
) -> list[Clip]:
    return list(iter_clips(stream, clip_seconds=clip_seconds, sample_fps=sample_fps, **options))


def indices(clip: Clip) -> list[int]:
    return [read_index(frame) for frame in clip.frames]


def windows(result: list[Clip]) -> list[tuple[float, float]]:
    return [(c.t_start, c.t_end) for c in result]


# --- frame selection --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(
    ("sample_fps", "expected"),
    [
        (2, [0, 15, 30, 45, 60, 75]),
        # First frame at or after each k/7 s: 30 frames per 7 samples.
        (7, [0, 5, 9, 13, 18, 22, 26, 30, 35, 39, 43, 48, 52, 56, 60, 65, 69, 73, 78, 82, 86]),
        (FPS, list(range(90))),
        (45, list(range(90))),  # above native: every frame once, none duplicated
    ],
)
def test_samples_first_frame_at_each_sample_time(
    videos: dict[str, Path], suffix: str, sample_fps: float, expected: list[int]
) -> None:
    result = clips(one_segment(videos[suffix]), clip_seconds=10.0, sample_fps=sample_fps)
    delivered = [i for clip in result for i in indices(clip)]
    assert delivered == expected
    times = np.concatenate([clip.timestamps for clip in result])
    assert times.dtype == np.float64
    # Matroska rounds timestamps to milliseconds.
    np.testing.assert_allclose(times, np.array(expected) / FPS, atol=1e-3)
    assert all(c.frames.dtype == np.uint8 and c.frames.shape[1:] == (48, 64, 3) for c in result)


def test_max_side_downscales_keeping_aspect(videos: dict[str, Path]) -> None:
    (small,) = clips(one_segment(videos["mp4"]), clip_seconds=10.0, sample_fps=2, max_side=32)
    assert small.frames.shape == (6, 24, 32, 3)
    assert indices(small) == [0, 15, 30, 45, 60, 75]
    (full,) = clips(one_segment(videos["mp4"]), clip_seconds=10.0, sample_fps=2, max_side=500)
    assert full.frames.shape == (6, 48, 64, 3)


# --- clip boundaries --------------------------------------------------------------------------


def test_clips_on_the_grid_and_frame_on_boundary_goes_later(videos: dict[str, Path]) -> None:
    result = clips(one_segment(videos["mp4"], duration=3.0))
    assert [c.index for c in result] == [0, 1, 2]
    assert windows(result) == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    assert [indices(c) for c in result] == [list(range(0, 30)), list(range(30, 60)),
                                            list(range(60, 90))]
    for clip in result:
        assert np.all((clip.timestamps >= clip.t_start) & (clip.timestamps < clip.t_end))


def test_cut_mid_clip_splits_it_and_cut_on_boundary_changes_nothing(
    videos: dict[str, Path],
) -> None:
    result = clips(one_segment(videos["mp4"], duration=3.0), cuts=[2.0, 1.5])
    assert windows(result) == [(0.0, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 3.0)]
    assert [c.index for c in result] == [0, 1, 2, 3]
    assert indices(result[1]) == list(range(30, 45))
    assert indices(result[2]) == list(range(45, 60))  # frame 45 sits exactly on the cut


@pytest.mark.parametrize(
    ("duration", "last_window", "last_frame"),
    [
        (3.0, (2.0, 3.0), 89),
        (2.5, (2.0, 2.5), 74),  # frames past the stream's duration are not delivered
        (None, (2.0, 3.0), 89),  # unknown: last frame (89/30 s) plus one frame interval
    ],
)
def test_last_clip_end(
    videos: dict[str, Path],
    duration: float | None,
    last_window: tuple[float, float],
    last_frame: int,
) -> None:
    result = clips(one_segment(videos["mp4"], duration=duration), clip_seconds=2.0)
    assert result[-1].t_start == last_window[0]
    assert result[-1].t_end == pytest.approx(last_window[1])
    assert indices(result[-1])[-1] == last_frame


def test_last_clip_without_duration_ends_one_interval_after_its_last_frame(
    videos: dict[str, Path],
) -> None:
    segment = MediaSegment(videos["mp4"], t_start=0.0, duration=2.2)  # frames 0..65
    result = clips(Stream(id="s", segments=(segment,)))
    assert windows(result)[-1] == (2.0, pytest.approx(66 / FPS))
    assert indices(result[-1]) == list(range(60, 66))


# --- segments on the timeline -----------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["gop10", *SUFFIXES])
def test_file_offset_delivers_frames_from_the_offset(videos: dict[str, Path], suffix: str) -> None:
    # 1.55 s is frame 46.5: not on a keyframe, so the decoder must seek back and skip ahead.
    segment = MediaSegment(videos[suffix], t_start=100.0, duration=1.0, file_offset=1.55)
    result = clips(Stream(id="s", segments=(segment,)))
    delivered = [i for c in result for i in indices(c)]
    assert delivered == list(range(47, 77))  # file times 1.5667 .. 2.5333 < 2.55
    times = np.concatenate([c.timestamps for c in result])
    np.testing.assert_allclose(times, 100.0 + np.arange(47, 77) / FPS - 1.55, atol=1e-3)
    assert windows(result) == [(100.0, 101.0)]


def test_segments_hours_apart_give_only_the_clips_with_content(videos: dict[str, Path]) -> None:
    two_hours = 7200.0
    stream = Stream(
        id="s",
        segments=(
            MediaSegment(videos["mp4"], t_start=two_hours, duration=0.5),
            MediaSegment(videos["mkv"], t_start=0.0, duration=1.0),  # listed out of order
        ),
    )
    result = clips(stream, clip_seconds=10.0, sample_fps=2)
    assert windows(result) == [(0.0, 10.0), (two_hours, two_hours + 0.5)]
    assert [c.index for c in result] == [0, 1]
    assert indices(result[0]) == [0, 15]
    assert indices(result[1]) == [0]
    assert result[1].timestamps.tolist() == [two_hours]


def test_overlapping_segment_never_moves_the_timeline_back(videos: dict[str, Path]) -> None:
    stream = Stream(
        id="s",
        segments=(
            MediaSegment(videos["mp4"], t_start=0.0, duration=1.0),  # frames 0..29
            MediaSegment(videos["mp4"], t_start=0.5),  # its frame i lands at 0.5 + i/30
        ),
    )
    times = np.concatenate([c.timestamps for c in clips(stream, clip_seconds=10.0)])
    assert np.all(np.diff(times) > 0)
    assert times[30] == pytest.approx(0.5 + 15 / FPS)  # first frame of segment 2 after 29/30 s


# --- side-channel text ------------------------------------------------------------------------


def test_text_goes_with_the_clip_it_ends_in_and_only_allowed_channels(
    videos: dict[str, Path],
) -> None:
    """A line is known once it ends: one still running at a clip's end (or an ask time) waits
    for the clip it ends in; one running past the stream's end comes with the last clip."""
    events = (
        TextEvent("subtitles", 0.2, 5.0, "runs past the end"),
        TextEvent("asr", 0.3, 0.4, "not allowed"),
        TextEvent("subtitles", 0.5, 1.0, "ends on a boundary"),
        TextEvent("subtitles", 2.0, 2.1, "inside the last clip"),
        TextEvent("subtitles", 1.7, 1.8, "listed late"),
    )
    result = clips(one_segment(videos["mp4"], duration=3.0, text_events=events),
                   channels={"subtitles"})
    assert [[e.text for e in c.text] for c in result] == [
        [],
        ["ends on a boundary", "listed late"],
        ["inside the last clip", "runs past the end"],
    ]
    assert all(c.text == () for c in clips(one_segment(videos["mp4"], text_events=events)))


def test_text_in_a_gap_gets_a_text_only_clip(videos: dict[str, Path]) -> None:
    stream = Stream(
        id="s",
        segments=(
            MediaSegment(videos["mp4"], t_start=0.0, duration=1.0),
            MediaSegment(videos["mp4"], t_start=3600.0, duration=1.0),
        ),
        text_events=(
            TextEvent("transcript", 1805.0, 1806.0, "said in the gap"),
            TextEvent("transcript", 9000.0, 9001.0, "after the last frame"),
        ),
    )
    result = clips(stream, clip_seconds=10.0, sample_fps=1, channels=["transcript"])
    assert windows(result) == [(0.0, 10.0), (1800.0, 1810.0), (3600.0, 3610.0),
                               (9000.0, 9010.0)]
    gap, tail = result[1], result[3]
    assert [e.text for e in gap.text] == ["said in the gap"]
    assert [e.text for e in tail.text] == ["after the last frame"]
    for text_only in (gap, tail):
        assert text_only.frames.shape[0] == 0 and text_only.timestamps.shape == (0,)


# --- causality --------------------------------------------------------------------------------


def test_clips_are_yielded_before_later_media_is_opened(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "later.mp4"
    stream = Stream(
        id="s",
        segments=(MediaSegment(videos["mp4"], t_start=0.0), MediaSegment(missing, t_start=60.0)),
    )
    it = iter_clips(stream, clip_seconds=1.0, sample_fps=2)
    assert [next(it).t_end for _ in range(2)] == [1.0, 2.0]
    with pytest.raises(MediaError, match=str(missing)):
        next(it)


# --- probing and failures ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_probe(videos: dict[str, Path], suffix: str) -> None:
    assert probe_duration(videos[suffix]) == pytest.approx(3.0, abs=2e-3)
    assert probe_fps(videos[suffix]) == FPS


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(20_000))


def _truncated_mp4(path: Path) -> None:
    data = write_video(path, 60).read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _truncated_mkv(path: Path) -> None:
    # Matroska headers come first, so the cut-off file opens and decodes what is left.
    data = write_video(path, 150).read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _audio_only(path: Path) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.mark.parametrize(
    ("name", "make", "problem"),
    [
        ("missing.mp4", None, "no such file"),
        ("garbage.mp4", _garbage, "not a readable media file"),
        ("truncated.mp4", _truncated_mp4, "not a readable media file"),
        ("truncated.mkv", _truncated_mkv, "truncated"),
        ("sound.wav", _audio_only, "no video stream"),
    ],
)
def test_bad_files_raise_media_error_naming_the_file(
    tmp_path: Path, name: str, make: Callable[[Path], None] | None, problem: str
) -> None:
    path = tmp_path / name
    if make is not None:
        make(path)
    with pytest.raises(MediaError, match=problem) as caught:
        clips(one_segment(path))
    assert str(path) in str(caught.value)
    if problem != "truncated":  # probing reads metadata, which a truncated mkv still has
        for probe in (probe_duration, probe_fps):
            with pytest.raises(MediaError, match=str(path)):
                probe(path)


# --- resources --------------------------------------------------------------------------------


def test_decode_memory_stays_flat_on_a_long_video(tmp_path: Path) -> None:
    # 2,400 frames of 224x224 RGB are 361 MB: holding them all would show plainly.
    path = write_video(tmp_path / "long.mp4", 2400, width=224, height=224)
    process = psutil.Process(os.getpid())
    it = iter_clips(one_segment(path), clip_seconds=2.0, sample_fps=FPS)
    for _ in range(3):
        next(it)
    gc.collect()
    baseline = process.memory_info().rss
    delivered = 3 * 60
    for clip in it:
        delivered += len(clip.frames)
    gc.collect()
    assert delivered == 2400
    assert process.memory_info().rss - baseline < 40 * 2**20
