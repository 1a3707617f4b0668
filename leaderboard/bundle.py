"""Result bundles: one run packed for submission, and read back as untrusted input.

A bundle (schema version ``BUNDLE_SCHEMA``) is a gzip-compressed tar archive of exactly these
regular files, at the top level::

    bundle.json      {"bundle_schema": 1, "exported_by": {name, version}, "exported_at",
                      "policy_link": an http(s) URL or null}
    manifest.json    the run manifest, as the runner wrote it
    summary.json     the run summary, as the runner wrote it
    rows.parquet     the per-question rows (``results.ROW_SCHEMA``), raw reader outputs included
    memory.parquet   every stream's memory log (``memorylog.MEMORY_SCHEMA``); a row's snapshot
                     is the first ``memory_entries`` entries of its stream
    SHA256SUMS       ``<sha256>  <name>`` for each file above (``sha256sum -c`` reads it)

Reading treats the archive as hostile: it is never extracted to disk; members are read into
memory one by one from a size-capped stream, only the names above are accepted and only as
regular files (so no links and no paths at all, let alone absolute or ``..`` ones); each member
and the whole has a size cap; nothing but zero padding may follow the archive's end; JSON is
parsed with ``json`` (finite numbers and 64-bit integers only) and Parquet with polars, with row
counts and decoded text sizes checked before a table is decoded (``parquet.read_table``), so
nothing in a bundle is ever executed or unpickled and a small bundle cannot make validation slow.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import polars as pl

import taskmem_bench
from leaderboard.parquet import KiB, MiB, TableCaps, TableError, read_table
from taskmem_bench.memorylog import MEMORY_SCHEMA, memory_frame
from taskmem_bench.results import ROW_SCHEMA, RunDir, write_atomic
from taskmem_bench.taskconfig import INT64_RANGE
from taskmem_bench.untrusted import printable_name

BUNDLE_SCHEMA = 1
HEADER, MANIFEST, SUMMARY, ROWS, MEMORY, CHECKSUMS = (
    "bundle.json", "manifest.json", "summary.json", "rows.parquet", "memory.parquet", "SHA256SUMS"
)
DATA_MEMBERS = (HEADER, MANIFEST, SUMMARY, ROWS, MEMORY)
"""The members SHA256SUMS covers, in archive order; SHA256SUMS comes last."""

@dataclass(frozen=True)
class Limits:
    """Size caps for reading a bundle; generous for a full real-data run, small next to a disk.

    The decoded caps bound validation time too: re-scoring reads every raw output (about a
    second per MiB), so 32 MiB of row text is at most half a minute."""

    archive_bytes: int = 128 * MiB
    json_bytes: int = 4 * MiB
    rows_bytes: int = 64 * MiB
    memory_bytes: int = 256 * MiB
    total_bytes: int = 320 * MiB
    rows_table: TableCaps = TableCaps(
        rows=200_000, text_bytes=32 * MiB, cell_bytes=8 * KiB,
        cell_overrides={"raw_output": 64 * KiB, "error": 64 * KiB},
    )
    memory_table: TableCaps = TableCaps(rows=2_000_000, text_bytes=64 * MiB, cell_bytes=16 * KiB)

    def member_cap(self, name: str) -> int:
        return {ROWS: self.rows_bytes, MEMORY: self.memory_bytes}.get(name, self.json_bytes)


LIMITS = Limits()


class BundleError(ValueError):
    """A bundle that cannot be made or read; the message is the one reason given."""


@dataclass(frozen=True)
class Bundle:
    """A bundle read back and checked for form (schema, checksums), not yet for truth."""

    source: str
    """The archive's file name, for messages (``untrusted.printable_name``: control characters escaped)."""
    digest: str
    """sha256 of SHA256SUMS, which pins every other member: the bundle's identity."""
    header: Mapping[str, Any]
    manifest: Mapping[str, Any]
    summary: Mapping[str, Any]
    rows: pl.DataFrame
    memory: pl.DataFrame

    @property
    def policy_link(self) -> str | None:
        return self.header.get("policy_link")


# ---------------------------------------------------------------------------------------- export


def export_bundle(run_dir: Path, out: Path, *, link: str | None = None) -> Path:
    """Pack the finished run in ``run_dir`` into ``out`` (written atomically)."""
    run = RunDir(run_dir)
    for needed in (run.manifest_path, run.summary_path, run.rows_path):
        if not needed.is_file():
            raise BundleError(
                f"{run_dir} is not a finished run: {needed.name} is missing "
                "(export one (task, policy) run directory, e.g. runs/demo/mini/oracle)"
            )
    if link is not None:
        check_link(link)
    header = {
        "bundle_schema": BUNDLE_SCHEMA,
        "exported_by": {"name": "taskmem-bench", "version": taskmem_bench.__version__},
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "policy_link": link,
    }
    members = {
        HEADER: json.dumps(header, indent=2, sort_keys=True).encode(),
        MANIFEST: run.manifest_path.read_bytes(),
        SUMMARY: run.summary_path.read_bytes(),
        ROWS: run.rows_path.read_bytes(),
        MEMORY: _parquet_bytes(memory_frame(run.memory_logs())),
    }
    members[CHECKSUMS] = checksums_text(members).encode()
    out = Path(out)

    def write(tmp: Path) -> None:
        tmp.write_bytes(pack(members))
        tmp.chmod(0o644)  # a file to share, not mkstemp's private 0600

    write_atomic(out, write)
    return out


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def checksums_text(members: Mapping[str, bytes]) -> str:
    return "".join(
        f"{hashlib.sha256(members[name]).hexdigest()}  {name}\n" for name in sorted(DATA_MEMBERS)
    )


def pack(members: Mapping[str, bytes]) -> bytes:
    """A reproducible tar.gz of ``members`` (fixed times and owners), SHA256SUMS last."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def check_link(link: str) -> str:
    """A policy link must be a plain http(s) URL: no ``javascript:`` or ``data:`` links."""
    parts = urlsplit(link)
    if (
        len(link) > 2000
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or any(c.isspace() or ord(c) < 32 for c in link)
    ):
        raise BundleError(f"policy link must be an http(s) URL, got {link[:80]!r}")
    return link


# ------------------------------------------------------------------------------------------ read


def read_bundle(path: Path, limits: Limits = LIMITS) -> Bundle:
    """Read and check a bundle's form; raises ``BundleError`` with the first problem found."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise BundleError("not a regular file (links are not followed)")
    size = path.stat().st_size
    if size > limits.archive_bytes:
        raise BundleError(f"archive is {size} bytes, over the {limits.archive_bytes}-byte limit")
    members = _read_members(path, limits)
    expected = checksums_text(members)
    if members[CHECKSUMS].decode("utf-8", "replace") != expected:
        raise BundleError(_checksum_problem(members[CHECKSUMS], expected))
    header = _json(members, HEADER)
    if header.get("bundle_schema") != BUNDLE_SCHEMA:
        raise BundleError(
            f"bundle schema {header.get('bundle_schema')!r} is not supported "
            f"(this package reads schema {BUNDLE_SCHEMA})"
        )
    link = header.get("policy_link")
    if link is not None:
        if not isinstance(link, str):
            raise BundleError("policy_link in bundle.json must be a string or null")
        check_link(link)
    return Bundle(
        source=printable_name(path.name),
        digest=hashlib.sha256(members[CHECKSUMS]).hexdigest(),
        header=header,
        manifest=_json(members, MANIFEST),
        summary=_json(members, SUMMARY),
        rows=_parquet(members, ROWS, ROW_SCHEMA, limits.rows_table),
        memory=_parquet(members, MEMORY, MEMORY_SCHEMA, limits.memory_table),
    )


class _Capped(io.RawIOBase):
    """A read-only stream that refuses to yield more than ``cap`` bytes in all: a compressed
    archive cannot expand past the bundle's total size limit, headers included."""

    def __init__(self, inner: io.BufferedIOBase, cap: int) -> None:
        self.inner, self.left = inner, cap

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size if size >= 0 else self.left + 1)
        self.left -= len(data)
        if self.left < 0:
            raise BundleError("archive expands past the total size limit")
        return data


def _read_members(path: Path, limits: Limits) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    allowed = (*DATA_MEMBERS, CHECKSUMS)
    try:
        with gzip.open(path, "rb") as gz:
            stream = _Capped(gz, limits.total_bytes + MiB)  # + tar headers and padding
            # 512-byte reads: tarfile buffers nothing past the end-of-archive block
            with tarfile.open(fileobj=stream, mode="r|", bufsize=tarfile.BLOCKSIZE) as tar:
                for member in tar:
                    name = member.name
                    if name not in allowed:
                        raise BundleError(
                            f"unexpected archive member {name[:80]!r}; a bundle holds only "
                            f"{', '.join(allowed)} (make it with `taskmem-bench export`)"
                        )
                    if not member.isreg():
                        raise BundleError(f"archive member {name} is not a regular file")
                    if name in found:
                        raise BundleError(f"archive member {name} appears twice")
                    if member.size > limits.member_cap(name):
                        raise BundleError(
                            f"{name} is {member.size} bytes, over its "
                            f"{limits.member_cap(name)}-byte limit"
                        )
                    if sum(map(len, found.values())) + member.size > limits.total_bytes:
                        raise BundleError("bundle members exceed the total size limit")
                    reader = tar.extractfile(member)
                    assert reader is not None  # a regular file always has a reader
                    found[name] = reader.read(member.size)
            _drain_padding(stream)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BundleError(f"not a readable tar.gz archive ({exc})") from None
    missing = [name for name in allowed if name not in found]
    if missing:
        raise BundleError(f"archive lacks {', '.join(missing)}")
    return found


def _drain_padding(stream: io.RawIOBase) -> None:
    """What follows the end-of-archive block must be zero padding and then the end of the
    gzip data: a second gzip member or trailing bytes would be content no check has seen."""
    while chunk := stream.read(MiB):
        if chunk.count(0) != len(chunk):
            raise BundleError("data follows the end of the tar archive (only zero padding may)")


def _checksum_problem(listed: bytes, expected: str) -> str:
    want = {name: digest for digest, name in (line.split("  ", 1) for line in expected.splitlines())}
    got: dict[str, str] = {}
    for line in listed.decode("utf-8", "replace").splitlines():
        digest, sep, name = line.partition("  ")
        if sep:
            got[name] = digest
    for name in sorted(want):
        if name not in got:
            return f"SHA256SUMS does not list {name}"
        if got[name] != want[name]:
            return f"checksum mismatch for {name}: the file was changed after export"
    return "SHA256SUMS is malformed (expected one '<sha256>  <name>' line per member, sorted)"


def _reject_constant(value: str) -> None:
    raise ValueError(f"{value} is not a number JSON allows")


def _finite_float(text: str) -> float:
    """A JSON number as a float, refusing those that overflow to infinity (``1e999``)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is not a finite number")
    return value


class _OutOfRange(ValueError):
    """A JSON integer no 64-bit column holds."""


def _int64(text: str) -> int:
    """A JSON integer, refusing one outside ``INT64_RANGE``: the runner writes none, and the
    site's tables hold them in 64-bit columns, where a larger one would stop the build."""
    value = int(text)
    if not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
        raise _OutOfRange(f"the integer {text[:40]} is outside the signed 64-bit range")
    return value


def _json(members: Mapping[str, bytes], name: str) -> dict[str, Any]:
    try:
        value = json.loads(members[name].decode("utf-8"), parse_constant=_reject_constant,
                           parse_float=_finite_float, parse_int=_int64)
    except _OutOfRange as exc:
        raise BundleError(f"{name}: {exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"{name} is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(value, dict):
        raise BundleError(f"{name} must hold a JSON object")
    return value


def _parquet(
    members: Mapping[str, bytes], name: str, schema: Mapping[str, Any], caps: TableCaps
) -> pl.DataFrame:
    try:
        return read_table(members[name], name, schema, caps)
    except TableError as exc:
        raise BundleError(str(exc)) from None
