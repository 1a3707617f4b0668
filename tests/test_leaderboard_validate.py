"""Validation: real runs are accepted as they are; every kind of forgery gets its one reason."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from leaderboard import tables, validate
from leaderboard.accepted import Rejection
from leaderboard.bundle import read_bundle
from leaderboard.errors import Rejected
from leaderboard.tracks import CONTROL, FIXED, OPEN
from leaderboard.validate import validate_all, validate_bundle
from leaderboard.plan_check import dataset_split, planned_rows, within_limit
from leaderboard.summary import check_summary
from leaderboard_support import Parts, consistent, rename_policy, rewrite_bundle, tamper_accuracy
from taskmem_bench.datasets.mini import Config, MiniDataset
from taskmem_bench.manifest import Manifest
from taskmem_bench.readers.cpu import CpuReader
from taskmem_bench.taskconfig import config_hash, load_task


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


def _answer_gold(parts: Parts) -> None:
    """The forged control of the review: every raw output names the gold answer."""
    parts.rows = parts.rows.with_columns(
        raw_output=pl.lit("Answer: ") + pl.col("gold"), parsed=pl.col("gold"), correct=True,
        abstained=False, parse_failed=False,
    )


def _keep(condition: pl.Expr) -> Callable[[Parts], None]:
    def edit(parts: Parts) -> None:
        parts.rows = parts.rows.filter(condition)

    return edit


def _restream(parts: Parts) -> None:
    """Each question its own stream: more clusters, narrower intervals."""
    parts.rows = parts.rows.with_columns(stream_id=pl.col("question_id"))


def _hours(hours: float) -> Callable[[Parts], None]:
    """More video hours, and the memory rates that follow from them: a smaller Mem/h."""

    def edit(parts: Parts) -> None:
        memory = parts.summary["memory"]
        memory["video_hours"] = hours
        for unit in ("tokens", "chars"):
            memory[f"{unit}_per_hour"] = round(memory[f"{unit}_total"] / hours, 1)

    return edit


def _first_correct(bundles: dict[str, Path]) -> int:
    rows = read_bundle(bundles["oracle"]).rows
    return rows.with_row_index("i").filter(pl.col("correct"))["i"][0]


FORGERIES = {
    "verdict flipped": ("oracle", lambda i: _set_row(i, correct=False, abstained=True, parsed="E"),
                        "the row says parsed = 'E', re-scoring its raw output gives"),
    "raw output replaced": ("oracle", lambda i: _set_row(i, raw_output="I am sure. Answer: E"),
                            "re-scoring its raw output gives 'E'"),
    "gold moved": ("oracle", lambda i: _move_gold(i), "the row's gold"),
    "gold not a label": ("oracle", lambda i: _set_row(i, gold="Z"), "the row's gold 'Z' is not the dataset's"),
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
    "raw outputs made up": ("blind", lambda i: _answer_gold, "raw output of question "
                            "'mini-mixed-0000-q00' is not what reader cpu produces from the bundled memory"),
    "rows dropped": ("oracle", lambda i: _keep(pl.col("correct")), "rows.parquet lacks question"),
    "question invented": ("oracle", lambda i: _set_row(i, question_id="made-up"),
                          "rows.parquet lacks question 'mini-mixed-0000-q01' of the dataset"),
    "question reworded": ("oracle", lambda i: _set_row(i, question="Is it easy?"),
                          "the row's question 'Is it easy?' is not the dataset's"),
    "one stream per question": ("oracle", lambda i: _restream,
                                "rows.parquet has questions of more than the 2 streams run"),
    "limit lifted": ("oracle", lambda i: _manifest(limit=None),
                     "summary.json counts 2 streams; the dataset has 12 in this split"),
    "evidence delay negative": ("oracle", lambda i: _set_row(i, evidence_delay=-1.0),
                                "evidence delays that are negative or not finite"),
    "name with bidi control": ("speech", lambda i: rename_policy("keep\u202espeech"),
                               r"manifest policy name 'keep\u202espeech' must be 1 to 200 printable"),
    "video hours inflated": ("oracle", lambda i: _hours(1000.0),
                             "memory.video_hours = 1000.0; the dataset's streams last 0.0667 hours"),
    "memory total edited": ("oracle", lambda i: _summary("memory.tokens_total", 1),
                            "memory.tokens_total = 1, the memory log holds"),
    "memory rate edited": ("oracle", lambda i: _summary("memory.tokens_per_hour", 5.0),
                           "memory.tokens_per_hour = 5.0 does not follow"),
}


SUMMARY_FORGERIES = {case for case in FORGERIES if "edited" in case and "memory text" not in case}
"""Forgeries of the summary itself; every other one gets its summary recomputed (``consistent``)."""


@pytest.mark.parametrize("case", FORGERIES)
def test_each_forgery_is_rejected_with_one_clear_reason(
    leaderboard_bundles: dict[str, Path], tmp_path: Path, case: str
) -> None:
    source, make_edit, reason = FORGERIES[case]
    edit = make_edit(_first_correct(leaderboard_bundles))
    if case not in SUMMARY_FORGERIES:
        edit = consistent(edit)
    forged = rewrite_bundle(leaderboard_bundles[source], tmp_path / "f.tar.gz", edit)
    with pytest.raises(Rejected) as error:
        validate_bundle(read_bundle(forged))
    assert reason in str(error.value)
    assert "\n" not in str(error.value)


def test_bundles_of_the_same_entry_count_once_if_equal_and_never_if_they_conflict(
    leaderboard_bundles: dict[str, Path], tmp_path: Path
) -> None:
    """Neither file names nor order decide: equal results keep the one whose digest sorts
    first, and a conflicting bundle cannot take a genuine one's place (both are kept out)."""
    genuine = leaderboard_bundles["oracle"]

    def reexported(parts: Parts) -> None:
        parts.header["exported_at"] = "2000-01-01T00:00:00+00:00"

    again = rewrite_bundle(genuine, tmp_path / "0-again.tar.gz", reexported)
    for order in ([genuine, again], [again, genuine]):
        accepted, rejected = validate_all([read_bundle(path) for path in order])
        kept = min((read_bundle(p) for p in order), key=lambda b: b.digest)
        assert [r.bundle.source for r in accepted] == [kept.source]
        assert [r.reason for r in rejected] == [
            f"duplicate of {kept.source}: the same entry on task mini with identical rows"]


def test_a_conflicting_bundle_keeps_both_off_the_site(
    leaderboard_bundles: dict[str, Path], tmp_path: Path
) -> None:
    """Two accepted bundles of one entry with different rows: which is genuine cannot be told
    (here the reader is not reproducible, so a raw output can differ), so neither is shown."""
    genuine = leaderboard_bundles["open"]
    other = rewrite_bundle(genuine, tmp_path / "0-other.tar.gz",
                           consistent(_set_row(0, raw_output="Thinking harder.\nAnswer: E", parsed="E",
                                               correct=False, abstained=True, parse_failed=False)))
    accepted, rejected = validate_all([read_bundle(other), read_bundle(genuine)])
    assert accepted == []
    assert {r.source: r.reason.split(":")[0] for r in rejected} == {
        "0-other.tar.gz": "conflicts with open.tar.gz", "open.tar.gz": "conflicts with 0-other.tar.gz"}
    assert "different rows; none is shown until one is removed" in rejected[0].reason


def test_a_control_needs_a_reproducible_reader(
    leaderboard_bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CpuReader, "deterministic", False)
    with pytest.raises(Rejected, match="a control run must use a registered deterministic reader"):
        validate_bundle(read_bundle(leaderboard_bundles["blind"]))
    speech = validate_bundle(read_bundle(leaderboard_bundles["speech"]))  # not a control: shown,
    assert (speech.track, speech.reproduced) == (FIXED, False)  # as re-scored, not reproduced


def test_without_a_dataset_plan_counts_and_a_floor_on_video_hours_still_hold(
    leaderboard_bundles: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MiniDataset, "planned_streams", lambda self, config: None)
    run = validate_bundle(read_bundle(leaderboard_bundles["oracle"]))
    assert run.video_hours == run.bundle.summary["memory"]["video_hours"]
    moved = rewrite_bundle(leaderboard_bundles["oracle"], tmp_path / "g.tar.gz",
                           consistent(_move_gold(_first_correct(leaderboard_bundles))))
    with pytest.raises(Rejected, match="the row says correct = True, re-scoring its raw output gives False"):
        validate_bundle(read_bundle(moved))
    short = rewrite_bundle(leaderboard_bundles["oracle"], tmp_path / "h.tar.gz", _hours(0.001))
    with pytest.raises(Rejected, match=r"video_hours = 0.001, less than the 0.0\d+ hours up to"):
        validate_bundle(read_bundle(short))


def test_planned_questions_are_the_questions_a_run_records(leaderboard_bundles: dict[str, Path]) -> None:
    """The plan is cheap (no media) and equals what the runner wrote, field for field."""
    bundle = read_bundle(leaderboard_bundles["blind"])
    plan = MiniDataset().planned_streams(Config(**bundle.manifest["dataset"]["config"]))
    assert len(plan) == 12 and all(s.duration == 120.0 for s in plan)
    ours = planned_rows(plan[:2]).sort("question_id")
    assert ours.equals(bundle.rows.select(ours.columns).sort("question_id"))


def test_a_bundle_that_breaks_the_validator_is_rejected_not_fatal(
    leaderboard_bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Input no check foresaw (here: a check that raises) costs its bundle, not the build."""
    real = validate.check_memory

    def fragile(rows: pl.DataFrame, memory: pl.DataFrame) -> dict:
        if rows["policy"][0] == "oracle":
            raise TypeError("unforeseen")
        return real(rows, memory)

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


def test_a_blind_control_with_memory_is_rejected(
    leaderboard_bundles: dict[str, Path], tmp_path: Path
) -> None:
    """A forged blind run with a made-up memory log would inflate its own accuracy and shrink
    every other entry's memory gain."""
    oracle_memory = read_bundle(leaderboard_bundles["oracle"]).memory

    def remember(parts: Parts) -> None:
        parts.memory = oracle_memory

    forged = rewrite_bundle(leaderboard_bundles["blind"], tmp_path / "b.tar.gz", remember)
    with pytest.raises(Rejected, match="a blind control writes no memory"):
        validate_bundle(read_bundle(forged))


def test_the_checks_use_the_shipped_tasks_scoring_and_dataset_never_those_a_bundle_names(
    leaderboard_bundles: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code a bundle names is never imported: the plan and the summary come from the shipped
    task's dataset and scoring, even where the manifest names others (``check_known`` refuses
    such a manifest first; this holds without it)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "named_by_a_bundle.py").write_text("raise SystemExit('imported')\n")
    bundle = read_bundle(leaderboard_bundles["oracle"])
    raw = json.loads(json.dumps(bundle.manifest))
    raw["task"]["config"]["scoring"] = "named_by_a_bundle:Scoring"
    raw["dataset"]["name"] = "named_by_a_bundle:Dataset"
    manifest, shipped = Manifest.parse(raw), load_task("mini")
    plan = within_limit(dataset_split(manifest, shipped), manifest.limit)
    scores, _ = check_summary(bundle, manifest, shipped, plan)
    assert len(plan) == 2 and scores.n == bundle.summary["n"]
    assert "named_by_a_bundle" not in sys.modules

