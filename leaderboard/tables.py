"""What the site shows, computed with polars from accepted runs: the main table's entries,
memory gain over the blind control, per-benchmark breakdowns and question samples.

Entries fall in three groups, shown apart in that order: the ranking (full runs of
non-control policies), runs of part of a benchmark (``--limit`` short of its streams: not
comparable with full runs), and the controls (reference points, never ranked).

Everything here is derived from rows the package re-scored (``accepted.AcceptedRun``); nothing
is copied from a bundle's own summary except memory size, which validation checked against the
bundle's memory log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from leaderboard.accepted import AcceptedRun
from leaderboard.display import model_label, redact_paths
from leaderboard.labels import RunNames
from leaderboard.tracks import CONTROL
from taskmem_bench.memory import MemorySnapshot
from taskmem_bench.memorylog import MemoryLog
from taskmem_bench.schema import ANSWER_LABELS
from taskmem_bench.scoring.metrics import Scores, score_by

DELAY_BUCKETS: tuple[tuple[float, str], ...] = (
    (15, "< 15 s"), (60, "15 s – 1 min"), (300, "1 – 5 min"), (1800, "5 – 30 min"),
    (7200, "30 min – 2 h"), (43200, "2 – 12 h"), (float("inf"), "≥ 12 h"),
)
"""Evidence delay (ask time minus the end of the evidence) in buckets from mini's seconds to
EgoLife's days; a bucket's upper edge is exclusive."""
NO_DELAY = "no evidence span"
TAG_BREAKDOWNS = {"duration": "Video duration"}
"""Dataset tags (the rows' ``tags`` JSON) that get their own breakdown when present."""
SAMPLE_SIZE = 16
RANKED, PARTIAL, CONTROLS = "ranked", "partial", "controls"
GROUPS = {
    RANKED: "Ranking",
    PARTIAL: "Runs of part of a benchmark: not ranked with full runs",
    CONTROLS: "Controls: reference points, not ranked",
}
"""Main-table groups in display order, with their headings."""


def group_of(run: AcceptedRun) -> str:
    """Which ``GROUPS`` the run is shown in."""
    if run.track == CONTROL:
        return CONTROLS
    return RANKED if run.coverage.limit is None else PARTIAL


def board_order(run: AcceptedRun) -> tuple[int, bool, float, str]:
    """A benchmark page's order: by group, then best Acc first."""
    return (list(GROUPS).index(group_of(run)), run.scores.acc is None, -(run.scores.acc or 0.0),
            run.policy)


@dataclass(frozen=True)
class Cell:
    """One run's numbers on one benchmark."""

    run_id: str
    scores: Scores
    gain: float | None
    """Acc minus the blind control's Acc (same task, dataset revision, reader and coverage:
    streams and questions skipped); None without one."""
    tokens_per_hour: float | None


@dataclass(frozen=True)
class Entry:
    """One row of the main table: a policy configuration with its runs, one per benchmark."""

    policy: str
    name: str
    """The policy name with the config settings that set the entry apart (``RunNames.name``)."""
    version: str
    link: str | None
    track: str
    group: str
    reader: str
    models: list[str]
    """The policy's and the reader's model, as ``policy: …`` / ``reader: …``; empty for none."""
    side_channels: str
    seed: int
    limit: int | None
    """The normalised stream limit: None for full runs, else the streams covered."""
    cells: dict[str, Cell]
    mean_acc: float | None
    """Mean Acc over the benchmarks this entry has runs on."""
    complete: bool
    """Whether it has a run on every benchmark on the board; only complete entries' means are
    comparable, so incomplete ones rank after all complete ones."""


def runs_frame(runs: Sequence[AcceptedRun]) -> pl.DataFrame:
    """One row per accepted run, with its re-scored numbers and the blind control's Acc."""
    frame = pl.DataFrame(
        [
            {
                "run_id": r.run_id, "task": r.task, "policy": r.policy,
                "version": r.manifest.policy.version, "link": r.bundle.policy_link,
                "track": r.track, "group": group_of(r), "reader": r.manifest.reader.name,
                "reader_key": r.reader_key, "models": models(r), "side_channels": r.side_label,
                "seed": r.manifest.seed, "limit": r.coverage.limit, "entry_key": r.entry_key,
                "revision": r.manifest.dataset.revision, "limit_key": r.coverage.key,
                "acc": r.scores.acc, "tokens_per_hour": r.tokens_per_hour,
            }
            for r in runs
        ],
        schema={
            "run_id": pl.String, "task": pl.String, "policy": pl.String, "version": pl.String,
            "link": pl.String, "track": pl.String, "group": pl.String, "reader": pl.String,
            "reader_key": pl.String, "models": pl.List(pl.String), "side_channels": pl.String,
            "seed": pl.Int64, "limit": pl.Int64, "entry_key": pl.String, "revision": pl.String,
            "limit_key": pl.String, "acc": pl.Float64, "tokens_per_hour": pl.Float64,
        },
    )
    keys = ["task", "revision", "reader_key", "limit_key"]
    blind = (
        frame.filter((pl.col("policy") == "blind") & (pl.col("track") == CONTROL))
        .sort("run_id")
        .unique(subset=keys, keep="first")
        .select(*keys, blind_acc="acc")
    )
    return (
        frame.join(blind, on=keys, how="left")
        .with_columns(gain=pl.col("acc") - pl.col("blind_acc"))
        .drop("revision", "limit_key")
    )


def models(run: AcceptedRun) -> list[str]:
    """The run's models as a visitor tells runs apart by them: two ``caption`` runs on
    different models are different rows."""
    parts = (("policy", run.manifest.policy.model), ("reader", run.manifest.reader.model))
    return [f"{who}: {model_label(model)}" for who, model in parts if model is not None]


def entries(runs: Sequence[AcceptedRun], names: RunNames | None = None) -> list[Entry]:
    """Main-table rows by group (``GROUPS``); within one, entries with a run on every benchmark
    first, by best mean Acc, then the others by mean Acc over what they cover (a mean over
    easier benchmarks only must not outrank one over all); entries without a score last.
    ``names`` are the build's (by default those of ``runs``)."""
    names = names or RunNames.of(runs)
    by_id = {r.run_id: r for r in runs}
    benchmarks = {r.task for r in runs}
    frame = runs_frame(runs)
    found = []
    for (_,), group in frame.sort("task").group_by("entry_key", maintain_order=True):
        first = group.row(0, named=True)
        cells = {
            row["task"]: Cell(row["run_id"], by_id[row["run_id"]].scores, row["gain"],
                              row["tokens_per_hour"])
            for row in group.iter_rows(named=True)
        }
        accs = group["acc"].drop_nulls()
        found.append(Entry(
            policy=first["policy"], name=names.name(by_id[first["run_id"]]),
            version=first["version"], link=first["link"],
            track=first["track"], group=first["group"], reader=first["reader"],
            models=list(first["models"]), side_channels=first["side_channels"],
            seed=first["seed"], limit=first["limit"], cells=cells,
            mean_acc=float(accs.mean()) if len(accs) else None,
            complete=set(cells) == benchmarks,
        ))
    return sorted(found, key=lambda e: (list(GROUPS).index(e.group), not e.complete,
                                        e.mean_acc is None, -(e.mean_acc or 0.0), e.name))


# -------------------------------------------------------------------------------- breakdowns


@dataclass(frozen=True)
class Breakdown:
    """Scores of each run of one benchmark by group (category, delay bucket, ...)."""

    title: str
    groups: list[str]
    runs: list[tuple[AcceptedRun, dict[str, Scores]]]


def breakdowns(runs: Sequence[AcceptedRun]) -> list[Breakdown]:
    """The breakdowns of one benchmark's runs: by category, by evidence delay, and by each tag
    in ``TAG_BREAKDOWNS`` that the rows carry."""
    columns = [("Category", "category", None), ("Evidence delay", "delay_bucket", delay_order())]
    with_tags = [with_groups(r.bundle.rows) for r in runs]
    for tag, title in TAG_BREAKDOWNS.items():
        if any(rows[tag].is_not_null().any() for rows in with_tags):
            columns.append((title, tag, None))
    found = []
    for title, column, order in columns:
        per_run = [(r, score_by(rows, column)) for r, rows in zip(runs, with_tags)]
        present = {group for _, scores in per_run for group in scores}
        groups = [g for g in order if g in present] if order else sorted(present)
        found.append(Breakdown(title, groups, per_run))
    return found


def delay_order() -> list[str]:
    return [label for _, label in DELAY_BUCKETS] + [NO_DELAY]


def with_groups(rows: pl.DataFrame) -> pl.DataFrame:
    """The rows with a ``delay_bucket`` column and one column per breakdown tag."""
    delay = pl.col("evidence_delay")
    bucket = pl.when(delay.is_null()).then(pl.lit(NO_DELAY))
    for edge, label in DELAY_BUCKETS:
        bucket = bucket.when(delay < edge).then(pl.lit(label))
    return rows.with_columns(
        delay_bucket=bucket.otherwise(pl.lit(NO_DELAY)),
        **{tag: pl.col("tags").str.json_path_match(f"$.{tag}") for tag in TAG_BREAKDOWNS},
    )


# ------------------------------------------------------------------------------------ samples


@dataclass(frozen=True)
class SampleQuestion:
    """One question as the run saw it: options, the reader's reply, verdict and the memory."""

    question_id: str
    category: str
    question: str
    options: list[tuple[str, str]]
    gold: str
    parsed: str | None
    outcome: str
    raw_output: str | None
    failure: str | None
    error: str | None  # its traceback or judge error, local paths redacted
    ask_time: float
    evidence_delay: float | None
    memory: str
    memory_entries: int
    memory_tokens: int


def outcome(row: dict) -> str:
    if row["failure"] is not None:
        return "failed"
    if row["parse_failed"]:
        return "unparsed"
    return "correct" if row["correct"] else "abstained" if row["abstained"] else "wrong"


def sample(run: AcceptedRun, size: int = SAMPLE_SIZE) -> list[SampleQuestion]:
    """A deterministic sample that mixes outcomes (correct, wrong, abstained, ...): questions
    are shuffled by a hash of their id and taken round-robin over outcomes."""
    rows = sorted(
        run.bundle.rows.iter_rows(named=True),
        key=lambda r: hashlib.sha256(r["question_id"].encode()).hexdigest(),
    )
    pools: dict[str, list[dict]] = {}
    for row in rows:
        pools.setdefault(outcome(row), []).append(row)
    picked: list[dict] = []
    while len(picked) < size and any(pools.values()):
        for name in sorted(pools):
            if pools[name] and len(picked) < size:
                picked.append(pools[name].pop(0))
    logs = MemoryLog.from_frame(run.bundle.memory)
    picked.sort(key=lambda r: (r["stream_id"], r["ask_time"], r["question_id"]))
    return [_sample_question(row, logs) for row in picked]


def _sample_question(row: dict, logs: Mapping[str, MemoryLog]) -> SampleQuestion:
    options = json.loads(row["options"])
    return SampleQuestion(
        question_id=row["question_id"], category=row["category"] or "", question=row["question"] or "",
        options=list(zip(ANSWER_LABELS, [*options, "cannot be determined from memory"])),
        gold=row["gold"], parsed=row["parsed"], outcome=outcome(row),
        raw_output=row["raw_output"], failure=row["failure"], error=redact_paths(row["error"]),
        ask_time=row["ask_time"],
        evidence_delay=row["evidence_delay"],
        memory=_shown_memory(row, logs).render(),
        memory_entries=row["memory_entries"], memory_tokens=row["memory_tokens"],
    )


def _shown_memory(row: dict, logs: Mapping[str, MemoryLog]) -> MemorySnapshot:
    """The memory the row's reader was shown, from its stream's log (the validator checked it
    is the log's prefix written by the ask time); a failed row without a snapshot shows none."""
    stream_id = row["stream_id"]
    has_snapshot = row["memory_digest"] is not None
    log = logs.get(stream_id, MemoryLog(stream_id)) if has_snapshot else MemoryLog(stream_id)
    return log.snapshot(row["memory_entries"], row["ask_time"])
