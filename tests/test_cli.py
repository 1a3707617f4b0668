"""The ``taskmem-bench`` command as users call it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from taskmem_bench.cli import main

TESTS = Path(__file__).parent
README = TESTS.parent / "README.md"


def _cli(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "taskmem_bench", *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300, **kwargs,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--task", "nope", "--policy", "blind"], "unknown task 'nope'; choose from: egolife_paper, egolife_stream, egotempo_stream, mini"),
        (["run", "--task", "mini", "--policy", "nope"], "unknown policy 'nope'; choose from: blind, caption, caption-window"),
        (["run", "--task", "mini", "--policy", "blind", "--reader", "nope"], "unknown reader 'nope'; choose from: cpu, paper, retrieval"),
        (["run", "--task", "mini", "--policy", "blind", "--set", "novalue"], "malformed --set 'novalue'"),
        (["run", "--task", "mini", "--policy", "blind", "--set", "colour=red"], "unknown --set key 'colour'"),
        (["run", "--task", "mini", "--policy", "blind", "--set", "sample_fps=fast"], "sample_fps"),
        (["run", "--task", "mini", "--policy", "blind", "--set", "allowed=[audio]"], "side channels audio"),
        (["run", "--task", "mini", "--policy", "mod_that_does_not_exist:Cls"], "cannot import"),
        (["run", "--task", "mini", "--policy", "blind", "--set", "streams_in_flight=0"], "at least 1"),
        (["run", "--task", "mini", "--policy", "blind", "--set", "batch_size=0"], "at least 1"),
        (["run", "--task", "mini", "--policy", "blind", "--set", "clip_seconds=0"], "must be positive"),
        (["run", "--task", "mini", "--policy", "blind", "--set", "tokens_per_clip=-3"], "at least 0"),
        (["run", "--task", "mini", "--policy", "blind,blind"], "--policy lists blind twice"),
    ],
)
def test_bad_names_and_settings_exit_2_with_one_clear_line(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in " ".join(err.split())
    assert len(err.strip().splitlines()) <= 3  # one message (rich may wrap it)


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "tasks"]) == 0
    assert re.search(r"^mini\t", capsys.readouterr().out, re.M)
    assert main(["list", "policies"]) == 0
    assert "oracle\tbaselines.controls:OraclePolicy" in capsys.readouterr().out


@pytest.mark.parametrize("kind, line", [
    ("datasets", "mini\ttaskmem_bench.datasets.mini:MiniDataset"),
    ("scorings", "videomme\ttaskmem_bench.scoring.variants:VideoMMEScoring"),
    ("memory-views", "paper_window\ttaskmem_bench.datasets.egolife_window:PaperWindow"),
    ("readers", "cpu\ttaskmem_bench.readers.cpu:CpuReader"),
    ("trainers", "taskmem\ttaskmem.cli:TaskMemTrainer"),
])
def test_every_plugin_kind_lists_its_registered_names(kind, line, capsys) -> None:
    assert main(["list", kind]) == 0
    assert line in capsys.readouterr().out.splitlines()


def test_run_and_report_formats(mini_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(["run", "--task", "mini", "--policy", "blind,oracle", "--out", str(out), "--limit", "3"])
    assert code == 0
    assert "Acc [95% CI]" in capsys.readouterr().out
    assert main(["report", str(out), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["policy"] for r in records} == {"blind", "oracle"}
    for record in records:
        assert {"task", "policy", "reader", "n", "acc", "cov", "prec", "acc_ci_low", "acc_ci_high"} <= set(record)
    by_policy = {r["policy"]: r for r in records}
    assert by_policy["blind"]["cov"] == 0 and by_policy["oracle"]["acc"] > 0
    assert by_policy["oracle"]["prec"] >= 0.95  # true facts in memory: answers are right or abstained
    rows = pl.read_parquet(out / "mini" / "oracle" / "rows.parquet")
    assert rows.height == by_policy["oracle"]["n"] and rows["raw_output"].null_count() == 0
    manifest = json.loads((out / "mini" / "oracle" / "manifest.json").read_text())
    for key in ("package", "git", "task", "dataset", "policy", "reader", "seed", "side_channels", "hardware", "plan_hash"):
        assert key in manifest
    assert manifest["side_channels"] == {"available": ["speech"], "allowed": ["speech"]}
    assert main(["report", str(out), "--format", "csv"]) == 0
    csv = capsys.readouterr().out.splitlines()
    assert csv[0].startswith("task,policy,reader,n,acc") and len(csv) == 3
    assert main(["report", str(out), "--format", "markdown"]) == 0
    assert capsys.readouterr().out.count("\n| mini |") == 2


def test_failing_policy_makes_the_run_exit_1_with_a_summary(mini_cache: Path, tmp_path: Path) -> None:
    result = _cli(
        "run", "--task", "mini", "--policy", "plugins:FrameDigestPolicy", "--limit", "2",
        "--set", "fail_on=mini-mixed-0001", "--out", str(tmp_path),
        env={"PYTHONPATH": str(TESTS)},
    )
    assert result.returncode == 1, result.stderr
    assert "1 of 2 streams failed" in " ".join(result.stderr.split())
    assert "policy_error" in result.stderr


def test_resume_after_sigkill_matches_an_uninterrupted_run(mini_cache: Path, tmp_path: Path) -> None:
    """Kill a real run mid-way with SIGKILL, resume it, and compare with a run never killed."""
    args = [
        "run", "--task", "mini", "--policy", "plugins:FrameDigestPolicy", "--limit", "6",
        "--set", "delay=0.03", "--set", "streams_in_flight=1", "--set", "batch_size=1",
    ]
    env = {"PYTHONPATH": str(TESTS)}
    assert _cli(*args, "--out", str(tmp_path / "clean"), env=env).returncode == 0

    killed = tmp_path / "killed"
    parts = killed / "mini" / "plugins_FrameDigestPolicy" / "parts"
    process = subprocess.Popen(
        [sys.executable, "-m", "taskmem_bench", *args, "--out", str(killed)],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while len(list(parts.glob("*.parquet"))) < 2:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.parquet")}
    assert 2 <= len(before) < 6

    resumed = _cli(*args, "--out", str(killed), "--resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"kept {len(before)} finished streams" in resumed.stderr
    after = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.parquet")}
    assert all(after[name] == mtime for name, mtime in before.items()), "finished work was redone"

    clean = pl.read_parquet(tmp_path / "clean" / "mini" / "plugins_FrameDigestPolicy" / "rows.parquet")
    again = pl.read_parquet(parts.parent / "rows.parquet")
    assert again["question_id"].is_unique().all()
    assert again.equals(clean)


def test_readme_plugin_example_runs(mini_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy in the README's "Write your own policy" section works as printed."""
    section = README.read_text().split("## Write your own policy", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    command = re.search(r"```bash\n(taskmem-bench run .*?)\n```", section, re.S).group(1)
    (tmp_path / "my_policies.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    args = command.split()[1:] + ["--out", str(tmp_path / "out"), "--limit", "3"]
    assert main(args) == 0
    rows = pl.read_parquet(next((tmp_path / "out").rglob("rows.parquet")))
    speech = rows.filter(pl.col("category") == "speech")
    assert rows["memory_entries"].max() > 0
    assert speech.height and speech["correct"].any()


def test_a_class_that_is_not_a_policy_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--task", "mini", "--policy", "plugins:SpyReader"]) == 2
    assert "not a Policy subclass" in capsys.readouterr().err


def test_damaged_files_and_paths_give_one_line_errors(
    mini_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run" / "mini" / "blind"
    run.mkdir(parents=True)
    (run / "summary.json").write_text("{truncated")
    assert main(["report", str(tmp_path / "run")]) == 2
    assert "summary.json is not valid JSON" in capsys.readouterr().err
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["run", "--task", "mini", "--policy", "blind", "--out", str(afile), "--set", "episodes=1"]) == 2
    assert "NotADirectoryError" in capsys.readouterr().err
    assert main(["run", "--task", "mini", "--policy", "blind", "--set", "clip_seconds=.nan"]) == 2
    assert "positive and finite" in capsys.readouterr().err
