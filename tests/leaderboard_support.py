"""Shared by the leaderboard tests: short real ``mini`` runs packed as bundles, a third policy,
and a way to rewrite a bundle the way a careless or dishonest submitter would."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from leaderboard.bundle import (
    CHECKSUMS, HEADER, MANIFEST, MEMORY, ROWS, SUMMARY, checksums_text, export_bundle, pack,
)
from taskmem_bench.cli import main
from taskmem_bench.memory import MemoryEntry, count_tokens
from taskmem_bench.policy import Policy
from taskmem_bench.results import summarize

HOSTILE = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
"""A policy name that would run script if any page failed to escape it."""
COMMITTED = Path(__file__).parent.parent / "results"
FULL_RUNS = ("mini-blind.tar.gz", "mini-readme-heard.tar.gz")
"""Committed bundles of full ``mini`` runs (all 12 videos) that ``make_results`` adds: the test
runs cover 2 videos, and a board needs full runs to rank."""


@dataclass(frozen=True)
class KeepSpeechConfig:
    max_lines: int = 2


class KeepSpeech(Policy):
    """Keeps what was said, word for word (the README's example policy): a non-control policy
    that scores between blind and oracle on ``mini``."""

    name = "keep-speech"
    version = "1"
    Config = KeepSpeechConfig

    def start_stream(self, info: Any) -> None:
        pass

    def observe(self, clips: Any) -> list[list[MemoryEntry]]:
        return [
            [MemoryEntry(t.t_start, t.t_end, t.text, kind="speech") for t in c.text[: self.config.max_lines]]
            for c in clips
        ]


def make_bundles(folder: Path) -> dict[str, Path]:
    """Runs on the first 2 ``mini`` videos, exported: the two controls, the speech-keeping
    policy with speech allowed and with no side channel, and an open-track run (another
    reader); keyed blind, oracle, speech, deaf, open."""
    runs = folder / "runs"
    short = ["--task", "mini", "--limit", "2"]
    policies = "blind,oracle,leaderboard_support:KeepSpeech"
    assert main(["run", *short, "--policy", policies, "--out", str(runs)]) == 0
    assert main(["run", *short, "--policy", "leaderboard_support:KeepSpeech", "--set", "allowed=[]",
                 "--out", str(runs / "deaf")]) == 0
    assert main(["run", *short, "--policy", "plugins:FrameDigestPolicy", "--reader",
                 "plugins:SpyReader", "--out", str(runs / "open")]) == 0
    sources = {
        "blind": runs / "mini" / "blind",
        "oracle": runs / "mini" / "oracle",
        "speech": runs / "mini" / "leaderboard_support_KeepSpeech",
        "deaf": runs / "deaf" / "mini" / "leaderboard_support_KeepSpeech",
        "open": runs / "open" / "mini" / "plugins_FrameDigestPolicy",
    }
    link = {"speech": "https://example.org/keep-speech"}
    return {
        key: export_bundle(path, folder / "bundles" / f"{key}.tar.gz", link=link.get(key))
        for key, path in sources.items()
    }


@dataclass
class Parts:
    """A bundle's members, decoded, for a test to edit."""

    header: dict[str, Any]
    manifest: dict[str, Any]
    summary: dict[str, Any]
    rows: pl.DataFrame
    memory: pl.DataFrame


def read_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def rewrite_bundle(
    source: Path, target: Path, edit: Callable[[Parts], None], *, fix_checksums: bool = True
) -> Path:
    """Decode ``source``, let ``edit`` change it, pack it to ``target``; with ``fix_checksums``
    SHA256SUMS is recomputed (a consistent forgery), else the original one is kept."""
    members = read_members(source)
    parts = Parts(
        header=json.loads(members[HEADER]), manifest=json.loads(members[MANIFEST]),
        summary=json.loads(members[SUMMARY]), rows=pl.read_parquet(io.BytesIO(members[ROWS])),
        memory=pl.read_parquet(io.BytesIO(members[MEMORY])),
    )
    edit(parts)
    rewritten = {
        HEADER: json.dumps(parts.header).encode(), MANIFEST: json.dumps(parts.manifest).encode(),
        SUMMARY: json.dumps(parts.summary).encode(), ROWS: _parquet(parts.rows),
        MEMORY: _parquet(parts.memory),
    }
    unchanged = {n: members[n] for n in rewritten if _same(n, members[n], rewritten[n])}
    rewritten.update(unchanged)  # keep untouched members byte-identical
    rewritten[CHECKSUMS] = checksums_text(rewritten).encode() if fix_checksums else members[CHECKSUMS]
    target.write_bytes(pack(rewritten))
    return target


def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def _same(name: str, old: bytes, new: bytes) -> bool:
    if name.endswith(".json"):
        return json.loads(old) == json.loads(new)
    return pl.read_parquet(io.BytesIO(old)).equals(pl.read_parquet(io.BytesIO(new)))


RUN_KEYS = ("task", "policy", "reader", "streams", "stream_failures", "skipped", "memory", "timing")
"""Summary keys the runner adds to what ``results.summarize`` computes from the rows."""


def consistent(edit: Callable[[Parts], None]) -> Callable[[Parts], None]:
    """``edit``, followed by what a careful forger does next: the summary recomputed from the
    edited rows and memory, so that only the check aimed at the edit can catch it."""

    def forge(parts: Parts) -> None:
        edit(parts)
        memory = dict(parts.summary["memory"])
        hours = memory["video_hours"]
        for unit, count in (("tokens", count_tokens), ("chars", len)):
            memory[f"{unit}_total"] = total = sum(map(count, parts.memory["text"].to_list()))
            memory[f"{unit}_per_hour"] = round(total / hours, 1) if hours else None
        parts.summary = summarize(parts.rows, {**{k: parts.summary[k] for k in RUN_KEYS},
                                               "memory": memory},
                                  scoring=parts.summary["scoring"]["name"])

    return forge


def rename_policy(name: str) -> Callable[[Parts], None]:
    """An edit that gives the run another policy name everywhere it appears."""

    def edit(parts: Parts) -> None:
        parts.manifest["policy"]["name"] = name
        parts.summary["policy"] = name
        parts.rows = parts.rows.with_columns(policy=pl.lit(name))

    return edit


def hostile(parts: Parts) -> None:
    """Markup in the free-text fields a valid bundle controls (questions are the dataset's, and
    raw outputs of a reproducible reader are re-run), applied to the open-track bundle."""
    rename_policy(HOSTILE)(parts)
    parts.rows = parts.rows.with_columns(raw_output=pl.lit(HOSTILE + "\n") + pl.col("raw_output"))
    parts.manifest["policy"]["config"] = {"note": HOSTILE}


def tamper_accuracy(parts: Parts) -> None:
    """The edit the issue names: a better accuracy typed into the summary."""
    parts.summary["acc"] = parts.summary["acc"] + 0.25


def make_results(folder: Path, bundles: dict[str, Path]) -> Path:
    """A results folder as contributors would fill it: the real bundles (runs of 2 videos), two
    committed full runs (``FULL_RUNS``), a valid bundle whose texts hold markup, and a tampered
    one (edited accuracy, checksums recomputed)."""
    folder.mkdir(parents=True)
    for path in [*bundles.values(), *(COMMITTED / name for name in FULL_RUNS)]:
        (folder / path.name).write_bytes(path.read_bytes())
    rewrite_bundle(bundles["open"], folder / "hostile.tar.gz", hostile)
    rewrite_bundle(bundles["oracle"], folder / "tampered.tar.gz", tamper_accuracy)
    return folder
