"""Finding a release's files on disk and naming their contents.

Releases are unpacked by different tools into different layouts (Video-MME's archives give
``data/<id>.mp4`` and ``subtitle/<id>.srt`` with some tools and a flat folder with others), so
files are found by *stem* anywhere under the root rather than at fixed paths. Stems are matched
exactly (YouTube ids are case-sensitive: ``abc`` and ``ABC`` are different videos); extensions
case-insensitively (``.mp4``, ``.MP4``, ``.mkv``).

Two content names: :func:`sha256_file` for annotations and subtitles (small, hashed whole) and
:func:`fingerprint` for media, which reads only the size and the first and last MiB: a full
hash of a release's hundreds of GB of video takes hours, while the fingerprint still changes
when a file is replaced, re-encoded, truncated or only partly downloaded.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MEDIA_SUFFIXES = (".mp4", ".mkv")
FINGERPRINT_BYTES = 1 << 20
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileIndex:
    """Files under ``root`` with the wanted suffixes, by exact stem; paths sorted."""

    root: Path
    by_stem: dict[str, tuple[Path, ...]]

    @classmethod
    def scan(cls, root: Path | str, suffixes: Iterable[str]) -> FileIndex:
        """Walk ``root`` (following links to folders, each real folder once). Hidden files
        (``.``-prefixed, e.g. macOS ``._x.mp4`` resource forks) are not media and are left out."""
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such folder")
        wanted = {s.lower() for s in suffixes}
        found: dict[str, list[Path]] = defaultdict(list)
        seen: set[str] = set()
        for folder, subfolders, names in os.walk(root, followlinks=True):
            real = os.path.realpath(folder)
            if real in seen:
                subfolders.clear()
                continue
            seen.add(real)
            subfolders.sort()
            for name in names:
                stem, suffix = os.path.splitext(name)
                if suffix.lower() in wanted and not name.startswith("."):
                    found[stem].append(Path(folder) / name)
        return cls(root, {stem: tuple(sorted(paths)) for stem, paths in found.items()})

    def get(self, stem: str) -> tuple[Path, ...]:
        """Every file named ``<stem>.<suffix>``; more than one is the caller's irregularity."""
        return self.by_stem.get(stem, ())

    def relative(self, path: Path) -> str:
        """``path`` relative to the root, POSIX style (the key used in manifests)."""
        return relative_key(self.root, path)


def relative_key(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` when it lies under it, else absolute; POSIX separators."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(os.path.abspath(path)).as_posix()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(path: Path) -> str:
    """``sha256(size, first MiB, last MiB)`` as hex: a cheap content name for large media."""
    size = os.path.getsize(path)
    digest = hashlib.sha256(f"{size}\n".encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            handle.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            digest.update(handle.read(FINGERPRINT_BYTES))
    return digest.hexdigest()
