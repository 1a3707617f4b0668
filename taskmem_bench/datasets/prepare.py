"""Validating a release once, and the media facts every run reuses (``taskmem-bench prepare``).

API for adapters (stable)::

    index = MediaIndex.open(adapter_name, root)   # the prepared manifest's media facts, if any
    info = index.probe(path)   # MediaInfo(duration, fps, size, mtime_ns, ...); MediaError if the
                               # file is unreadable or an earlier prepare found it corrupt
    index.save()               # keep what this load probed for the next run
    details["media_index"] = index.stats()

``probe`` answers from the manifest while the file's size and mtime are unchanged and probes
otherwise (container metadata, milliseconds per file), so a run without a prepared manifest
"prepares on the fly" what it needs and the next run starts faster. An adapter should turn a
``MediaError`` from ``probe`` into a visible exclusion (``SkippedItem(kind="corrupt_media")``).

:func:`prepare` (generic over adapters) loads the release with the adapter, checks that every
media file the episodes use decodes (its first frame and one near its end: a cut-off download
passes the first check, not the second), fingerprints the media (size + sha256 of the first and
last MiB; full hashes of hundreds of GB take hours), reloads the release if it found corrupt
files (so the counts are what a run will see: adapters exclude them), and writes the prepared
manifest (``<cache>/prepared/<dataset>-<sha of the resolved root>.json``): annotation hashes
(full sha256, from ``DatasetRelease.files``), media facts, and the report: streams, questions,
hours, missing media (listed), skipped and irregular records counted by kind with their ids.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import av

import taskmem_bench
from taskmem_bench.cachedir import cache_home
from taskmem_bench.datasets.base import DatasetAdapter, DatasetRelease, SkippedItem
from taskmem_bench.datasets.files import fingerprint, relative_key
from taskmem_bench.media import MediaError, probe_duration, probe_fps
from taskmem_bench.results import write_json
from taskmem_bench.taskconfig import ConfigError, validate

MANIFEST_SCHEMA = 1
# How far before the declared end the end-of-file decode check seeks: far enough back to land
# on a keyframe's group that still has frames, close enough to catch a cut-off download.
_END_CHECK_SECONDS = 2.0


def manifest_path(dataset: str, root: Path | str) -> Path:
    """Where the prepared manifest of ``dataset`` at ``root`` lives (one per resolved root)."""
    key = hashlib.sha256(str(Path(root).expanduser().resolve()).encode()).hexdigest()[:16]
    return cache_home() / "prepared" / f"{dataset}-{key}.json"


def release_root(config: Any, dataset: str) -> Path:
    """The ``root`` of an adapter config; a ``ConfigError`` when it is not set or not a folder."""
    root = getattr(config, "root", ...)
    if root is ...:
        raise ConfigError(f"dataset {dataset} has no release folder (it is generated): "
                          "nothing to prepare")
    if root is None:
        raise ConfigError(f"dataset {dataset} needs the release folder: --set root=PATH")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ConfigError(f"dataset {dataset}: root {path} is not a folder")
    return path


def config_for(adapter: DatasetAdapter, root: str, values: dict[str, Any]) -> Any:
    """The adapter's config for the release at ``root`` plus other ``values`` (``--set``)."""
    fields = {f.name for f in dataclasses.fields(adapter.Config)}
    if "root" not in fields:
        raise ConfigError(f"dataset {adapter.name} has no release folder (it is generated): "
                          "nothing to prepare")
    return validate(adapter.Config, {**values, "root": root}, f"dataset {adapter.name}")


@dataclass(frozen=True)
class MediaInfo:
    """What is known about one media file while it keeps its size and mtime."""

    size: int
    mtime_ns: int
    duration: float | None
    fps: float | None
    fingerprint: str | None = None
    """Set by ``prepare``; runs do not read the file's bytes."""
    checked: bool = False
    """``prepare`` decoded its first frame and one near its end."""
    error: str | None = None
    """Why the file is unusable (probe or decode failure); ``probe`` raises it."""


class MediaIndex:
    """Media facts of one release root, backed by its prepared manifest."""

    def __init__(self, dataset: str, root: Path, path: Path,
                 entries: dict[str, MediaInfo]) -> None:
        self.dataset, self.root, self.path = dataset, Path(os.path.abspath(root)), path
        self._entries = entries
        self._dirty = False
        self._hits = 0
        self._probed = 0

    @classmethod
    def open(cls, dataset: str, root: Path | str) -> MediaIndex:
        root = Path(root).expanduser()
        path = manifest_path(dataset, root)
        entries: dict[str, MediaInfo] = {}
        manifest = _read_manifest(path)
        for key, value in (manifest or {}).get("media", {}).items():
            try:
                entries[key] = MediaInfo(**value)
            except TypeError:
                continue  # an entry of another schema: probe the file again
        return cls(dataset, root, path, entries)

    def _key(self, path: Path) -> str:
        """Relative to the root as given (links below it kept: a ``data`` folder linked to
        another disk still gives ``data/x.mp4``), else the resolved path."""
        key = relative_key(self.root, Path(os.path.abspath(path)))
        return Path(path).resolve().as_posix() if Path(key).is_absolute() else key

    def _current(self, path: Path) -> tuple[str, os.stat_result, MediaInfo | None]:
        key = self._key(path)
        try:
            stat = os.stat(path)
        except OSError as exc:
            raise MediaError(f"{path}: {exc.strerror or exc}") from exc
        info = self._entries.get(key)
        if info is not None and (info.size, info.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
            info = None
        return key, stat, info

    def probe(self, path: Path) -> MediaInfo:
        """The file's facts (from the manifest when it is unchanged, else probed now)."""
        key, stat, info = self._current(path)
        if info is None:
            self._probed += 1
            try:
                info = MediaInfo(stat.st_size, stat.st_mtime_ns, probe_duration(path),
                                 probe_fps(path))
            except MediaError as exc:
                info = MediaInfo(stat.st_size, stat.st_mtime_ns, None, None, error=str(exc))
            self._entries[key] = info
            self._dirty = True
        else:
            self._hits += 1
        if info.error is not None:
            raise MediaError(info.error)
        return info

    def check(self, path: Path) -> MediaInfo:
        """``probe`` plus prepare's checks (decode at both ends, fingerprint), done once per
        unchanged file; a failure is recorded, so later ``probe`` calls raise it."""
        info = self.probe(path)
        if info.checked:
            return info
        key = self._key(path)
        error = decode_error(path, info.duration)
        info = dataclasses.replace(info, fingerprint=fingerprint(path), checked=error is None,
                                   error=error)
        self._entries[key] = info
        self._dirty = True
        if error is not None:
            raise MediaError(error)
        return info

    def info(self, path: Path) -> MediaInfo | None:
        """The recorded facts of ``path`` (None if never probed or changed since)."""
        try:
            return self._current(path)[2]
        except MediaError:
            return None

    def stats(self) -> dict[str, Any]:
        """For an adapter's ``details``: where durations came from in this load."""
        return {"manifest": str(self.path), "from_manifest": self._hits, "probed": self._probed}

    def save(self, **fields: Any) -> None:
        """Write the media facts (and ``fields``, from ``prepare``) into the manifest, keeping
        what it already holds. Without ``fields`` and nothing newly probed, nothing is written."""
        if not self._dirty and not fields:
            return
        manifest = _read_manifest(self.path) or {
            "schema": MANIFEST_SCHEMA, "dataset": self.dataset, "root": str(self.root),
            "prepared": False,
        }
        media = dict(manifest.get("media", {}))
        media.update({k: dataclasses.asdict(v) for k, v in self._entries.items()})
        manifest.update(fields, media=dict(sorted(media.items())))
        write_json(self.path, manifest)
        self._dirty = False


def _read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest, or None when absent, unreadable or of another schema (it is a cache:
    a damaged one is rebuilt, never trusted)."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        return None
    return manifest


def decode_error(path: Path, duration: float | None) -> str | None:
    """Why ``path`` does not decode, or None: its first frame, then a frame near its end."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return f"{path}: no video stream"
            stream = container.streams.video[0]
            if next(container.decode(stream), None) is None:
                return f"{path}: no frame decodes"
            if duration is None or duration <= _END_CHECK_SECONDS:
                return None
            target = duration - _END_CHECK_SECONDS
            start = stream.start_time or 0
            container.seek(start + math.floor(target / stream.time_base), stream=stream)
            for frame in container.decode(stream):  # from the keyframe before the target
                if frame.pts is None or (frame.pts - start) * stream.time_base >= target:
                    return None
            return f"{path}: no frame decodes near the declared end ({duration:.3f}s): cut off?"
    except av.FFmpegError as exc:
        return f"{path}: cannot decode ({exc})"


# ---------------------------------------------------------------------------------------------
# prepare


@dataclass(frozen=True)
class PrepareReport:
    """What ``prepare`` found; the counts are those a run on this release will see."""

    dataset: str
    root: str
    revision: str
    manifest: str
    streams: int
    questions: int
    hours: float
    media_files: int
    missing_media: list[dict[str, str]]
    """One entry per excluded question: ``{"id", "reason"}``."""
    corrupt_media: list[dict[str, str]]
    skipped: dict[str, list[str]]
    """Excluded items by kind (missing_media, corrupt_media, ...) with their ids."""
    irregular: dict[str, list[str]]
    """Kept-but-odd records by kind with their ids."""
    side_channels: dict[str, dict[str, int]]
    """Per channel: streams that have text on it, and its events."""
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def prepare(adapter: DatasetAdapter, config: Any) -> PrepareReport:
    """Validate the release at ``config.root``, write its prepared manifest, return the report."""
    root = release_root(config, adapter.name)
    release = adapter.load(config)
    index = MediaIndex.open(adapter.name, root)
    bad = _check_media(release, index)
    index.save()
    if bad:
        release = adapter.load(config)  # adapters now see the failures and exclude the media
    # An adapter that still uses a corrupt file would fail its stream at run time: count it out.
    episodes, corrupt = [], []
    for episode in release.episodes:
        errors = [bad[s.path] for s in episode.stream.segments if s.path in bad]
        if errors:
            corrupt += [SkippedItem(q.id, errors[0], "corrupt_media")
                        for q in episode.stream.questions]
        else:
            episodes.append(episode)
    report = _report(adapter.name, root, index.path, release, episodes, corrupt, index)
    index.save(
        prepared=True,
        prepared_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        package_version=taskmem_bench.__version__,
        revision=release.revision,
        config=_plain(config),
        annotations=dict(sorted(release.files.items())),
        report=report.to_dict(),
    )
    return report


def _check_media(release: DatasetRelease, index: MediaIndex) -> dict[Path, str]:
    """Decode-check every media file the episodes use; the failures by path."""
    bad: dict[Path, str] = {}
    for path in sorted({s.path for e in release.episodes for s in e.stream.segments}):
        try:
            index.check(path)
        except MediaError as exc:
            bad[path] = str(exc)
    return bad


def _report(dataset: str, root: Path, path: Path, release: DatasetRelease,
            episodes: list[Any], corrupt: list[SkippedItem], index: MediaIndex) -> PrepareReport:
    skipped = [*release.skipped, *corrupt]
    seconds = sum(_segment_seconds(s, index) for e in episodes for s in e.stream.segments)
    channels: dict[str, dict[str, int]] = defaultdict(lambda: {"streams": 0, "events": 0})
    for episode in episodes:
        counts: dict[str, int] = defaultdict(int)
        for event in episode.stream.text_events:
            counts[event.channel] += 1
        for channel, n in counts.items():
            channels[channel]["streams"] += 1
            channels[channel]["events"] += n
    return PrepareReport(
        dataset=dataset,
        root=str(root),
        revision=release.revision,
        manifest=str(path),
        streams=len(episodes),
        questions=sum(len(e.stream.questions) for e in episodes),
        hours=seconds / 3600,
        media_files=len({s.path for e in episodes for s in e.stream.segments}),
        missing_media=_listed(s for s in skipped if s.kind == "missing_media"),
        corrupt_media=_listed(s for s in skipped if s.kind == "corrupt_media"),
        skipped=_by_kind((s.kind, s.item_id) for s in skipped),
        irregular=_by_kind((i.kind, i.item_id) for i in release.irregular),
        side_channels=dict(sorted(channels.items())),
        details=_plain(dict(release.details)),
    )


def _segment_seconds(segment: Any, index: MediaIndex) -> float:
    if segment.duration is not None:
        return segment.duration
    info = index.info(segment.path)
    return max(0.0, (info.duration or 0.0) - segment.file_offset) if info else 0.0


def _listed(items: Iterable[SkippedItem]) -> list[dict[str, str]]:
    return sorted(({"id": s.item_id, "reason": s.reason} for s in items), key=lambda d: d["id"])


def _by_kind(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for kind, item_id in pairs:
        grouped[kind].append(item_id)
    return {kind: sorted(ids) for kind, ids in sorted(grouped.items())}


def _plain(value: Any) -> Any:
    """JSON-ready copy of configs and details (dataclasses, tuples, paths)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def report_lines(report: PrepareReport) -> list[str]:
    """The short human report ``taskmem-bench prepare`` prints."""
    lines = [
        f"{report.dataset} at {report.root}",
        f"  revision      {report.revision}",
        f"  streams       {report.streams}",
        f"  questions     {report.questions}",
        f"  hours         {report.hours:.2f}",
        f"  media files   {report.media_files}",
    ]
    for channel, counts in report.side_channels.items():
        lines.append(f"  side channel  {channel}: {counts['events']} events in "
                     f"{counts['streams']} streams")
    for kind, ids in report.skipped.items():
        lines.append(f"  excluded      {kind}: {len(ids)} ({_ids(ids)})")
    for entry in report.missing_media:
        lines.append(f"    missing     {entry['id']}: {entry['reason']}")
    for entry in report.corrupt_media:
        lines.append(f"    corrupt     {entry['id']}: {entry['reason']}")
    for kind, ids in report.irregular.items():
        lines.append(f"  irregular     {kind}: {len(ids)} ({_ids(ids)})")
    lines.append(f"  manifest      {report.manifest}")
    return lines


def _ids(ids: list[str], listed: int = 8) -> str:
    more = f", ... {len(ids) - listed} more" if len(ids) > listed else ""
    return ", ".join(ids[:listed]) + more
