"""Decoding ahead in worker processes (``decode_workers``, ``prefetch_clips``): the same rows, the
same calls in the same order, a bounded number of clips ahead, and failures that cost only
their stream."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import make_plan, run_plan
from plugins import FrameDigestPolicy, SpyPolicy, SpyReader

from taskmem_bench.datasets import DatasetRelease
from taskmem_bench.decode import DecodeError, DecodePool
from taskmem_bench.plan import RunPlan
from taskmem_bench.results import RunDir
from taskmem_bench.runner import clip_job, schedule


def _decoding(plan: RunPlan, workers: int, prefetch: int = 2, **settings: Any) -> RunPlan:
    return dataclasses.replace(plan, settings=dataclasses.replace(
        plan.settings, decode_workers=workers, prefetch_clips=prefetch, **settings))


def _rows(outcome) -> pl.DataFrame:
    return pl.read_parquet(outcome.run_dir / "rows.parquet")


def test_rows_and_memory_do_not_depend_on_decode_workers(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    plan = make_plan(FrameDigestPolicy, SpyReader)
    here = run_plan(plan, coded_release, tmp_path / "here")
    for workers, prefetch in ((1, 1), (2, 3)):
        ahead = run_plan(_decoding(plan, workers, prefetch), coded_release,
                         tmp_path / f"ahead-{workers}-{prefetch}")
        assert _rows(ahead).equals(_rows(here)), (workers, prefetch)
        assert RunDir(ahead.run_dir).memory_logs() == RunDir(here.run_dir).memory_logs()
        assert ahead.summary["timing"]["clips"] == here.summary["timing"]["clips"]


def _calls(log: list[tuple[str, Any]]) -> list[tuple[Any, ...]]:
    """What the policy and reader were given, in order (frames by their digest)."""
    calls = []
    for kind, item in log:
        if kind == "observe":
            digest = hashlib.sha256(item.frames.tobytes()).hexdigest()
            calls.append((kind, item.stream_id, item.index, item.t_start, item.t_end, digest,
                          tuple(e.text for e in item.text)))
        elif kind == "answer":
            calls.append((kind, item.memory.stream_id, item.memory.t,
                          tuple(e.text for e in item.memory.entries)))
        else:
            calls.append((kind, repr(item)))
    return calls


def test_the_policy_and_reader_get_the_same_calls_in_the_same_order(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    """Decoding ahead changes when the harness decodes, never what the policy or reader is
    given or when: the causality contract tests (decoding here) hold for it call for call."""
    logs = []
    for name, workers in (("here", 0), ("ahead", 2)):
        policy = SpyPolicy()
        reader = SpyReader(log=policy.log)
        plan = _decoding(make_plan(SpyPolicy, SpyReader, batch_size=2, streams_in_flight=3),
                         workers, prefetch=3)
        run_plan(plan, coded_release, tmp_path / name, policy=policy, reader=reader)
        logs.append(_calls(policy.log))
    assert any(kind == "answer" for kind, *_ in logs[0])
    assert logs[0] == logs[1]


def _wait_for(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_stream_never_has_more_than_prefetch_clips_waiting(
    coded_release: DatasetRelease,
) -> None:
    """The memory bound (decode.py, README "Scaling out"): a worker decodes only as far as the
    runner's credit, ``prefetch`` clips beyond what it took, however long the runner waits."""
    episode = coded_release.episodes[0]  # 65 s: 11 clips
    job = clip_job(episode.stream, make_plan(FrameDigestPolicy, SpyReader))
    with DecodePool(workers=1, prefetch=3, timeout_s=60) as pool:
        clips = pool.clips(job)
        first = next(clips)
        _wait_for(lambda: clips.buffered == 3)
        time.sleep(1.0)  # ample time to decode the other 7 clips, were it allowed to
        assert clips.buffered == 3
        taken = [first, next(clips), next(clips)]
        _wait_for(lambda: clips.buffered == 3)
        time.sleep(0.5)
        assert clips.buffered == 3
        taken += list(clips)
        assert clips.buffered == 0
    assert [c.index for c in taken] == list(range(len(taken)))
    assert taken[-1].t_end == pytest.approx(65.0)


def test_a_stream_that_ends_before_its_first_clip_stops_its_decoding(
    coded_release: DatasetRelease,
) -> None:
    """A stream's worker starts on it when it starts; a stream that ends before the engine
    took a clip (its policy's start_stream raised) stops that decoding when its schedule is
    closed, not when the run ends."""
    plan = make_plan(FrameDigestPolicy, SpyReader)
    episode = coded_release.episodes[0]
    with DecodePool(workers=1, prefetch=2, timeout_s=60) as pool:
        order = schedule(episode, plan, pool.clips(clip_job(episode.stream, plan)))
        (worker,) = pool._workers
        assert len(worker.streams) == 1
        order.close()
        assert not worker.streams and not pool._buffers


def test_a_decoder_error_in_a_worker_fails_only_its_stream(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.mp4"
    first = coded_release.episodes[0]
    broken.write_bytes(first.stream.segments[0].path.read_bytes()[:3000])
    segment = dataclasses.replace(first.stream.segments[0], path=broken)
    release = dataclasses.replace(coded_release, episodes=(
        dataclasses.replace(first, stream=dataclasses.replace(first.stream, segments=(segment,))),
        *coded_release.episodes[1:],
    ))
    outcome = run_plan(_decoding(make_plan(FrameDigestPolicy, SpyReader), 2), release,
                       tmp_path / "run")
    rows = _rows(outcome)
    assert outcome.failed_streams == ("coded-0",)
    failed = rows.filter(pl.col("failure") == "media_error")
    assert set(failed["stream_id"]) == {"coded-0"}
    assert "broken.mp4" in failed["error"][0] and "Traceback" in failed["error"][0]
    assert rows.filter(pl.col("stream_id") != "coded-0")["failure"].null_count() == (
        rows.height - failed.height)


def test_a_dead_decode_worker_fails_its_streams_and_is_replaced(
    coded_release: DatasetRelease,
) -> None:
    plan = make_plan(FrameDigestPolicy, SpyReader)
    jobs = [clip_job(e.stream, plan) for e in coded_release.episodes]
    with DecodePool(workers=1, prefetch=1, timeout_s=60) as pool:
        clips = pool.clips(jobs[0])
        next(clips)
        (worker,) = pool._workers
        os.kill(worker.process.pid, signal.SIGKILL)
        died = r"coded-0: decode worker \(pid \d+\) died with exit code -9"
        with pytest.raises(DecodeError, match=died):
            while True:  # the clip already credited may have arrived before the kill
                next(clips)
        later = pool.clips(jobs[1])  # a stream started afterwards gets a new worker
        assert [c.index for c in later] == [0, 1, 2, 3, 4, 5]
        assert pool._workers[0].process.pid != worker.process.pid


def test_a_wedged_worker_is_killed_with_its_streams_and_replaced(
    coded_release: DatasetRelease,
) -> None:
    """A clip past ``decode_timeout_s`` fails its stream; its worker, which may be wedged, is
    killed, so its other stream fails too; a stream started later gets a fresh worker, and
    closing the pool leaves no worker running."""
    plan = make_plan(FrameDigestPolicy, SpyReader)
    jobs = [clip_job(e.stream, plan) for e in coded_release.episodes]
    with DecodePool(workers=1, prefetch=1, timeout_s=60) as pool:
        first, second = pool.clips(jobs[0]), pool.clips(jobs[1])
        (wedged,) = pool._workers
        os.kill(wedged.process.pid, signal.SIGSTOP)
        pool.timeout_s = 0.5
        with pytest.raises(DecodeError, match=r"coded-0: no clip .* within decode_timeout_s=0.5"):
            while True:  # a clip decoded before the stop may be waiting
                next(first)
        with pytest.raises(DecodeError, match=r"coded-1: .* died with exit code -9"):
            while True:
                next(second)
        pool.timeout_s = 60
        assert [c.index for c in pool.clips(jobs[2])] == [0, 1, 2, 3]
        workers = [wedged, *pool._workers]
        assert workers[1].process.pid != wedged.process.pid
    assert all(w.process.poll() is not None for w in workers)


def test_a_clip_that_does_not_arrive_in_time_fails_its_stream(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    plan = _decoding(make_plan(FrameDigestPolicy, SpyReader), 1, decode_timeout_s=1e-6)
    outcome = run_plan(plan, coded_release, tmp_path)
    rows = _rows(outcome)
    assert set(rows["failure"]) == {"media_error"}
    assert "within decode_timeout_s=1e-06" in rows["error"][0]


def test_decode_settings_are_checked() -> None:
    from taskmem_bench.taskconfig import RunSettings

    for bad in ({"decode_workers": -1}, {"prefetch_clips": 0}, {"decode_timeout_s": 0}):
        with pytest.raises(ValueError):
            RunSettings(**bad)
