"""Smoke test of ``benchmarks/batching.py``: it runs the real runner on a tiny ``mini`` split
and prints its figures and the ratio (no timing is asserted: the machine is shared)."""

from __future__ import annotations

import importlib
import math
import re
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def test_batching_benchmark_prints_its_figures_and_the_ratio(
    mini_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    batching = importlib.import_module("batching")
    results = batching.main([
        "--latency", "0.01", "--batch-size", "2", "--streams-in-flight", "2", "4",
        "--episodes", "3", "--episode-seconds", "20",
    ])
    out = capsys.readouterr().out
    assert "task mini: 3 streams of 20 s, batch_size 2" in out
    assert re.search(r"in_flight\s+clips\s+calls\s+fill\s+wall_s\s+ideal_s", out)
    ratios = re.findall(r"^ratio (\d+\.\d+) \(streams_in_flight=(\d+), batch_size=2\)$", out, re.M)
    assert [n for _, n in ratios] == ["2", "4"]
    for m, (ratio, _) in zip(results, ratios):
        assert m.clips > 0 and m.calls >= math.ceil(m.clips / 2)  # never better than full batches
        assert m.ideal_s == pytest.approx(math.ceil(m.clips / 2) * 0.01)
        assert 0 < m.fill <= 1 and float(ratio) == pytest.approx(m.ratio, abs=1e-3)
    assert results[0].clips == results[1].clips  # the same streams, whatever the batching
