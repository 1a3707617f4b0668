"""A real release's plan, from the question manifest this package ships for its revision.

The leaderboard holds no copy of Video-MME, EgoLife or EgoTempo; it checks a run on them against
the question manifest (``taskmem_bench.question_manifest``) selected by the dataset name and
revision the run's manifest states. The rows must then be exactly the manifest's questions
(ids, streams, gold, ask times, evidence delays, categories, tags, and the sha256 of text and
options), less those the run's manifest lists as skipped for missing media, which are counted
(``ManifestSplit.excluded``); the manifest's stream durations fix the video hours.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import polars as pl

from leaderboard.errors import Rejected
from taskmem_bench.datasets.base import DatasetAdapter, PlannedStream
from taskmem_bench.manifest import Manifest
from taskmem_bench.question_manifest import (
    QuestionManifest, shipped, shipped_revisions, text_sha256,
)
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
class ManifestSplit:
    """The streams a run on this release can cover, in run order."""

    streams: list[PlannedStream]
    """The manifest's streams less the questions the run skipped for missing media (and less
    streams left without questions)."""
    of: int
    """The manifest's streams."""
    excluded: int
    """Manifest questions the run lists as skipped for missing media."""


def question_manifest(m: Manifest) -> QuestionManifest:
    """The shipped question manifest of the run's dataset revision; rejected if none."""
    found = shipped(m.dataset.name, m.dataset.revision)
    if found is None:
        known = ", ".join(shipped_revisions(m.dataset.name)) or "none"
        raise Rejected(f"no question manifest of {m.dataset.name} revision "
                       f"{show(m.dataset.revision)} ships with this package version (shipped: "
                       f"{known}), so the run's questions cannot be checked")
    return found


def check_real_dataset(m: Manifest, shipped_task: TaskConfig, adapter: DatasetAdapter) -> None:
    """A real-dataset run: its revision has a shipped question manifest and its dataset
    settings are the shipped task's but for ``LOCATION_KEYS``."""
    question_manifest(m)
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


def manifest_split(m: Manifest) -> ManifestSplit:
    """The run's streams by the manifest, its missing-media skips taken out and counted."""
    manifest = question_manifest(m)
    skipped = {s.get("item_id") for s in m.dataset.skipped if s.get("kind") in MEDIA_SKIPS}
    streams, excluded = [], 0
    for stream in manifest.planned_streams():
        kept = tuple(q for q in stream.questions if q.question_id not in skipped)
        excluded += len(stream.questions) - len(kept)
        if kept:
            streams.append(dataclasses.replace(stream, questions=kept))
    return ManifestSplit(streams, len(manifest.streams), excluded)


def options_digests(m: Manifest) -> dict[str, str]:
    """Each manifest question's options sha256 by question id (``plan_check.planned_rows``)."""
    return {q.id: q.options_sha256 for s in question_manifest(m).streams for q in s.questions}


def hashed(rows: pl.DataFrame) -> pl.DataFrame:
    """The rows with ``DIGESTED`` fields replaced by their sha256, as the manifest holds them."""
    return rows.with_columns(
        pl.col(field).map_elements(text_sha256, return_dtype=pl.String) for field in DIGESTED
    )
