"""The on-disk cache of generated media: one MP4 and one SRT per episode, written atomically.

Files live in a folder named by the generator version and the split parameters that shape the
media; each file name carries the digest of the episode's simulated timeline, so a change to the
simulation can never be served stale media. A split of 12 episodes reuses the first 12 files of
a split of 300. Writers build in a private temp folder and rename into place, so a concurrent
generator of the same episode is harmless (both write identical bytes). A checksum sidecar is
written last; a cached file that no longer matches it is regenerated, not served.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from taskmem_bench.cachedir import cache_home
from taskmem_bench.datasets.mini.encode import write_mp4, write_srt
from taskmem_bench.datasets.mini.render import Renderer
from taskmem_bench.datasets.mini.world import World
from taskmem_bench.progress import ProgressFn

GENERATOR_VERSION = "mini-v1"
"""Bump whenever rendering or encoding changes the bytes of the media."""


def cache_root(cache_dir: str | None) -> Path:
    """``<cache_dir or the cache home (cachedir.cache_home)>/mini``."""
    return (Path(cache_dir).expanduser() if cache_dir else cache_home()) / "mini"


@dataclass(frozen=True)
class MediaJob:
    """Everything needed to produce one episode's files, picklable for worker processes."""

    world: World
    size: int
    fps: float
    mp4: Path
    srt: Path

    @property
    def checksums(self) -> Path:
        """Sidecar with the files' sha256, written last: its presence means the episode is done."""
        return self.mp4.with_suffix(".sha256")

    @property
    def done(self) -> bool:
        return self.checksums.is_file() and self.mp4.is_file() and self.srt.is_file()

    def recorded_hashes(self) -> dict[str, str] | None:
        """The sha256 by file name that the sidecar vouches for, if it is readable."""
        try:
            return json.loads(self.checksums.read_text())
        except (OSError, ValueError):  # missing, or damaged: it vouches for nothing
            return None

    def verified_hashes(self) -> dict[str, str] | None:
        """The files' sha256 by name if they still match the sidecar, else ``None``."""
        expected = self.recorded_hashes() if self.done else None
        if expected is None:
            return None
        actual = {path.name: sha256(path) for path in (self.mp4, self.srt)}
        return actual if actual == expected else None

    def discard(self) -> None:
        for path in (self.checksums, self.mp4, self.srt):
            path.unlink(missing_ok=True)


def produce(job: MediaJob) -> None:
    """Write the episode's SRT and MP4 unless both are already there."""
    if job.done:
        return
    job.mp4.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{job.mp4.stem}.", dir=job.mp4.parent))
    try:
        write_srt(scratch / job.srt.name, job.world.speech)
        n_frames = round(job.world.duration * job.fps)
        write_mp4(scratch / job.mp4.name, Renderer(job.world, job.size).frame, n_frames, job.fps)
        hashes = {name: sha256(scratch / name) for name in (job.mp4.name, job.srt.name)}
        (scratch / job.checksums.name).write_text(json.dumps(hashes, sort_keys=True))
        os.replace(scratch / job.srt.name, job.srt)
        os.replace(scratch / job.mp4.name, job.mp4)
        os.replace(scratch / job.checksums.name, job.checksums)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def produce_all(jobs: list[MediaJob], progress: ProgressFn | None = None) -> int:
    """Produce the missing files, one worker process per core when there are several, calling
    ``progress(done, total)`` after each episode; the number of episodes generated."""
    missing = [job for job in jobs if not job.done]
    report = progress or (lambda done, total: None)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = min(len(missing), cores or 1)
    if workers > 1:
        context = multiprocessing.get_context("spawn")  # no fork of a possibly threaded parent
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_interrupts)
        try:
            futures = [pool.submit(produce, job) for job in missing]
            for done, future in enumerate(as_completed(futures), 1):
                future.result()
                report(done, len(missing))
        finally:
            # on Ctrl-C or an error, episodes not started are dropped rather than generated
            pool.shutdown(cancel_futures=True)
    else:
        for done, job in enumerate(missing, 1):
            produce(job)
            report(done, len(missing))
    return len(missing)


def _ignore_interrupts() -> None:
    """Workers leave Ctrl-C to the parent, which stops the pool; otherwise each worker would
    print its own KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass(frozen=True)
class Materialized:
    hashes: dict[str, str]
    """sha256 of every episode file, by file name."""
    generated: int
    repaired: tuple[str, ...]
    """Episodes (mp4 stems) whose cached files no longer matched their checksums."""


def materialize(jobs: list[MediaJob], progress: ProgressFn | None = None) -> Materialized:
    """Make every episode's files exist and match their checksums: missing episodes are
    generated (``progress(done, total)`` after each), damaged ones (changed since they were
    cached) discarded and regenerated. Only episodes that claim to be done are discarded, so a
    concurrent generator is never undone."""
    found = [job.verified_hashes() for job in jobs]
    damaged = [job for job, hashes in zip(jobs, found) if hashes is None and job.done]
    for job in damaged:
        job.discard()
    generated = produce_all([job for job, hashes in zip(jobs, found) if hashes is None], progress)
    files: dict[str, str] = {}
    for job, hashes in zip(jobs, found):
        hashes = hashes or job.recorded_hashes()  # just written by produce
        if hashes is None:
            raise RuntimeError(f"generating {job.mp4} left no checksums")
        files.update(hashes)
    return Materialized(files, generated - len(damaged), tuple(job.mp4.stem for job in damaged))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
