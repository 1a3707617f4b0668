"""Sequential decoding and clip sampling: a ``Stream``'s media turned into causal ``Clip``s.

Every media segment is decoded once, front to back, with PyAV. Seeking per sampled frame is
far slower on long-GOP video (every seek re-decodes from a keyframe), so frames are subsampled
from the sequential decode instead, and only kept frames pay for the RGB conversion.

Clips are windows of the stream timeline. Their boundaries are the multiples of
``clip_seconds`` plus the ask times passed as ``cuts``, so every question falls on a clip
boundary and the memory it is answered from holds exactly the clips that ended at or before it
(architecture contract 3.1). A clip is yielded as soon as the first item past its end shows
up; nothing from a later clip is ever part of an earlier one.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from taskmem_bench.schema import Clip, MediaSegment, Stream, TextEvent

# Container time bases round timestamps (Matroska stores milliseconds), so a frame meant to sit
# on a sample time or clip boundary can land just before it. Times within this margin of a grid
# point count as on it. Rounding a frame *up* to the next clip only ever delays it, so the
# margin cannot leak media past an ask time.
_TIME_EPS = 1e-3

# How far the decoded video may fall short of the duration the file declares before it counts
# as truncated. Declared durations are approximate (rounding, a slightly longer audio track).
_TRUNCATION_SLACK = 1.0


class MediaError(Exception):
    """A media file is missing, is not a video, or cannot be decoded."""


@dataclass(frozen=True)
class ClipBoundaries:
    """Clip boundaries on the timeline: multiples of ``step`` and every cut. The one rule for
    clip windows: the media cut by it, and run progress plans its clips by it.

    Windows are computed arithmetically, so a gap of hours between segments costs nothing.
    """

    step: float
    cuts: tuple[float, ...]  # sorted

    def window(self, t: float) -> tuple[float, float]:
        """The window ``[start, end)`` that holds time ``t``."""
        at = t + _TIME_EPS
        k = math.floor(at / self.step)
        # Float division can land one cell off; re-check with the products used as bounds.
        if (k + 1) * self.step <= at:
            k += 1
        elif k * self.step > at:
            k -= 1
        start, end = k * self.step, (k + 1) * self.step
        i = bisect.bisect_right(self.cuts, at)
        if i > 0:
            start = max(start, self.cuts[i - 1])
        if i < len(self.cuts):
            end = min(end, self.cuts[i])
        return start, end


class _ClipAssembler:
    """Collects frames and text of the open window; closes it when time passes its end."""

    def __init__(self, stream_id: str, boundaries: ClipBoundaries) -> None:
        self._stream_id = stream_id
        self._boundaries = boundaries
        self._index = 0
        self._window: tuple[float, float] | None = None
        self._frames: list[np.ndarray] = []
        self._times: list[float] = []
        self._text: list[TextEvent] = []
        self._text_times: list[float] = []

    def advance(self, t: float) -> Clip | None:
        """Note that the timeline reached ``t``; returns the open clip if that completed it."""
        if self._window is not None and t + _TIME_EPS >= self._window[1]:
            return self._close(self._window[1])
        return None

    def add_frame(self, t: float, image: np.ndarray) -> None:
        self._open(t)
        self._frames.append(image)
        self._times.append(t)

    def add_text(self, at: float, event: TextEvent) -> Clip | None:
        """Add a text event that becomes available at ``at``; returns the open clip if ``at``
        is past its end."""
        done = self.advance(at)
        self._open(at)
        self._text.append(event)
        self._text_times.append(at)
        return done

    def finish(self, stream_end: float | None) -> Clip | None:
        """Close the last clip at ``stream_end`` or its window's end, whichever comes first.

        Without a usable ``stream_end`` (unknown, or before text that starts after the last
        frame) the window's end is the only end there is.
        """
        if self._window is None:
            return None
        latest = max([*self._times[-1:], *self._text_times])
        if stream_end is None or stream_end <= latest:
            return self._close(self._window[1])
        return self._close(min(self._window[1], stream_end))

    def _open(self, t: float) -> None:
        if self._window is None:
            self._window = self._boundaries.window(t)

    def _close(self, end: float) -> Clip:
        assert self._window is not None
        frames = np.stack(self._frames) if self._frames else np.empty((0, 0, 0, 3), np.uint8)
        clip = Clip(
            stream_id=self._stream_id,
            index=self._index,
            t_start=self._window[0],
            t_end=end,
            frames=frames,
            timestamps=np.array(self._times, dtype=np.float64),
            text=tuple(self._text),
        )
        self._index += 1
        self._window = None
        self._frames, self._times, self._text, self._text_times = [], [], [], []
        return clip


@contextmanager
def _open_video(path: Path) -> Iterator[tuple[InputContainer, VideoStream]]:
    """Open ``path`` and its first video stream (multi-threaded decode); closed on exit."""
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise MediaError(f"{path}: not a readable media file ({exc})") from exc
    with container:
        if not container.streams.video:
            raise MediaError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield container, stream


def _frame_rate(stream: VideoStream, path: Path) -> float:
    # guessed_rate is FFmpeg's best guess; average_rate alone is wrong for raw H.264 (says 25).
    rate = stream.guessed_rate or stream.average_rate
    if not rate:
        raise MediaError(f"{path}: frame rate unknown")
    return float(rate)


def _declared_duration(container: InputContainer, stream: VideoStream) -> float | None:
    """The duration the file's metadata states: the video stream's, else the container's."""
    if stream.duration is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _segment_frames(
    segment: MediaSegment, until: float
) -> Iterator[tuple[float, av.VideoFrame, float]]:
    """Decode ``segment`` in order: (timeline time, frame, native frame interval) for each
    frame from ``segment.file_offset`` on whose timeline time is before ``until``.

    Frames without a pts are placed one native interval after the previous frame (the first at
    0), so streams without timestamps (raw H.264) are read from the start rather than seeked.
    """
    path, offset = segment.path, segment.file_offset
    with _open_video(path) as (container, stream):
        interval = 1.0 / _frame_rate(stream, path)
        num, den = stream.time_base.numerator, stream.time_base.denominator
        start_pts = stream.start_time or 0
        if offset > 0 and stream.start_time is not None:
            # Land on the keyframe at or before the offset; frames before it are skipped below.
            container.seek(start_pts + math.floor(offset * den / num), stream=stream)
        file_time = -interval
        try:
            for frame in container.decode(stream):
                pts = frame.pts
                # Integer product then one true division: exact rounding, no Fraction overhead.
                file_time = (
                    file_time + interval if pts is None else (pts - start_pts) * num / den
                )
                if file_time + _TIME_EPS < offset:
                    continue
                t = segment.t_start + (file_time - offset)
                if t + _TIME_EPS >= until:
                    return
                yield t, frame, interval
        except av.FFmpegError as exc:
            raise MediaError(f"{path}: cannot decode after {file_time:.3f}s ({exc})") from exc
        # Decoders pass over a cut-off file quietly; a short decode must not pass for the video.
        declared = _declared_duration(container, stream)
        if declared is not None and file_time + interval < declared - _TRUNCATION_SLACK:
            raise MediaError(
                f"{path}: frames end at {file_time + interval:.3f}s but the file declares "
                f"{declared:.3f}s (truncated or corrupt)"
            )


def _timeline_frames(stream: Stream) -> Iterator[tuple[float, av.VideoFrame, float]]:
    """All segments' frames in timeline order, cut at the stream's duration.

    Segments are taken by start time. A frame not after the previous one (overlapping
    segments, repeated timestamps) is skipped: clips need a timeline that only moves forward.
    """
    last = -math.inf
    stream_end = math.inf if stream.duration is None else stream.duration
    for segment in sorted(stream.segments, key=attrgetter("t_start")):
        until = min(stream_end, math.inf if segment.t_end is None else segment.t_end)
        if segment.t_start + _TIME_EPS >= until:
            continue
        for t, frame, interval in _segment_frames(segment, until):
            if t > last:
                last = t
                yield t, frame, interval


class _RgbConverter:
    """Turns kept frames into (h, w, 3) uint8 RGB arrays, downscaled (aspect kept, area filter)
    so the long side is at most ``max_side``.

    One scaler context is reused for all frames, single-threaded: PyAV's per-call default
    (``frame.to_ndarray(format="rgb24")``) sets up a threaded scaler every time, which at
    224x224 costs several times the conversion itself (it halved clip throughput at 2 fps
    sampling), and the decoder already has the cores. The pixels are the same.
    """

    def __init__(self, max_side: int | None) -> None:
        self._max_side = max_side
        self._reformatter = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        long_side = max(frame.width, frame.height)
        if self._max_side is None or long_side <= self._max_side:
            rgb = self._reformatter.reformat(frame, format="rgb24", threads=1)
        else:
            scale = self._max_side / long_side
            rgb = self._reformatter.reformat(
                frame,
                width=max(1, round(frame.width * scale)),
                height=max(1, round(frame.height * scale)),
                format="rgb24",
                interpolation="AREA",
                threads=1,
            )
        return rgb.to_ndarray()


def iter_clips(
    stream: Stream,
    *,
    clip_seconds: float,
    sample_fps: float,
    cuts: Sequence[float] = (),
    channels: Collection[str] = (),
    max_side: int | None = None,
) -> Iterator[Clip]:
    """Yield the stream's clips in time order, each as soon as it is complete.

    Frames are sampled on the timeline: a frame is kept when it is the first to reach a new
    multiple of ``1 / sample_fps`` (never duplicated, never interpolated). A clip covers
    ``[b_i, b_{i+1})`` between consecutive boundaries (multiples of ``clip_seconds`` and
    ``cuts``); windows with neither frames nor text are skipped. Text events on ``channels``
    become available when they end (a line still being spoken at an ask time is not known
    yet) and ride with the clip whose window holds their ``t_end`` (clamped to the stream's
    end). The last clip ends at the
    stream's ``duration`` when known, else one native frame interval after its last frame (or
    at its window's end when text extends past that). A text-only clip has frames of shape
    ``(0, 0, 0, 3)``. Only the open clip's frames are held.
    """
    if clip_seconds <= 0 or sample_fps <= 0:
        raise ValueError(f"clip_seconds and sample_fps must be > 0: {clip_seconds}, {sample_fps}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be >= 1: {max_side}")
    before_end = math.inf if stream.duration is None else stream.duration - _TIME_EPS
    allowed = (e for e in stream.text_events if e.channel in channels and e.t_start < before_end)
    # A line still running when the stream ends is delivered with the last clip: clamp to the
    # latest time that the boundary tolerance does not round onto the end.
    last_moment = before_end - _TIME_EPS
    texts = deque(sorted(((min(e.t_end, last_moment), e) for e in allowed), key=itemgetter(0)))
    assembler = _ClipAssembler(stream.id, ClipBoundaries(clip_seconds, tuple(sorted(cuts))))
    to_rgb = _RgbConverter(max_side)
    last_slot = -math.inf
    last_frame_end: float | None = None
    for t, frame, interval in _timeline_frames(stream):
        while texts and texts[0][0] <= t:
            if (clip := assembler.add_text(*texts.popleft())) is not None:
                yield clip
        if (clip := assembler.advance(t)) is not None:
            yield clip
        slot = math.floor((t + _TIME_EPS) * sample_fps)
        if slot > last_slot:
            last_slot = slot
            assembler.add_frame(t, to_rgb(frame))
        last_frame_end = t + interval
    for at, event in texts:
        if (clip := assembler.add_text(at, event)) is not None:
            yield clip
    stream_end = last_frame_end if stream.duration is None else stream.duration
    if (clip := assembler.finish(stream_end)) is not None:
        yield clip


def probe_duration(path: Path) -> float:
    """Seconds of video in ``path``: stream or container metadata, else a full decode."""
    with _open_video(path) as (container, stream):
        declared = _declared_duration(container, stream)
    if declared is not None:
        return declared
    end = 0.0
    for t, _, interval in _segment_frames(MediaSegment(path, t_start=0.0), math.inf):
        end = t + interval
    return end


def probe_fps(path: Path) -> float:
    """The native frame rate of ``path``'s first video stream."""
    with _open_video(path) as (_, stream):
        return _frame_rate(stream, path)
