"""The Ray executor on a local Ray instance started here (``ray.init(num_cpus=2)``): the rows of
a local run, actors lost at the cost of their unfinished streams only, learning policies
refused, and the CLI's ``--executor ray``."""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import ray
from conftest import make_plan, run_plan
from learning_policy import WaveLearner
from plugins import CrashConfig, CrashingPolicy, FrameDigestPolicy, SpyReader

from taskmem_bench.cli import main
from taskmem_bench.datasets import DatasetRelease
from taskmem_bench.plan import RunPlan
from taskmem_bench.provenance import build_manifest
from taskmem_bench.results import RunDir
from taskmem_bench.runner import StreamingRunner
from taskmem_bench.taskconfig import ConfigError

TESTS = Path(__file__).parent


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    """A two-CPU Ray instance on this machine; its workers import the tests' plugins."""
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def _on_ray(plan: RunPlan, **settings: Any) -> RunPlan:
    return dataclasses.replace(plan, settings=dataclasses.replace(
        plan.settings, executor="ray", **settings))


def _rows(outcome) -> pl.DataFrame:
    return pl.read_parquet(outcome.run_dir / "rows.parquet")


def test_rows_and_memory_equal_a_local_run(coded_release: DatasetRelease, tmp_path: Path) -> None:
    plan = make_plan(FrameDigestPolicy, SpyReader)
    local = run_plan(plan, coded_release, tmp_path / "local")
    # one stream per call: the four streams are spread over both actors
    spread = run_plan(_on_ray(plan, ray_actors=2, streams_in_flight=1, decode_workers=1,
                              ray_cpus_per_actor=1), coded_release, tmp_path / "ray")
    assert _rows(spread).equals(_rows(local))
    assert RunDir(spread.run_dir).memory_logs() == RunDir(local.run_dir).memory_logs()
    assert spread.summary["streams"] == local.summary["streams"] == {
        "total": 4, "finished": 4, "failed": 0}
    assert spread.summary["timing"]["clips"] == local.summary["timing"]["clips"]
    assert spread.lost_workers == ()
    assert RunDir(spread.run_dir).manifest().to_json()["run"]["executor"] == "ray"


def test_progress_counts_the_actors_clips_and_questions(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    """The progress display sees each clip and question an actor did, not only whole streams."""
    plan = make_plan(FrameDigestPolicy, SpyReader)
    counts = {}
    for name, run in (("local", plan), ("ray", _on_ray(plan, ray_actors=2, streams_in_flight=1))):
        events: list[tuple[str, str]] = []
        runner = StreamingRunner(run, coded_release, tmp_path / name,
                                 on_progress=lambda *event: events.append(event))
        runner.run(build_manifest(run.describe(coded_release), ["pytest"]))
        counts[name] = Counter(events)
    assert counts["ray"] == counts["local"]
    assert {event for event, _ in counts["ray"]} == {"clip", "question", "stream"}


def test_a_lost_actor_costs_only_its_unfinished_streams(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    """One actor runs all four streams at once; it dies on coded-0's last clip, after the
    three shorter streams finished. Only coded-0 runs again, on a fresh actor."""
    starts = tmp_path / "starts.log"
    config = CrashConfig(stream="coded-0", once_marker=str(tmp_path / "crashed"),
                         starts_log=str(starts))
    plan = make_plan(CrashingPolicy, SpyReader, policy_config=config, streams_in_flight=4)
    outcome = run_plan(_on_ray(plan, ray_actors=1), coded_release, tmp_path / "ray")
    assert Counter(starts.read_text().split()) == {
        "coded-0": 2, "coded-1": 1, "coded-2": 1, "coded-3": 1}
    assert len(outcome.lost_workers) == 1 and "ActorDiedError" in outcome.lost_workers[0]
    assert outcome.failed_streams == ()
    local = run_plan(make_plan(FrameDigestPolicy, SpyReader), coded_release, tmp_path / "local")
    columns = ["question_id", "memory_digest", "memory_entries", "failure"]
    assert _rows(outcome).select(columns).equals(_rows(local).select(columns))


def test_a_stream_that_keeps_losing_its_actor_costs_no_other_stream(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    """coded-1 kills its actor every time, while coded-0 is still running beside it: coded-0
    runs again (alone, as every stream lost before) and finishes; coded-1 fails once it was
    started ``ray_stream_attempts`` times."""
    starts = tmp_path / "starts.log"
    config = CrashConfig(stream="coded-1", starts_log=str(starts))
    plan = make_plan(CrashingPolicy, SpyReader, policy_config=config, streams_in_flight=4)
    outcome = run_plan(_on_ray(plan, ray_actors=1, ray_stream_attempts=2), coded_release,
                       tmp_path / "run")
    assert Counter(starts.read_text().split()) == {
        "coded-0": 2, "coded-1": 2, "coded-2": 1, "coded-3": 1}
    assert outcome.failed_streams == ("coded-1",)
    assert len(outcome.lost_workers) == 2
    rows = _rows(outcome)
    failed = rows.filter(pl.col("stream_id") == "coded-1")
    assert set(failed["failure"]) == {"executor_error"}
    assert "lost 2 times (ray_stream_attempts=2)" in failed["error"][0]
    assert rows.filter(pl.col("stream_id") != "coded-1")["failure"].null_count() == (
        rows.height - failed.height)
    assert outcome.summary["streams"] == {"total": 4, "finished": 4, "failed": 1}


def test_an_actor_that_stops_reporting_is_killed_and_its_stream_retried(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    """A hang is a loss too: the actor is killed ``ray_progress_timeout_s`` after its last
    report, its stream runs again (here: hangs again), and the run ends."""
    config = CrashConfig(stream="coded-3", hang=True)
    plan = make_plan(CrashingPolicy, SpyReader, policy_config=config, streams_in_flight=1)
    outcome = run_plan(
        _on_ray(plan, ray_actors=2, ray_stream_attempts=2, ray_progress_timeout_s=4),
        coded_release, tmp_path)
    assert outcome.failed_streams == ("coded-3",)
    assert outcome.lost_workers == (
        "killed after no report within ray_progress_timeout_s=4",) * 2
    assert set(_rows(outcome).filter(pl.col("stream_id") == "coded-3")["failure"]) == {
        "executor_error"}


def test_a_policy_that_learns_across_streams_is_refused(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    plan = _on_ray(make_plan(WaveLearner, SpyReader), ray_actors=1)
    with pytest.raises(ConfigError, match="learns across streams .* --executor local"):
        run_plan(plan, coded_release, tmp_path)
    assert not (tmp_path / "manifest.json").exists()


def test_a_policy_the_actors_cannot_import_is_refused_in_one_line(
    coded_release: DatasetRelease, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every node needs the plugin modules a plan names; one importable only by the driver
    stops the run before its directory is opened, naming the module."""
    (tmp_path / "driver_only.py").write_text(
        "from plugins import FrameDigestPolicy\n\n"
        "class DriverOnlyPolicy(FrameDigestPolicy):\n    name = 'driver-only'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from driver_only import DriverOnlyPolicy

    plan = _on_ray(make_plan(DriverOnlyPolicy, SpyReader), ray_actors=1)
    with pytest.raises(ConfigError) as refused:
        run_plan(plan, coded_release, tmp_path / "run")
    assert str(refused.value).startswith("the Ray actors did not start: ")
    assert "No module named 'driver_only'" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "run").exists()


def test_actors_the_cluster_has_no_room_for_are_refused(
    coded_release: DatasetRelease, tmp_path: Path
) -> None:
    plan = _on_ray(make_plan(FrameDigestPolicy, SpyReader), ray_gpus_per_actor=1)
    with pytest.raises(ConfigError, match="0 GPUs: room for 0 actors of 1 CPUs and 1 GPUs"):
        run_plan(plan, coded_release, tmp_path)


def test_the_cli_resumes_a_local_run_on_ray(mini_cache: Path, tmp_path: Path) -> None:
    """A run killed after some streams goes on with ``--executor ray``: the executor is a
    throughput setting (unhashed), and the rows equal an uninterrupted local run's."""
    command = ["run", "--task", "mini", "--policy", "oracle", "--limit", "3"]
    assert main([*command, "--out", str(tmp_path / "local")]) == 0
    run = tmp_path / "local" / "mini" / "oracle"
    rows = pl.read_parquet(run / "rows.parquet")
    for part in (run / "parts").glob("000001.*"):  # as if killed before stream 1 was written
        part.unlink()
    code = main([*command, "--out", str(tmp_path / "local"), "--resume", "--executor", "ray",
                 "--set", "ray_actors=2"])
    assert code == 0
    assert pl.read_parquet(run / "rows.parquet").equals(rows)
    manifest = RunDir(run).manifest().to_json()
    assert manifest["run"]["executor"] == "local"
    assert [r["run"]["executor"] for r in manifest["resumes"]] == ["ray"]


def test_ray_settings_are_checked() -> None:
    from taskmem_bench.taskconfig import RunSettings

    for bad in ({"executor": "dask"}, {"ray_actors": 0}, {"ray_stream_attempts": 0},
                {"ray_cpus_per_actor": -1}, {"ray_gpus_per_actor": -0.5},
                {"ray_progress_timeout_s": 0}):
        with pytest.raises(ValueError):
            RunSettings(**bad)
    assert RunSettings(decode_workers=3).actor_cpus == 4
    assert RunSettings(decode_workers=3, ray_cpus_per_actor=2).actor_cpus == 2
