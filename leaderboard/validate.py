"""Is a well-formed bundle true? The leaderboard shows only runs it re-scored itself.

A bundle that ``bundle.read_bundle`` accepted for form is accepted here only if, cheap checks
first and per-row work last,

1. its manifest has every field the leaderboard needs, with the right types, and printable
   names (no control or bidi characters, no spaces at either end) that do not look like a
   control's or a registered reader's without being it (``names``);
2. it is *known* to this package version and verifiable here: the dataset is synthetic (no
   copy of a real release is at hand to check questions against, so real-dataset runs are not
   ranked), the task is a shipped task without an oracle-localised memory view, its config is the
   shipped one (the reader and the allowed side channels may differ: they define tracks), the
   task hash matches the config, and the dataset revision is what this package's adapter
   reports for the task's dataset config (``DatasetAdapter.revision``, no data read); a policy
   named like a control must be this package's control class;
3. its stream counts agree with the limit, and, where the adapter lists its questions
   (``DatasetAdapter.planned_streams``), the rows are exactly the dataset's questions of the
   first ``limit`` streams, gold and ask times included (``plan_check``); the limit is then
   normalised to the streams it covers;
4. ``results.summarize`` over the rows gives the summary's numbers (Acc/Cov/Prec, their
   intervals, counts, per-category scores, failures), the memory totals match the log, and
   the video hours are the dataset's (or at least the streams' last ask times without a plan);
5. re-scoring every row's raw reader output with ``scoring.verdict.judge_choice`` (open
   answers: ``judge_open`` over the judge's recorded reply, parsed again, not re-judged)
   gives the row's parsed answer and verdict (failed rows have no output and count as wrong),
   and the task's scoring variants give the row's ``variants``;
6. every row's memory snapshot is the prefix of its stream's memory log written by the ask
   time, with the stated digest, token and character counts;
7. where the reader is registered, deterministic and the installed version and prompt, re-running
   it on each row's question and snapshot gives the row's raw output (``reproduce``); controls
   must use such a reader.

What it cannot check: that the memory log is what the named policy writes (the policy is not
re-run; only the blind control's log is known: it must be empty), and, for readers that are not
deterministic or not installed, that the reader produced the raw outputs; for datasets without
a plan, that the questions and golds are the dataset's; that an LLM judge wrote the judge
replies it records.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import polars as pl

from leaderboard.bundle import Bundle
from leaderboard.display import model_label
from leaderboard.errors import Rejected, show
from leaderboard.manifest import ManifestError, ManifestView, ModelView, parse_manifest
from leaderboard.names import lookalike
from leaderboard.plan_check import (
    Coverage, check_streams, coverage, dataset_split, video_hours, within_limit,
)
from leaderboard.reproduce import check_outputs, reproducible_reader
from taskmem_bench.datasets import load_adapter
from taskmem_bench.datasets.base import PlannedStream
from taskmem_bench.memory import MemoryEntry, MemorySnapshot, count_tokens
from taskmem_bench.policy import available_policies
from taskmem_bench.provenance import MANIFEST_VERSION
from taskmem_bench.readers import available_readers, load_reader
from taskmem_bench.results import summarize
from taskmem_bench.schema import ANSWER_LABELS
from taskmem_bench.scoring.anls import ABSTAIN_TEXT
from taskmem_bench.scoring.judge import Judgment, judgment_of
from taskmem_bench.scoring.metrics import Scores, score_rows
from taskmem_bench.scoring.variants import VERDICT_BY, DatasetScoring, get_scoring
from taskmem_bench.scoring.verdict import judge_choice, judge_open
from taskmem_bench.taskconfig import (
    ConfigError,
    TaskConfig,
    available_tasks,
    config_hash,
    load_task,
    validate,
)

TOLERANCE = 1e-9
CONTROL_POLICIES = ("blind", "oracle", "oracle-priority", "recent-frames")
FIXED, OPEN, CONTROL = "fixed-reader", "open", "control"
TRACKS = (FIXED, OPEN, CONTROL)
FREE_TASK_KEYS = ("description", "reader", "reader_args", "dataset_args", "side_channels.allowed")
"""Task-config keys a run may set differently from the shipped task: the reader (it decides the
track), the allowed side channels (shown and filtered on), the dataset arguments (checked
through the dataset revision instead, so that cache location is free) and the description."""


REQUIRED_ROW_FIELDS = (
    "stream_id", "question_id", "category", "question", "options", "answer_format", "ask_time", "memory_entries",
    "memory_shown", "memory_tokens", "memory_chars", "gold", "correct", "abstained", "parse_failed",
    "verdict_by", "tags",
)
"""Row fields every row has, answered or failed (the rest may be null, e.g. on failed rows)."""


@dataclass(frozen=True)
class AcceptedRun:
    """A bundle that passed every check, with the scores this package computed from its rows."""

    bundle: Bundle
    manifest: ManifestView
    track: str
    scores: Scores
    video_hours: float
    """The hours memory per hour divides by, as validation derived them."""
    reproduced: bool
    """Whether the raw outputs were reproduced by re-running the reader."""
    coverage: Coverage
    """The streams the run covers of its benchmark; its ``limit`` is the run's normalised one."""

    @property
    def task(self) -> str:
        return self.manifest.task.name

    @property
    def policy(self) -> str:
        return self.manifest.policy.name

    @property
    def side_channels(self) -> tuple[str, ...]:
        return tuple(self.manifest.side_channels.allowed)

    @property
    def side_label(self) -> str:
        return ", ".join(sorted(self.side_channels)) or "none"

    @property
    def label(self) -> str:
        """The policy name and what sets this run apart from others of the same policy on the
        same benchmark: its model, another reader, fewer side channels."""
        label = self.policy
        if self.manifest.policy.model is not None:
            label += f" · {model_label(self.manifest.policy.model)}"
        if self.track == OPEN:
            label += f" · reader {self.manifest.reader.name}"
        if set(self.side_channels) != set(self.manifest.side_channels.available):
            label += f" · side channels: {self.side_label}"
        return label

    @cached_property
    def run_id(self) -> str:
        """Stable, URL-safe and unique per bundle content."""
        return f"{_slug(self.task)}-{_slug(self.policy)}-{self.bundle.digest[:10]}"

    @cached_property
    def reader_key(self) -> str:
        """The reader's identity: runs with equal keys had the same reader, prompt, config and
        model."""
        r = self.manifest.reader
        return json.dumps([r.name, r.version, r.prompt_hash, r.config, _identity(r.model)],
                          sort_keys=True)

    @cached_property
    def entry_key(self) -> str:
        """One leaderboard row: the same policy, config and model, reader, side channels, seed
        and normalised stream limit; an entry holds at most one run per task."""
        m = self.manifest
        return json.dumps(
            [m.policy.name, m.policy.version, m.policy.config, _identity(m.policy.model),
             self.reader_key, sorted(self.side_channels), m.seed, self.coverage.limit],
            sort_keys=True,
        )

    @cached_property
    def claims(self) -> Claims:
        b, m = self.bundle, self.manifest
        exporter = b.header.get("exported_by")
        return Claims(
            link=b.policy_link, policy_class=m.policy.cls,
            commit=m.git.commit if m.git is not None else None,
            exporter=json.dumps(exporter, sort_keys=True),
        )

    @property
    def tokens_per_hour(self) -> float | None:
        tokens = self.bundle.summary["memory"]["tokens_total"]
        return round(tokens / self.video_hours, 1) if self.video_hours else None


@dataclass(frozen=True)
class Claims:
    """What a bundle says about where its results come from, besides the results themselves.
    Two bundles with identical results must claim the same, or one is a copy of the other."""

    link: str | None
    policy_class: str
    commit: str | None
    exporter: str

    def differences(self, other: Claims) -> list[str]:
        """What ``other`` claims differently, as a reason names it."""
        return [label for field, label in CLAIM_LABELS.items()
                if getattr(self, field) != getattr(other, field)]


CLAIM_LABELS = {"link": "policy link", "policy_class": "policy class", "commit": "git commit",
                "exporter": "exporting package"}


def _identity(model: ModelView | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump()


@dataclass(frozen=True)
class Rejection:
    source: str
    reason: str


def validate_all(bundles: Iterable[Bundle]) -> tuple[list[AcceptedRun], list[Rejection]]:
    """Validate every bundle, then keep at most one run per (entry, task): see
    ``resolve_duplicates``. File names play no part, so no name can win a tie."""
    accepted: list[AcceptedRun] = []
    rejected: list[Rejection] = []
    for bundle in bundles:
        try:
            accepted.append(validate_bundle(bundle))
        except Rejected as exc:
            rejected.append(Rejection(bundle.source, str(exc)))
        except Exception as exc:  # hostile input this validator did not foresee: reject, go on
            rejected.append(Rejection(bundle.source, f"cannot be validated ({type(exc).__name__}: "
                                                     f"{show(str(exc))})"))
    kept, duplicates = resolve_duplicates(accepted)
    return kept, rejected + duplicates


def resolve_duplicates(runs: Iterable[AcceptedRun]) -> tuple[list[AcceptedRun], list[Rejection]]:
    """Runs of the same entry on the same task: if they all have identical rows and memory and
    make the same claims (``Claims``), they are one result and the one whose content digest
    sorts first is kept (which one does not matter, they are equal). Otherwise none is kept and
    each rejection names the others: different results cannot both be the entry's, and identical
    results under different claims mean one is a copy, which must not take the entry over (nor
    can this site tell which came first: an export time is whatever the bundle says). A second
    bundle can thus never replace a genuine one; at worst it keeps both off the site, with the
    build failing and naming both."""
    groups: dict[tuple[str, str], list[AcceptedRun]] = {}
    for run in runs:
        groups.setdefault((run.entry_key, run.task), []).append(run)
    kept: list[AcceptedRun] = []
    rejected: list[Rejection] = []
    for group in groups.values():
        group.sort(key=lambda r: r.bundle.digest)
        first = group[0]
        same = all(r.bundle.rows.equals(first.bundle.rows) and r.bundle.memory.equals(first.bundle.memory)
                   for r in group[1:])
        claimed = sorted({d for r in group[1:] for d in r.claims.differences(first.claims)})
        if same and not claimed:
            kept.append(first)
            rejected += [Rejection(r.bundle.source, f"duplicate of {first.bundle.source}: the "
                                   f"same entry on task {r.task} with identical rows")
                         for r in group[1:]]
            continue
        why = (f"identical rows and memory under another {' and '.join(claimed)}, so one is a "
               "copy" if same else "different rows")
        for run in group:
            others = ", ".join(o.bundle.source for o in group if o is not run)
            rejected.append(Rejection(run.bundle.source, f"conflicts with {others}: same policy, "
                                      "config, model, reader, side channels, seed and covered "
                                      f"streams on task {run.task} but {why}; none is shown "
                                      "until one is removed"))
    return kept, rejected


def validate_bundle(bundle: Bundle) -> AcceptedRun:
    try:
        manifest = parse_manifest(bundle.manifest)
    except ManifestError as exc:
        raise Rejected(str(exc)) from None
    shipped = check_known(manifest)
    if manifest.policy.name == "blind" and bundle.memory.height:
        raise Rejected(f"a blind control writes no memory, but this bundle's memory log has "
                       f"{bundle.memory.height} entries")
    run_track = track(manifest, shipped)
    reader = reproducible_reader(manifest)
    if reader is None and run_track == CONTROL:
        raise Rejected(f"a control run must use a registered deterministic reader at its "
                       f"installed version and prompt, so that its raw outputs can be "
                       f"reproduced; reader {show(manifest.reader.name)} is not one")
    check_rows(bundle.rows, manifest)
    split = dataset_split(manifest)
    plan = within_limit(split, manifest.limit)
    covered = coverage(manifest, check_streams(bundle, manifest, plan), split)
    scores, hours = check_summary(bundle, manifest, plan)
    scoring = get_scoring(shipped.scoring)
    for row in bundle.rows.iter_rows(named=True):
        _rescore(row, scoring)
    snapshots = check_memory(bundle.rows, bundle.memory)
    if reader is not None:
        check_outputs(reader, manifest.reader.name, bundle.rows, snapshots)
    return AcceptedRun(bundle, manifest, run_track, scores, hours, reader is not None, covered)


# --------------------------------------------------------------------------------- known to us


def check_known(m: ManifestView) -> TaskConfig:
    """The run's task, dataset and controls are this package version's; returns the shipped task."""
    if m.manifest_version != MANIFEST_VERSION:
        raise Rejected(f"manifest version {m.manifest_version} is not {MANIFEST_VERSION}")
    check_names(m)
    if m.package.name != "taskmem-bench":
        raise Rejected(f"manifest is from package {show(m.package.name)}, not taskmem-bench")
    if m.task.name not in available_tasks():
        raise Rejected(f"task {show(m.task.name)} is not a task of this package version; "
                       f"known: {', '.join(available_tasks())}")
    shipped = load_task(m.task.name)
    if shipped.memory_view != "full":
        raise Rejected(f"task {m.task.name} shows the reader oracle-localised memory (memory view "
                       f"{shipped.memory_view}); the leaderboard ranks causal runs only")
    if config_hash(m.task.config) != m.task.hash:
        raise Rejected("manifest task hash does not match its task config")
    differences = _differences(shipped.to_dict(), m.task.config)
    if differences:
        raise Rejected(f"task config differs from the shipped task {m.task.name} at "
                       f"{differences[0]}; only the reader and allowed side channels may differ")
    _check_dataset(m, shipped)
    if m.side_channels.model_dump() != m.task.config.get("side_channels"):
        raise Rejected("manifest side channels differ from its task config's")
    if not set(m.side_channels.allowed) <= set(m.side_channels.available):
        raise Rejected("manifest allows side channels the task does not have")
    if m.reader.name != m.task.config.get("reader"):
        raise Rejected("manifest reader differs from its task config's reader")
    if m.policy.name in CONTROL_POLICIES:  # lookalikes of these were refused by check_names
        ours = available_policies().get(m.policy.name)
        if ours != m.policy.cls:
            raise Rejected(f"policy {m.policy.name} is a control name, but its class "
                           f"{show(m.policy.cls)} is not this package's ({ours or 'none'})")
    return shipped


def check_names(m: ManifestView) -> None:
    """Names are shown as they are, so each must read as what it is: printable, without spaces
    at either end, and not a lookalike (``names.skeleton``) of a control's or a registered
    reader's name, which would pass for that control or reader on the site."""
    for what, name in (("policy name", m.policy.name), ("policy version", m.policy.version),
                       ("reader name", m.reader.name), ("reader version", m.reader.version)):
        if not (0 < len(name) <= 200 and name.isprintable() and name == name.strip()):
            raise Rejected(f"manifest {what} {show(name)} must be 1 to 200 printable characters "
                           "(no control or bidi characters, no spaces at either end)")
    for what, name, reserved in (("policy", m.policy.name, CONTROL_POLICIES),
                                 ("reader", m.reader.name, available_readers())):
        like = lookalike(name, reserved)
        if like is not None:
            raise Rejected(f"{what} name {show(name)} looks like {like!r} (after NFKC and "
                           f"confusable letters) without being it; choose a name that does not "
                           f"pass for {like!r}")


def _check_dataset(m: ManifestView, shipped: TaskConfig) -> None:
    adapter = load_adapter(shipped.dataset)()
    if m.dataset.name != shipped.dataset:
        raise Rejected(f"dataset {show(m.dataset.name)} is not task {shipped.name}'s "
                       f"({shipped.dataset})")
    if m.dataset.config != m.task.config.get("dataset_args"):
        raise Rejected("manifest dataset config differs from its task config's dataset_args")
    if m.dataset.synthetic != adapter.synthetic:
        raise Rejected(f"manifest says synthetic={m.dataset.synthetic}; dataset "
                       f"{shipped.dataset} is synthetic={adapter.synthetic}")
    if m.policy.privileged and not adapter.synthetic:
        raise Rejected("a privileged policy ran on real data")
    if not adapter.synthetic:
        raise Rejected(f"runs on {shipped.dataset} cannot be verified here: the leaderboard "
                       "holds no copy of that release to check the run's questions against, "
                       "so it ranks the synthetic benchmarks only")
    try:
        ours = adapter.revision(validate(adapter.Config, shipped.dataset_args, "dataset"))
        theirs = adapter.revision(validate(adapter.Config, m.dataset.config, "dataset"))
    except ConfigError as exc:
        raise Rejected(f"dataset config is not valid for {shipped.dataset}: {exc}") from None
    if m.dataset.revision != theirs:
        raise Rejected(f"dataset revision {show(m.dataset.revision)} does not match the "
                       f"dataset config it states ({theirs})")
    if theirs != ours:
        raise Rejected(f"dataset revision {show(theirs)} is not the one task {shipped.name} "
                       f"uses in this package version ({ours})")


def _differences(shipped: Mapping[str, Any], theirs: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths where the two task configs differ, outside ``FREE_TASK_KEYS``."""
    found = []
    for key in sorted(set(shipped) | set(theirs)):
        path = f"{prefix}{key}"
        if path in FREE_TASK_KEYS:
            continue
        a, b = shipped.get(key), theirs.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            found += _differences(a, b, f"{path}.")
        elif a != b:
            found.append(f"{path} (run: {show(b)}, shipped: {show(a)})")
    return found


def track(m: ManifestView, shipped: TaskConfig) -> str:
    """Controls are the control policies, privileged and non-memory-only policies; fixed-reader runs use the
    task's pinned reader exactly (name, version, prompt and config); the rest are open."""
    if m.policy.name in CONTROL_POLICIES or m.policy.privileged or not m.policy.memory_only:
        return CONTROL
    if m.reader.name != shipped.reader:
        return OPEN
    pinned = load_reader(shipped.reader)
    config = dataclasses.asdict(validate(pinned.Config, shipped.reader_args, "reader"))
    same = (
        m.reader.version == pinned.version
        and m.reader.prompt_hash == pinned.prompt_hash()
        and m.reader.config == json.loads(json.dumps(config))
    )
    return FIXED if same else OPEN


# ---------------------------------------------------------------------------------------- rows


def check_rows(rows: pl.DataFrame, m: ManifestView) -> None:
    """Every row belongs to this run and has the fields scoring needs, with sane values; one
    vectorised pass, before any per-row work."""
    if rows.is_empty():
        raise Rejected("rows.parquet has no rows")
    for column, value in (("task", m.task.name), ("policy", m.policy.name), ("reader", m.reader.name)):
        if not rows[column].eq_missing(value).all():
            raise Rejected(f"rows.parquet has rows whose {column} is not the manifest's")
    nulls = rows.select(REQUIRED_ROW_FIELDS).null_count().row(0, named=True)
    empty = [column for column, count in nulls.items() if count]
    if empty:
        raise Rejected(f"rows.parquet has nulls in {', '.join(empty)}")
    if rows["question_id"].is_duplicated().any():
        raise Rejected("rows.parquet lists a question twice")
    if not rows["ask_time"].is_finite().all():
        raise Rejected("rows.parquet has non-finite ask times")
    delay = rows["evidence_delay"].drop_nulls()
    if not (delay.is_finite().all() and (delay >= 0).all()):
        raise Rejected("rows.parquet has evidence delays that are negative or not finite")
    if (rows["memory_shown"] != rows["memory_entries"]).any():
        raise Rejected("rows.parquet has questions whose reader was shown only part of the "
                       "memory snapshot (an oracle-localised view); ranked runs show all of it")


def _rescore(row: Mapping[str, Any], scoring: DatasetScoring) -> None:
    """The row's verdict and scoring variants are what the package's scorers give for its raw
    output (and, for an open answer, for the judge's recorded reply)."""
    qid = show(row["question_id"])
    if row["answer_format"] == "open":
        options: list[str] | None = []
        if row["options"] != "[]":
            raise Rejected(f"question {qid}: an open question has options")
    elif row["answer_format"] == "multiple_choice":
        options = _options(row["options"])
        if options is None:
            raise Rejected(f"question {qid}: options are not a JSON list of 2 to "
                           f"{len(ANSWER_LABELS) - 1} strings")
        if row["gold"] not in ANSWER_LABELS[: len(options)]:
            raise Rejected(f"question {qid}: gold {show(row['gold'])} is not an option label")
    else:
        raise Rejected(f"question {qid}: answer format {show(row['answer_format'])} cannot be "
                       "re-scored by this package version")
    if row["verdict_by"] != VERDICT_BY[row["answer_format"]]:
        raise Rejected(f"question {qid}: verdict_by {show(row['verdict_by'])} is not "
                       f"{VERDICT_BY[row['answer_format']]}")
    if row["failure"] is not None:
        if row["raw_output"] is not None or row["correct"]:
            raise Rejected(f"question {qid} failed but has a reader output or counts as correct")
        return
    if row["raw_output"] is None:
        raise Rejected(f"question {qid} has neither a reader output nor a failure reason")
    if row["answer_format"] == "open":
        judgment = _judgment(row)
        try:
            verdict = judge_open(row["raw_output"], ABSTAIN_TEXT, judgment)
        except ValueError:
            raise Rejected(f"question {qid}: an open answer with neither a judge reply nor a "
                           "judge error") from None
        score = judgment.score if judgment is not None else None
        if row["judge_score"] != score:
            raise Rejected(f"question {qid}: judge_score {show(row['judge_score'])} is not the "
                           f"score in its judge reply ({score})")
    else:
        verdict = judge_choice(row["raw_output"], options, row["gold"])
    for field in ("parsed", "correct", "abstained", "parse_failed"):
        ours = getattr(verdict, field)
        if row[field] != ours:
            raise Rejected(f"question {qid}: the row says {field} = {show(row[field])}, "
                           f"re-scoring its raw output gives {ours!r}")
    ours = scoring.values(row["raw_output"], options, row["gold"])
    if row["variants"] != ours:
        raise Rejected(f"question {qid}: the row's scoring variants {show(row['variants'])} are "
                       f"not what re-scoring its raw output gives ({ours})")


def _judgment(row: Mapping[str, Any]) -> Judgment | None:
    """The judgment an open row records: its judge reply parsed again (re-parsed, not
    re-judged: the judge model is not called), or the failed call."""
    if row["judge_output"] is not None:
        return judgment_of(row["judge_output"])
    return Judgment("judge_error", None, None, None) if row["extraction"] == "judge_error" else None


def _options(text: str | None) -> list[str] | None:
    try:
        options = json.loads(text) if text is not None else None
    except (ValueError, RecursionError):
        return None
    if (
        isinstance(options, list)
        and 2 <= len(options) < len(ANSWER_LABELS)
        and all(isinstance(o, str) for o in options)
    ):
        return options
    return None


# -------------------------------------------------------------------------------------- memory


def memory_logs(memory: pl.DataFrame) -> dict[str, list[tuple[float, MemoryEntry]]]:
    """Each stream's memory log, as (written_at, entry), from the bundle's memory table."""
    logs: dict[str, list[tuple[float, MemoryEntry]]] = {}
    named = memory.filter(pl.col("stream_id").is_not_null()).sort("stream_index", "position")
    for r in named.iter_rows(named=True):
        try:
            meta = json.loads(r["meta"])
        except (TypeError, ValueError, RecursionError):
            meta = None
        times = (r["written_at"], r["t_start"], r["t_end"])
        if (
            not isinstance(meta, dict)
            or None in (*times, r["text"], r["kind"])
            or not all(map(math.isfinite, times))
        ):
            raise Rejected(f"memory.parquet: entry {r['position']} of stream "
                           f"{show(r['stream_id'])} is incomplete or has non-finite times")
        log = logs.setdefault(r["stream_id"], [])
        if r["position"] != len(log):
            raise Rejected(f"memory.parquet: stream {show(r['stream_id'])} is not one log "
                           "with consecutive positions")
        log.append((r["written_at"], MemoryEntry(r["t_start"], r["t_end"], r["text"], r["kind"], meta)))
    return logs


def check_memory(rows: pl.DataFrame, memory: pl.DataFrame) -> dict[str, MemorySnapshot]:
    """Each row's snapshot is the memory its stream had written by the ask time, as stated;
    returns the rebuilt snapshots by question id (a failed row without one gets none)."""
    if memory.select("stream_index", "position", "written_at", "text").null_count().sum_horizontal().item():
        raise Rejected("memory.parquet has null stream indices, positions, write times or texts")
    named = memory.filter(pl.col("stream_id").is_not_null())
    if (named.group_by("stream_id").agg(pl.col("stream_index").n_unique())["stream_index"].max() or 0) > 1:
        raise Rejected("memory.parquet gives one stream id to several streams")
    logs = memory_logs(memory)
    snapshots: dict[str, MemorySnapshot] = {}
    for row in rows.iter_rows(named=True):
        qid = show(row["question_id"])
        if row["memory_digest"] is None:
            if row["failure"] is None or row["memory_entries"]:
                raise Rejected(f"question {qid} has no memory snapshot digest")
            continue
        log = logs.get(row["stream_id"], [])
        k, t = row["memory_entries"], row["ask_time"]
        if not 0 <= k <= len(log):
            raise Rejected(f"question {qid}: its snapshot is not a prefix of the memory log")
        if any(w > t for w, _ in log[:k]) or (k < len(log) and log[k][0] <= t):
            raise Rejected(f"question {qid}: its snapshot is not the memory written by its ask "
                           "time")
        snapshot = MemorySnapshot(row["stream_id"], t, tuple(e for _, e in log[:k]))
        stated = (row["memory_digest"], row["memory_tokens"], row["memory_chars"])
        if stated != (snapshot.digest, snapshot.n_tokens, snapshot.n_chars):
            raise Rejected(f"question {qid}: its memory digest or size does not match the "
                           "memory log")
        snapshots[row["question_id"]] = snapshot
    return snapshots


# ------------------------------------------------------------------------------------- summary


def check_summary(
    bundle: Bundle, m: ManifestView, plan: Sequence[PlannedStream] | None
) -> tuple[Scores, float]:
    """The summary states what ``results.summarize`` computes from the rows; returns the scores
    and the video hours (``plan_check.video_hours``)."""
    summary = bundle.summary
    for key, value in (("task", m.task.name), ("policy", m.policy.name), ("reader", m.reader.name)):
        if summary.get(key) != value:
            raise Rejected(f"summary.json {key} is not the manifest's")
    try:
        expected = summarize(bundle.rows, {}, scoring=str(m.task.config.get("scoring")))
    except ValueError as exc:  # contradictory flags: score() names them
        raise Rejected(f"rows cannot be scored: {exc}") from None
    problem = _mismatch(summary, expected, "")
    if problem:
        raise Rejected(problem)
    hours = video_hours(bundle, plan)
    _check_memory_size(summary["memory"], bundle.memory, hours)
    return score_rows(bundle.rows), hours


def _mismatch(stated: Any, ours: Any, path: str) -> str | None:
    """The first place where ``stated`` (the bundle's summary) departs from ``ours``."""
    if isinstance(ours, Mapping):
        if not isinstance(stated, Mapping):
            return f"summary.json {path or 'root'} is not an object"
        if path and set(stated) != set(ours):
            return f"summary.json {path} lists {show(sorted(stated))[:200]}, re-scoring gives {sorted(ours)}"
        for key in ours:
            found = _mismatch(stated.get(key), ours[key], f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    if _equal(stated, ours):
        return None
    return f"summary.json states {path} = {show(stated)}, re-scoring the rows gives {ours!r}"


def _equal(stated: Any, ours: Any) -> bool:
    """Numbers within ``TOLERANCE``; ``None``, booleans and strings exactly."""
    if isinstance(ours, (int, float)) and not isinstance(ours, bool):
        return (isinstance(stated, (int, float)) and not isinstance(stated, bool)
                and math.isfinite(stated) and abs(stated - ours) <= TOLERANCE)
    return type(stated) is type(ours) and stated == ours


def _check_memory_size(stated: Mapping[str, Any], memory: pl.DataFrame, hours: float) -> None:
    """Totals equal the log's; per-hour values follow from them and the video hours (which the
    runner rounds to 4 decimals, and the rates to 1)."""
    totals = {  # chars first: a vectorised count, which rejects a bloated log before tokenising
        "chars": lambda: int(memory["text"].str.len_chars().sum()),
        "tokens": lambda: sum(map(count_tokens, memory["text"].to_list())),
    }
    for unit, count in totals.items():
        total = count()
        if stated.get(f"{unit}_total") != total:
            raise Rejected(f"summary.json states memory.{unit}_total = "
                           f"{show(stated.get(f'{unit}_total'))}, the memory log holds {total}")
        rate = stated.get(f"{unit}_per_hour")
        if hours == 0:
            ok = rate is None
        else:
            ok = (isinstance(rate, (int, float)) and not isinstance(rate, bool)
                  and total / (hours + 5e-5) - 0.05 <= rate <= total / max(hours - 5e-5, 1e-12) + 0.05)
        if not ok:
            raise Rejected(f"summary.json memory.{unit}_per_hour = {show(rate)} does not follow "
                           f"from {total} {unit} over {hours} video hours")


# ---------------------------------------------------------------------------------------- text


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:32] or "x"
