"""Issue 11 item 8: an unusable annotation file is one line naming the file and the problem,
exit 2, from `prepare` and `run` alike, never a traceback; a malformed record is a counted skip."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from taskmem_bench.cli import main
from taskmem_bench.datasets import AnnotationError
from taskmem_bench.datasets.egolife import Config as EgoLifeConfig
from taskmem_bench.datasets.egolife import EgoLifeDataset
from taskmem_bench.datasets.egolife_time import TimeFormatError, parse_moment, parse_target_time
from taskmem_bench.datasets.jsonload import MAX_DEPTH, load_json
from taskmem_bench.datasets.prepare import MediaIndex, manifest_path
from taskmem_bench.datasets.videomme import Config as VideoMMEConfig
from taskmem_bench.datasets.videomme import VideoMME
from taskmem_bench.testing.releases import egolife as egolife_fixture
from taskmem_bench.testing.releases import egotempo as egotempo_fixture
from taskmem_bench.testing.releases import videomme as videomme_fixture

TASKS = {"videomme": "videomme_stream", "egolife": "egolife_stream",
         "egotempo": "egotempo_stream"}
# Far past the parser's own recursion limit: json raises RecursionError on it.
BOMB = b"[" * 200_000 + b"]" * 200_000


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKMEM_BENCH_CACHE", str(tmp_path / "cache"))


def _videomme_typed(column: str, dtype: pl.DataType, value: Callable[[int], object]
                    ) -> Callable[[Path], None]:
    """A Video-MME release whose parquet stores ``column`` as ``dtype``."""
    def build(root: Path) -> None:
        videomme_fixture.write_release(root)
        rows = videomme_fixture.rows(videomme_fixture.DEFAULT_VIDEOS)
        for i, row in enumerate(rows):
            row[column] = value(i)
        schema = {**videomme_fixture.SCHEMA, column: dtype}
        videomme_fixture.write_parquet(root / videomme_fixture.PARQUET, rows, schema)
    return build


def _egolife_file(content: bytes) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        egolife_fixture.write_release(root, clips=(), side=())
        (root / "EgoLifeQA" / f"EgoLifeQA_{egolife_fixture.JAKE}.json").write_bytes(content)
    return build


def _egotempo_file(content: bytes) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        egotempo_fixture.write_release(root, clips=())
        (root / egotempo_fixture.ANNOTATIONS).write_bytes(content)
    return build


def _empty(root: Path) -> None:
    root.mkdir()


QA_FILE = f"EgoLifeQA_{egolife_fixture.JAKE}.json"
BAD_RELEASES = {
    "videomme answer int": ("videomme", _videomme_typed("answer", pl.Int64, lambda i: i),
                            "test-00000-of-00001.parquet: column(s) of the wrong type: "
                            "answer (Int64)"),
    "videomme video_id int": ("videomme", _videomme_typed("video_id", pl.Int64, lambda i: i),
                              "column(s) of the wrong type: video_id (Int64)"),
    "videomme question int": ("videomme", _videomme_typed("question", pl.Int64, lambda i: i),
                              "column(s) of the wrong type: question (Int64)"),
    "videomme options ints": ("videomme", _videomme_typed("options", pl.List(pl.Int64),
                                                          lambda i: [1, 2, 3, 4]),
                              "options (List(Int64))"),
    "egolife object": ("egolife", _egolife_file(b'{"ID": "1"}'),
                       f"{QA_FILE}: expected a JSON array of questions, got dict"),
    "egolife truncated": ("egolife", _egolife_file(b'[{"ID": "1", "que'),
                          f"{QA_FILE}: malformed JSON in record 0"),
    "egolife not utf-8": ("egolife", _egolife_file(b'[{"ID": "\xff\xfe"}]'),
                          f"{QA_FILE}: cannot read annotations: 'utf-8' codec"),
    "egolife nested 200000": ("egolife", _egolife_file(BOMB),
                              f"{QA_FILE}: JSON nested deeper than {MAX_DEPTH} levels"),
    "egotempo array": ("egotempo", _egotempo_file(b"[]"),
                       'egotempo_openQA.json: expected {"info": ..., "annotations": [...]}'),
    "egotempo truncated": ("egotempo", _egotempo_file(b'{"annotations": [{"question_id": '),
                           "egotempo_openQA.json: malformed JSON in record 0"),
    "egotempo not utf-8": ("egotempo", _egotempo_file(b'{"info": "\xc3\x28"}'),
                           "egotempo_openQA.json: cannot read annotations"),
    "egotempo nested 200000": ("egotempo", _egotempo_file(BOMB),
                               f"egotempo_openQA.json: JSON nested deeper than {MAX_DEPTH}"),
    "videomme empty root": ("videomme", _empty, "no Video-MME parquet under"),
    "egolife empty root": ("egolife", _empty, "egolife: no EgoLifeQA folder under"),
    "egotempo empty root": ("egotempo", _empty, "egotempo: no egotempo_openQA.json under"),
}


def _commands(dataset: str, root: Path, out: Path) -> list[list[str]]:
    """`prepare` and `run` on the release; the run names every model it would need, so only
    the release can stop it."""
    judge = ["--set", "judge.backend=openai", "--set", "judge.model=m"] * (dataset == "egotempo")
    return [["prepare", dataset, "--root", str(root)],
            ["run", "--task", TASKS[dataset], "--policy", "blind", "--reader", "cpu",
             "--set", f"root={root}", *judge, "--out", str(out)]]


@pytest.mark.parametrize("case", list(BAD_RELEASES))
def test_unusable_annotations_are_one_line_and_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    dataset, build, problem = BAD_RELEASES[case]
    root = tmp_path / "release"
    build(root)
    for argv in _commands(dataset, root, tmp_path / "runs"):
        assert main(argv) == 2, argv[0]
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert "Traceback" not in err
        assert len(errors) == 1 and problem in errors[0], (argv[0], err)
        assert str(root) in errors[0] or "parquet" in errors[0]  # names the file or folder


def test_a_record_without_query_time_is_a_counted_skip(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    jake = egolife_fixture.DEFAULT_QUESTIONS[egolife_fixture.JAKE]
    without = {k: v for k, v in jake[0].items() if k != "query_time"}
    root = egolife_fixture.write_release(
        tmp_path / "release", questions={egolife_fixture.JAKE: (without, *jake[1:3])})
    release = EgoLifeDataset().load(EgoLifeConfig(root=str(root)))
    skip = next(s for s in release.skipped if s.item_id == f"{egolife_fixture.JAKE}-2")
    assert skip.kind == "malformed_record" and "no 'query_time'" in skip.reason
    assert len(release.episodes[0].stream.questions) == 2

    prepare_cmd, run_cmd = _commands("egolife", root, tmp_path / "runs")
    assert main(prepare_cmd) == 0
    assert f"malformed_record: 1 ({egolife_fixture.JAKE}-2)" in capsys.readouterr().out
    assert main(run_cmd) == 0
    manifest = json.loads((tmp_path / "runs" / "egolife_stream" / "blind" / "manifest.json")
                          .read_text())
    assert {"item_id": f"{egolife_fixture.JAKE}-2", "kind": "malformed_record",
            "reason": skip.reason} in manifest["dataset"]["skipped"]


@pytest.mark.parametrize("depth", [MAX_DEPTH, 500, 200_000])
def test_deep_json_is_refused_naming_the_record(tmp_path: Path, depth: int) -> None:
    """Nesting deeper than any release uses is refused before code that walks it recursively
    (a 500-deep ``target_time`` used to exhaust the stack in the EgoLife parser)."""
    path = tmp_path / "qa.json"
    path.write_text('{"info": 1, "annotations": [{"ID": 1}, {"target_time": '
                    + "[" * depth + "]" * depth + "}]}")
    with pytest.raises(AnnotationError, match=rf"qa\.json: JSON nested deeper than {MAX_DEPTH} "
                                              r"levels in record 1 \(counting from 0\)"):
        load_json(path, "annotations")
    path.write_text('{"annotations": [{"target_time": ' + "[" * 4 + "]" * 4 + "}]}")
    assert load_json(path, "annotations") == {"annotations": [{"target_time": [[[[]]]]}]}


def test_an_integer_python_will_not_convert_is_an_annotation_error(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    path.write_text('[{"ID": 1}, {"ID": ' + "9" * 5000 + "}]")
    with pytest.raises(AnnotationError, match=r"qa\.json: unreadable JSON in record 1"):
        load_json(path)


def test_bad_day_tokens_are_notes_not_crashes() -> None:
    """A ``DAY0`` inside a packed ``target_time`` used to raise out of the parser that promises
    to raise nothing; an absurdly long day number is a format error, not a ValueError from
    ``int``."""
    query = parse_moment({"date": "DAY1", "time": "11000000"})
    evidence = parse_target_time({"date": "DAY1", "time": "10000000DAY0_10300000"}, query, 20.0)
    assert evidence.form == "point" and len(evidence.spans) == 1
    assert [kind for kind, _ in evidence.notes] == ["target_time_invalid"]
    assert "DAY0" in evidence.notes[0][1] and "the rest is not read" in evidence.notes[0][1]
    with pytest.raises(TimeFormatError, match="not a recording day"):
        parse_moment({"date": "DAY" + "9" * 5000, "time": "11000000"})


def test_text_columns_stored_as_categories_are_read(tmp_path: Path) -> None:
    """A parquet re-saved by pandas keeps repeated labels as categories: still strings."""
    root = tmp_path / "release"
    _videomme_typed("domain", pl.Categorical, lambda i: "Knowledge")(root)
    release = VideoMME().load(VideoMMEConfig(root=str(root)))
    assert {q.tags["domain"] for e in release.episodes for q in e.stream.questions} == \
        {"Knowledge"}


def test_a_prepared_manifest_nested_too_deeply_is_rebuilt(tmp_path: Path) -> None:
    path = manifest_path("videomme", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(BOMB)
    assert MediaIndex.open("videomme", tmp_path).stats()["from_manifest"] == 0
