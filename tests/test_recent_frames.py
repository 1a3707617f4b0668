"""The recent-frames control: the only policy whose reader sees frames, and only past ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_plan, run_plan
from plugins import SpyReader

from baselines.recent_frames import RecentFramesConfig, RecentFramesPolicy
from taskmem_bench.backends.base import VideoPart
from taskmem_bench.datasets import DatasetRelease
from taskmem_bench.testing.videos import read_index


def test_reader_gets_the_last_frames_sampled_before_each_ask(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    """Frames identified by their pixel codes: exactly the last N sampled at or before the ask
    time, with their true timestamps, and an empty text memory."""
    reader = SpyReader()
    plan = make_plan(RecentFramesPolicy, SpyReader, policy_config=RecentFramesConfig(frames=3))
    run_plan(plan, coded_release, tmp_path, reader=reader)
    asked = {q.id: q.ask_time for e in coded_release.episodes for q in e.stream.questions}
    assert len(reader.inputs) == len(asked)
    for request in reader.inputs:
        t = request.memory.t
        assert request.memory.entries == ()
        frames = request.frames
        assert isinstance(frames, VideoPart) and len(frames.frames) == 3
        coded = np.array([read_index(f) / 10 for f in frames.frames])
        np.testing.assert_allclose(frames.timestamps, coded, atol=1e-6)
        # sampled at 2 fps on the 0.5 s grid: the three grid points before t (clips end at t)
        grid_last = np.floor(t * 2 - 1e-9) / 2
        np.testing.assert_allclose(coded, [grid_last - 1.0, grid_last - 0.5, grid_last])
        assert frames.source_fps == 10


def test_memory_only_policies_never_hand_frames(coded_release: DatasetRelease, tmp_path: Path) -> None:
    from plugins import FrameDigestPolicy

    reader = SpyReader()
    run_plan(make_plan(FrameDigestPolicy, SpyReader), coded_release, tmp_path, reader=reader)
    assert reader.inputs and all(r.frames is None for r in reader.inputs)


class LeakyFrames(RecentFramesPolicy):
    """Claims a frame from after the ask time: the runner must refuse to show it."""

    name = "leaky-frames"

    def recall(self, stream_id: str, t: float) -> VideoPart | None:
        frames = super().recall(stream_id, t)
        if frames is None:
            return None
        return VideoPart(frames.frames, frames.timestamps + 60.0, frames.source_fps)


def test_a_frame_from_the_future_fails_the_stream(coded_release: DatasetRelease, tmp_path: Path) -> None:
    reader = SpyReader()
    outcome = run_plan(make_plan(LeakyFrames, SpyReader), coded_release, tmp_path, reader=reader)
    assert reader.inputs == []  # nothing leaked reached the reader
    assert set(outcome.failed_streams) == {e.stream.id for e in coded_release.episodes}
    failures = outcome.summary["stream_failures"]
    assert all("recall() returned a frame" in f["error"] for f in failures)


def test_manifest_marks_the_run_not_memory_only(coded_release: DatasetRelease, tmp_path: Path) -> None:
    run_plan(make_plan(RecentFramesPolicy, SpyReader), coded_release, tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["policy"]["memory_only"] is False


def test_config_rejects_zero_frames() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RecentFramesConfig(frames=0)
