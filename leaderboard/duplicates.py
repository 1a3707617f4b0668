"""Runs of one entry on one task: at most one is kept, and no second bundle can replace a first.

An entry is one leaderboard row (``AcceptedRun.entry_key``). If its runs on a task have
identical rows and memory and make the same ``Claims``, they are one result and the one whose
content digest sorts first is kept (which one does not matter, they are equal). Otherwise
none is kept and each rejection names the others: different results cannot both be the
entry's, and identical results under different claims mean one is a copy, which must not take
the entry over (nor can this site tell which came first: an export time is whatever the bundle
says). At worst a second bundle keeps both off the site, with the build failing and naming
both. File names play no part, so no name can win a tie.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from leaderboard.accepted import AcceptedRun, Rejection


@dataclass(frozen=True)
class Claims:
    """What a bundle says about where its results come from, besides the results themselves.
    Two bundles with identical results must claim the same, or one is a copy of the other."""

    link: str | None
    policy_class: str
    commit: str | None
    exporter: str

    @classmethod
    def of(cls, run: AcceptedRun) -> Claims:
        b, m = run.bundle, run.manifest
        return cls(
            link=b.policy_link, policy_class=m.policy.cls,
            commit=m.git.commit if m.git is not None else None,
            exporter=json.dumps(b.header.get("exported_by"), sort_keys=True),
        )

    def differences(self, other: Claims) -> list[str]:
        """What ``other`` claims differently, as a reason names it."""
        return [label for field, label in CLAIM_LABELS.items()
                if getattr(self, field) != getattr(other, field)]


CLAIM_LABELS = {"link": "policy link", "policy_class": "policy class", "commit": "git commit",
                "exporter": "exporting package"}


def resolve_duplicates(runs: Iterable[AcceptedRun]) -> tuple[list[AcceptedRun], list[Rejection]]:
    """The runs kept (at most one per entry and task) and a rejection for each other one."""
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
        first_claims = Claims.of(first)
        claimed = sorted({d for r in group[1:] for d in Claims.of(r).differences(first_claims)})
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
