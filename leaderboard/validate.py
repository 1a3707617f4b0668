"""Is a well-formed bundle true? The leaderboard shows only runs it re-scored itself.

A bundle that ``bundle.read_bundle`` accepted for form is accepted here only if every check
passes, in this order: what reads only the manifest first, then vectorised checks over whole
tables, per-row work last, so a forgery costs little to refuse and the first failure is the
one reason given.

1. the manifest reads as the runner's (``manifest.Manifest``: every field, the right types);
2. ``known``: the task, its config and the dataset revision are this package version's and
   verifiable here (synthetic data by its adapter, a real release by the question manifest
   shipped for its revision, not a test fixture's: ``question_plan.manifest_plan``, built once
   here for the checks below), and its names read as what they are (``names``);
3. ``tracks``: a control is this package's control (the blind one wrote no memory); the run's
   track is decided, and a control's reader must be reproducible (``reproduce``);
4. ``rows``: the rows belong to the run, complete and with sane values;
5. ``plan_check``: the stream counts fit the limit and, where the dataset lists its questions
   (or a question manifest does, less what the run skipped for missing media), the rows are
   exactly those of the streams covered; the limit is normalised to them;
6. ``summary``: the summary's numbers are what this package computes from the rows and log;
7. ``rescore``: every row's verdict is what the task's scoring gives its raw output;
8. ``snapshots``: every row's memory snapshot is its stream's log up to the ask time;
9. ``reproduce``: a registered deterministic reader, re-run on each row, gives its raw output.

``validate_all`` then keeps at most one run per entry and task (``duplicates``).

What it cannot check: that the memory log is what the named policy writes (the policy is not
re-run; only the blind control's log is known: it must be empty), and, for readers that are not
deterministic or not installed, that the reader produced the raw outputs; for datasets without
a plan, that the questions and golds are the dataset's; for a real release, that the run saw
the release's media (a question manifest pins questions, golds, ask times and durations, not
the frames) and that the media it skipped were really missing; that an LLM judge wrote the
judge replies it records.
"""

from __future__ import annotations

from collections.abc import Iterable

from leaderboard.accepted import AcceptedRun, Rejection
from leaderboard.bundle import Bundle
from leaderboard.duplicates import resolve_duplicates
from leaderboard.errors import Rejected
from leaderboard.known import check_known
from leaderboard.question_plan import manifest_plan
from leaderboard.plan_check import (
    abstain_texts,
    check_streams,
    coverage,
    dataset_split,
    within_limit,
)
from leaderboard.reproduce import check_outputs, reproducible_reader
from leaderboard.rescore import check_verdicts
from leaderboard.rows import check_rows
from leaderboard.snapshots import check_memory
from leaderboard.summary import check_summary
from leaderboard.tracks import check_control_policy, check_control_reader, track
from taskmem_bench.manifest import Manifest, ManifestError
from taskmem_bench.scoring.base import load_scoring
from taskmem_bench.untrusted import show


def validate_all(bundles: Iterable[Bundle]) -> tuple[list[AcceptedRun], list[Rejection]]:
    """Validate every bundle, then keep at most one run per (entry, task)
    (``duplicates.resolve_duplicates``)."""
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


def validate_bundle(bundle: Bundle) -> AcceptedRun:
    """The run, with the scores computed from its rows; raises ``Rejected`` with the first
    failed check's reason."""
    try:
        manifest = Manifest.parse(bundle.manifest)
    except ManifestError as exc:
        raise Rejected(str(exc)) from None
    shipped = check_known(manifest)
    real = None if manifest.dataset.synthetic else manifest_plan(manifest)
    check_control_policy(manifest, bundle.memory)
    run_track = track(manifest, shipped)
    reader = reproducible_reader(manifest)
    check_control_reader(manifest, run_track, reader)
    check_rows(bundle.rows, manifest)
    split = dataset_split(manifest, shipped, real)
    plan = within_limit(split, manifest.limit)
    covered = coverage(manifest, check_streams(bundle, manifest, plan, real), split, real)
    scores, hours = check_summary(bundle, manifest, shipped, plan)
    check_verdicts(bundle.rows, load_scoring(shipped.scoring)(), abstain_texts(bundle.rows, plan))
    snapshots = check_memory(bundle.rows, bundle.memory)
    if reader is not None:
        check_outputs(reader, manifest.reader.name, bundle.rows, snapshots)
    return AcceptedRun(bundle, manifest, run_track, scores, hours, reader is not None, covered)
