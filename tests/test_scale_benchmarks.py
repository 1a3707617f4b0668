"""Smoke tests of ``benchmarks/pipeline.py`` and ``benchmarks/ray_scaling.py``: each runs its
real workload at a tiny size and prints its figures, last the ratio (no timing is asserted:
the machine is shared)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


@pytest.fixture
def benchmarks(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module


def test_pipeline_prints_the_ideal_the_sequential_time_and_the_ratio(
    benchmarks, capsys: pytest.CaptureFixture[str]
) -> None:
    ratio = benchmarks("pipeline").main([
        "--streams", "2", "--seconds", "20", "--height", "144", "--latency", "balanced",
        "--workers", "2", "--batch-size", "2",
    ])
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert re.match(r"2 streams of 20 s, 144p 30 fps with grain; batch_size 2; \d+ generate calls",
                    lines[0])
    decode = float(re.search(r"^total decode: (\d+\.\d+) s", out, re.M).group(1))
    model = float(re.search(r"^total model: (\d+\.\d+) s", out, re.M).group(1))
    assert model == pytest.approx(decode / 2, abs=0.02)  # balanced
    sequential = float(re.search(r"^sequential decode \+ model: (\d+\.\d+) s", out, re.M).group(1))
    assert sequential == pytest.approx(decode + model, abs=0.02)
    ideal = float(
        re.search(r"^ideal max\(decode / workers, model\): (\d+\.\d+) s", out, re.M).group(1))
    assert ideal == pytest.approx(max(decode / 2, model), abs=0.02)
    assert re.search(r"^run with 2 decode workers, prefetch 2: \d+\.\d+ s$", out, re.M)
    assert lines[-1] == f"ratio ideal/actual {ratio:.3f}"


def test_ray_scaling_prints_both_runs_and_the_speed_up(
    benchmarks, mini_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    speed_up = benchmarks("ray_scaling").main(["--episodes", "2", "--rounds", "1"])
    out = capsys.readouterr().out
    assert "mini: 2 streams, BusyPolicy with 1 hash rounds per clip" in out
    assert "the same rows on both executors" in out
    assert re.search(r"^local runner: \d+\.\d+ s$", out, re.M)
    assert re.search(r"^ray executor, 2 actors: \d+\.\d+ s$", out, re.M)
    assert out.strip().splitlines()[-1] == f"speed-up {speed_up:.2f}"
