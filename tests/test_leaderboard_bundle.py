"""Result bundles: what export packs, and how reading treats a hostile archive."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import polars as pl
import pytest

from leaderboard.bundle import (
    BUNDLE_SCHEMA, CHECKSUMS, DATA_MEMBERS, BundleError, Limits, checksums_text,
    export_bundle, pack, read_bundle,
)
from leaderboard.parquet import MiB, TableCaps
from leaderboard_support import read_members, rewrite_bundle
from taskmem_bench.cli import main
from taskmem_bench.memorylog import MEMORY_SCHEMA, MemoryLog
from taskmem_bench.results import ROW_SCHEMA


def test_export_packs_the_documented_members_with_checksums(leaderboard_bundles: dict[str, Path]) -> None:
    members = read_members(leaderboard_bundles["oracle"])
    assert list(members) == [*DATA_MEMBERS, CHECKSUMS]
    listed = dict(line.split("  ")[::-1] for line in members[CHECKSUMS].decode().splitlines())
    assert listed == {name: hashlib.sha256(members[name]).hexdigest() for name in DATA_MEMBERS}
    header = json.loads(members["bundle.json"])
    assert header["bundle_schema"] == BUNDLE_SCHEMA and header["policy_link"] is None
    assert json.loads(members["bundle.json"].decode()) == read_bundle(leaderboard_bundles["oracle"]).header


def test_a_bundle_reads_back_as_its_run(leaderboard_bundles: dict[str, Path]) -> None:
    bundle = read_bundle(leaderboard_bundles["speech"])
    assert bundle.policy_link == "https://example.org/keep-speech"
    assert dict(bundle.rows.schema) == ROW_SCHEMA and dict(bundle.memory.schema) == MEMORY_SCHEMA
    assert bundle.rows["raw_output"].null_count() == 0
    assert bundle.summary["n"] == bundle.rows.height
    # a row's snapshot is the first memory_entries entries of its stream's log
    row = bundle.rows.filter(pl.col("memory_entries") > 0).row(0, named=True)
    log = MemoryLog.from_frame(bundle.memory)[row["stream_id"]]
    snapshot = log.snapshot(row["memory_entries"], row["ask_time"])
    assert snapshot.digest == row["memory_digest"]


def _archive(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([(_info("../escaped.txt"), b"x")], "unexpected archive member '../escaped.txt'"),
        ([(_info("/tmp/absolute.txt"), b"x")], "unexpected archive member '/tmp/absolute.txt'"),
        ([(_info("data/manifest.json"), b"{}")], "unexpected archive member 'data/manifest.json'"),
        ([(_info("payload.py"), b"import os")], "unexpected archive member 'payload.py'"),
        ([(_info("manifest.json", tarfile.SYMTYPE, "/etc/passwd"), None)], "manifest.json is not a regular file"),
        ([(_info("manifest.json", tarfile.LNKTYPE, "summary.json"), None)], "manifest.json is not a regular file"),
        ([(_info("manifest.json", tarfile.DIRTYPE), None)], "manifest.json is not a regular file"),
        ([(_info("manifest.json"), b"{}"), (_info("manifest.json"), b"{}")], "manifest.json appears twice"),
        ([(_info("manifest.json"), b"{}")], "archive lacks bundle.json, summary.json"),
    ],
)
def test_hostile_archives_are_refused_without_writing_anything(
    tmp_path: Path, entries: list, reason: str
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = _archive(inbox / "bad.tar.gz", entries)
    with pytest.raises(BundleError) as error:
        read_bundle(path)
    assert reason in str(error.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["bad.tar.gz", "inbox"]


def test_size_limits_hold_per_member_in_total_and_on_expansion(
    leaderboard_bundles: dict[str, Path], tmp_path: Path
) -> None:
    path = leaderboard_bundles["oracle"]
    with pytest.raises(BundleError, match="archive is .* bytes, over the 100-byte limit"):
        read_bundle(path, Limits(archive_bytes=100))
    with pytest.raises(BundleError, match="rows.parquet is .* bytes, over its 1000-byte limit"):
        read_bundle(path, Limits(rows_bytes=1000))
    big = _archive(tmp_path / "big.tar.gz", [(_info("manifest.json"), bytes(8 * 1024 * 1024))])
    with pytest.raises(BundleError, match="bundle members exceed the total size limit"):
        read_bundle(big, Limits(json_bytes=16 * 1024 * 1024, total_bytes=1024 * 1024))
    # a compression bomb outside any member (a 64 MiB pax header) stops at the total cap too
    bomb = tarfile.TarInfo("manifest.json")
    bomb.pax_headers = {"comment": "0" * (64 * 1024 * 1024)}
    with tarfile.open(tmp_path / "bomb.tar.gz", "w:gz", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(bomb, io.BytesIO(b""))
    assert (tmp_path / "bomb.tar.gz").stat().st_size < 200_000
    with pytest.raises(BundleError, match="archive expands past the total size limit"):
        read_bundle(tmp_path / "bomb.tar.gz", Limits(total_bytes=1024 * 1024))


def test_not_an_archive_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "link.tar.gz").symlink_to("/etc/hostname")
    with pytest.raises(BundleError, match="not a regular file"):
        read_bundle(tmp_path / "link.tar.gz")
    (tmp_path / "a.tar.gz").write_bytes(b"plain text, not gzip")
    with pytest.raises(BundleError, match="not a readable tar.gz archive"):
        read_bundle(tmp_path / "a.tar.gz")
    (tmp_path / "b.tar.gz").write_bytes(gzip.compress(b"gzip, but not tar" * 100))
    with pytest.raises(BundleError, match="not a readable tar.gz archive"):
        read_bundle(tmp_path / "b.tar.gz")


def test_edits_after_export_break_the_checksums(leaderboard_bundles: dict[str, Path], tmp_path: Path) -> None:
    def bump(parts) -> None:
        parts.summary["acc"] += 0.25

    edited = rewrite_bundle(leaderboard_bundles["oracle"], tmp_path / "e.tar.gz", bump, fix_checksums=False)
    with pytest.raises(BundleError, match="checksum mismatch for summary.json"):
        read_bundle(edited)


@pytest.mark.parametrize(
    ("member", "data", "reason"),
    [
        ("bundle.json", b'{"bundle_schema": 2}', "bundle schema 2 is not supported"),
        ("bundle.json", b'{"bundle_schema": 1, "policy_link": "javascript:alert(1)"}', "policy link must be an http(s) URL"),
        ("summary.json", b'{"acc": NaN}', "summary.json is not valid JSON"),
        ("summary.json", b'{"memory": {"video_hours": 1e999}}', "1e999 is not a finite number"),
        ("manifest.json", b"[1, 2]", "manifest.json must hold a JSON object"),
        ("manifest.json", b"[" * 100_000, "manifest.json is not valid JSON"),
        ("rows.parquet", b"PAR1 not really", "rows.parquet is not a readable Parquet file"),
    ],
)
def test_malformed_members_are_refused(
    leaderboard_bundles: dict[str, Path], tmp_path: Path, member: str, data: bytes, reason: str
) -> None:
    members = read_members(leaderboard_bundles["blind"])
    members[member] = data
    members[CHECKSUMS] = checksums_text(members).encode()
    (tmp_path / "m.tar.gz").write_bytes(pack(members))
    with pytest.raises(BundleError) as error:
        read_bundle(tmp_path / "m.tar.gz")
    assert reason in str(error.value)


def test_a_rows_table_with_another_schema_is_refused(leaderboard_bundles: dict[str, Path], tmp_path: Path) -> None:
    def drop(parts) -> None:
        parts.rows = parts.rows.drop("raw_output")

    with pytest.raises(BundleError, match="rows.parquet has columns .*; expected task"):
        read_bundle(rewrite_bundle(leaderboard_bundles["blind"], tmp_path / "d.tar.gz", drop))


def test_export_cli_checks_the_bundle_and_fails_cleanly(
    leaderboard_bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = leaderboard_bundles["oracle"].parent.parent / "runs" / "mini" / "oracle"
    assert main(["export", str(run_dir), "--bundle", str(tmp_path / "o.tar.gz")]) == 0
    assert re.search(r"track control, Acc \d+\.\d \(re-scored\)", capsys.readouterr().out)
    assert main(["export", str(tmp_path), "--bundle", str(tmp_path / "x.tar.gz")]) == 2
    assert "is not a finished run: manifest.json is missing" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--bundle", str(tmp_path / "y.tar.gz"), "--link", "javascript:x"]) == 2
    assert "policy link must be an http(s) URL" in capsys.readouterr().err
    assert not (tmp_path / "x.tar.gz").exists() and not (tmp_path / "y.tar.gz").exists()
    with pytest.raises(BundleError, match="policy link"):
        export_bundle(run_dir, tmp_path / "z.tar.gz", link="http://")


def test_data_after_the_archive_end_is_refused_but_zero_padding_is_not(
    leaderboard_bundles: dict[str, Path], tmp_path: Path
) -> None:
    original = leaderboard_bundles["blind"].read_bytes()
    hidden = tmp_path / "two.tar.gz"  # a second gzip member, as `cat a.tar.gz b.tar.gz` makes
    hidden.write_bytes(original + gzip.compress(b"not part of what was checked"))
    with pytest.raises(BundleError, match="data follows the end of the tar archive"):
        read_bundle(hidden)
    padded = tmp_path / "padded.tar.gz"
    padded.write_bytes(gzip.compress(gzip.decompress(original) + bytes(64 * 1024)))
    assert read_bundle(padded).digest == read_bundle(leaderboard_bundles["blind"]).digest


def _with_rows(source: Path, target: Path, edit) -> Path:
    members = read_members(source)
    rows = edit(pl.read_parquet(io.BytesIO(members["rows.parquet"])))
    buffer = io.BytesIO()
    rows.write_parquet(buffer)
    members["rows.parquet"] = buffer.getvalue()
    members[CHECKSUMS] = checksums_text(members).encode()
    target.write_bytes(pack(members))
    return target


def test_decoded_sizes_are_capped_before_a_table_is_decoded(
    leaderboard_bundles: dict[str, Path], tmp_path: Path
) -> None:
    """A few kilobytes of Parquet can hold megabytes of repeated text; the caps are read from
    a lazy scan, so such a bundle is refused at once rather than after minutes of re-scoring."""
    long = "The answer is " * 20_000  # 280 KB, dictionary-encoded to almost nothing
    bomb = _with_rows(leaderboard_bundles["blind"], tmp_path / "bomb.tar.gz",
                      lambda rows: pl.concat([rows] * 100).with_columns(raw_output=pl.lit(long)))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(BundleError, match="a raw_output cell holds 280000 bytes, over the 65536-byte limit"):
        read_bundle(bomb)
    path = leaderboard_bundles["oracle"]
    small = Limits(rows_table=TableCaps(rows=10, text_bytes=MiB, cell_bytes=MiB))
    with pytest.raises(BundleError, match="rows.parquet has 16 rows, over its limit of 10"):
        read_bundle(path, small)
    small = Limits(memory_table=TableCaps(rows=10**6, text_bytes=100, cell_bytes=MiB))
    with pytest.raises(BundleError, match="memory.parquet decodes to \\d+ bytes of text, over its 100-byte"):
        read_bundle(path, small)
