"""Phase Two inside the `taskmem` policy: what it learns from (task notices and its own clips,
never gold, facts or hints), when it adapts (the retraining cutoffs, at barriers between
waves, in stream order whatever the arrival order), and that it writes through its latest
adapter. The steps themselves are tested in test_taskmem_candidates/usefulness/pairs/dpo."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import polars as pl
import pytest

from taskmem import phase_two
from taskmem.candidates import Candidate, supplement_line
from taskmem.dpo import AdapterConfig, train_adapter
from taskmem.pairs import PreferencePair
from taskmem.phase_two import BufferedClip, ClipBuffer, Learner
from taskmem.policy import SHIPPED_MINI, TaskMemConfig, TaskMemPolicy
from taskmem.protocol import format_reply
from taskmem.streams import Window
from taskmem_bench.backends import loaded_backend
from taskmem_bench.backends.packaged import resolve
from taskmem_bench.cli import main as cli
from taskmem_bench.datasets.mini.dataset import Config as MiniConfig
from taskmem_bench.datasets.mini.dataset import MiniDataset
from taskmem_bench.datasets.mini.world import WorldFact
from taskmem_bench.media import iter_clips
from taskmem_bench.schema import Clip, Fact, Hidden, MemoryBudget, StreamInfo, TaskNotice


def notice(stream: str, t: float, text: str = "How many red stars were on the rug?") -> TaskNotice:
    return TaskNotice(stream, f"{stream}-{t:g}", t, text, ("2", "3", "4", "5"), "counting")


def test_a_task_notice_carries_the_task_and_nothing_that_answers_it():
    assert [f.name for f in dataclasses.fields(TaskNotice)] == [
        "stream_id", "question_id", "ask_time", "text", "options", "category"]


def test_the_learner_takes_a_waves_tasks_in_stream_order_and_adapts_at_each_cutoff(tmp_path):
    learner = Learner(TaskMemConfig(adapt="prompt", retrain_at=(3, 6, 10), examples=2), seed=0)
    for stream in ("a", "b", "c", "d"):
        learner.started(stream)
    # arrival order scrambled, as interleaved streams deliver them
    for n in (notice("b", 20), notice("a", 30), notice("b", 10), notice("a", 5)):
        learner.noticed(n)
    first = learner.end_wave(tmp_path)
    assert [t.question_id for t in learner.tasks] == ["a-5", "a-30", "b-10", "b-20"]
    assert first["cutoff"] == 3 and first["adapted"]
    assert learner.supplement == tuple(supplement_line(t) for t in learner.tasks[1:3])
    assert learner.end_wave(tmp_path) is None  # no new task, no cutoff reached
    for n in (notice("d", 1), notice("c", 2), notice("c", 1), notice("d", 2), notice("c", 3)):
        learner.noticed(n)
    second = learner.end_wave(tmp_path)  # 9 tasks: past 6, not 10; one adaptation
    assert second["cutoff"] == 6 and second["tasks"] == 9
    assert [t.question_id for t in learner.tasks[4:]] == ["c-1", "c-2", "c-3", "d-1", "d-2"]
    assert learner.supplement == tuple(supplement_line(t) for t in learner.tasks[4:6])


def test_adapt_off_learns_nothing_and_does_not_ask_for_waves():
    policy = TaskMemPolicy(TaskMemConfig(adapt="off"))
    assert policy.learns_across_streams is False
    policy.adapting.started("a")
    policy.notice(notice("a", 1))
    assert policy.adapting.waiting == []
    assert TaskMemPolicy(TaskMemConfig()).learns_across_streams is True  # default: both


@pytest.mark.parametrize("bad, problem", [
    ({"adapt": "both", "lora_path": "x"}, "trains its own adapter"),
    ({"usefulness_judge": "llm"}, "needs judge_model"),
    ({"retrain_at": (30, 10)}, "increasing"),
    ({"candidates": 1}, "candidates >= 2"),
    ({"backend": "openai", "model": "m"}, "ignores adapters"),
    ({"backend": "vllm", "model": "m", "adapter_kind": "lora"}, "engine per adapter"),
])
def test_phase_two_settings_are_checked(bad, problem):
    with pytest.raises(ValueError, match=problem):
        TaskMemConfig(**bad)
    TaskMemConfig(backend="vllm", model="m", adapt="prompt")
    TaskMemConfig(backend="openai", model="m", adapt="off")


def test_a_failed_adaptation_leaves_what_the_policy_deploys_as_it_was(tmp_path, monkeypatch):
    """The runner records the error; the policy keeps its supplement and adapter, and the
    cutoff it missed is tried again at the next barrier."""
    learner = Learner(TaskMemConfig(retrain_at=(2,)), seed=0)
    learner.started("a")
    for n in (notice("a", 1), notice("a", 2)):
        learner.noticed(n)

    def broken(*args):
        raise RuntimeError("out of memory")
    monkeypatch.setattr(phase_two, "train", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        learner.end_wave(tmp_path)
    assert (learner.supplement, learner.adapter, learner.trained_at) == ((), None, 0)
    monkeypatch.setattr(phase_two, "train", lambda *args: (None, {"pairs": 0}))
    record = learner.end_wave(tmp_path)
    assert record["cutoff"] == 2 and record["pairs"] == 0 and learner.trained_at == 2
    assert learner.supplement == tuple(supplement_line(t) for t in learner.tasks)
    assert learner.adapter is None  # no pair, no adapter


def test_a_streams_clips_reach_the_buffer_only_at_the_barrier(tmp_path):
    learner = Learner(TaskMemConfig(adapt="prompt", buffer_clips=4), seed=0)
    learner.started("s")
    window = Window()
    clips = [BufferedClip.of(0, window, _clip("s", i), window.new_frames(_clip("s", i)), 24)
             for i in range(3)]
    learner.stream_ended(clips)
    assert learner.buffer.clips == []
    learner.end_wave(tmp_path)
    assert [b.order for b in learner.buffer.clips] == [(0, 0), (0, 1), (0, 2)]


def test_taskmems_rows_do_not_depend_on_batching_when_it_adapts(tmp_path):
    """The contract test's property for the real policy: Phase Two's prompt variant (the cheap
    one: no training) changes what the second wave writes, identically for any batching (one
    stream at a time, or the first wave's two streams interleaved, their notices arriving
    mixed)."""
    runs = {}
    for batch, in_flight in ((1, 1), (8, 16)):
        out = tmp_path / f"{batch}-{in_flight}"
        assert cli(["run", "--task", "mini", "--policy", "taskmem", "--limit", "4",
                    "--set", "adapt=prompt", "--set", "wave_streams=2", "--set", "retrain_at=[4]",
                    "--set", f"batch_size={batch}", "--set", f"streams_in_flight={in_flight}",
                    "--out", str(out)]) == 0
        run = out / "mini" / "taskmem"
        memory = [(run / "memory" / f"{i:06d}.jsonl").read_text() for i in range(4)]
        rows = pl.read_parquet(run / "rows.parquet")
        adapted = [json.loads(line)["record"] for line in
                   (run / "adaptations.jsonl").read_text().splitlines()]
        runs[batch, in_flight] = (memory, rows, adapted)
    (memory, rows, adapted), (memory2, rows2, adapted2) = runs.values()
    assert adapted[0]["adapted"] and adapted == adapted2
    assert memory == memory2 and rows.equals(rows2)


def _clip(stream: str, index: int) -> Clip:
    frames = np.full((2, 32, 32, 3), index, np.uint8)
    return Clip(stream, index, index * 10.0, index * 10.0 + 10, frames, np.array([index * 10.0, index * 10.0 + 5]))


def test_the_clip_buffer_keeps_the_latest_clips_whatever_order_they_come_in():
    window = Window()
    made = [BufferedClip.of(position, window, _clip(f"s{position}", i),
                            window.new_frames(_clip(f"s{position}", i)), 24)
            for position in range(3) for i in range(4)]
    forward, backward = ClipBuffer(5), ClipBuffer(5)
    for clip in made:
        forward.add([clip])
    for clip in reversed(made):
        backward.add([clip])
    assert [b.order for b in forward.clips] == [b.order for b in backward.clips] == [
        (1, 3), (2, 0), (2, 1), (2, 2), (2, 3)]
    assert all(len(b.clip.frames) == 0 for b in forward.clips)  # the clip's own frames dropped
    assert forward.nbytes == 5 * 2 * 128 * 128 * 3  # what it holds: the frames it was shown


def _reachable(obj, seen=None):
    """Every object reachable through dataclass fields, mappings and sequences."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None), np.ndarray)):
        return
    seen.add(id(obj))
    yield obj
    if dataclasses.is_dataclass(obj):
        children = [getattr(obj, f.name) for f in dataclasses.fields(obj)]
    elif isinstance(obj, dict):
        children = [*obj.keys(), *obj.values()]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = list(obj)
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith(("taskmem", "tests")):
        children = list(vars(obj).values())
    else:
        children = []
    for child in children:
        yield from _reachable(child, seen)


def test_phase_two_in_a_run_learns_from_task_notices_and_clips_only(tmp_path, monkeypatch):
    """A real run of the shipped memorizer on two mini streams, adapting after the first: every
    Phase Two step is spied on, and nothing any step gets, nor anything the policy keeps, is a
    gold answer, a hint or a simulator fact."""
    calls: dict[str, list] = {}

    def spy(name):
        real = getattr(phase_two, name)

        def wrapper(*args, **kwargs):
            calls.setdefault(name, []).append((args, kwargs))
            return real(*args, **kwargs)
        monkeypatch.setattr(phase_two, name, wrapper)

    for name in ("sample_candidates", "fidelity_filter", "judge_both_orders", "train_adapter"):
        spy(name)
    policies: list[TaskMemPolicy] = []
    original_init = TaskMemPolicy.__init__

    def keep(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        policies.append(self)
    monkeypatch.setattr(TaskMemPolicy, "__init__", keep)
    infos: list[StreamInfo] = []
    original_start = TaskMemPolicy.start_stream
    monkeypatch.setattr(TaskMemPolicy, "start_stream",
                        lambda self, info: (infos.append(info), original_start(self, info))[1])

    assert cli(["run", "--task", "mini_count_ocr", "--policy", "taskmem", "--limit", "2",
                "--set", "wave_streams=1", "--set", "retrain_at=[4]", "--set", "buffer_clips=2",
                "--set", "candidates=2", "--set", "dpo_steps=1", "--out", str(tmp_path)]) == 0

    run = tmp_path / "mini_count_ocr" / "taskmem"
    waves = [json.loads(line) for line in (run / "adaptations.jsonl").read_text().splitlines()]
    assert [w["wave"] for w in waves] == [0, 1] and waves[0]["error"] is None
    record = waves[0]["record"]
    assert record["cutoff"] == 4 and record["buffer_clips"] == 2 and record["candidates"] == 4
    assert record["gave_up"] == 0  # tallied; 2 candidates never fail 30 comparisons in a row
    if record.get("adapter"):
        assert record["adapter"]["folder"].startswith(str(run / "adaptations" / "wave-0000"))
    assert all(info.facts == () for info in infos)
    (policy,) = policies
    learned = [t.question_id for t in policy.adapting.tasks]
    assert learned and all(isinstance(t, TaskNotice) for t in policy.adapting.tasks)
    (((_, prompts), kwargs),) = [(c[0][:2], c[1]) for c in calls["sample_candidates"]]
    examples = {supplement_line(t) for t in policy.adapting.tasks[:4]}
    assert all(set(p.questions) <= examples for p in prompts)
    forbidden = (Hidden, Fact, WorldFact)
    for name, made in calls.items():
        for args, kwargs in made:
            leaked = [type(o).__name__ for o in _reachable((args, kwargs)) if isinstance(o, forbidden)]
            assert not leaked, f"{name} received {leaked}"
    kept = [type(o).__name__ for o in _reachable(policy.adapting) if isinstance(o, forbidden)]
    assert not kept


@pytest.fixture(scope="module")
def mini_clip(tmp_path_factory):
    config = MiniConfig(episodes=1, cache_dir=str(tmp_path_factory.mktemp("mini")))
    stream = MiniDataset().load(config).episodes[0].stream
    return next(iter(iter_clips(stream, clip_seconds=10, sample_fps=2, channels=("speech",))))


def test_the_policy_writes_through_the_latest_adapter_it_trained(tmp_path, mini_clip):
    window = Window()
    buffered = BufferedClip.of(0, window, mini_clip, window.new_frames(mini_clip), 24)
    clip = buffered.prompt(["How many red stars were on the rug? Options: 2; 3; 4; 5"])
    chosen, rejected = (Candidate.of(clip.key, format_reply(d, "x"))
                        for d in ("There are 3 red stars on the rug.", "The sign shows the word STOP."))
    pair = PreferencePair(clip.key, clip, chosen, rejected, chain=1)  # as pairs.select_pairs makes
    result = train_adapter(resolve(SHIPPED_MINI), [pair], AdapterConfig(steps=1), tmp_path / "a")
    policy = TaskMemPolicy(TaskMemConfig(model=SHIPPED_MINI))
    policy.start_stream(StreamInfo(mini_clip.stream_id, 4.0, 120.0, 10.0, 2.0, ("speech",),
                                   MemoryBudget(tokens_per_clip=24)))
    policy.adapting.adapter = result.folder
    policy.observe([mini_clip])
    adapted = dataclasses.replace(policy.config.backend_settings(), lora_path=str(result.folder))
    assert loaded_backend(adapted) is not None  # the step's requests went to the adapted model
