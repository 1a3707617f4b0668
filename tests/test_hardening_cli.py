"""Issue 11, items 4-7: models checked at plan time, metrics that do not mislead, Ctrl-C, and
progress that works in logs."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest
from conftest import make_plan
from plugins import FrameDigestPolicy, SpyReader

from taskmem_bench.cli import main
from taskmem_bench.datasets import DatasetRelease
from taskmem_bench.memory import MemoryEntry
from taskmem_bench.policy import Policy
from taskmem_bench.progress import planned_clips
from taskmem_bench.readers import Reader, ReaderInput, ReaderOutput
from taskmem_bench.runner import schedule
from taskmem_bench.schema import Clip, StreamInfo
from taskmem_bench.testing.releases import videomme

TESTS = Path(__file__).parent


class DownReader(Reader):
    """A reader whose server is unreachable: every call raises."""

    name = "down"
    version = "1"
    prompt = "always raises"

    def answer(self, inputs: Sequence[ReaderInput]) -> list[ReaderOutput]:
        raise ConnectionError("server down")


class UnreachablePolicy(Policy):
    """A policy whose model server is unreachable: every stream fails the same way."""

    name = "unreachable"
    version = "1"

    def start_stream(self, info: StreamInfo) -> None:
        pass

    def observe(self, clips: Sequence[Clip]) -> list[list[MemoryEntry]]:
        raise RuntimeError("model server unreachable")


def _one_message(err: str) -> str:
    assert len(err.strip().splitlines()) <= 3, err  # one message (rich may wrap it)
    return " ".join(err.split())


# --- item 4: a model-using component without a model is refused before anything runs -----------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        # a real-dataset task's default reader (paper): refused before the dataset is read
        (["--task", "videomme_stream", "--policy", "blind", "--set", "root=/nowhere"],
         "reader 'paper' needs a model: --set reader.model=PATH_OR_NAME"),
        (["--task", "mini", "--policy", "caption"],
         "policy 'caption' needs a model: --set policy.model=PATH_OR_NAME"),
        (["--task", "egotempo_stream", "--policy", "blind", "--reader", "cpu",
          "--set", "root=/nowhere"],
         "the LLM judge of task egotempo_stream's open answers needs a model: "
         "--set judge.model=PATH_OR_NAME"),
    ],
)
def test_a_component_without_a_model_exits_2_at_plan_time(
    args: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", *args, "--out", str(tmp_path / "out")]) == 2
    err = _one_message(capsys.readouterr().err)
    assert needle in err
    assert "loading dataset" not in err and not (tmp_path / "out").exists()


def test_every_component_without_a_model_is_named_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "--task", "mini", "--policy", "caption-window", "--reader", "paper"]) == 2
    err = _one_message(capsys.readouterr().err)
    assert "policy 'caption-window' needs a model: --set policy.model=" in err
    assert "reader 'paper' needs a model: --set reader.model=" in err


# --- item 5: failed questions are not covered; failures shown by cause; n = 0 exits 1 -----------


def test_an_unreachable_reader_gives_cov_0_and_one_line_per_cause(
    mini_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(["run", "--task", "mini", "--policy", "oracle", "--reader",
                 "test_hardening_cli:DownReader", "--limit", "3", "--out", str(out)])
    assert code == 1
    captured = capsys.readouterr()
    summary = json.loads((out / "mini" / "oracle" / "summary.json").read_text())
    assert summary["failed"] == summary["n"] > 0 and summary["failures"] == {"reader_error": summary["n"]}
    assert (summary["acc"], summary["cov"]) == (0.0, 0.0)  # not "Cov 100": nothing was answered
    err = " ".join(captured.err.split())
    assert err.count("ConnectionError: server down") == 1
    assert f"reader_error in 3 streams ({summary['n']} questions" in err
    assert main(["report", str(out), "--format", "markdown"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "| Acc [95% CI] | parse fail | failed | Cov [95% CI] |" in header


def test_the_same_stream_error_is_printed_once_with_its_stream_count(
    mini_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--task", "mini", "--policy", "test_hardening_cli:UnreachablePolicy",
                 "--limit", "3", "--out", str(tmp_path)])
    assert code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "3 of 3 streams failed" in err
    assert err.count("model server unreachable") == 1
    assert "policy_error in 3 streams" in err


def test_a_run_with_no_questions_warns_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fixture release's only long video is missing: videomme_stream_long has n = 0."""
    monkeypatch.setenv("TASKMEM_BENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "Video-MME"
    videomme.write_release(root)
    code = main(["run", "--task", "videomme_stream_long", "--policy", "blind", "--reader", "cpu",
                 "--set", f"root={root}", "--out", str(tmp_path / "out")])
    assert code == 1
    assert "scored no question (n = 0)" in " ".join(capsys.readouterr().err.split())


# --- item 6: Ctrl-C --------------------------------------------------------------------------


def test_ctrl_c_prints_what_finished_and_the_resume_command(mini_cache: Path, tmp_path: Path) -> None:
    args = ["run", "--task", "mini", "--policy", "plugins:FrameDigestPolicy", "--limit", "6",
            "--set", "delay=0.05", "--set", "streams_in_flight=1", "--set", "batch_size=1",
            "--out", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    parts = tmp_path / "mini" / "plugins_FrameDigestPolicy" / "parts"
    process = subprocess.Popen([sys.executable, "-m", "taskmem_bench", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(parts.glob("*.parquet")):
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "interrupted" in line]
    finished = len(list(parts.glob("*.parquet")))
    assert f"finished plugins:FrameDigestPolicy {finished}/6 streams" in line
    command = shlex.split(line.split("continue with: ", 1)[1])
    assert command[:2] == ["taskmem-bench", "run"] and command[-1] == "--resume"

    resumed = subprocess.run([sys.executable, "-m", "taskmem_bench", *command[1:]], env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"kept {finished} finished streams" in resumed.stderr
    rows = pl.read_parquet(parts.parent / "rows.parquet")
    assert rows["stream_id"].n_unique() == 6 and rows["question_id"].is_unique().all()


# --- item 7: progress in logs ------------------------------------------------------------------

_LINE = re.compile(r"^plugins:FrameDigestPolicy: (\d+)/(\d+) clips, (\d+)/(\d+) questions, "
                   r"(\d+)/(\d+) streams")


def test_progress_lines_count_clips_and_questions_when_not_a_terminal(
    mini_cache: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "taskmem_bench", "run", "--task", "mini", "--policy",
         "plugins:FrameDigestPolicy",
         "--limit", "2", "--set", "delay=0.05", "--set", "streams_in_flight=2",
         "--set", "batch_size=2", "--progress-every", "0.2", "--out", str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(TESTS)}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    counts = [tuple(map(int, m.groups())) for line in result.stderr.splitlines()
              if (m := _LINE.match(line))]
    assert len(counts) >= 3, result.stderr  # the first, some at the interval, the last
    clips, questions = counts[-1][1], counts[-1][3]
    summary = json.loads(next(tmp_path.rglob("summary.json")).read_text())
    assert (clips, questions) == (summary["timing"]["clips"], summary["n"])
    assert counts[-1] == (clips, clips, questions, questions, 2, 2)
    assert [c[0] for c in counts] == sorted(c[0] for c in counts)
    # the two streams run in lockstep, so a stream count would sit at 0 until the end
    assert any(0 < c[0] < clips and c[4] == 0 for c in counts)


def test_planned_clips_match_the_clips_the_runner_cuts(coded_release: DatasetRelease) -> None:
    plan = make_plan(FrameDigestPolicy, SpyReader)
    for episode in coded_release.episodes:
        clips = sum(isinstance(item, Clip) for item in schedule(episode, plan))
        assert planned_clips(episode.stream, plan.task.stream.clip_seconds) == clips


def test_mini_generates_only_the_episodes_limit_needs_and_says_so(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = subprocess.run(
        [sys.executable, "-m", "taskmem_bench", "run", "--task", "mini_large", "--policy",
         "blind", "--limit", "1", "--out", str(tmp_path / "out")],
        env={**os.environ, "TASKMEM_BENCH_CACHE": str(cache)}, capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert len(list(cache.rglob("*.mp4"))) == 1
    assert "loading mini: 1/1 episodes generated" in result.stderr
    manifest = json.loads(next((tmp_path / "out").rglob("manifest.json")).read_text())
    assert "episodes=200" in manifest["dataset"]["revision"]  # still the whole split's data
