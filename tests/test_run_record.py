"""The run record: the manifest and the memory logs are written and read through one model
each (``manifest.Manifest``, ``memorylog.MemoryLog``), whoever reads them."""

from __future__ import annotations

import ast
import json
import tarfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from taskmem_bench.manifest import Manifest, ManifestError, hashed_plan
from taskmem_bench.memory import MemoryEntry, StoredEntry
from taskmem_bench.memorylog import MemoryLog, MemoryLogError, memory_frame, row_snapshots
from taskmem_bench.results import RunDir, RunDirError
from taskmem_bench.taskconfig import config_hash

ROOT = Path(__file__).parent.parent
COMMITTED = sorted((ROOT / "results").glob("*.tar.gz"))


def _committed_manifest(path: Path = COMMITTED[0]) -> dict[str, Any]:
    with tarfile.open(path) as tar:
        return json.load(tar.extractfile("manifest.json"))


@pytest.mark.parametrize("bundle", COMMITTED, ids=lambda p: p.name)
def test_a_committed_manifest_reads_back_as_the_same_json(bundle: Path) -> None:
    raw = _committed_manifest(bundle)
    manifest = Manifest.parse(raw)
    assert manifest.to_json() == raw
    assert config_hash(hashed_plan(raw)) == manifest.plan_hash


def test_keys_this_version_does_not_know_are_kept() -> None:
    raw = _committed_manifest()
    raw["future"] = {"a": [1, 2]}
    raw["policy"]["args"] = {"b": True}
    assert Manifest.parse(raw).to_json() == raw


def _set(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, leaf = path.split(".")
    target = raw
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[leaf]
    else:
        target[leaf] = value
    return raw


@pytest.mark.parametrize(("path", "value", "reason"), [
    ("plan_hash", KeyError, "manifest.json: plan_hash: Field required"),
    ("seed", "0", "manifest.json: seed: Input should be a valid integer"),
    ("policy.class", 1, "manifest.json: policy.class: Input should be a valid string"),
    ("git.dirty", "yes", "manifest.json: git.dirty: Input should be a valid boolean"),
    ("side_channels.allowed", "speech", "manifest.json: side_channels.allowed: Input should be a valid list"),
])
def test_a_malformed_manifest_is_refused_naming_its_first_bad_field(path: str, value: Any, reason: str) -> None:
    with pytest.raises(ManifestError) as refused:
        Manifest.parse(_set(_committed_manifest(), path, value))
    assert str(refused.value) == reason


@pytest.mark.parametrize("key", ["evil\nSECOND LINE \u202e", "x" * 10_000])
def test_a_bad_field_under_a_bundles_own_key_is_named_on_one_printable_line(key: str) -> None:
    """The manifest's keys are untrusted: one that holds a newline or a bidi control is escaped
    in the reason, and a long one is cut short."""
    raw = _committed_manifest()
    raw["libraries"] = {key: 1}
    with pytest.raises(ManifestError) as refused:
        Manifest.parse(raw)
    reason = str(refused.value)
    assert reason.isprintable() and len(reason) < 250
    assert reason.startswith("manifest.json: libraries.")
    assert reason.endswith(": Input should be a valid string")


def _replanned(manifest: Manifest, **sections: Any) -> Manifest:
    raw = manifest.to_json() | sections
    return Manifest.parse(raw | {"plan_hash": config_hash(hashed_plan(raw))})


def test_a_resume_appends_its_record_and_a_new_plan_is_refused(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    first = Manifest.parse(_committed_manifest())
    run.open(first, resume=False)
    run.record_backends({"reader": {"backend": "transformers", "device": "cpu"}})
    again = first.updated(command=["taskmem-bench", "run", "--resume"], run={"batch_size": 1})
    run.open(again, resume=True)
    stored = run.manifest()
    assert stored.command == first.command and stored.run == first.run  # the run's own
    (resume,) = stored.resumes
    assert resume.command == again.command and resume.run == {"batch_size": 1}
    assert stored.backends == {"reader": {"backend": "transformers", "device": "cpu"}}
    assert json.loads(run.manifest_path.read_text()) == stored.to_json()
    with pytest.raises(RunDirError, match=r"different plan \(differs in seed\)"):
        run.open(_replanned(first, seed=1), resume=True)


def _entry(written_at: float, text: str, clip_index: int = 0) -> StoredEntry:
    return StoredEntry(written_at, clip_index, MemoryEntry(written_at - 10, written_at, text, "speech", {"n": 1}))


LOG = MemoryLog("s-1", (_entry(10.0, "Ann says hi."), _entry(10.0, "A red cup."), _entry(20.0, "Bob leaves.", 1)))


def test_a_log_reads_back_from_jsonl_and_from_a_bundle_table() -> None:
    assert MemoryLog.from_jsonl(LOG.to_jsonl(), "s-1") == LOG
    frame = memory_frame({0: LOG, 1: MemoryLog(None, (_entry(5.0, "unasked"),))})
    assert frame.height == 4
    assert MemoryLog.from_frame(frame) == {"s-1": LOG}  # a stream without questions has no id


def test_a_snapshot_is_exactly_the_memory_written_by_its_time() -> None:
    snapshot = LOG.snapshot(2, 15.0)
    assert [e.text for e in snapshot.entries] == ["Ann says hi.", "A red cup."]
    assert snapshot.stream_id == "s-1" and snapshot.t == 15.0
    with pytest.raises(MemoryLogError, match="not the memory written by its ask time"):
        LOG.snapshot(1, 15.0)  # leaves out an entry written by then
    with pytest.raises(MemoryLogError, match="not the memory written by its ask time"):
        LOG.snapshot(3, 15.0)  # includes one written later
    with pytest.raises(MemoryLogError, match="not a prefix of the memory log"):
        LOG.snapshot(4, 30.0)


def _rows(**changes: Any) -> pl.DataFrame:
    snapshot = LOG.snapshot(2, 15.0)
    row = {"question_id": "q-1", "stream_id": "s-1", "memory_entries": 2, "ask_time": 15.0,
           "memory_digest": snapshot.digest, "memory_tokens": snapshot.n_tokens,
           "memory_chars": snapshot.n_chars, "failure": None}
    return pl.DataFrame([row | changes])


def test_row_snapshots_check_what_each_row_states() -> None:
    assert row_snapshots(_rows(), {"s-1": LOG})["q-1"] == LOG.snapshot(2, 15.0)
    with pytest.raises(MemoryLogError) as wrong:
        row_snapshots(_rows(memory_chars=1), {"s-1": LOG})
    assert str(wrong.value) == "question 'q-1': its memory digest or size does not match the memory log"
    assert wrong.value.reason(lambda v: f"<{v}>") == ("question <q-1>: its memory digest or size "
                                                       "does not match the memory log")
    with pytest.raises(MemoryLogError, match="question 'q-1': its snapshot is not a prefix"):
        row_snapshots(_rows(), {})


@pytest.mark.parametrize(("frame", "reason"), [
    (memory_frame({0: LOG}).with_columns(pl.col("position").replace({2: 5})),
     "stream 's-1' is not one log with consecutive positions"),
    (memory_frame({0: LOG}).with_columns(pl.col("t_end").replace({20.0: float("inf")})),
     "entry 2 of stream 's-1' is incomplete or has non-finite times"),
    (memory_frame({0: LOG, 1: LOG}), "one stream id is given to several streams"),
])
def test_a_table_that_is_not_the_runners_is_refused(frame: pl.DataFrame, reason: str) -> None:
    with pytest.raises(MemoryLogError) as refused:
        MemoryLog.from_frame(frame)
    assert str(refused.value) == reason


def test_the_lm_eval_bridge_reads_runs_without_the_leaderboard() -> None:
    tree = ast.parse((ROOT / "tasks" / "lm_eval" / "utils.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert not {m for m in imported if m and m.split(".")[0] == "leaderboard"}
