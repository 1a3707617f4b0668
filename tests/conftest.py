"""Shared fixtures: a release of index-coded videos with questions, and plans to run on it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from taskmem_bench.datasets import DatasetAdapter, DatasetRelease
from taskmem_bench.plan import RunPlan
from taskmem_bench.policy import NoConfig, Policy
from taskmem_bench.provenance import build_manifest
from taskmem_bench.readers import Reader
from taskmem_bench.runner import RunOutcome, StreamingRunner
from taskmem_bench.schema import (
    Episode,
    Hidden,
    MediaSegment,
    MemoryBudget,
    Question,
    Span,
    Stream,
    TextEvent,
)
from taskmem_bench.scoring.judge import LLMJudge
from taskmem_bench.taskconfig import RunSettings, SideChannels, StreamSettings, TaskConfig
from taskmem_bench.testing.videos import write_video

SECRET = "SECRET-HINT-7f3a"
FPS = 10
# stream id -> (seconds of video, ask times)
CODED_STREAMS = {
    "coded-0": (65, (12.5, 30.0, 47.3, 65.0)),
    "coded-1": (43, (7.0, 43.0)),
    "coded-2": (30, (20.0, 25.5)),
    "coded-3": (24, (9.0, 24.0)),
}


def coded_episode(path: Path, stream_id: str, seconds: int, asks: tuple[float, ...]) -> Episode:
    questions = tuple(
        Question(
            id=f"{stream_id}-q{k}",
            stream_id=stream_id,
            ask_time=t,
            text=f"What happened before {t} seconds?",
            options=("one", "two", "three", "four"),
            category="counting" if k % 2 else "ocr",
            evidence=(Span(max(t - 8.0, 0.0), max(t - 5.0, 0.0)),),
        )
        for k, t in enumerate(asks)
    )
    hidden = {
        q.id: Hidden(q.id, gold="C", hints={"keywords": SECRET}, raw={"reason": SECRET})
        for q in questions
    }
    text = (
        TextEvent("speech", 3.0, 4.0, "Ann: the first line"),
        TextEvent("speech", 14.0, 15.5, "Bob: a second line"),
        TextEvent("speech", 31.5, 33.0, "Ann: a third line"),
        TextEvent("subtitles", 5.0, 6.0, "SUBTITLE-NOT-ALLOWED"),
    )
    stream = Stream(
        id=stream_id,
        segments=(MediaSegment(path, t_start=0.0, duration=float(seconds)),),
        questions=questions,
        text_events=tuple(e for e in text if e.t_start < seconds),
        fps=FPS,
        duration=float(seconds),
    )
    return Episode(stream=stream, hidden=hidden)


@pytest.fixture(scope="session")
def coded_release(tmp_path_factory: pytest.TempPathFactory) -> DatasetRelease:
    folder = tmp_path_factory.mktemp("coded")
    episodes = []
    for stream_id, (seconds, asks) in CODED_STREAMS.items():
        path = write_video(folder / f"{stream_id}.mp4", seconds * FPS, fps=FPS, gop=25)
        episodes.append(coded_episode(path, stream_id, seconds, asks))
    return DatasetRelease(name="coded", revision="1", episodes=tuple(episodes), synthetic=True)


def make_plan(
    policy_cls: type[Policy],
    reader_cls: type[Reader],
    *,
    policy_config: object | None = None,
    budget: MemoryBudget = MemoryBudget(),
    batch_size: int = 2,
    streams_in_flight: int = 3,
) -> RunPlan:
    task = TaskConfig(
        name="coded",
        dataset="coded",
        stream=StreamSettings(clip_seconds=10.0, sample_fps=2.0),
        side_channels=SideChannels(available=("speech", "subtitles"), allowed=("speech",)),
        memory=budget,
        reader=reader_cls.name,
    )
    return RunPlan(
        task=task,
        adapter=DatasetAdapter,
        dataset_config=NoConfig(),
        policy_name=policy_cls.name,
        policy_cls=policy_cls,
        policy_config=policy_config if policy_config is not None else policy_cls.Config(),
        reader_name=reader_cls.name,
        reader_cls=reader_cls,
        reader_config=NoConfig(),
        settings=RunSettings(batch_size=batch_size, streams_in_flight=streams_in_flight),
    )


def run_plan(
    plan: RunPlan,
    release: DatasetRelease,
    out: Path,
    *,
    policy: Policy | None = None,
    reader: Reader | None = None,
    judge: LLMJudge | None = None,
    resume: bool = False,
) -> RunOutcome:
    runner = StreamingRunner(plan, release, out, policy=policy, reader=reader, judge=judge)
    return runner.run(build_manifest(plan.describe(release), ["pytest"]), resume=resume)


def cut_release(release: DatasetRelease, stream_id: str, t: float) -> DatasetRelease:
    """The release with one stream cut at ``t``: media, text and questions after ``t`` removed."""
    episode = next(e for e in release.episodes if e.stream.id == stream_id)
    stream = episode.stream
    segment = dataclasses.replace(stream.segments[0], duration=t)
    cut = dataclasses.replace(
        stream,
        segments=(segment,),
        questions=tuple(q for q in stream.questions if q.ask_time <= t),
        text_events=tuple(e for e in stream.text_events if e.t_start < t),
    )
    return dataclasses.replace(release, episodes=(dataclasses.replace(episode, stream=cut),))


@pytest.fixture(scope="session")
def mini_cache(tmp_path_factory: pytest.TempPathFactory):
    """A private cache for generated ``mini`` data, shared by the whole session (also with
    subprocesses, through the environment)."""
    import os

    folder = tmp_path_factory.mktemp("mini-cache")
    previous = os.environ.get("TASKMEM_BENCH_CACHE")
    os.environ["TASKMEM_BENCH_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("TASKMEM_BENCH_CACHE", None)
    else:
        os.environ["TASKMEM_BENCH_CACHE"] = previous


@pytest.fixture(scope="session")
def leaderboard_bundles(mini_cache, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Result bundles of short real ``mini`` runs, made once per session (see
    ``leaderboard_support.make_bundles``)."""
    from leaderboard_support import make_bundles

    return make_bundles(tmp_path_factory.mktemp("leaderboard"))


@pytest.fixture(scope="session")
def leaderboard_site(leaderboard_bundles, tmp_path_factory: pytest.TempPathFactory):
    """The site built from ``leaderboard_support.make_results``: the real runs, a hostile and
    a tampered bundle."""
    from leaderboard.site import build_site
    from leaderboard_support import make_results

    folder = tmp_path_factory.mktemp("leaderboard-site")
    return build_site(make_results(folder / "results", leaderboard_bundles), folder / "site")


def _tiny_model(factory: pytest.TempPathFactory, kind: str) -> Path:
    from taskmem_bench.testing.tiny_models import build_tiny_model

    return build_tiny_model(kind, factory.mktemp(f"tiny-{kind}") / "model")


@pytest.fixture(scope="session")
def tiny_vl_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3-VL (dense) with its processor, built offline once per session."""
    return _tiny_model(tmp_path_factory, "qwen3-vl")


@pytest.fixture(scope="session")
def tiny_vl_moe_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3-VL MoE with its processor."""
    return _tiny_model(tmp_path_factory, "qwen3-vl-moe")


@pytest.fixture(scope="session")
def tiny_qwen25_vl_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2.5-VL with its processor."""
    return _tiny_model(tmp_path_factory, "qwen2.5-vl")


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random text-only Qwen3 with its tokenizer and chat template."""
    return _tiny_model(tmp_path_factory, "qwen3")


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from intra-op threads; on a busy 2-core machine OpenMP's
    spinning makes each model call 5-30x slower."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _fixture_manifests():
    """The fixture releases' bundles are checked against their shipped question manifests,
    which the leaderboard refuses outside tests (``fixture_manifests_enabled``)."""
    from taskmem_bench.question_manifest import fixture_manifests_enabled

    with fixture_manifests_enabled():
        yield
