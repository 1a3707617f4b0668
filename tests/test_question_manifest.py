"""Question manifests: what `prepare --publish-manifest` writes, and the ones the package ships."""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files
from pathlib import Path

import pytest

from leaderboard_real_support import PUBLIC_EGOTEMPO
from taskmem_bench import question_manifest as qm
from taskmem_bench.cli import main
from taskmem_bench.datasets.base import DatasetRelease
from taskmem_bench.datasets.egotempo import parse_clip_id
from taskmem_bench.schema import Episode, Stream
from taskmem_bench.taskconfig import ConfigError
from taskmem_bench.testing.releases import egotempo
from taskmem_bench.testing.releases.manifests import FIXTURES, fixture_file, publish_fixture


def test_the_egotempo_manifest_is_the_public_release() -> None:
    """The shipped EgoTempo manifest pins exactly the 500 questions and 367 clips of the public
    v1.0 annotation file: ids, clips in order, types, golds, text digests, window lengths."""
    body = PUBLIC_EGOTEMPO.read_bytes()
    sha = hashlib.sha256(body).hexdigest()
    manifest = qm.shipped("egotempo", f"egotempo:parser1:{sha[:16]}")
    assert manifest is not None and list(manifest.files.values()) == [sha]
    assert not manifest.fixture
    records = json.loads(body)["annotations"]
    assert (manifest.questions, len(manifest.streams)) == (500, 367) == (
        len(records), len({r["clip_id"] for r in records}))
    assert [s.id for s in manifest.streams] == list(dict.fromkeys(r["clip_id"] for r in records))
    pinned = {q.id: (s.id, q) for s in manifest.streams for q in s.questions}
    for record in records:
        stream_id, question = pinned[record["question_id"]]
        window = parse_clip_id(record["clip_id"])
        assert stream_id == record["clip_id"]
        assert (question.category, question.gold, question.answer_format) == (
            record["question_type"], record["answer"], "open")
        assert question.text_sha256 == qm.text_sha256(record["question"])
        assert question.ask_time == window.end - window.start
    assert all(s.duration == s.questions[0].ask_time for s in manifest.streams)
    assert b'"question"' not in qm.QuestionManifest.model_dump_json(manifest).encode()


@pytest.mark.parametrize("dataset", sorted(FIXTURES))
def test_shipped_fixture_manifests_are_what_prepare_publishes(
    dataset: str, tmp_path: Path, mini_cache: Path
) -> None:
    """Each fixture release's shipped manifest is what `prepare --publish-manifest` gives now
    (regenerate: python -m taskmem_bench.testing.releases.manifests)."""
    published = qm.read(publish_fixture(dataset, tmp_path))
    assert qm.shipped(published.dataset, published.revision) is not None, (
        f"no shipped manifest for {published.revision}: regenerate the fixture manifests")
    shipped = qm.read(Path(str(files("taskmem_bench") / qm.SHIPPED / fixture_file(dataset))))
    assert published.model_dump(exclude={"source"}) == shipped.model_dump(exclude={"source"})
    assert shipped.fixture  # refused by the leaderboard outside tests


def test_a_published_manifest_lists_exclusions_and_holds_no_question_text(
    tmp_path: Path, mini_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = publish_fixture("egotempo", tmp_path)
    assert "2 questions with missing media are not in the manifest" in capsys.readouterr().out
    text = out.read_text()
    for clip in egotempo.DEFAULT_CLIPS:
        for _, _, question, _ in clip.questions:
            assert question not in text
    manifest = qm.read(out)
    assert {e.kind for e in manifest.excluded} == {
        "missing_media", "malformed_record", "duplicate_question_id"}
    assert (manifest.format, manifest.version) == (qm.FORMAT, qm.VERSION)


def test_an_unusable_manifest_is_one_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"format": qm.FORMAT, "version": 2}))
    with pytest.raises(qm.QuestionManifestError, match=r"m\.json: not a question manifest \(version"):
        qm.read(path)


def test_prepare_writes_no_manifest_for_corrupt_media(
    tmp_path: Path, mini_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = egotempo.write_release(tmp_path / "r", clips=egotempo.DEFAULT_CLIPS[:1], extra_records=())
    (root / egotempo.DEFAULT_CLIPS[0].media_path).write_bytes(b"not a video")
    out = tmp_path / "m.json"
    assert main(["prepare", "egotempo", "--root", str(root), "--publish-manifest", str(out)]) == 2
    printed = capsys.readouterr()
    assert "no question manifest written: 2 questions have corrupt media (listed above)" in printed.err
    listed = [line for line in printed.out.splitlines() if line.strip().startswith("corrupt ")]
    assert len(listed) == 2 and all(egotempo.DEFAULT_CLIPS[0].clip_id in line for line in listed)
    assert not out.exists()


def test_no_manifest_for_a_stream_of_unknown_duration() -> None:
    """A stream without a media duration would leave a run's video hours unchecked."""
    release = DatasetRelease("egotempo", "r", (Episode(Stream("clip", ()), {}),), synthetic=False)
    with pytest.raises(ConfigError, match="media duration of stream 'clip' is unknown"):
        qm.from_release(release, "test")


def _valid() -> dict:
    question = {"id": "q1", "ask_time": 3.0, "evidence_delay": None, "category": "c", "tags": {},
                "answer_format": "open", "abstain_text": "x", "gold": "g",
                "text_sha256": "a" * 64, "options_sha256": qm.options_sha256([])}
    return {"format": qm.FORMAT, "version": qm.VERSION, "dataset": "egotempo", "revision": "r1",
            "source": "test", "files": {"a.json": "b" * 64},
            "streams": [{"id": "s1", "duration": 3.0, "questions": [question]},
                        {"id": "s2", "duration": 2.0, "questions": [{**question, "id": "q2"}]}]}


def _stream(index: int, **values: object):
    def edit(body: dict) -> None:
        body["streams"][index].update(values)
    return edit


def _question(index: int, **values: object):
    def edit(body: dict) -> None:
        body["streams"][index]["questions"][0].update(values)
    return edit


@pytest.mark.parametrize("edit, problem", [
    (_stream(1, id="s1"), "stream id 's1' is listed twice"),
    (_question(1, id="q1"), "question id 'q1' is listed twice"),
    (_question(0, text_sha256="A" * 64), "streams.0.questions.0.text_sha256"),
    (_question(0, options_sha256="abc"), "streams.0.questions.0.options_sha256"),
    (lambda body: body["files"].update({"a.json": "xyz"}), "files.a.json"),
    (_stream(0, duration=-1.0), "streams.0.duration: Value error, must be a finite number"),
    (_question(0, ask_time=float("inf")), "streams.0.questions.0.ask_time"),
    (_question(0, evidence_delay=float("nan")), "evidence_delay: Value error, must be finite"),
])
def test_a_manifest_is_checked_at_its_boundary(edit, problem: str, tmp_path: Path) -> None:
    body = _valid()
    path = tmp_path / "m.json"
    path.write_text(json.dumps(body))
    assert qm.read(path).questions == 2
    edit(body)
    path.write_text(json.dumps(body))
    with pytest.raises(qm.QuestionManifestError) as caught:
        qm.read(path)
    assert str(caught.value).startswith(f"{path}: not a question manifest (")
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_two_files_of_one_revision_are_refused(tmp_path: Path) -> None:
    first, second, other = (tmp_path / name for name in ("a.json", "b.json", "c.json"))
    first.write_text(json.dumps(_valid()))
    second.write_text(json.dumps({**_valid(), "source": "another"}))
    other.write_text(json.dumps({**_valid(), "revision": "r2"}))
    assert set(qm.index([first, other])) == {("egotempo", "r1"), ("egotempo", "r2")}
    with pytest.raises(qm.QuestionManifestError,
                       match=r"b\.json: egotempo revision r1 is already pinned by a\.json$"):
        qm.index([first, second])
