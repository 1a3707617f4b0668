"""Issue 11, items 12 to 17: what a bundle can do to the build, to an entry and to a visitor."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from leaderboard import site as site_module
from leaderboard import tables
from leaderboard.bundle import BundleError, read_bundle
from leaderboard.errors import Rejected
from leaderboard.site import MARKER, BuildResult, build_site
from leaderboard.validate import validate_all, validate_bundle
from leaderboard_support import COMMITTED, Parts, consistent, rename_policy, rewrite_bundle
from taskmem_bench.cli import main

# ------------------------------------------------------------------ 12: integers are bounded


def _manifest(**values) -> Callable[[Parts], None]:
    def edit(parts: Parts) -> None:
        parts.manifest.update(values)

    return edit


def _results(folder: Path, *bundles: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for bundle in bundles:
        (folder / bundle.name).write_bytes(bundle.read_bytes())
    return folder


def test_a_seed_no_64_bit_column_holds_costs_its_bundle_not_the_build(
    leaderboard_bundles: dict[str, Path], tmp_path: Path
) -> None:
    """The run of the issue: ``--seed 9223372036854775808`` used to pass validation and then
    stop the build in ``tables.runs_frame``, for every other bundle too."""
    huge = rewrite_bundle(leaderboard_bundles["speech"], tmp_path / "huge.tar.gz",
                          _manifest(seed=2**63))
    with pytest.raises(BundleError, match="manifest.json: the integer 9223372036854775808 is "
                                          "outside the signed 64-bit range"):
        read_bundle(huge)
    results = _results(tmp_path / "results", huge, leaderboard_bundles["speech"])
    built = build_site(results, tmp_path / "site")
    assert [r.policy for r in built.accepted] == ["leaderboard_support:KeepSpeech"]
    assert [r.source for r in built.rejected] == ["huge.tar.gz"]


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_refused(leaderboard_bundles: dict[str, Path], tmp_path: Path,
                                      limit: int) -> None:
    bundle = rewrite_bundle(leaderboard_bundles["speech"], tmp_path / "l.tar.gz", _manifest(limit=limit))
    with pytest.raises(Rejected, match="manifest.json: limit: Input should be greater than or equal to 1"):
        validate_bundle(read_bundle(bundle))


@pytest.mark.parametrize(
    ("option", "named"),
    [
        (["--seed", str(2**63)], "--seed = 9223372036854775808 is outside the signed 64-bit"),
        (["--limit", str(2**64)], "--limit = 18446744073709551616 is outside"),
        (["--set", "seed='99999999999999999999'"], "dataset.seed = 99999999999999999999 is outside"),
    ],
)
def test_run_refuses_an_integer_outside_64_bits_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str], named: str
) -> None:
    out = tmp_path / "runs"
    assert main(["run", "--task", "mini", "--policy", "blind", "--out", str(out), *option]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert named in err and "Traceback" not in err
    assert not out.exists()


# ------------------------------------------------------------ 13: a copy never takes an entry


def _link(parts: Parts) -> None:
    parts.header["policy_link"] = "https://copier.example/mine"


def _policy_class(parts: Parts) -> None:
    parts.manifest["policy"]["class"] = "copier:Mine"


def _commit(parts: Parts) -> None:
    parts.manifest["git"] = {"commit": "0" * 40, "dirty": False}


def _exporter(parts: Parts) -> None:
    parts.header["exported_by"] = {"name": "taskmem-bench", "version": "9.9.9"}


CLAIMS = {"policy link": _link, "policy class": _policy_class, "git commit": _commit,
          "exporting package": _exporter}


@pytest.mark.parametrize("claim", CLAIMS)
def test_identical_results_under_another_claim_are_a_conflict_naming_both(
    leaderboard_bundles: dict[str, Path], tmp_path: Path, claim: str
) -> None:
    """A re-pack of someone's bundle under another link, class, commit or exporter used to
    replace it whenever its digest sorted first (a few tries of ``exported_at``)."""
    genuine = leaderboard_bundles["speech"]
    copy = rewrite_bundle(genuine, tmp_path / "0-copy.tar.gz", CLAIMS[claim])
    assert validate_bundle(read_bundle(copy)).entry_key == validate_bundle(read_bundle(genuine)).entry_key
    for order in ([genuine, copy], [copy, genuine]):
        accepted, rejected = validate_all([read_bundle(path) for path in order])
        assert accepted == []
        reasons = {r.source: r.reason for r in rejected}
        assert reasons["0-copy.tar.gz"].startswith("conflicts with speech.tar.gz: ")
        assert reasons["speech.tar.gz"].startswith("conflicts with 0-copy.tar.gz: ")
        assert f"identical rows and memory under another {claim}, so one is a copy" in reasons["speech.tar.gz"]


# ---------------------------------------------------------------------------------- 14: names


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("oracle ", "must be 1 to 200 printable characters (no control or bidi characters, no "
                    "spaces at either end)"),
        (" keep-speech", "no spaces at either end"),
        ("\u043eracle", "looks like 'oracle'"),  # Cyrillic о
        ("\uff42\uff4c\uff49\uff4e\uff44", "looks like 'blind'"),  # fullwidth
        ("Oracle", "looks like 'oracle'"),
        ("recent_frames", "looks like 'recent-frames'"),
        ("bl1nd", "looks like 'blind'"),
    ],
)
def test_a_policy_name_that_passes_for_a_control_is_refused(
    leaderboard_bundles: dict[str, Path], tmp_path: Path, name: str, reason: str
) -> None:
    forged = rewrite_bundle(leaderboard_bundles["speech"], tmp_path / "n.tar.gz",
                            consistent(rename_policy(name)))
    with pytest.raises(Rejected, match=re.escape(reason)):
        validate_bundle(read_bundle(forged))


def test_bundle_file_names_are_printed_escaped(
    leaderboard_bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name holding a newline and an escape sequence used to print a forged line of its own
    (and clear the screen) in the CI log."""
    results = _results(tmp_path / "results", leaderboard_bundles["blind"])
    forged = "evil\nrejected nothing; 9 runs accepted\x1b[2J.tar.gz"
    (results / forged).write_bytes(b"not an archive")
    assert main(["leaderboard", "build", str(results), "-o", str(tmp_path / "site")]) == 1
    captured = capsys.readouterr()
    assert "\x1b" not in captured.err + captured.out
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("rejected evil\\nrejected nothing; 9 runs accepted\\x1b[2J.tar.gz: "
                               "not a readable tar.gz archive")


# -------------------------------------------------------------------- 15: one run, one entry


def test_a_full_run_restated_with_its_stream_count_is_the_same_entry(tmp_path: Path) -> None:
    """``limit: 12`` (or more) on mini's 12 videos is the full run: one entry, counted once."""
    full = COMMITTED / "mini-blind.tar.gz"
    restated = [rewrite_bundle(full, tmp_path / f"limit-{n}.tar.gz", _manifest(limit=n))
                for n in (12, 1000)]
    runs = [validate_bundle(read_bundle(path)) for path in (full, *restated)]
    assert {(r.coverage.streams, r.coverage.of, r.coverage.limit) for r in runs} == {(12, 12, None)}
    assert len({r.entry_key for r in runs}) == 1
    accepted, rejected = validate_all([r.bundle for r in runs])
    assert len(accepted) == 1 and len(tables.entries(accepted)) == 1
    assert all(r.reason.startswith("duplicate of ") for r in rejected) and len(rejected) == 2


def test_a_run_of_part_of_a_benchmark_keeps_its_stream_count(leaderboard_bundles: dict[str, Path]) -> None:
    run = validate_bundle(read_bundle(leaderboard_bundles["speech"]))
    assert (run.coverage.streams, run.coverage.of, run.coverage.limit) == (2, 12, 2)


# ----------------------------------------------------------- 16: the old site is swapped out


class Killed(BaseException):
    """Stands for the build being killed."""


def test_a_build_killed_while_removing_the_old_site_leaves_a_whole_site(
    leaderboard_bundles: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old build deleted the site in place and then renamed the new one in: killed while
    deleting, it left a half-deleted site without its marker, which every later build refused."""
    results = _results(tmp_path / "results", leaderboard_bundles["blind"])
    out = tmp_path / "site"
    build_site(results, out)
    real_rmtree = site_module.shutil.rmtree

    def killed_midway(path: Path, *args, **kwargs) -> None:
        path = Path(path)
        if (path / MARKER).exists():  # a built site: deleted in part, then the process dies
            (path / MARKER).unlink()
            (path / "index.html").unlink()
            raise Killed
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(site_module.shutil, "rmtree", killed_midway)
    with pytest.raises(Killed):
        build_site(results, out)
    assert (out / MARKER).is_file() and (out / "index.html").is_file()  # the new site, whole
    monkeypatch.setattr(site_module.shutil, "rmtree", real_rmtree)
    assert [p.name for p in tmp_path.glob(".site.*")]  # the half-deleted old one, set aside
    build_site(results, out)
    assert list(tmp_path.glob(".site.*")) == []


def test_a_site_set_aside_by_a_build_killed_between_its_renames_is_put_back(
    leaderboard_bundles: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after renaming the old site aside and before renaming the new one in, a build
    left no site, and the only whole one in its ``.old`` folder, which the next build deleted:
    if that build failed too, nothing was left at all."""
    results = _results(tmp_path / "results", leaderboard_bundles["blind"])
    out = tmp_path / "site"
    build_site(results, out)
    page = (out / "index.html").read_text()
    real_rename = site_module.os.rename
    renames: list[Path] = []

    def killed_after_the_first(source: Path, target: Path) -> None:
        if renames:  # the process is gone: nothing runs after the first rename
            raise Killed
        renames.append(Path(target))
        real_rename(source, target)

    monkeypatch.setattr(site_module.os, "rename", killed_after_the_first)
    with pytest.raises(Killed):
        build_site(results, out)
    monkeypatch.setattr(site_module.os, "rename", real_rename)
    assert not out.exists() and renames[0].name.endswith(".old")

    def killed_while_rendering(self) -> None:
        raise Killed

    monkeypatch.setattr(site_module._Writer, "write_all", killed_while_rendering)
    with pytest.raises(Killed):
        build_site(results, out)  # the next build fails too: the old site is back in place
    assert (out / MARKER).is_file() and (out / "index.html").read_text() == page
    assert list(tmp_path.glob(".site.*")) == []
    monkeypatch.undo()
    build_site(results, out)
    assert (out / "index.html").is_file() and list(tmp_path.glob(".site.*")) == []


def test_staging_folders_of_a_killed_build_are_removed_by_the_next(
    leaderboard_bundles: dict[str, Path], tmp_path: Path
) -> None:
    results = _results(tmp_path / "results", leaderboard_bundles["blind"])
    for name in (".site.k1ll3d_x", ".site.abcd1234.old"):
        (tmp_path / name / "runs").mkdir(parents=True)
    (tmp_path / ".site.notes").mkdir()  # not a name a build gives: someone else's
    build_site(results, tmp_path / "site")
    assert sorted(p.name for p in tmp_path.glob(".site*")) == [".site.notes"]


# ------------------------------------------------------------------ 17: what a visitor sees


def _model(identity: dict) -> Callable[[Parts], None]:
    def edit(parts: Parts) -> None:
        parts.manifest["policy"]["model"] = identity

    return edit


def test_runs_on_different_models_are_told_apart_and_show_no_local_path(
    leaderboard_bundles: dict[str, Path], tmp_path: Path
) -> None:
    """Two runs of one policy and config on two models used to be one "caption v1" entry."""
    local = {"backend": "transformers", "model": "/tmp/secret-user/tiny-vl",
             "files": {"config.json": "ab" * 32}, "weights": {"model.safetensors": 1234}}
    hub = {"backend": "vllm", "model": "Qwen/Qwen3-VL-8B-Instruct", "hub_revision": "0123456789abcdef"}
    results = _results(tmp_path / "results")
    for name, identity in (("local", local), ("hub", hub)):
        rewrite_bundle(leaderboard_bundles["speech"], results / f"{name}.tar.gz", _model(identity))
    built = build_site(results, tmp_path / "site")
    assert built.rejected == [] and len(built.accepted) == 2
    board = tables.entries(built.accepted)
    files = hashlib.sha256(json.dumps(local["files"], sort_keys=True).encode()).hexdigest()[:8]
    assert sorted(e.models[0] for e in board) == [
        "policy: Qwen/Qwen3-VL-8B-Instruct @ 01234567 (vllm)",
        f"policy: tiny-vl (files {files}) (transformers)",  # the folder's name, not its path
    ]
    index = (built.site / "index.html").read_text()
    assert "Qwen/Qwen3-VL-8B-Instruct @ 01234567 (vllm)" in index and "tiny-vl (files" in index
    for page in built.site.rglob("*.html"):
        assert "secret-user" not in page.read_text(), page


TRACEBACK = """Traceback (most recent call last):
  File "/home/alice-secret/bench/my_reader.py", line 12, in answer
    raise TypeError(f"cannot read {path}")
TypeError: cannot read /home/alice-secret/data/cache.bin"""
"""A reader's traceback as a failed row's ``error`` holds it, with the submitter's paths."""


def _failed_with_traceback(parts: Parts) -> None:
    """The first question failed in the reader, as the runner records it: no output, and the
    traceback in ``error``."""
    first = pl.col("question_id") == parts.rows["question_id"][0]
    parts.rows = parts.rows.with_columns(
        pl.when(first).then(pl.lit(value)).otherwise(pl.col(name)).alias(name)
        for name, value in (("failure", "reader_error"), ("error", TRACEBACK), ("raw_output", None),
                            ("parsed", None), ("extraction", None), ("variants", None),
                            ("correct", False), ("abstained", False), ("parse_failed", False))
    )


def test_run_pages_show_no_path_of_the_submitters_machine(
    leaderboard_site: BuildResult, leaderboard_bundles: dict[str, Path], tmp_path: Path
) -> None:
    """Neither on the pages nor in the ``rows.csv`` / ``rows.parquet`` downloads, whose ``error``
    column used to publish tracebacks as they were."""
    failed = rewrite_bundle(leaderboard_bundles["speech"], tmp_path / "failed.tar.gz",
                            consistent(_failed_with_traceback))
    with_failure = build_site(_results(tmp_path / "results", failed), tmp_path / "site")
    assert with_failure.rejected == [] and len(with_failure.accepted) == 1
    for built in (leaderboard_site, with_failure):
        for run in built.accepted:
            paths = _absolute_paths(run.bundle.manifest) + _absolute_paths(TRACEBACK.split())
            folder = built.site / "runs" / run.run_id
            page = (folder / "index.html").read_text()
            csv = (folder / "rows.csv").read_text()
            published = pl.read_parquet(folder / "rows.parquet")
            cells = "\n".join(str(v) for row in published.iter_rows() for v in row)
            for text in (page, csv, cells):
                assert paths and not [p for p in paths if p in text], run.policy
                assert str(Path.home()) + "/" not in text and "alice-secret" not in text
            assert "&lt;local path&gt;" in page
            assert published.drop("error").equals(run.bundle.rows.drop("error"))
    (run,) = with_failure.accepted
    page = (with_failure.site / "runs" / run.run_id / "index.html").read_text()
    assert "failed: reader_error" in page and "File &#34;&lt;local path&gt;&#34;, line 12" in page
    error = pl.read_parquet(with_failure.site / "runs" / run.run_id / "rows.parquet")["error"]
    assert error.drop_nulls().to_list() == [
        TRACEBACK.replace("/home/alice-secret/bench/my_reader.py", "<local path>")
        .replace("/home/alice-secret/data/cache.bin", "<local path>")
    ]


def _absolute_paths(value) -> list[str]:
    if isinstance(value, dict):
        return [p for v in value.values() for p in _absolute_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _absolute_paths(v)]
    return [value] if isinstance(value, str) and value.startswith("/") else []


class _Groups(HTMLParser):
    """The main table's rows in page order, each as (group, track)."""

    def __init__(self) -> None:
        super().__init__()
        self.group: str | None = None
        self.rows: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tbody":
            self.group = found.get("data-group")
        if tag == "tr" and "data-track" in found:
            self.rows.append((self.group, found["data-track"]))


def test_controls_and_partial_runs_are_shown_apart_after_the_ranking(
    leaderboard_site: BuildResult,
) -> None:
    parser = _Groups()
    parser.feed((leaderboard_site.site / "index.html").read_text())
    groups = [group for group, _ in parser.rows]
    assert groups == sorted(groups, key=["ranked", "partial", "controls"].index)  # in that order
    assert {track for group, track in parser.rows if group == "controls"} == {"control"}
    assert "control" not in {track for group, track in parser.rows if group != "controls"}
    assert groups[0] == "ranked" and groups.count("ranked") == 1 and groups.count("partial") == 4


def test_a_partial_run_ranks_after_a_full_one_whatever_its_accuracy(tmp_path: Path,
                                                                    leaderboard_bundles: dict[str, Path]) -> None:
    full = validate_bundle(read_bundle(COMMITTED / "mini-readme-heard.tar.gz"))
    partial = validate_bundle(read_bundle(leaderboard_bundles["speech"]))
    partial = dataclasses.replace(partial, scores=dataclasses.replace(partial.scores, acc=1.0))
    board = tables.entries([partial, full])
    assert [(e.policy, e.group, e.limit) for e in board] == [
        ("my_policies:Heard", "ranked", None), ("leaderboard_support:KeepSpeech", "partial", 2)]


def test_the_about_page_cites_the_paper_and_the_project(
    leaderboard_bundles: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "someone/taskmem-bench")
    built = build_site(_results(tmp_path / "results", leaderboard_bundles["blind"]), tmp_path / "site")
    about = (built.site / "about.html").read_text()
    for needle in ("Task-Focused Memorization for Multimodal Agents", "Zou and He and Qiu and Lin and Li",
                   "eprint        = {2605.31075}", "archivePrefix = {arXiv}",
                   "url     = {https://github.com/someone/taskmem-bench}",
                   'href="https://github.com/someone/taskmem-bench"'):
        assert needle in about, needle
    data = json.loads((built.site / "leaderboard.json").read_text())
    assert data["runs"][0]["limit"] == 2 and data["runs"][0]["streams"] == 2
