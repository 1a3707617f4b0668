"""The ``mini`` adapter: a seeded synthetic split, simulated in memory and cached as media."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taskmem_bench.datasets.base import (
    DatasetAdapter, DatasetRelease, PlannedQuestion, PlannedStream,
)
from taskmem_bench.datasets.mini.cache import (
    GENERATOR_VERSION, MediaJob, cache_root, materialize,
)
from taskmem_bench.datasets.mini.mix import TaskMix, parse_mix
from taskmem_bench.datasets.mini.questions import make_questions
from taskmem_bench.datasets.mini.world import World, simulate
from taskmem_bench.progress import ProgressFn
from taskmem_bench.schema import Episode, Fact, Hidden, MediaSegment, Question, Stream


@dataclass(frozen=True)
class Config:
    """A split: an environment (a named task mix, or one written as ``counting:0.4,ocr:0.4``:
    see ``mix.py``) and the parameters that shape its streams."""

    environment: str = "mixed"
    episodes: int = 12
    episode_seconds: float = 120.0
    seed: int = 0
    size: int = 192
    fps: float = 4.0
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        parse_mix(self.environment)  # a ValueError naming what is wrong with the mix
        if self.episodes < 1 or self.episode_seconds < 20:
            raise ValueError("mini needs at least 1 episode of at least 20 s")
        if self.size < 64 or self.size % 2:
            raise ValueError("mini frame size must be even and at least 64 (yuv420p)")
        frames = self.episode_seconds * self.fps
        if self.fps <= 0 or abs(frames - round(frames)) > 1e-6:
            raise ValueError("episode_seconds * fps must be a whole number of frames")

    @property
    def mix(self) -> TaskMix:
        """The environment parsed (``environment`` keeps what the user wrote, for the manifest)."""
        return parse_mix(self.environment)

    @property
    def folder(self) -> Path:
        """The release root; the episode count is left out so splits share files."""
        return cache_root(self.cache_dir) / (
            f"{GENERATOR_VERSION}-{self.mix.slug}-seed{self.seed}"
            f"-{self.episode_seconds:g}s-{self.size}px-{self.fps:g}fps")


@dataclass(frozen=True)
class Plan:
    """One episode before its media exist: the simulated world and its questions."""

    stream_id: str
    world: World
    questions: tuple[tuple[Question, Hidden], ...]


def plan_episode(config: Config, index: int) -> Plan:
    """Episode ``index`` of a split; independent of the split's episode count."""
    mix = config.mix
    world = simulate(np.random.SeedSequence([config.seed, mix.seed_key, index, 0]),
                     config.episode_seconds)
    stream_id = f"mini-{mix.slug}-{index:04d}"
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, mix.seed_key, index, 1]))
    return Plan(stream_id, world, tuple(make_questions(world, mix, stream_id, rng)))


class MiniDataset(DatasetAdapter):
    """Synthetic streams of a top-down room with exact facts; see docs/MINI.md."""

    name = "mini"
    Config = Config
    synthetic = True

    def revision(self, config: Config | None = None) -> str:
        """Generator version and every parameter that shapes the split's data (not where it is
        cached), so equal revisions mean byte-identical episodes; a written mix appears in its
        canonical form."""
        config = config if config is not None else Config()
        return (f"{GENERATOR_VERSION}:{config.mix.name}:seed={config.seed}"
                f":episodes={config.episodes}:seconds={config.episode_seconds:g}"
                f":size={config.size}:fps={config.fps:g}")

    def planned_streams(self, config: Config | None = None) -> list[PlannedStream]:
        """Simulated worlds and their questions, without rendering or encoding any media."""
        config = config if config is not None else Config()
        plans = (plan_episode(config, i) for i in range(config.episodes))
        return [
            PlannedStream(p.stream_id, config.episode_seconds,
                          tuple(PlannedQuestion.of(q, h) for q, h in p.questions))
            for p in plans
        ]

    def load(self, config: Config | None = None) -> DatasetRelease:
        return self.load_first(config if config is not None else Config(), None)

    def load_first(
        self, config: Config, limit: int | None, progress: ProgressFn | None = None
    ) -> DatasetRelease:
        """The split's first ``limit`` episodes (all when None), generating only those that
        are not cached yet: episode ``i`` does not depend on the split's size, so they are
        exactly the first episodes of the whole split, whose revision the release carries."""
        count = config.episodes if limit is None else min(limit, config.episodes)
        plans = [plan_episode(config, i) for i in range(count)]
        root = config.folder
        jobs = [
            MediaJob(p.world, config.size, config.fps,
                     root / f"{p.stream_id}-{p.world.digest[:12]}.mp4",
                     root / f"{p.stream_id}-{p.world.digest[:12]}.srt")
            for p in plans
        ]
        cached = materialize(jobs, progress)
        episodes = tuple(_episode(p, job, config) for p, job in zip(plans, jobs))
        questions = [q for e in episodes for q in e.stream.questions]
        return DatasetRelease(
            name=self.name,
            revision=self.revision(config),
            episodes=episodes,
            synthetic=True,
            files=cached.hashes,
            details={
                "environment": config.mix.name,
                "root": str(root),
                "generated_episodes": cached.generated,
                "regenerated_corrupt": sorted(cached.repaired),
                "facts": sum(len(e.facts) for e in episodes),
                "questions": len(questions),
                "categories": dict(sorted(Counter(q.category for q in questions).items())),
            },
        )


def _episode(plan: Plan, job: MediaJob, config: Config) -> Episode:
    stream = Stream(
        id=plan.stream_id,
        segments=(MediaSegment(job.mp4, t_start=0.0, duration=config.episode_seconds),),
        questions=tuple(q for q, _ in plan.questions),
        text_events=plan.world.speech,
        fps=config.fps,
        duration=config.episode_seconds,
    )
    return Episode(
        stream=stream,
        hidden={q.id: h for q, h in plan.questions},
        facts=tuple(Fact(f.span, f.kind, f.text) for f in plan.world.facts),
    )
