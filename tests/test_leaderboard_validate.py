"""Validation: real runs are accepted as they are; every kind of forgery gets its one reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from leaderboard import tables, validate
from leaderboard.bundle import read_bundle
from leaderboard.validate import (
    CONTROL, FIXED, OPEN, Rejected, Rejection, validate_all, validate_bundle,
)
from leaderboard_support import Parts, rename_policy, rewrite_bundle, tamper_accuracy
from taskmem_bench.datasets.mini import Config, MiniDataset
from taskmem_bench.taskconfig import config_hash


def test_real_runs_are_accepted_on_their_tracks(leaderboard_bundles: dict[str, Path]) -> None:
    runs = {key: validate_bundle(read_bundle(path)) for key, path in leaderboard_bundles.items()}
    assert {key: run.track for key, run in runs.items()} == {
        "blind": CONTROL, "oracle": CONTROL, "speech": FIXED, "deaf": FIXED, "open": OPEN,
    }
    assert runs["deaf"].side_channels == () and runs["speech"].side_channels == ("speech",)
    for run in runs.values():
        summary = run.bundle.summary
        assert (run.scores.n, run.scores.acc, run.scores.acc_ci_low) == (
            summary["n"], summary["acc"], summary["acc_ci_low"])
    assert runs["oracle"].scores.acc > runs["speech"].scores.acc > runs["deaf"].scores.acc == 0


def test_memory_gain_is_against_the_blind_control_with_the_same_reader(
    leaderboard_bundles: dict[str, Path],
) -> None:
    runs = [validate_bundle(read_bundle(path)) for path in leaderboard_bundles.values()]
    frame = tables.runs_frame(runs)
    gain = dict(zip(frame["policy"], frame["gain"]))
    acc = dict(zip(frame["policy"], frame["acc"]))
    assert gain["oracle"] == pytest.approx(acc["oracle"] - acc["blind"])
    assert gain["blind"] == 0.0
    assert gain["plugins:FrameDigestPolicy"] is None  # its reader has no blind control


def test_the_tampered_accuracy_is_rejected_with_its_reason(
    leaderboard_bundles: dict[str, Path], tmp_path: Path
) -> None:
    forged = rewrite_bundle(leaderboard_bundles["oracle"], tmp_path / "t.tar.gz", tamper_accuracy)
    with pytest.raises(Rejected, match=r"summary.json states acc = 0\.\d+, re-scoring the rows gives 0\.\d+"):
        validate_bundle(read_bundle(forged))


def _set_row(index: int, **values) -> Callable[[Parts], None]:
    def edit(parts: Parts) -> None:
        parts.rows = parts.rows.with_row_index("i").with_columns(
            pl.when(pl.col("i") == index).then(pl.lit(v)).otherwise(pl.col(k)).alias(k)
            for k, v in values.items()
        ).drop("i")

    return edit


def _manifest(**paths) -> Callable[[Parts], None]:
    """Set dotted manifest paths; the task hash is recomputed unless a path sets it."""

    def edit(parts: Parts) -> None:
        for path, value in paths.items():
            *parents, leaf = path.split("__")
            target = parts.manifest
            for key in parents:
                target = target[key]
            target[leaf] = value
        if "task__hash" not in paths:
            parts.manifest["task"]["hash"] = config_hash(parts.manifest["task"]["config"])

    return edit


def _memory(**values) -> Callable[[Parts], None]:
    def edit(parts: Parts) -> None:
        first = parts.memory.with_row_index("i")
        parts.memory = first.with_columns(
            pl.when(pl.col("i") == 0).then(pl.lit(v)).otherwise(pl.col(k)).alias(k)
            for k, v in values.items()
        ).drop("i")

    return edit


def _summary(path: str, value) -> Callable[[Parts], None]:
    def edit(parts: Parts) -> None:
        *parents, leaf = path.split(".")
        target = parts.summary
        for key in parents:
            target = target[key]
        target[leaf] = value

    return edit


def _other_episodes(parts: Parts) -> None:
    config = dict(parts.manifest["dataset"]["config"], episodes=3)
    parts.manifest["dataset"]["config"] = config
    parts.manifest["task"]["config"]["dataset_args"] = config
    parts.manifest["dataset"]["revision"] = MiniDataset().revision(Config(**config))
    parts.manifest["task"]["hash"] = config_hash(parts.manifest["task"]["config"])


def _move_gold(index: int) -> Callable[[Parts], None]:
    """Another option becomes the gold of a correctly answered row, its flags left as they were."""

    def edit(parts: Parts) -> None:
        gold = parts.rows["gold"][index]
        _set_row(index, gold="B" if gold == "A" else "A")(parts)

    return edit


def _duplicate_first_row(parts: Parts) -> None:
    parts.rows = pl.concat([parts.rows, parts.rows.head(1)])


def _first_correct(bundles: dict[str, Path]) -> int:
    rows = read_bundle(bundles["oracle"]).rows
    return rows.with_row_index("i").filter(pl.col("correct"))["i"][0]


FORGERIES = {
    "verdict flipped": ("oracle", lambda i: _set_row(i, correct=False, abstained=True, parsed="E"),
                        "the row says parsed = 'E', re-scoring its raw output gives"),
    "raw output replaced": ("oracle", lambda i: _set_row(i, raw_output="I am sure. Answer: E"),
                            "re-scoring its raw output gives 'E'"),
    "gold moved": ("oracle", lambda i: _move_gold(i),
                   "the row says correct = True, re-scoring its raw output gives False"),
    "gold not a label": ("oracle", lambda i: _set_row(i, gold="Z"), "gold 'Z' is not an option label"),
    "failed row with output": ("oracle", lambda i: _set_row(i, failure="policy_error"),
                               "failed but has a reader output"),
    "row of another policy": ("oracle", lambda i: _set_row(i, policy="blind"),
                              "rows whose policy is not the manifest's"),
    "question twice": ("oracle", lambda i: _duplicate_first_row, "lists a question twice"),
    "memory text edited": ("oracle", lambda i: _memory(text="A forged memory."),
                           "memory digest or size does not match"),
    "memory written late": ("oracle", lambda i: _memory(written_at=10_000.0),
                            "is not the memory written by its ask time"),
    "memory time not finite": ("oracle", lambda i: _memory(t_start=float("nan")),
                               "is incomplete or has non-finite times"),
    "ask time not finite": ("oracle", lambda i: _set_row(i, ask_time=float("inf")),
                            "non-finite ask times"),
    "unknown task": ("oracle", lambda i: _manifest(task__name="videomme_long"),
                     "task 'videomme_long' is not a task of this package version"),
    "budget lifted": ("oracle", lambda i: _manifest(task__config__memory__tokens_per_clip=None),
                      "task config differs from the shipped task mini at memory.tokens_per_clip "
                      "(run: None, shipped: 24)"),
    "config edited, hash kept": ("oracle", lambda i: _manifest(task__config__stream__sample_fps=4.0,
                                                               task__hash="0" * 16),
                                 "manifest task hash does not match its task config"),
    "revision forged": ("oracle", lambda i: _manifest(dataset__revision="mini-v0:mixed"),
                        "does not match the dataset config it states"),
    "other dataset split": ("oracle", lambda i: _other_episodes,
                            "is not the one task mini uses in this package version"),
    "control impostor": ("speech", lambda i: rename_policy("oracle"),
                         "policy oracle is a control name, but its class"),
    "malformed manifest": ("oracle", lambda i: _manifest(seed="0"), "manifest.json: seed: "),
    "count edited": ("oracle", lambda i: _summary("n", 1000), "summary.json states n = 1000"),
    "category edited": ("oracle", lambda i: _summary("by_category.ocr.acc", 0.99),
                        "summary.json states by_category.ocr.acc = 0.99"),
    "interval edited": ("oracle", lambda i: _summary("acc_ci_high", 1.0), "states acc_ci_high = 1.0"),
    "memory total edited": ("oracle", lambda i: _summary("memory.tokens_total", 1),
                            "memory.tokens_total = 1, the memory log holds"),
    "memory rate edited": ("oracle", lambda i: _summary("memory.tokens_per_hour", 5.0),
                           "memory.tokens_per_hour = 5.0 does not follow"),
}


@pytest.mark.parametrize("case", FORGERIES)
def test_each_forgery_is_rejected_with_one_clear_reason(
    leaderboard_bundles: dict[str, Path], tmp_path: Path, case: str
) -> None:
    source, make_edit, reason = FORGERIES[case]
    edit = make_edit(_first_correct(leaderboard_bundles))
    forged = rewrite_bundle(leaderboard_bundles[source], tmp_path / "f.tar.gz", edit)
    with pytest.raises(Rejected) as error:
        validate_bundle(read_bundle(forged))
    assert reason in str(error.value)
    assert "\n" not in str(error.value)


def test_a_second_bundle_of_the_same_entry_and_task_is_a_duplicate(
    leaderboard_bundles: dict[str, Path], tmp_path: Path
) -> None:
    copy = tmp_path / "zz-copy.tar.gz"
    copy.write_bytes(leaderboard_bundles["oracle"].read_bytes())
    accepted, rejected = validate_all([read_bundle(leaderboard_bundles["oracle"]), read_bundle(copy)])
    assert len(accepted) == 1
    assert [r.source for r in rejected] == ["zz-copy.tar.gz"]
    assert rejected[0].reason.startswith("duplicate of oracle.tar.gz")


def test_a_bundle_that_breaks_the_validator_is_rejected_not_fatal(
    leaderboard_bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Input no check foresaw (here: a check that raises) costs its bundle, not the build."""
    real = validate.check_memory

    def fragile(rows: pl.DataFrame, memory: pl.DataFrame) -> None:
        if rows["policy"][0] == "oracle":
            raise TypeError("unforeseen")
        real(rows, memory)

    monkeypatch.setattr(validate, "check_memory", fragile)
    bundles = [read_bundle(leaderboard_bundles[key]) for key in ("oracle", "blind")]
    accepted, rejected = validate_all(bundles)
    assert [r.policy for r in accepted] == ["blind"]
    assert rejected == [Rejection("oracle.tar.gz", "cannot be validated (TypeError: 'unforeseen')")]


def test_dataset_revision_is_known_without_generating_data(tmp_path: Path) -> None:
    cache = tmp_path / "never-made"
    config = Config(cache_dir=str(cache))
    assert MiniDataset().revision(config) == MiniDataset().revision(Config())  # location is free
    assert MiniDataset().revision(Config(seed=1)) != MiniDataset().revision(Config())
    assert not cache.exists()


def test_manifest_revision_is_the_adapters(leaderboard_bundles: dict[str, Path]) -> None:
    stated = read_bundle(leaderboard_bundles["blind"]).manifest["dataset"]
    assert stated["revision"] == MiniDataset().revision(Config(**stated["config"]))
