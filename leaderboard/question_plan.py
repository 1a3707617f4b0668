"""A real release's plan, from the question manifest this package ships for its revision.

The leaderboard holds no copy of Video-MME, EgoLife or EgoTempo; it checks a run on them against
the question manifest (``taskmem_bench.question_manifest``) selected by the dataset name and
revision the run's manifest states. The rows must then be exactly the manifest's questions
(ids, streams, gold, ask times, evidence delays, categories, tags, and the sha256 of text and
options), less those the run's manifest lists as skipped for missing media, which are counted
(``ManifestPlan.excluded_within`` the streams covered); the manifest's stream durations fix the
video hours. A fixture release's manifest (``fixture``) is refused outside tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import polars as pl

from leaderboard.errors import Rejected
from taskmem_bench.datasets.base import DatasetAdapter, PlannedStream
from taskmem_bench.manifest import Manifest
from taskmem_bench.question_manifest import is_fixture, shipped, shipped_revisions, text_sha256
from taskmem_bench.taskconfig import ConfigError, TaskConfig, validate
from taskmem_bench.untrusted import show

MEDIA_SKIPS = ("missing_media", "corrupt_media")
"""Skipped-item kinds that excuse a question's absence: its media could not be used."""
LOCATION_KEYS = ("root", "annotations", "source")
"""Dataset settings that say where the release is read from; its content is pinned by the
revision, so they may differ from the shipped task's."""
DIGESTED = ("question", "options")
"""Row fields compared by their sha256: manifests hold no question text."""


@dataclass(frozen=True)
class ManifestPlan:
    """A real release's plan for one run, built once per bundle: the streams it can cover in
    run order, each question's options digest, and which questions its missing media excused."""

    streams: list[PlannedStream]
    """The manifest's streams less the questions the run skipped for missing media (and less
    streams left without questions)."""
    of: int
    """The manifest's streams."""
    options: dict[str, str]
    """Each manifest question's options sha256 by question id (``plan_check.planned_rows``)."""
    excluded_through: list[tuple[str, ...]]
    """For each of ``streams``: the manifest questions the run skipped in the manifest's
    streams up to and including it."""
    excluded_all: tuple[str, ...]
    """Every manifest question the run skipped."""

    def excluded_within(self, covered: int) -> tuple[str, ...]:
        """The questions skipped in the streams a run of the first ``covered`` streams ran
        through (all of them for a run of every stream)."""
        if covered >= len(self.streams):
            return self.excluded_all
        return self.excluded_through[covered - 1] if covered > 0 else ()


def manifest_plan(m: Manifest) -> ManifestPlan:
    """The run's plan by the shipped question manifest of its revision, its missing-media
    skips taken out; rejected if none ships (or it pins a test fixture release)."""
    manifest = shipped(m.dataset.name, m.dataset.revision)
    if manifest is None:
        if is_fixture(m.dataset.name, m.dataset.revision):
            raise Rejected(f"{m.dataset.name} revision {show(m.dataset.revision)} is a test "
                           "fixture release (its question manifest is marked fixture); the "
                           "leaderboard ranks runs on real releases only")
        known = ", ".join(shipped_revisions(m.dataset.name)) or "none"
        raise Rejected(f"no question manifest of {m.dataset.name} revision "
                       f"{show(m.dataset.revision)} ships with this package version (shipped: "
                       f"{known}), so the run's questions cannot be checked")
    skipped = {s.get("item_id") for s in m.dataset.skipped if s.get("kind") in MEDIA_SKIPS}
    streams, through, excluded = [], [], []
    for stream in manifest.planned_streams():
        kept = tuple(q for q in stream.questions if q.question_id not in skipped)
        excluded += [q.question_id for q in stream.questions if q.question_id in skipped]
        if kept:
            streams.append(dataclasses.replace(stream, questions=kept))
            through.append(tuple(excluded))
    options = {q.id: q.options_sha256 for s in manifest.streams for q in s.questions}
    return ManifestPlan(streams, len(manifest.streams), options, through, tuple(excluded))


def check_real_dataset(m: Manifest, shipped_task: TaskConfig, adapter: DatasetAdapter) -> None:
    """A real-dataset run's dataset settings are the shipped task's but for
    ``LOCATION_KEYS`` (its revision is checked by ``manifest_plan``)."""
    try:
        theirs = _content_settings(adapter, m.dataset.config)
        ours = _content_settings(adapter, shipped_task.dataset_args)
    except ConfigError as exc:
        raise Rejected(f"dataset config is not valid for {adapter.name}: {exc}") from None
    for key in sorted(ours):
        if theirs[key] != ours[key]:
            raise Rejected(f"dataset setting {key} is {show(theirs[key])}; task "
                           f"{shipped_task.name} ships {show(ours[key])}")


def _content_settings(adapter: DatasetAdapter, values: dict) -> dict:
    config = validate(adapter.Config, values, "dataset")
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in LOCATION_KEYS}


def hashed(rows: pl.DataFrame) -> pl.DataFrame:
    """The rows with ``DIGESTED`` fields replaced by their sha256, as the manifest holds them."""
    return rows.with_columns(
        pl.col(field).map_elements(text_sha256, return_dtype=pl.String) for field in DIGESTED
    )
