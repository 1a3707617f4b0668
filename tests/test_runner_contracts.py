"""The harness's guarantees: causality, memory-only answering, isolation of failures."""

from __future__ import annotations

import dataclasses
from importlib.resources import files
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import SECRET, cut_release, make_plan, run_plan
from plugins import DigestConfig, FrameDigestPolicy, SpyPolicy, SpyReader
from taskmem_bench.testing.videos import read_index

from taskmem_bench.datasets import DatasetRelease
from taskmem_bench.readers import ReaderInput
from taskmem_bench.results import RunDir
from taskmem_bench.schema import Clip, MemoryBudget, StreamInfo, TaskNotice
from taskmem_bench.taskconfig import ConfigError


def _rows(outcome) -> pl.DataFrame:
    return pl.read_parquet(outcome.run_dir / "rows.parquet")


@pytest.mark.parametrize("stream_id", ["coded-0", "coded-2"])
def test_prefix_invariance(coded_release: DatasetRelease, tmp_path: Path, stream_id: str) -> None:
    """The memory at each ask time is byte-identical whether the stream goes on or is cut there."""
    plan = make_plan(FrameDigestPolicy, SpyReader)
    full = _rows(run_plan(plan, coded_release, tmp_path / "full"))
    episode = next(e for e in coded_release.episodes if e.stream.id == stream_id)
    for question in episode.stream.questions:
        cut = cut_release(coded_release, stream_id, question.ask_time)
        rows = _rows(run_plan(plan, cut, tmp_path / f"cut-{question.ask_time}"))
        mine = rows.filter(pl.col("question_id") == question.id)
        theirs = full.filter(pl.col("question_id") == question.id)
        assert mine["memory_entries"].item() > 0
        for column in ("memory_digest", "memory_entries", "memory_tokens"):
            assert mine[column].item() == theirs[column].item(), (question.id, column)


def test_no_lookahead(coded_release: DatasetRelease, tmp_path: Path) -> None:
    """Before a question at t is answered, its stream's policy has seen every clip ending at or
    before t, and no frame, text or clip from after t (frames verified by their pixel codes)."""
    policy = SpyPolicy()
    reader = SpyReader(log=policy.log)
    run_plan(make_plan(SpyPolicy, SpyReader), coded_release, tmp_path, policy=policy, reader=reader)
    seen: dict[str, list[Clip]] = {}
    answered = 0
    for kind, item in policy.log:
        if kind == "observe":
            clips = seen.setdefault(item.stream_id, [])
            assert not clips or item.t_start >= clips[-1].t_end, "clips out of order"
            clips.append(item)
        elif kind == "answer":
            t, clips = item.memory.t, seen.get(item.memory.stream_id, [])
            answered += 1
            assert all(c.t_end <= t for c in clips)
            assert all(e.t_end <= t for c in clips for e in c.text)
            frame_times = [read_index(f) / 10 for c in clips for f in c.frames]
            assert max(frame_times) < t
            assert len(item.memory.entries) == len(clips)  # every clip up to t was written
    assert answered == sum(len(e.stream.questions) for e in coded_release.episodes)


def test_policy_gets_clips_with_true_timestamps_and_allowed_text_only(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    policy = SpyPolicy()
    run_plan(make_plan(SpyPolicy, SpyReader), coded_release, tmp_path, policy=policy)
    clips = [item for kind, item in policy.log if kind == "observe"]
    for clip in clips:
        assert clip.frames.dtype == np.uint8 and clip.frames.shape[1:] == (48, 64, 3)
        decoded = np.array([read_index(f) / 10 for f in clip.frames])
        np.testing.assert_allclose(clip.timestamps, decoded, atol=1e-6)
        assert all(clip.t_start <= t < clip.t_end for t in clip.timestamps)
    texts = [e for c in clips for e in c.text]
    assert texts and {e.channel for e in texts} == {"speech"}


def _walk(value: object, seen: set[int] | None = None):
    """Every leaf reachable from ``value`` through dataclass fields, mappings and sequences."""
    seen = seen if seen is not None else set()
    if id(value) in seen:
        return
    seen.add(id(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _walk(getattr(value, f.name), seen)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(k, seen)
            yield from _walk(v, seen)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _walk(v, seen)
    else:
        yield value


def test_reader_receives_question_options_and_memory_only(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    reader = SpyReader()
    run_plan(make_plan(FrameDigestPolicy, SpyReader), coded_release, tmp_path, reader=reader)
    assert reader.inputs
    fields = {f.name for f in dataclasses.fields(ReaderInput)}
    # frames exist only for non-memory-only controls (test_recent_frames.py); here they are None
    assert fields == {"question", "options", "memory", "answer_format", "frames"}
    media_dir = str(coded_release.episodes[0].stream.segments[0].path.parent)
    for request in reader.inputs:
        for leaf in _walk(request):
            assert not isinstance(leaf, (np.ndarray, Path, bytes))
            if isinstance(leaf, str):
                assert SECRET not in leaf and media_dir not in leaf


def test_policy_never_receives_gold_hints_or_paths(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    policy = SpyPolicy()
    run_plan(make_plan(SpyPolicy, SpyReader), coded_release, tmp_path, policy=policy)
    media_dir = str(coded_release.episodes[0].stream.segments[0].path.parent)
    kinds = {type(item) for _, item in policy.log}
    assert kinds == {StreamInfo, Clip, TaskNotice}
    assert {f.name for f in dataclasses.fields(TaskNotice)} == {
        "stream_id", "question_id", "ask_time", "text", "options", "category",
    }
    for _, item in policy.log:
        for leaf in _walk(item):
            assert not isinstance(leaf, Path)
            if isinstance(leaf, str):
                assert SECRET not in leaf and media_dir not in leaf
    starts = [item for kind, item in policy.log if kind == "start"]
    assert all(info.facts == () for info in starts), "facts go to privileged policies only"


def test_notices_follow_answers_and_precede_later_clips(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    policy = SpyPolicy()
    reader = SpyReader(log=policy.log)
    run_plan(make_plan(SpyPolicy, SpyReader), coded_release, tmp_path, policy=policy, reader=reader)
    order = [(k, getattr(i, "question_id", None)) for k, i in policy.log if k == "notice"]
    assert len(order) == sum(len(e.stream.questions) for e in coded_release.episodes)
    for position, (kind, item) in enumerate(policy.log):
        if kind != "notice":
            continue
        later_clips = [i for k, i in policy.log[position:] if k == "observe" and i.stream_id == item.stream_id]
        assert all(c.t_start >= item.ask_time for c in later_clips)


def test_batches_mix_streams_and_respect_batch_size(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    policy = SpyPolicy()
    plan = make_plan(SpyPolicy, SpyReader, batch_size=3, streams_in_flight=4)
    run_plan(plan, coded_release, tmp_path, policy=policy)
    assert max(len(b) for b in policy.batches) == 3
    assert all(len(set(b)) == len(b) for b in policy.batches), "one clip per stream per batch"
    assert sum(len(b) > 1 for b in policy.batches) >= len(policy.batches) // 2


def test_results_do_not_depend_on_batching(coded_release: DatasetRelease, tmp_path: Path) -> None:
    one = _rows(run_plan(make_plan(FrameDigestPolicy, SpyReader, batch_size=1, streams_in_flight=1), coded_release, tmp_path / "a"))
    many = _rows(run_plan(make_plan(FrameDigestPolicy, SpyReader, batch_size=4, streams_in_flight=4), coded_release, tmp_path / "b"))
    assert one.equals(many)


def test_policy_error_costs_only_its_stream(coded_release: DatasetRelease, tmp_path: Path) -> None:
    plan = make_plan(FrameDigestPolicy, SpyReader, policy_config=DigestConfig(fail_on="coded-1"))
    outcome = run_plan(plan, coded_release, tmp_path)
    rows = _rows(outcome)
    assert outcome.failed_streams == ("coded-1",)
    broken = rows.filter(pl.col("stream_id") == "coded-1")
    healthy = rows.filter(pl.col("stream_id") != "coded-1")
    # coded-1 asks at 7 s (answered before the failing third clip) and at 43 s (never reached)
    assert broken["failure"].to_list() == [None, "policy_error"]
    assert "policy broke on coded-1" in broken["error"][1]
    assert healthy["failure"].null_count() == healthy.height
    assert rows.height == sum(len(e.stream.questions) for e in coded_release.episodes)
    assert outcome.summary["failures"] == {"policy_error": 1}
    assert outcome.summary["streams"] == {"total": 4, "finished": 4, "failed": 1}
    assert outcome.summary["stream_failures"][0]["error"] == "RuntimeError: policy broke on coded-1"
    clean = _rows(run_plan(make_plan(FrameDigestPolicy, SpyReader), coded_release, tmp_path / "clean"))
    same = healthy.select("question_id", "memory_digest")
    assert same.equals(clean.filter(pl.col("stream_id") != "coded-1").select("question_id", "memory_digest"))


def test_a_failing_end_stream_is_recorded_with_its_traceback(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    plan = make_plan(FrameDigestPolicy, SpyReader, policy_config=DigestConfig(fail_on="end:coded-3"))
    outcome = run_plan(plan, coded_release, tmp_path)
    assert outcome.failed_streams == ("coded-3",)
    assert _rows(outcome)["failure"].null_count() == _rows(outcome).height  # all were answered
    (failure,) = outcome.summary["stream_failures"]
    assert failure == {"stream_id": "coded-3", "reason": "policy_error", "error": "RuntimeError: end_stream broke on coded-3"}
    full = (outcome.run_dir / "parts" / "000003.failure.json").read_text()
    assert "Traceback" in full and "end_stream" in full


def test_nothing_past_an_ask_time_is_decoded_before_the_answer(
    coded_release: DatasetRelease, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import taskmem_bench.runner as runner

    log: list[tuple[str, str, float]] = []
    real = runner.iter_clips

    def logged(stream, **options):
        for clip in real(stream, **options):
            log.append(("decoded", clip.stream_id, clip.t_end))
            yield clip

    class LoggingReader(SpyReader):
        def answer(self, inputs):
            log.extend(("answer", i.memory.stream_id, i.memory.t) for i in inputs)
            return super().answer(inputs)

    monkeypatch.setattr(runner, "iter_clips", logged)
    run_plan(make_plan(FrameDigestPolicy, LoggingReader), coded_release, tmp_path)
    for position, (kind, stream_id, t) in enumerate(log):
        if kind == "answer":
            decoded = [e for k, s, e in log[:position] if k == "decoded" and s == stream_id]
            assert max(decoded) <= t, (stream_id, t, max(decoded))


def test_corrupt_video_fails_its_stream_with_a_media_error(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    broken_path = tmp_path / "broken.mp4"
    good = coded_release.episodes[0].stream.segments[0].path
    broken_path.write_bytes(good.read_bytes()[:3000])
    first = coded_release.episodes[0]
    segment = dataclasses.replace(first.stream.segments[0], path=broken_path)
    stream = dataclasses.replace(first.stream, segments=(segment,))
    release = dataclasses.replace(
        coded_release,
        episodes=(dataclasses.replace(first, stream=stream), *coded_release.episodes[1:]),
    )
    outcome = run_plan(make_plan(FrameDigestPolicy, SpyReader), release, tmp_path / "run")
    rows = _rows(outcome)
    failed = rows.filter(pl.col("failure") == "media_error")
    assert set(failed["stream_id"]) == {"coded-0"}
    assert "broken.mp4" in failed["error"][0]
    assert outcome.failed_streams == ("coded-0",)
    assert rows.filter(pl.col("stream_id") != "coded-0")["failure"].null_count() == rows.height - failed.height


def test_memory_budget_is_enforced_and_flagged(coded_release: DatasetRelease, tmp_path: Path) -> None:
    plan = make_plan(
        FrameDigestPolicy, SpyReader, policy_config=DigestConfig(words=20),
        budget=MemoryBudget(tokens_per_clip=10),
    )
    outcome = run_plan(plan, coded_release, tmp_path)
    rows = _rows(outcome)
    assert (rows["budget_dropped_tokens"] > 0).all()
    log = RunDir(outcome.run_dir).memory_log(0)
    assert log and all(e.entry.meta.get("truncated") for e in log)
    assert max(rows["memory_tokens"] / rows["memory_entries"]) <= 10


def test_oracle_is_refused_on_real_data(coded_release: DatasetRelease, tmp_path: Path) -> None:
    from baselines.controls import OraclePolicy

    real = dataclasses.replace(coded_release, synthetic=False)
    with pytest.raises(ConfigError, match="privileged"):
        run_plan(make_plan(OraclePolicy, SpyReader), real, tmp_path)


def test_run_directory_is_never_silently_reused(coded_release: DatasetRelease, tmp_path: Path) -> None:
    from taskmem_bench.results import RunDirError

    plan = make_plan(FrameDigestPolicy, SpyReader)
    run_plan(plan, coded_release, tmp_path)
    with pytest.raises(RunDirError, match="--resume"):
        run_plan(plan, coded_release, tmp_path)
    other = make_plan(FrameDigestPolicy, SpyReader, policy_config=DigestConfig(words=1))
    with pytest.raises(RunDirError, match="different plan"):
        run_plan(other, coded_release, tmp_path, resume=True)


# -- a policy that learns across streams: waves, adaptation between them, batching-independent


def _in_waves(plan, wave_streams: int, **settings):
    """``plan`` with the task's streams per wave and run settings changed."""
    from taskmem_bench.taskconfig import LearningSettings

    task = dataclasses.replace(plan.task, learning=LearningSettings(wave_streams=wave_streams))
    return dataclasses.replace(plan, task=task,
                               settings=dataclasses.replace(plan.settings, **settings))


def _learning_run(release, out: Path, wave_streams: int, *, config=None, policy=None, **settings):
    from learning_policy import WaveLearner

    plan = _in_waves(make_plan(WaveLearner, SpyReader, policy_config=config), wave_streams, **settings)
    return run_plan(plan, release, out, policy=policy)


def _timeless(adaptations) -> list[dict]:
    """What an adaptation records but its clock: started_at and wall_s vary from run to run."""
    return [{k: v for k, v in dataclasses.asdict(a).items() if k not in ("started_at", "wall_s")}
            for a in adaptations]


def test_a_learning_policys_results_do_not_depend_on_batching(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    """Rows, memory and adaptations are identical for every batch size and streams in flight,
    also with fewer streams in flight than a wave holds and more than the run has."""
    runs = {}
    for batch_size in (1, 3, 8):
        for in_flight in (1, 2, 16):
            outcome = _learning_run(coded_release, tmp_path / f"{batch_size}-{in_flight}", 3,
                                    batch_size=batch_size, streams_in_flight=in_flight)
            run_dir = RunDir(outcome.run_dir)
            runs[batch_size, in_flight] = (_rows(outcome), run_dir.memory_logs(),
                                           _timeless(run_dir.adaptations()))
    (rows, logs, adaptations), *others = runs.values()
    for key, (other_rows, other_logs, other_adaptations) in zip(list(runs)[1:], others):
        assert other_rows.equals(rows), key
        assert other_logs == logs, key
        assert other_adaptations == adaptations, key
    # what it learned reached later memory: wave 1 (coded-3) writes after one wave's lessons
    assert [a["wave"] for a in adaptations] == [0, 1]
    assert all("after 1 waves, 8 questions" in e.entry.text for e in logs[3])


def test_a_learning_policy_changes_only_between_waves(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    """A stream of wave k sees exactly what waves < k taught: its wave starts only after every
    stream of the previous wave ended and ``end_wave`` ran, with the wave's ids in index order."""
    from learning_policy import WaveLearner

    policy = WaveLearner()
    outcome = _learning_run(coded_release, tmp_path, 2, policy=policy, batch_size=3,
                            streams_in_flight=16)
    barriers = [i for i, (kind, _, _) in enumerate(policy.log) if kind == "end_wave"]
    assert barriers == [4, 9]
    first_wave, second_wave = policy.log[:4], policy.log[5:9]
    assert sorted(first_wave) == [("end", "coded-0", 0), ("end", "coded-1", 0),
                                  ("start", "coded-0", 0), ("start", "coded-1", 0)]
    assert sorted(second_wave) == [("end", "coded-2", 1), ("end", "coded-3", 1),
                                   ("start", "coded-2", 1), ("start", "coded-3", 1)]
    assert [policy.log[i] for i in barriers] == [("end_wave", "coded-0,coded-1", 1),
                                                 ("end_wave", "coded-2,coded-3", 2)]
    run_dir = RunDir(outcome.run_dir)
    for index, log in run_dir.memory_logs().items():
        assert log and all(f"after {index // 2} waves" in e.entry.text for e in log), index
    first, second = run_dir.adaptations()
    assert (first.wave, first.stream_ids, first.streams_seen, first.questions_seen) == (
        0, ("coded-0", "coded-1"), 2, 6)
    assert (second.wave, second.stream_ids, second.streams_seen, second.questions_seen) == (
        1, ("coded-2", "coded-3"), 4, 10)
    assert first.record["categories"] == second.record["categories"] == ["counting", "ocr"]
    assert len({first.record["lesson"], second.record["lesson"]}) == 2
    assert first.error is None and first.wall_s >= 0 and first.started_at.endswith("+00:00")
    assert outcome.failed_streams == ()


def test_streams_per_wave_is_hashed_and_changes_a_learning_policys_rows(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    from taskmem_bench.manifest import hashed_plan
    from taskmem_bench.plan import build_plan
    from taskmem_bench.taskconfig import config_hash, load_task

    release = DatasetRelease(name="mini", revision="r", episodes=(), synthetic=True)

    def plan_hash(*overrides: tuple[str, object], task: str = "mini") -> str:
        plan = build_plan(load_task(task), "blind", overrides=overrides)
        return config_hash(hashed_plan(plan.describe(release)))

    default = plan_hash()
    assert plan_hash(("learning.wave_streams", 8)) == default
    assert plan_hash(("wave_streams", 4)) != default
    assert plan_hash(("batch_size", 3), ("streams_in_flight", 5), ("adapt_timeout_s", 60)) == default
    task_file = tmp_path / "waves.yaml"
    task_file.write_text("include: %s\nlearning: {wave_streams: 4}\n"
                         % files("taskmem_bench.tasks").joinpath("mini.yaml"))
    assert plan_hash(task=str(task_file)) == plan_hash(("wave_streams", 4))
    assert plan_hash(("wave_streams", 2), task=str(task_file)) == plan_hash(("wave_streams", 2))
    with pytest.raises(ConfigError, match="wave_streams must be at least 1"):
        plan_hash(("wave_streams", 0))
    one = _rows(_learning_run(coded_release, tmp_path / "w1", 1))
    three = _rows(_learning_run(coded_release, tmp_path / "w3", 3))
    assert not one["memory_digest"].equals(three["memory_digest"])


def test_streams_per_wave_changes_nothing_for_other_policies(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    plan = make_plan(SpyPolicy, SpyReader, batch_size=3, streams_in_flight=16)
    policy = SpyPolicy()
    outcome = run_plan(_in_waves(plan, 1), coded_release, tmp_path / "w1", policy=policy)
    default = run_plan(plan, coded_release, tmp_path / "w8")
    assert _rows(outcome).equals(_rows(default))
    assert RunDir(outcome.run_dir).adaptations() == []
    assert not (outcome.run_dir / "adaptations.jsonl").exists()
    starts = [i for i, (kind, _) in enumerate(policy.log) if kind == "start"]
    assert starts == list(range(4)), "all four streams start together, not one wave at a time"


def test_a_failing_end_wave_is_recorded_and_the_run_goes_on(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    from learning_policy import WaveLearnerConfig

    outcome = _learning_run(coded_release, tmp_path, 2, config=WaveLearnerConfig(fail_on_wave=0))
    rows = _rows(outcome)
    assert rows.height == sum(len(e.stream.questions) for e in coded_release.episodes)
    assert rows["failure"].null_count() == rows.height and outcome.failed_streams == ()
    failed, healthy = RunDir(outcome.run_dir).adaptations()
    assert failed.error == "RuntimeError: end_wave broke on wave 0 second line"
    assert failed.record is None and "Traceback" in failed.traceback
    assert healthy.error is None and healthy.record["categories"] == ["counting", "ocr"]
    # the policy went on with what it had: wave 1 wrote after zero waves' lessons
    log = RunDir(outcome.run_dir).memory_log(3)
    assert all("after 0 waves" in e.entry.text for e in log)


def test_an_end_wave_past_its_deadline_is_abandoned_and_recorded(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    """The abandoned call may still change the policy whenever it ends, so every later stream
    fails, whatever the clock: rows never depend on when a late adaptation would finish."""
    import threading

    from learning_policy import WaveLearner

    release = threading.Event()

    class SlowLearner(WaveLearner):
        def end_wave(self, stream_ids, workspace):
            release.wait(30)
            return super().end_wave(stream_ids, workspace)

    first_wave = [e.stream.id for e in coded_release.episodes[:2]]
    try:
        outcome = _learning_run(coded_release, tmp_path, 2, policy=SlowLearner(),
                                adapt_timeout_s=0.2)
    finally:
        release.set()
    (adaptation,) = RunDir(outcome.run_dir).adaptations()  # no end_wave after the abandoned one
    assert adaptation.error == ("CallTimeout: policy.end_wave() exceeded adapt_timeout_s=0.2 s; "
                                "the call was abandoned")
    assert adaptation.timed_out and 0.2 <= adaptation.wall_s < 10
    rows = _rows(outcome)
    assert rows.filter(pl.col("stream_id").is_in(first_wave))["failure"].null_count() == \
        rows.filter(pl.col("stream_id").is_in(first_wave)).height > 0
    later = rows.filter(~pl.col("stream_id").is_in(first_wave))
    assert later.height > 0 and later["failure"].null_count() == 0
    assert set(outcome.failed_streams) == set(later["stream_id"])


def test_a_learning_run_with_finished_streams_cannot_be_resumed(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    """What the policy learned cannot be restored, so resuming would change its rows."""
    from learning_policy import WaveLearner

    from taskmem_bench.provenance import build_manifest

    plan = _in_waves(make_plan(WaveLearner, SpyReader), 2)
    started = tmp_path / "started"  # killed before any stream finished: resumable
    RunDir(started).open(build_manifest(plan.describe(coded_release), ["pytest"]), resume=False)
    assert run_plan(plan, coded_release, started, resume=True).failed_streams == ()
    with pytest.raises(ConfigError, match="^cannot resume .*learns across streams"):
        run_plan(plan, coded_release, started, resume=True)
    assert len(RunDir(started).adaptations()) == 2


def test_what_a_learning_policy_hands_the_runner_is_checked(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    """A record that is not JSON is an adaptation error; a ``learns_across_streams`` that is not
    a bool makes the policy unusable (every stream fails, naming it) instead of guessing."""
    from learning_policy import WaveLearner

    class NanRecord(WaveLearner):
        def end_wave(self, stream_ids, workspace):
            return {"loss": float("nan")}

    class Unsure(WaveLearner):
        learns_across_streams = "yes"

    outcome = _learning_run(coded_release, tmp_path / "nan", 8, policy=NanRecord())
    (adaptation,) = RunDir(outcome.run_dir).adaptations()
    assert adaptation.record is None
    assert adaptation.error.startswith("TypeError: end_wave() returned a record that is not JSON")
    outcome = _learning_run(coded_release, tmp_path / "unsure", 8, policy=Unsure())
    assert len(outcome.failed_streams) == 4 and RunDir(outcome.run_dir).adaptations() == []
    assert {f["error"] for f in outcome.summary["stream_failures"]} == {
        "TypeError: learns_across_streams must be a bool, got str"}
