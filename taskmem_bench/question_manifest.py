"""Question manifests: a release's questions pinned without their text, for the leaderboard.

The leaderboard holds no copy of a real release, and question text may not be redistributable.
A question manifest (``taskmem-bench prepare DATASET --root PATH --publish-manifest OUT.json``)
pins what a run's rows must be without it: per stream its id and seconds of media (what memory per
video-hour divides by), per question its id, ask time, evidence delay, category and tags, answer
format, abstain text, gold answer, and the sha256 of its text and of its options as a run's rows
record them. Format (``FORMAT``, version ``VERSION``)::

    {"format": "taskmem-bench/question-manifest", "version": 1,
     "dataset": "egotempo", "revision": "egotempo:parser1:adc9e7d5b1075a46",
     "source": "how it was made", "files": {"annotation file": "its sha256"},
     "streams": [{"id", "duration", "questions": [{"id", "ask_time", "evidence_delay",
                  "category", "tags", "answer_format", "abstain_text", "gold",
                  "text_sha256", "options_sha256"}]}],
     "excluded": [{"id", "kind", "reason"}], "fixture": false}

``excluded`` lists what the release itself excludes when loaded on the maintainer's machine
(malformed records, missing media, ...): those are not questions of the manifest. Stream and
question ids are unique, durations and ask times finite and not negative, digests sha256 hex; a
stream whose media duration is unknown is refused at publishing (it would leave the video hours
unchecked). The package ships manifests under ``question_manifests/``; ``shipped(dataset,
revision)`` selects one by the dataset name and revision a run's manifest states, and one
(dataset, revision) in two files is an error. A manifest marked ``fixture`` pins a test fixture
release: the leaderboard refuses runs on it unless a test enables them
(``fixture_manifests_enabled``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

import taskmem_bench
from taskmem_bench.datasets.base import (
    DatasetAdapter, DatasetRelease, PlannedQuestion, PlannedStream,
)
from taskmem_bench.datasets.prepare import PrepareReport, release_root
from taskmem_bench.results import write_json
from taskmem_bench.taskconfig import ConfigError

FORMAT = "taskmem-bench/question-manifest"
VERSION = 1
SHIPPED = "question_manifests"
"""The package folder of shipped manifests."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _seconds(value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError("must be a finite number of seconds, not negative")
    return value


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be finite")
    return value


Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Seconds = Annotated[float, AfterValidator(_seconds)]


def _unique(ids: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ValueError(f"{what} id {item!r} is listed twice")
        seen.add(item)


class ManifestQuestion(_Strict):
    id: str
    ask_time: Seconds
    evidence_delay: Annotated[float | None, AfterValidator(_finite)]
    """Negative where the release annotates evidence after the question (EgoLife)."""
    category: str
    tags: dict[str, str]
    answer_format: str
    abstain_text: str
    gold: str
    text_sha256: Sha256
    options_sha256: Sha256


class ManifestStream(_Strict):
    id: str
    duration: Seconds
    questions: list[ManifestQuestion]


class ExcludedItem(_Strict):
    id: str
    kind: str
    reason: str


class QuestionManifest(_Strict):
    format: Literal["taskmem-bench/question-manifest"]
    version: Literal[1]
    dataset: str
    revision: str
    source: str
    files: dict[str, Sha256]
    """The release's annotation files (relative to its root) and their sha256."""
    streams: list[ManifestStream]
    excluded: list[ExcludedItem] = []
    fixture: bool = False
    """A test fixture release's: never ranked (``fixture_manifests_enabled``)."""

    @pydantic.model_validator(mode="after")
    def _unique_ids(self) -> QuestionManifest:
        _unique([s.id for s in self.streams], "stream")
        _unique([q.id for s in self.streams for q in s.questions], "question")
        return self

    @property
    def questions(self) -> int:
        return sum(len(s.questions) for s in self.streams)

    def planned_streams(self) -> list[PlannedStream]:
        """The streams in run order as the leaderboard plans a run; a question's ``text`` is its
        text's sha256 and it has no options (``options_sha256`` pins them)."""
        return [
            PlannedStream(s.id, s.duration, tuple(
                PlannedQuestion(
                    stream_id=s.id, question_id=q.id, text=q.text_sha256, options=(),
                    answer_format=q.answer_format, gold=q.gold, ask_time=q.ask_time,
                    evidence_delay=q.evidence_delay, category=q.category, tags=q.tags,
                    abstain_text=q.abstain_text,
                )
                for q in s.questions
            ))
            for s in self.streams
        ]


class QuestionManifestError(ValueError):
    """A manifest file that is not one; the message names the file and the first problem."""


def text_sha256(text: str) -> str:
    """The digest of a question's text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def options_sha256(options: Sequence[str]) -> str:
    """The digest of a question's options as a run's rows record them: ``json.dumps`` of the
    list with Python's defaults (ASCII escapes, ``", "`` separators); ``[]`` for open ones."""
    return text_sha256(json.dumps(list(options)))


def from_release(release: DatasetRelease, source: str, root: Path | None = None) -> QuestionManifest:
    """The manifest of the questions a run on ``release`` sees, in run order; ``root`` (the
    release folder) is written ``<root>`` in the reasons of excluded items."""
    local = str(root) if root is not None else None
    unknown = [e.stream.id for e in release.episodes if e.stream.media_seconds is None]
    if unknown:
        raise ConfigError(f"no question manifest written: the media duration of stream "
                          f"{unknown[0]!r} is unknown ({len(unknown)} streams), so a run's video "
                          "hours could not be checked; re-encode its media")
    return QuestionManifest(
        format=FORMAT, version=VERSION, dataset=release.name, revision=release.revision,
        source=source, files=dict(sorted(release.files.items())),
        streams=[
            ManifestStream(
                id=e.stream.id, duration=float(e.stream.media_seconds),
                questions=[
                    ManifestQuestion(
                        id=q.id, ask_time=float(q.ask_time),
                        evidence_delay=(None if q.evidence_delay is None
                                        else float(q.evidence_delay)),
                        category=q.category, tags=dict(q.tags), answer_format=q.scoring.kind,
                        abstain_text=q.scoring.abstain_text, gold=e.hidden[q.id].gold,
                        text_sha256=text_sha256(q.text), options_sha256=options_sha256(q.options),
                    )
                    for q in e.stream.questions
                ],
            )
            for e in release.episodes
        ],
        excluded=[ExcludedItem(id=s.item_id, kind=s.kind,
                               reason=s.reason.replace(local, "<root>") if local else s.reason)
                  for s in release.skipped],
    )


def publish(adapter: DatasetAdapter, config: Any, report: PrepareReport, out: Path) -> list[str]:
    """Write the manifest of the release ``prepare`` just checked (``report``) to ``out``; the
    lines to print. Corrupt media are refused (a run would fail those streams); questions whose
    media is missing are left out, listed under ``excluded``, and said so."""
    if report.corrupt_media:
        raise ConfigError(f"no question manifest written: {len(report.corrupt_media)} questions "
                          "have corrupt media (listed above); replace those files first")
    release = adapter.load(config)
    manifest = from_release(release, f"taskmem-bench {taskmem_bench.__version__} prepare "
                                     f"{adapter.name}", release_root(config, adapter.name))
    write_json(Path(out), manifest.model_dump())
    lines = [f"  question manifest  {out}: {len(manifest.streams)} streams, "
             f"{manifest.questions} questions, revision {manifest.revision}"]
    missing = [item for item in manifest.excluded if item.kind == "missing_media"]
    if missing:
        lines.append(f"  warning  {len(missing)} questions with missing media are not in the "
                     "manifest, so the leaderboard will refuse any run that answers them: "
                     "publish from a complete release")
    return lines


def read(path: Path) -> QuestionManifest:
    """A manifest file, validated; ``QuestionManifestError`` naming the file otherwise."""
    try:
        return QuestionManifest.model_validate_json(Path(path).read_bytes())
    except (OSError, pydantic.ValidationError) as exc:
        first = (exc.errors()[0] if isinstance(exc, pydantic.ValidationError) else None)
        where = ".".join(map(str, first["loc"])) + ": " + first["msg"] if first else str(exc)
        raise QuestionManifestError(f"{path}: not a question manifest ({where})") from None


def index(paths: Sequence[Path]) -> dict[tuple[str, str], QuestionManifest]:
    """The manifests in ``paths`` by (dataset, revision); ``QuestionManifestError`` naming both
    files where two pin the same revision (one would silently hide the other)."""
    found: dict[tuple[str, str], tuple[Path, QuestionManifest]] = {}
    for path in paths:
        manifest = read(path)
        key = (manifest.dataset, manifest.revision)
        if key in found:
            raise QuestionManifestError(f"{path}: {manifest.dataset} revision {manifest.revision} "
                                        f"is already pinned by {found[key][0].name}")
        found[key] = (path, manifest)
    return {key: manifest for key, (_, manifest) in found.items()}


@cache
def _shipped_index() -> dict[tuple[str, str], QuestionManifest]:
    folder = files("taskmem_bench").joinpath(SHIPPED)
    return index([Path(str(item)) for item in sorted(folder.iterdir(), key=lambda p: p.name)
                  if item.name.endswith(".json")])


_fixtures_enabled = False


@contextmanager
def fixture_manifests_enabled() -> Iterator[None]:
    """Within it, ``shipped`` also gives the manifests marked ``fixture``: tests check bundles
    of the fixture releases with them; the leaderboard never ranks such a run otherwise."""
    global _fixtures_enabled
    before, _fixtures_enabled = _fixtures_enabled, True
    try:
        yield
    finally:
        _fixtures_enabled = before


def is_fixture(dataset: str, revision: str) -> bool:
    """Whether ``dataset`` at ``revision`` is a test fixture release with a shipped manifest."""
    found = _shipped_index().get((dataset, revision))
    return found is not None and found.fixture


def shipped(dataset: str, revision: str) -> QuestionManifest | None:
    """The shipped manifest of ``dataset`` at ``revision``, or None (a fixture release's only
    within ``fixture_manifests_enabled``)."""
    found = _shipped_index().get((dataset, revision))
    return found if found is not None and (_fixtures_enabled or not found.fixture) else None


def shipped_revisions(dataset: str) -> list[str]:
    """The revisions of ``dataset`` this package ships a manifest for (fixtures as ``shipped``)."""
    return sorted(revision for (name, revision), found in _shipped_index().items()
                  if name == dataset and (_fixtures_enabled or not found.fixture))
