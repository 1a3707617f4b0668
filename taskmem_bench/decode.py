"""Decoding ahead: worker processes cut streams into clips while the runner waits for the model.

A ``DecodePool`` holds ``decode_workers`` processes. Each stream in flight is decoded by one of
them (the one with the fewest open streams), front to back with ``media.iter_clips``, exactly
as the runner would decode it itself, so its clips are the same. Flow control is by credit:
the runner asks for ``prefetch`` clips when it opens a stream and for one more each time it
takes one, and a worker decodes a stream's clip only when asked. So a stream never has more
than ``prefetch`` decoded clips waiting for the runner (in the worker's pipe or the runner's
buffer), and the decoded frames a run holds beyond the clip each stream waits to have
observed are at most ``prefetch_clips × streams_in_flight`` clips.

Decoding ahead is the harness's private work: the clips reach the engine through
``runner.schedule``, which hands each one to the policy only after every question due before
it has been answered. A worker that raises fails only that stream (``media_error``, with the
worker's traceback); one that dies fails the streams it held and is replaced; a clip that does
not arrive within ``decode_timeout_s`` fails its stream, and its worker, which may be wedged,
is killed (its other streams fail with it) and replaced.

Each worker is a fresh interpreter (``python -c``) that imports only this module, talking
over two pipes: forking a process that holds model threads (or a CUDA context) is unsafe, and
``multiprocessing``'s spawn would run the user's main script again in every worker.
"""

from __future__ import annotations

import itertools
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any

from taskmem_bench.media import MediaError, iter_clips
from taskmem_bench.schema import Clip, Stream


@dataclass(frozen=True)
class ClipJob:
    """One stream and how to cut it into clips: ``iter_clips``'s arguments."""

    stream: Stream
    clip_seconds: float
    sample_fps: float
    cuts: tuple[float, ...]
    channels: tuple[str, ...]
    max_side: int | None

    def options(self) -> dict[str, Any]:
        """``iter_clips``'s keyword arguments."""
        return {"clip_seconds": self.clip_seconds, "sample_fps": self.sample_fps,
                "cuts": self.cuts, "channels": self.channels, "max_side": self.max_side}


class DecodeError(MediaError):
    """A decode worker could not give a stream's next clip: it raised (the message holds its
    traceback), died, or ran past ``decode_timeout_s``."""


_DIED = "died"


@dataclass
class _Worker:
    """One decode process, the requests waiting to be written to it and the streams it
    decodes. A thread of the pool writes its requests and another receives its replies, so
    the runner never blocks on a worker that stopped reading (wedged in a decode)."""

    process: subprocess.Popen[bytes]
    outbox: queue.SimpleQueue[tuple[Any, ...] | None] = field(default_factory=queue.SimpleQueue)
    streams: set[int] = field(default_factory=set)
    dead: bool = False

    def send(self, message: tuple[Any, ...]) -> None:
        if not self.dead:
            self.outbox.put(message)

    def stop(self) -> None:
        """Ask it to stop, and close its request pipe once that is written."""
        self.outbox.put(None)


class DecodePool:
    """``workers`` decode processes shared by the streams in flight (see the module doc)."""

    def __init__(self, workers: int, prefetch: int, timeout_s: float) -> None:
        if workers < 1 or prefetch < 1 or not timeout_s > 0:
            raise ValueError("a decode pool needs workers >= 1, prefetch >= 1, timeout_s > 0")
        self.prefetch = prefetch
        self.timeout_s = timeout_s
        self._arrived: queue.Queue[tuple[_Worker, Any]] = queue.Queue()
        self._buffers: dict[int, deque[tuple[str, Any]]] = {}
        self._owners: dict[int, _Worker] = {}
        self._keys = itertools.count()
        self._workers: list[_Worker] = []
        try:
            for _ in range(workers):
                self._workers.append(self._spawn())
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def clips(self, job: ClipJob) -> PrefetchedClips:
        """The clips of ``job``'s stream; a worker starts decoding them now, so the streams
        that start together are decoded in parallel, not each when the engine first waits
        for it."""
        return PrefetchedClips(self, job)

    def close(self) -> None:
        """Stop every worker: asked first, killed if it does not stop within 5 s."""
        for worker in self._workers:
            worker.stop()
        for worker in self._workers:
            try:
                worker.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(timeout=5)
        self._workers = []

    # -- what PrefetchedClips asks of the pool

    def _open(self, job: ClipJob) -> int:
        self._file_arrived()  # a death already reported is known before a worker is chosen
        for i, worker in enumerate(self._workers):
            worker.dead = worker.dead or worker.process.poll() is not None
            if worker.dead:  # replaced for the streams that start from now on
                worker.stop()
                self._workers[i] = self._spawn()
        worker = min(self._workers, key=lambda w: len(w.streams))
        key = next(self._keys)
        worker.streams.add(key)
        self._owners[key] = worker
        self._buffers[key] = deque()
        worker.send(("open", key, job))
        for _ in range(self.prefetch):
            worker.send(("next", key))
        return key

    def _take(self, key: int) -> tuple[str, Any]:
        """The stream's next reply (``clip``, ``end`` or ``error``), waiting at most
        ``timeout_s`` for it; the replies of other streams that come first are kept."""
        deadline = time.monotonic() + self.timeout_s
        buffer = self._buffers[key]
        while not buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                worker = self._owners[key]
                worker.process.kill()  # wedged: its other streams fail when its death arrives
                worker.dead = True
                return "error", (f"no clip from decode worker (pid {worker.process.pid}) "
                                 f"within decode_timeout_s={self.timeout_s:g}; the worker was "
                                 "killed")
            try:
                worker, message = self._arrived.get(timeout=remaining)
            except queue.Empty:
                continue
            self._receive(worker, message)
        kind, payload = buffer.popleft()
        if kind == "clip":
            self._owners[key].send(("next", key))  # the credit of the clip taken
        return kind, payload

    def _buffered(self, key: int) -> int:
        """Clips of the stream that have reached this process and wait to be taken."""
        self._file_arrived()
        return sum(kind == "clip" for kind, _ in self._buffers.get(key, ()))

    def _file_arrived(self) -> None:
        """File the replies that have arrived, without waiting."""
        while True:
            try:
                self._receive(*self._arrived.get_nowait())
            except queue.Empty:
                return

    def _release(self, key: int) -> None:
        worker = self._owners.pop(key, None)
        if worker is not None:
            worker.streams.discard(key)
            worker.send(("close", key))
        self._buffers.pop(key, None)

    def _receive(self, worker: _Worker, message: Any) -> None:
        if message == _DIED:
            worker.dead = True
            try:
                code: int | str | None = worker.process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # its pipe broke first
                worker.process.kill()
                code = "unknown (killed after its pipe broke)"
            reason = f"decode worker (pid {worker.process.pid}) died with exit code {code}"
            for key in worker.streams:
                self._buffers[key].append(("error", reason))
            worker.streams.clear()
            return
        key, kind, payload = message
        if key in self._buffers:  # else the stream was released: a clip it no longer needs
            self._buffers[key].append((kind, payload))

    def _spawn(self) -> _Worker:
        requests_out, requests_in = Pipe(duplex=False)
        replies_out, replies_in = Pipe(duplex=False)
        ends = (requests_out.fileno(), replies_in.fileno())
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", f"from taskmem_bench.decode import serve; serve{ends}"],
                pass_fds=ends, stdin=subprocess.DEVNULL,
            )
        except BaseException:
            requests_in.close()
            replies_out.close()
            raise
        finally:  # the child's ends: closing ours lets each side see the other go
            requests_out.close()
            replies_in.close()
        worker = _Worker(process)
        threading.Thread(target=_deliver, args=(worker.outbox, requests_in), daemon=True,
                         name="taskmem-decode-requests").start()
        threading.Thread(target=self._listen, args=(worker, replies_out), daemon=True,
                         name="taskmem-decode-replies").start()
        return worker

    def _listen(self, worker: _Worker, replies: Connection) -> None:
        """Move the worker's replies into ``_arrived`` as they come, so the worker never waits
        on a full pipe; the end of the pipe is its death (or its stop)."""
        with replies:
            while True:
                try:
                    message = replies.recv()
                except (EOFError, OSError):
                    self._arrived.put((worker, _DIED))
                    return
                self._arrived.put((worker, message))


def _deliver(outbox: queue.SimpleQueue[tuple[Any, ...] | None], requests: Connection) -> None:
    """Write a worker's requests in order until its stop; a broken pipe ends this too (the
    worker is gone, and its listener reports the death)."""
    with requests:
        while True:
            message = outbox.get()
            try:
                requests.send(message)
            except OSError:
                return
            if message is None:
                return


class PrefetchedClips(Iterator[Clip]):
    """One stream's clips from a ``DecodePool``; a failure of its worker is raised as a
    ``DecodeError`` (the runner's ``media_error``)."""

    def __init__(self, pool: DecodePool, job: ClipJob) -> None:
        self._pool = pool
        self._job = job
        self._key = pool._open(job)
        self._closed = False

    def __next__(self) -> Clip:
        if self._closed:
            raise StopIteration
        kind, payload = self._pool._take(self._key)
        if kind == "clip":
            return payload
        self.close()
        if kind == "end":
            raise StopIteration
        raise DecodeError(f"{self._job.stream.id}: {payload}")

    @property
    def buffered(self) -> int:
        """Decoded clips of this stream waiting in this process to be taken (what the memory
        bound is about; for tests and diagnostics)."""
        return 0 if self._closed else self._pool._buffered(self._key)

    def close(self) -> None:
        """Stop decoding this stream; its clips not yet taken are dropped."""
        if not self._closed:
            self._pool._release(self._key)
        self._closed = True


def serve(requests_fd: int, replies_fd: int) -> None:
    """A decode worker's main, on the pipe ends it was passed: open, advance and close
    streams as asked, one reply per ``next`` (a clip, the end, or the traceback of what the
    decoder raised). Of the clips asked for, the
    one earliest in its stream goes first (streams opened earlier first among equals): a round
    needs every stream's next clip before any stream's clip after it. Ctrl-C is the runner's
    to handle: it stops the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = Connection(requests_fd, writable=False)
    replies = Connection(replies_fd, readable=False)
    decoders: dict[int, Iterator[Clip]] = {}
    credit: Counter[int] = Counter()
    decoded: Counter[int] = Counter()
    while True:
        # take every request that has come; wait for one while nothing may be decoded
        while requests.poll() or not any(credit[key] for key in decoders):
            try:
                request = requests.recv()
            except EOFError:  # the runner is gone
                return
            if request is None:
                return
            op, key, *args = request
            if op == "open":
                job: ClipJob = args[0]
                decoders[key] = iter_clips(job.stream, **job.options())
            elif op == "close":
                decoder = decoders.pop(key, None)
                if decoder is not None:
                    decoder.close()  # type: ignore[attr-defined]
                credit.pop(key, None)
                decoded.pop(key, None)
            elif op == "next" and key in decoders:
                credit[key] += 1
        key = min((k for k in decoders if credit[k]), key=lambda k: (decoded[k], k))
        credit[key] -= 1
        decoded[key] += 1
        try:
            replies.send((key, "clip", next(decoders[key])))
        except StopIteration:
            del decoders[key]
            replies.send((key, "end", None))
        except Exception:
            del decoders[key]
            replies.send((key, "error", traceback.format_exc()))
