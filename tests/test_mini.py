"""The mini dataset: real, deterministic media; dense facts; online questions with one answer."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest

from taskmem_bench.datasets import load_adapter
from taskmem_bench.datasets.mini import CATEGORIES, ENVIRONMENTS, Config, MiniDataset, plan_episode
from taskmem_bench.datasets.mini.questions import MIN_DELAY
from taskmem_bench.datasets.mini.render import COLOUR_RGB
from taskmem_bench.memory import count_tokens

FACT_KINDS = {"object", "attribute", "action", "count", "text", "location", "speech"}
DEFAULT = Config()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("taskmem-cache"))


@pytest.fixture(scope="session")
def generated(cache_dir: str):
    """The default split, generated once into a temporary cache, with its generation time."""
    start = time.perf_counter()
    release = MiniDataset().load(dataclasses.replace(DEFAULT, cache_dir=cache_dir))
    return release, time.perf_counter() - start


@pytest.fixture(scope="session")
def release(generated):
    return generated[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parse_srt(path: Path) -> list[tuple[float, float, str]]:
    def millis(stamp: str) -> int:
        h, m, rest = stamp.split(":")
        s, ms = rest.split(",")
        return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(ms)

    cues = []
    for block in path.read_text(encoding="utf-8").strip().split("\n\n"):
        index, timing, text = block.split("\n", 2)
        assert index.isdigit()
        start, end = timing.split(" --> ")
        cues.append((millis(start) / 1000, millis(end) / 1000, text))
    return cues


def test_adapter_is_registered() -> None:
    assert load_adapter("mini") is MiniDataset
    assert MiniDataset.synthetic and MiniDataset.Config is Config


def test_config_rejects_bad_splits() -> None:
    with pytest.raises(ValueError, match="environment"):
        Config(environment="nope")
    with pytest.raises(ValueError, match="even"):
        Config(size=191)
    with pytest.raises(ValueError, match="whole number"):
        Config(episode_seconds=30.1, fps=4.0)


def test_release_names_its_data(release, cache_dir: str) -> None:
    assert release.name == "mini" and release.synthetic
    assert "seed=0" in release.revision and "mixed" in release.revision
    assert len(release.episodes) == DEFAULT.episodes
    root = Path(release.details["root"])
    assert root.is_relative_to(Path(cache_dir) / "mini")
    used = {seg.path for e in release.episodes for seg in e.stream.segments}
    assert len(release.files) == 2 * DEFAULT.episodes
    for rel, digest in release.files.items():
        assert sha256(root / rel) == digest
    assert {root / rel for rel in release.files if rel.endswith(".mp4")} == used


def test_generation_is_fast(generated) -> None:
    release, seconds = generated
    assert release.details["generated_episodes"] == DEFAULT.episodes
    assert seconds < 30, f"generating the default split took {seconds:.1f} s"


def test_cache_is_reused_and_splits_share_files(release, cache_dir: str) -> None:
    def mtimes(found) -> dict[str, int]:
        root = Path(found.details["root"])
        return {rel: (root / rel).stat().st_mtime_ns for rel in found.files}

    before = mtimes(release)
    again = MiniDataset().load(dataclasses.replace(DEFAULT, cache_dir=cache_dir))
    assert again.details["generated_episodes"] == 0
    assert again.files == release.files and again.episodes == release.episodes
    assert mtimes(again) == before
    fewer = MiniDataset().load(dataclasses.replace(DEFAULT, cache_dir=cache_dir, episodes=3))
    assert fewer.details["generated_episodes"] == 0
    assert fewer.episodes == release.episodes[:3]
    assert fewer.revision != release.revision


def test_generation_is_deterministic(tmp_path: Path) -> None:
    small = Config(episodes=2, episode_seconds=30.0, size=96, seed=7)
    first = MiniDataset().load(dataclasses.replace(small, cache_dir=str(tmp_path / "a")))
    second = MiniDataset().load(dataclasses.replace(small, cache_dir=str(tmp_path / "b")))
    assert first.files == second.files
    assert [e.facts for e in first.episodes] == [e.facts for e in second.episodes]
    assert [e.hidden for e in first.episodes] == [e.hidden for e in second.episodes]
    other = MiniDataset().load(dataclasses.replace(small, cache_dir=str(tmp_path / "a"), seed=8))
    assert set(other.files.values()).isdisjoint(first.files.values())


def test_concurrent_generators_agree(tmp_path: Path) -> None:
    """Two loaders racing on one empty cache both succeed and leave one clean copy."""
    tiny = Config(episodes=1, episode_seconds=20.0, size=64, cache_dir=str(tmp_path))
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: MiniDataset().load(tiny), range(2))
    assert first.files == second.files
    root = Path(first.details["root"])
    media = sorted(p.name for p in root.iterdir() if p.suffix != ".sha256")
    assert media == sorted(first.files)


def test_load_matches_the_plan(release) -> None:
    for index, episode in enumerate(release.episodes):
        plan = plan_episode(DEFAULT, index)
        assert episode.stream.id == plan.stream_id == f"mini-mixed-{index:04d}"
        assert episode.stream.questions == tuple(q for q, _ in plan.questions)


@pytest.mark.parametrize("index", [0, 7])
def test_mp4_decodes_to_the_expected_frames(release, index: int) -> None:
    episode = release.episodes[index]
    (segment,) = episode.stream.segments
    assert segment.t_start == 0.0 and segment.duration == DEFAULT.episode_seconds
    with av.open(str(segment.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == round(DEFAULT.episode_seconds * DEFAULT.fps)
    assert frames[0].shape == (DEFAULT.size, DEFAULT.size, 3)
    assert episode.stream.fps == DEFAULT.fps and episode.stream.duration == DEFAULT.episode_seconds


def test_objects_are_where_the_facts_say(release) -> None:
    """Solid objects that appear are drawn in their colour at their place, after compression."""
    checked = hits = 0
    for index in (0, 1):
        plan = plan_episode(DEFAULT, index)
        with av.open(str(release.episodes[index].stream.segments[0].path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        for rest in plan.world.resting:
            t = rest.t0 + 1.0
            if rest.pattern != "solid" or not rest.grow or rest.t1 < t + 0.5:
                continue
            x, y = (round(v * DEFAULT.size) for v in rest.pos)
            pixel = frames[round(t * DEFAULT.fps)][y, x].astype(int)
            checked += 1
            hits += int(np.abs(pixel - COLOUR_RGB[rest.item.colour]).max() < 50)
    assert checked >= 4 and hits >= 0.9 * checked


def test_srt_matches_text_events(release) -> None:
    for episode in release.episodes:
        srt = episode.stream.segments[0].path.with_suffix(".srt")
        events = [(e.t_start, e.t_end, e.text) for e in episode.stream.text_events]
        assert all(e.channel == "speech" for e in episode.stream.text_events)
        assert parse_srt(srt) == events and events
        speech = {f.text for f in episode.facts if f.kind == "speech"}
        said = {"{} says {}.".format(*line.split(": ", 1)) for _, _, line in events}
        assert said == speech


def test_facts_are_dense_and_well_formed(release) -> None:
    kinds = Counter()
    for episode in release.episodes:
        duration = episode.stream.duration
        clips = int(duration // 10)
        per_clip, tokens = Counter(), Counter()
        for fact in episode.facts:
            kinds[fact.kind] += 1
            assert 0 <= fact.span.start <= fact.span.end <= duration
            assert round(fact.span.end * 1000) % 10_000 != 0, "fact ends on a clip boundary"
            assert fact.text[0].isupper() and fact.text.endswith(".")
            per_clip[int(fact.span.end // 10)] += 1
            tokens[int(fact.span.end // 10)] += count_tokens(fact.text)
        assert sum(per_clip.values()) / clips >= 5, "several facts per 10 s clip"
        assert sum(tokens.values()) / clips > 3 * 16, "more than a 16-token budget can hold"
    assert set(kinds) == FACT_KINDS


def test_questions_are_online_multiple_choice(release) -> None:
    categories = Counter()
    for episode in release.episodes:
        questions = episode.stream.questions
        assert 6 <= len(questions) <= 10
        assert set(episode.hidden) == {q.id for q in questions}
        asks = [q.ask_time for q in questions]
        assert asks == sorted(asks) and asks[0] < episode.stream.duration / 2
        for q in questions:
            categories[q.category] += 1
            assert len(q.options) == 4 and len(set(q.options)) == 4
            assert not any(re.match(r"^[A-E][.):]\s", o) for o in q.options)
            assert q.abstain_label == "E"
            assert q.evidence and max(s.end for s in q.evidence) <= q.ask_time - MIN_DELAY
            assert q.ask_time <= episode.stream.duration
            hidden = episode.hidden[q.id]
            assert hidden.gold in "ABCD"
            assert tuple(episode.facts[k].span for k in hidden.hints["fact_ids"]) == q.evidence
    assert set(categories) == set(CATEGORIES)


def test_exactly_one_option_is_true(release) -> None:
    """Re-check every answer against the facts begun by the ask time."""
    for episode in release.episodes:
        for q in episode.stream.questions:
            hidden = episode.hidden[q.id]
            gold = q.options["ABCD".index(hidden.gold)]
            assert hidden.raw["answer"] == gold
            claims = hidden.raw["claims"]
            begun = [f for f in episode.facts if f.span.start <= q.ask_time]
            if hidden.raw["order"]:
                start = {f.text: f.span.start for f in begun}
                seen = Counter(f.text for f in begun)
                assert all(seen[claims[o][0]] == 1 for o in q.options), "an option recurs"
                times = {o: start[claims[o][0]] for o in q.options}
                pick = min if hidden.raw["order"] == "first" else max
                assert pick(times, key=times.get) == gold and len(set(times.values())) == 4
                continue
            true = [o for o in q.options if {f.text for f in begun}.intersection(claims[o])]
            assert true == [gold], (q.text, q.options, true)


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_environments_have_their_task_mix(environment: str) -> None:
    config = Config(environment=environment)
    counts = Counter(q.category for i in range(config.episodes)
                     for q, _ in plan_episode(config, i).questions)
    heavy = {c for c, w in ENVIRONMENTS[environment].items() if w >= 0.3}
    share = sum(counts[c] for c in heavy) / sum(counts.values())
    if heavy:
        assert share >= 0.65, counts
    else:
        assert len(counts) == len(CATEGORIES)
        assert max(counts.values()) <= 0.25 * sum(counts.values())


def test_a_corrupted_cached_file_is_regenerated_not_served(tmp_path) -> None:
    from taskmem_bench.datasets.mini import MiniDataset

    config = MiniDataset.Config(episodes=2, episode_seconds=20.0, cache_dir=str(tmp_path))
    first = MiniDataset().load(config)
    video = first.episodes[1].stream.segments[0].path
    video.write_bytes(video.read_bytes()[:1000])
    again = MiniDataset().load(config)
    assert again.details["regenerated_corrupt"] == [video.stem]
    assert again.files == first.files
    assert video.stat().st_size > 1000
    video.with_suffix(".sha256").write_text("{damaged")
    assert MiniDataset().load(config).details["regenerated_corrupt"] == [video.stem]
