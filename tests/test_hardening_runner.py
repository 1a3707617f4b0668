"""Issue 11, runs: what a plugin returns or raises, how long it may take, and what a dead
backend or a killed process leaves behind, each costs only its own stream or question."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import polars as pl
import pytest
from conftest import make_plan, run_plan
from plugins import FrameDigestPolicy, SpyPolicy, SpyReader

from taskmem_bench.backends import BackendUnavailable
from taskmem_bench.datasets import DatasetRelease
from taskmem_bench.memory import MemoryEntry, MemoryStore
from taskmem_bench.plan import RunPlan, build_plan
from taskmem_bench.provenance import build_manifest
from taskmem_bench.readers import ReaderInput, ReaderOutput
from taskmem_bench.plugin_calls import CallGuard, CallTimeout, ComponentUnavailable
from taskmem_bench.runner import RunOutcome, StreamingRunner
from taskmem_bench.schema import Clip, StreamInfo
from taskmem_bench.scoring.judge import JudgeConfig, JudgeItem, LLMJudge
from taskmem_bench.taskconfig import ConfigError, RunSettings, load_task

QUESTIONS = 10  # in the coded release
TESTS = Path(__file__).parent


def _rows(outcome) -> pl.DataFrame:
    return pl.read_parquet(outcome.run_dir / "rows.parquet")


def _with(plan: RunPlan, **settings: object) -> RunPlan:
    return dataclasses.replace(plan, settings=dataclasses.replace(plan.settings, **settings))


class RightReader(SpyReader):
    """Answers C (the coded release's gold) except on ``odd_stream``, where it answers ``odd``."""

    odd_stream = "coded-1"

    def __init__(self, odd: object = None) -> None:
        super().__init__()
        self.odd = odd
        self.batches: list[list[ReaderInput]] = []

    def answer(self, inputs: Sequence[ReaderInput]) -> list[ReaderOutput]:
        self.batches.append(list(inputs))
        return [
            self.odd if i.memory.stream_id == self.odd_stream else ReaderOutput("Answer: C")
            for i in inputs
        ]


# -- item 1: reader and policy outputs are checked where they enter the runner ---------------


@pytest.mark.parametrize(
    ("odd", "named"),
    [
        (ReaderOutput(raw=12345), "int"),  # crashed the whole run
        ("Answer: C", "str"),  # counted wrong, no failure, exit 0
        (ReaderOutput(raw=None), "NoneType"),  # counted wrong, no failure, exit 0
        (None, "NoneType"),
    ],
    ids=["raw-int", "plain-string", "raw-none", "none"],
)
def test_a_malformed_reader_output_costs_only_its_question(
    coded_release: DatasetRelease, tmp_path: Path, odd: object, named: str
) -> None:
    plan = make_plan(FrameDigestPolicy, RightReader)
    outcome = run_plan(plan, coded_release, tmp_path, reader=RightReader(odd))
    rows = _rows(outcome)
    bad = rows.filter(pl.col("stream_id") == "coded-1")
    good = rows.filter(pl.col("stream_id") != "coded-1")
    assert bad["failure"].to_list() == ["reader_error", "reader_error"]
    assert all(named in e.strip().splitlines()[-1] for e in bad["error"])
    assert bad["raw_output"].null_count() == 2 and not bad["correct"].any()
    assert good["failure"].null_count() == good.height and good["correct"].all()
    assert outcome.failed_streams == ()  # a reader error fails its question, not its stream
    assert outcome.summary["failures"] == {"reader_error": 2}


def test_scoring_runs_inside_the_per_question_isolation(
    coded_release: DatasetRelease, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply that makes the scorer raise costs its question (``scoring_error``), not the run."""
    from taskmem_bench.scoring import base

    real = base.verdict_choice

    def fragile(raw: str, options: Sequence[str], gold: str):
        if "BOOM" in raw:
            raise RecursionError("the parser gave up on this reply")
        return real(raw, options, gold)

    monkeypatch.setattr(base, "verdict_choice", fragile)
    reader = RightReader(ReaderOutput("BOOM Answer: C"))
    outcome = run_plan(make_plan(FrameDigestPolicy, RightReader), coded_release, tmp_path, reader=reader)
    rows = _rows(outcome)
    bad = rows.filter(pl.col("stream_id") == "coded-1")
    assert bad["failure"].to_list() == ["scoring_error", "scoring_error"]
    assert "RecursionError: the parser gave up" in bad["error"][0]
    assert rows.filter(pl.col("stream_id") != "coded-1")["correct"].all()
    assert outcome.summary["failures"] == {"scoring_error": 2}


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (MemoryEntry(0, 1, None), "text"),  # was stored as "None"
        (MemoryEntry(0, 1, b"bytes"), "text"),  # was stored as "b'bytes'"
        (MemoryEntry(0, 1, "x", kind=None), "kind"),
        (MemoryEntry("0.5", 1, "x"), "t_start"),  # was converted to 0.5
        (MemoryEntry(0, "1", "x"), "t_end"),
        (MemoryEntry(0, True, "x"), "t_end"),
        (MemoryEntry(None, 1, "x"), "t_start"),
        (MemoryEntry(0, 1, "x", meta=[("a", 1)]), "meta"),  # was converted to a dict
    ],
)
def test_the_store_refuses_what_it_would_have_to_convert_naming_the_field(
    entry: MemoryEntry, field: str
) -> None:
    store = MemoryStore("s")
    with pytest.raises(TypeError, match=rf"memory entry {field} must be"):
        store.write(0, 10.0, [MemoryEntry(0, 1, "kept only if the whole clip is valid"), entry])
    assert store.log == ()  # a clip's writes are all or nothing
    store.write(0, 10.0, [MemoryEntry(0, 1, "x")])  # the refused clip did not advance the store


@pytest.mark.parametrize("result", [MemoryEntry(0, 1, "x"), None, "text", (e for e in ())])
def test_a_clips_memory_must_be_a_list_of_entries(result: object) -> None:
    with pytest.raises(TypeError, match="one list of MemoryEntry per clip"):
        MemoryStore("s").write(0, 10.0, result)  # type: ignore[arg-type]


class SlyText(str):
    """A ``str`` whose methods lie or raise once the harness uses them."""

    def __str__(self) -> str:
        raise RuntimeError("str() ran the plugin's code")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("an f-string ran the plugin's code")

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__

    def __len__(self) -> int:
        return 0

    def encode(self, *args: object, **kwargs: object) -> bytes:
        raise RuntimeError("encode() ran the plugin's code")


def test_the_store_keeps_an_exact_str_copy_of_a_str_subclass() -> None:
    """It kept the plugin's object, whose methods then ran in the harness (rendering, sizes,
    digests) long after the write was checked."""
    store = MemoryStore("s")
    store.write(0, 10.0, [MemoryEntry(0, 1, SlyText("the sign says EXIT"), kind=SlyText("ocr"))])
    (stored,) = store.log
    assert type(stored.entry.text) is str and type(stored.entry.kind) is str
    assert "the sign says EXIT" == stored.entry.text and "ocr" == stored.entry.kind
    snapshot = store.snapshot(10.0)
    assert snapshot.render() == "00:00:00-00:00:01\nthe sign says EXIT"
    assert snapshot.n_chars == 18 and len(snapshot.digest) == 64


def test_numbers_of_any_real_type_are_times() -> None:
    import numpy as np

    store = MemoryStore("s")
    store.write(0, 10.0, [MemoryEntry(np.float32(0.5), np.int64(2), "x"), MemoryEntry(1, 2.5, "y")])
    assert [(type(s.entry.t_start), s.entry.t_start) for s in store.log] == [(float, 0.5), (float, 1.0)]


class NoneTextPolicy(FrameDigestPolicy):
    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        written = super().observe(clips)
        return [
            [MemoryEntry(c.t_start, c.t_end, None)] if c.stream_id == "coded-1" else w
            for c, w in zip(clips, written, strict=True)
        ]


def test_a_policy_writing_text_none_fails_its_stream_naming_the_field(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    outcome = run_plan(make_plan(NoneTextPolicy, SpyReader), coded_release, tmp_path)
    assert outcome.failed_streams == ("coded-1",)
    (failure,) = outcome.summary["stream_failures"]
    assert failure["error"] == "TypeError: memory entry text must be a str, got NoneType"


# -- item 3: a wall-clock watchdog for policy and reader calls -------------------------------


def test_call_timeout_s_is_a_run_setting_reachable_by_set() -> None:
    task = load_task("mini")
    assert build_plan(task, "blind").settings.call_timeout_s is None
    plan = build_plan(task, "blind", overrides=[("call_timeout_s", 2.5)])
    assert plan.settings.call_timeout_s == 2.5
    assert build_plan(task, "blind", overrides=[("run.call_timeout_s", None)]).settings.call_timeout_s is None
    for bad in (0, -1, float("inf")):
        with pytest.raises(ConfigError, match="call_timeout_s must be positive"):
            build_plan(task, "blind", overrides=[("call_timeout_s", bad)])


@pytest.fixture
def release_hung() -> Iterator[threading.Event]:
    """Set when the test ends, so an abandoned call's thread returns."""
    event = threading.Event()
    yield event
    event.set()


class HangingPolicy(SpyPolicy):
    """Hangs on coded-1's third clip until ``release`` is set, noting the batch, its thread and
    how many calls it had had; logs every call (``end_stream`` too)."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release
        self.hung_batch: list[str] = []
        self.hung_thread: threading.Thread | None = None
        self.calls_before_hang = 0

    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        if any(c.stream_id == "coded-1" and c.index == 2 for c in clips):
            self.hung_batch = sorted(c.stream_id for c in clips)
            self.hung_thread = threading.current_thread()
            self.calls_before_hang = len(self.log)
            self.release.wait(120)
        return super().observe(clips)

    def end_stream(self, stream_id: str) -> None:
        self.log.append(("end", stream_id))
        super().end_stream(stream_id)


def _run_releasing(
    plan: RunPlan, release: DatasetRelease, out: Path, hung: Callable[[], threading.Thread | None],
    released: threading.Event, **components: object,
) -> RunOutcome:
    """The run, with the hung call released (and waited for) at the first progress event after
    it hung: from then on its component is free again."""

    def on_progress(event: str, stream_id: str) -> None:
        thread = hung()
        if thread is not None and not released.is_set():
            released.set()
            thread.join(30)

    runner = StreamingRunner(plan, release, out, on_progress=on_progress, **components)
    return runner.run(build_manifest(plan.describe(release), ["pytest"]))


def test_a_hung_observe_fails_the_streams_of_its_batch_after_call_timeout_s_and_the_run_goes_on(
    coded_release: DatasetRelease, tmp_path: Path, release_hung: threading.Event
) -> None:
    policy = HangingPolicy(release_hung)
    plan = _with(make_plan(HangingPolicy, SpyReader, batch_size=2), call_timeout_s=1)
    began = time.monotonic()
    outcome = _run_releasing(plan, coded_release, tmp_path / "hung", lambda: policy.hung_thread,
                             release_hung, policy=policy)
    assert time.monotonic() - began < 30  # it hung for ever before (or until the policy gave up)
    # the batch's streams share its fate: they cannot be retried one by one beside the
    # abandoned call, which still runs on their state
    assert policy.hung_batch == ["coded-0", "coded-1"]
    assert outcome.failed_streams == ("coded-0", "coded-1")
    assert {f["stream_id"]: f["error"] for f in outcome.summary["stream_failures"]} == {
        s: "taskmem_bench.plugin_calls.CallTimeout: policy.observe() exceeded call_timeout_s=1 s; "
           "the call was abandoned" for s in policy.hung_batch
    }
    clean = _rows(run_plan(make_plan(FrameDigestPolicy, SpyReader), coded_release, tmp_path / "clean"))
    healthy = _rows(outcome).filter(~pl.col("stream_id").is_in(policy.hung_batch))
    columns = ["question_id", "memory_digest", "failure"]
    expected = clean.filter(~pl.col("stream_id").is_in(policy.hung_batch)).select(columns)
    assert healthy.height == 4 and healthy.select(columns).equals(expected)


def test_while_an_abandoned_call_runs_its_component_gets_no_other_call(
    coded_release: DatasetRelease, tmp_path: Path, release_hung: threading.Event
) -> None:
    """Each later call used to start one more thread beside the hung one: calls piled up and a
    component that is not thread-safe (a model engine) ran several at once."""
    policy = HangingPolicy(release_hung)  # released only when the test ends
    plan = _with(make_plan(HangingPolicy, SpyReader, batch_size=2), call_timeout_s=1)
    began = time.monotonic()
    outcome = run_plan(plan, coded_release, tmp_path, policy=policy)
    assert time.monotonic() - began < 30
    assert len(policy.log) == policy.calls_before_hang  # nothing reached the policy since
    assert outcome.failed_streams == ("coded-0", "coded-1", "coded-2", "coded-3")
    errors = {f["stream_id"]: f["error"] for f in outcome.summary["stream_failures"]}
    busy = ("taskmem_bench.plugin_calls.ComponentUnavailable: policy still busy with a call abandoned "
            "after call_timeout_s=1 s (policy.observe()); policy.")
    assert all(errors[s].endswith("the call was abandoned") for s in policy.hung_batch)
    others = [errors[s] for s in errors if s not in policy.hung_batch]
    assert others and all(e.startswith(busy) for e in others), others


def test_a_component_takes_calls_again_once_its_abandoned_call_returned() -> None:
    release = threading.Event()
    workers: list[threading.Thread] = []
    guard = CallGuard("reader", 0.2)

    def hang() -> str:
        workers.append(threading.current_thread())
        release.wait(30)
        return "late"

    with pytest.raises(CallTimeout, match=r"reader.answer\(\) exceeded call_timeout_s=0.2 s"):
        guard.call("answer()", hang)
    began = time.monotonic()
    with pytest.raises(ComponentUnavailable, match=r"^reader still busy with a call abandoned "
                       r"after call_timeout_s=0.2 s \(reader.answer\(\)\); reader.answer\(\) "
                       "was not made$"):
        guard.call("answer()", lambda: "never run")
    assert time.monotonic() - began < 0.2  # at once, without waiting for the limit
    release.set()
    workers[0].join(30)
    assert guard.call("answer()", lambda: "on time") == "on time"
    assert len(workers) == 1


class HangingReader(RightReader):
    """Hangs on the call that asks coded-2's question at 20 s until ``release`` is set."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__(ReaderOutput("Answer: C"))
        self.release = release
        self.hung_batch: list[str] = []
        self.hung_thread: threading.Thread | None = None

    def answer(self, inputs: Sequence[ReaderInput]) -> list[ReaderOutput]:
        if any(i.memory.stream_id == "coded-2" and i.memory.t == 20.0 for i in inputs):
            self.hung_batch = sorted(f"{i.memory.stream_id}@{i.memory.t:g}" for i in inputs)
            self.hung_thread = threading.current_thread()
            self.release.wait(120)
        return super().answer(inputs)


def test_a_hung_reader_call_fails_its_questions_and_the_run_goes_on(
    coded_release: DatasetRelease, tmp_path: Path, release_hung: threading.Event
) -> None:
    reader = HangingReader(release_hung)
    plan = _with(make_plan(FrameDigestPolicy, HangingReader, streams_in_flight=4), call_timeout_s=1)
    outcome = _run_releasing(plan, coded_release, tmp_path, lambda: reader.hung_thread,
                             release_hung, reader=reader)
    rows = _rows(outcome)
    failed = rows.filter(pl.col("failure").is_not_null())
    # every question of the timed-out call fails, and only those
    assert reader.hung_batch == ["coded-0@12.5", "coded-2@20"]
    assert failed["question_id"].to_list() == ["coded-0-q0", "coded-2-q0"]
    assert failed["failure"].to_list() == ["reader_error"] * 2
    assert all("answer() exceeded call_timeout_s=1 s" in e for e in failed["error"])
    assert rows.filter(pl.col("failure").is_null())["correct"].all()
    assert rows.height == QUESTIONS and outcome.failed_streams == ()


def test_without_call_timeout_s_calls_run_on_the_runners_own_thread(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    threads: set[str] = set()

    class WhereReader(RightReader):
        def answer(self, inputs):
            threads.add(threading.current_thread().name)
            return super().answer(inputs)

    run_plan(make_plan(FrameDigestPolicy, WhereReader), coded_release, tmp_path, reader=WhereReader())
    assert threads == {threading.current_thread().name}
    assert RunSettings().call_timeout_s is None


# -- item 3: a dead backend fails a batch once, not once plus once per item ------------------


class DeadReader(RightReader):
    def answer(self, inputs: Sequence[ReaderInput]) -> list[ReaderOutput]:
        self.batches.append(list(inputs))
        raise BackendUnavailable("http://127.0.0.1:9/v1 is unreachable after 3 tries")


class DeadPolicy(FrameDigestPolicy):
    def __init__(self, config=None, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self.batches: list[list[str]] = []

    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        self.batches.append([f"{c.stream_id}/{c.index}" for c in clips])
        raise BackendUnavailable("the model server is down")


def test_a_dead_reader_backend_is_asked_once_per_batch(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    reader = DeadReader()
    outcome = run_plan(make_plan(FrameDigestPolicy, DeadReader), coded_release, tmp_path, reader=reader)
    assert max(len(b) for b in reader.batches) >= 2  # batches that item-by-item retries would split
    assert sum(len(b) for b in reader.batches) == QUESTIONS  # each question asked once
    rows = _rows(outcome)
    assert rows["failure"].to_list() == ["reader_error"] * QUESTIONS
    assert all("BackendUnavailable: http://127.0.0.1:9/v1 is unreachable" in e for e in rows["error"])


def test_a_dead_policy_backend_is_asked_once_per_batch(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    policy = DeadPolicy()
    plan = make_plan(DeadPolicy, SpyReader, batch_size=3, streams_in_flight=4)
    outcome = run_plan(plan, coded_release, tmp_path, policy=policy)
    sent = [clip for batch in policy.batches for clip in batch]
    assert max(len(b) for b in policy.batches) == 3
    assert len(sent) == len(set(sent))  # no clip sent again on its own
    assert set(outcome.failed_streams) == {e.stream.id for e in coded_release.episodes}
    assert {f["error"] for f in outcome.summary["stream_failures"]} == {
        "taskmem_bench.backends.base.BackendUnavailable: the model server is down"
    }


def test_item_by_item_retries_stop_once_the_backend_is_down() -> None:
    """A batch that fails for another reason is retried item by item, until an item finds the
    backend down: the rest then share that error without being sent."""
    from taskmem_bench.isolation import call_isolating

    calls: list[list[int]] = []

    def fn(batch: list[int]) -> list[int]:
        calls.append(batch)
        if len(batch) > 1:
            raise ValueError("item 2 is malformed")
        raise BackendUnavailable("down since the first retry")

    results = call_isolating(fn, [1, 2, 3, 4], "fn()", whole_batch=(BackendUnavailable,))
    assert calls == [[1, 2, 3, 4], [1]]
    assert all(isinstance(r, BackendUnavailable) for r in results) and len(results) == 4


def test_a_dead_judge_backend_is_asked_once_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    judge = LLMJudge(JudgeConfig(model="judge-model", backend="openai"))
    calls: list[int] = []

    def dead(requests):
        calls.append(len(requests))
        raise BackendUnavailable("judge server down")

    monkeypatch.setattr(judge, "_generate", dead)
    items = [JudgeItem("q", "gold", f"answer {i}") for i in range(3)]
    judgments = judge.judge(items)
    assert calls == [3]
    assert [j.error for j in judgments] == ["BackendUnavailable: judge server down"] * 3

    def dies_on_the_first_retry(requests):
        calls.append(len(requests))
        raise ValueError("one bad item") if len(requests) > 1 else BackendUnavailable("down")

    calls.clear()
    monkeypatch.setattr(judge, "_generate", dies_on_the_first_retry)
    assert [j.error for j in judge.judge(items)] == ["BackendUnavailable: down"] * 3
    assert calls == [3, 1]


# -- item 6: SystemExit in a plugin is a failure; a killed process's temporaries are removed --


class ExitingPolicy(FrameDigestPolicy):
    def start_stream(self, info: StreamInfo) -> None:
        if info.stream_id == "coded-3":
            raise SystemExit(0)
        super().start_stream(info)

    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        if any(c.stream_id == "coded-1" and c.index == 2 for c in clips):
            raise SystemExit(0)
        return super().observe(clips)


class ExitingReader(RightReader):
    def answer(self, inputs: Sequence[ReaderInput]) -> list[ReaderOutput]:
        if any(i.memory.stream_id == "coded-2" for i in inputs):
            raise SystemExit("reader quit")
        return super().answer(inputs)


def test_system_exit_in_a_policy_or_reader_fails_its_stream_or_question(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    plan = make_plan(ExitingPolicy, ExitingReader, batch_size=1)
    reader = ExitingReader(ReaderOutput("Answer: C"))
    outcome = run_plan(plan, coded_release, tmp_path, policy=ExitingPolicy(), reader=reader)
    assert outcome.failed_streams == ("coded-1", "coded-3")
    assert {f["stream_id"]: f["error"] for f in outcome.summary["stream_failures"]} == {
        "coded-1": "SystemExit: 0", "coded-3": "SystemExit: 0",
    }
    rows = _rows(outcome)
    reader_failed = rows.filter(pl.col("failure") == "reader_error")
    assert set(reader_failed["stream_id"]) == {"coded-2"} and reader_failed.height == 2
    assert "SystemExit: reader quit" in reader_failed["error"][0]


QUITTING_PLUGINS = """
import sys

from taskmem_bench.policy import Policy
from taskmem_bench.readers import Reader

if "{when}" == "import":
    sys.exit(0)


class QuittingPolicy(Policy):
    name = "quitting"
    version = "1"

    def __init__(self, config=None, *, seed=0):
        sys.exit(0)

    def start_stream(self, info):
        pass

    def observe(self, clips):
        return [[] for _ in clips]


class QuittingReader(Reader):
    name = "quitting"
    version = "1"
    prompt = "none"

    def __init__(self, config=None, *, seed=0):
        sys.exit(0)

    def answer(self, inputs):
        return []
"""


def _cli_with_plugins(tmp_path: Path, when: str, *args: str) -> subprocess.CompletedProcess:
    """``taskmem-bench run`` on one ``mini`` stream with ``quitting.py`` (``QUITTING_PLUGINS``)
    on ``PYTHONPATH``."""
    (tmp_path / "quitting.py").write_text(QUITTING_PLUGINS.format(when=when))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(TESTS)])}
    return subprocess.run(
        [sys.executable, "-m", "taskmem_bench", "run", "--task", "mini", "--limit", "1",
         "--out", str(tmp_path / "out"), *args],
        capture_output=True, text=True, env=env, timeout=300,
    )


def test_system_exit_on_importing_a_plugin_is_a_one_line_error_with_exit_2(tmp_path: Path) -> None:
    """It used to end ``taskmem-bench run`` with exit 0 and no output at all."""
    result = _cli_with_plugins(tmp_path, "import", "--policy", "quitting:QuittingPolicy")
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert message.startswith("error: unknown policy 'quitting:QuittingPolicy' (importing it "
                              "raised SystemExit: 0); choose from:"), message
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("component", ["policy", "reader"])
def test_system_exit_in_a_plugins_constructor_fails_the_run_not_ends_it(
    mini_cache: Path, tmp_path: Path, component: str
) -> None:
    """It used to end ``taskmem-bench run`` with exit 0, no summary and no rows."""
    chosen = {"policy": ["--policy", "quitting:QuittingPolicy"],
              "reader": ["--policy", "blind", "--reader", "quitting:QuittingReader"]}[component]
    result = _cli_with_plugins(tmp_path, "construction", *chosen)
    assert result.returncode == 1, result.stderr
    message = " ".join(result.stderr.split())
    assert "1 of 1 streams failed" in message
    assert (f"{component}_error in 1 stream (8 questions; e.g. mini-mixed-0000): "
            f"taskmem_bench.plugin_calls.ComponentUnavailable: the {component} could not be "
            "constructed: SystemExit: 0") in message, message
    summary = json.loads(next((tmp_path / "out").rglob("summary.json")).read_text())
    assert summary["streams"] == {"total": 1, "finished": 1, "failed": 1}


def test_a_killed_runs_temporary_files_are_removed_by_the_next_run(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    plan = make_plan(FrameDigestPolicy, SpyReader)
    run_plan(plan, coded_release, tmp_path)
    stale = [
        tmp_path / "parts" / ".000001.parquet.k3j2x9.tmp",
        tmp_path / "memory" / ".000002.jsonl.p0q1r2.tmp",
        tmp_path / ".summary.json.a1b2c3.tmp",
    ]
    for path in stale:
        path.write_bytes(b"half a file")
    kept = tmp_path / "parts" / "notes.tmp"  # not a name write_atomic makes
    kept.write_text("mine")
    run_plan(plan, coded_release, tmp_path, resume=True)
    assert not any(p.exists() for p in stale) and kept.exists()

    fresh = tmp_path / "fresh"  # killed while writing its manifest: nothing else was written
    fresh.mkdir()
    (fresh / ".manifest.json.zz9.tmp").write_text("{")
    run_plan(plan, coded_release, fresh)
    assert not list(fresh.glob(".*.tmp"))


def test_resume_asks_again_the_questions_a_dead_reader_failed(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    """The fix for a server that was down is to bring it back and resume: every finished stream
    with failed questions runs again, and the rows come out as a healthy run's."""
    plan = make_plan(FrameDigestPolicy, DeadReader)
    down = run_plan(plan, coded_release, tmp_path, reader=DeadReader())
    assert _rows(down)["failure"].to_list() == ["reader_error"] * QUESTIONS
    back = run_plan(plan, coded_release, tmp_path, reader=RightReader(ReaderOutput("Answer: C")),
                    resume=True)
    rows = _rows(back)
    assert rows["failure"].null_count() == QUESTIONS and len(rows) == QUESTIONS
    assert rows["correct"].all()
