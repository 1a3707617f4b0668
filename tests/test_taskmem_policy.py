"""The `taskmem` policy: the shipped mini checkpoint loads and runs with no model named, the
window carries the policy's own descriptions, replies outside the format write nothing, and
real-data tasks must name a model."""

from __future__ import annotations

import json

import pytest

from taskmem.policy import SHIPPED_MINI, TaskMemConfig, TaskMemPolicy
from taskmem.protocol import sentences
from taskmem_bench.cli import main as cli
from taskmem_bench.datasets.mini.dataset import Config as MiniConfig
from taskmem_bench.datasets.mini.dataset import MiniDataset
from taskmem_bench.media import iter_clips
from taskmem_bench.memory import count_tokens
from taskmem_bench.plan import build_plan
from taskmem_bench.schema import MemoryBudget, StreamInfo
from taskmem_bench.taskconfig import ConfigError, load_task
from taskmem_bench.testing.tiny_models import build_tiny_model


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    config = MiniConfig(episodes=1, cache_dir=str(tmp_path_factory.mktemp("mini")))
    return MiniDataset().load(config).episodes[0]


def clips_of(episode, n):
    stream = episode.stream
    clips = iter_clips(stream, clip_seconds=10, sample_fps=2, channels=("speech",))
    return [c for _, c in zip(range(n), clips)]


def started(policy, episode, budget=24):
    info = StreamInfo(episode.stream.id, episode.stream.fps, episode.stream.duration, 10.0, 2.0,
                      ("speech",), MemoryBudget(tokens_per_clip=budget))
    policy.start_stream(info)
    return info


def test_the_shipped_checkpoint_runs_on_mini_with_no_model_named(tmp_path):
    assert cli(["run", "--task", "mini", "--policy", "taskmem", "--limit", "1",
                "--out", str(tmp_path)]) == 0
    run = tmp_path / "mini" / "taskmem"
    manifest = json.loads((run / "manifest.json").read_text())
    model = manifest["policy"]["model"]
    assert model["model"] == SHIPPED_MINI  # a name, not this machine's path
    assert model["weights_sha256"] and model["files"]["config.json"]
    entries = [json.loads(line) for line in (run / "memory" / "000000.jsonl").read_text().splitlines()]
    assert entries, "the trained memorizer wrote nothing"
    for entry in entries:
        assert count_tokens(entry["text"]) <= 24 and not entry["meta"].get("truncated")
        assert sentences(entry["text"])


def test_the_window_carries_the_policys_own_descriptions(episode):
    policy = TaskMemPolicy(TaskMemConfig(model=SHIPPED_MINI))
    started(policy, episode)
    written = []
    for clip in clips_of(episode, 7):
        window = policy.states[clip.stream_id].window
        prompt = window.prompt(clip, window.new_frames(clip), 24)
        for earlier in written[-4:]:  # the clips still inside the 50 s window
            if earlier:
                assert earlier in prompt.text
        if len(written) > 5 and written[-6]:
            assert written[-6] not in prompt.text  # fell out of the window
        [entries] = policy.observe([clip])
        text = entries[0].text if entries else ""
        assert policy.states[clip.stream_id].window.written[-1].description == text
        written.append(text)
    assert any(written)


def test_a_reply_outside_the_format_writes_nothing(episode, tmp_path):
    """The tiny kit's random model never closes </think> with the JSON answer."""
    model = build_tiny_model("qwen3-vl", tmp_path / "tiny")
    policy = TaskMemPolicy(TaskMemConfig(model=str(model), max_new_tokens=12))
    started(policy, episode)
    clip = clips_of(episode, 1)[0]
    assert policy.observe([clip]) == [[]]
    assert policy.states[clip.stream_id].window.written[-1].description == ""


def test_mini_tasks_default_to_the_shipped_checkpoint_and_real_tasks_need_a_model():
    plan = build_plan(load_task("mini"), "taskmem")
    assert plan.policy_config.model == SHIPPED_MINI
    with pytest.raises(ConfigError, match="policy 'taskmem' needs a model"):
        build_plan(load_task("videomme_stream"), "taskmem", reader="cpu")


def test_a_per_minute_budget_counts_the_last_minutes_writes(episode, tmp_path):
    """The memory store would cut what the policy writes past the per-minute cap mid-sentence;
    the policy asks for, and keeps, only whole sentences that fit what the cap leaves."""
    model = build_tiny_model("qwen3-vl", tmp_path / "tiny")
    policy = TaskMemPolicy(TaskMemConfig(model=str(model)))
    info = StreamInfo(episode.stream.id, 4.0, 120.0, 10.0, 2.0, ("speech",),
                      MemoryBudget(tokens_per_clip=24, tokens_per_minute=30))
    policy.start_stream(info)
    clips = clips_of(episode, 8)
    spent = ((20.0, 20), (60.0, 7))
    assert policy.budget(clips[6], spent) == 3  # ends at 70 s: 20 + 7 tokens in the last minute
    assert policy.budget(clips[7], spent) == 23  # at 80 s the write at 20 s has left the minute


def test_a_packaged_model_the_package_lacks_is_refused_at_plan_time():
    with pytest.raises(ConfigError, match="has no folder 'checkpoints/nope'"):
        build_plan(load_task("mini"), "taskmem", overrides=[("model", "package:taskmem/checkpoints/nope")])
    with pytest.raises(ConfigError, match="no installed package"):
        build_plan(load_task("mini"), "taskmem", overrides=[("model", "package:nosuchpkg/x")])
