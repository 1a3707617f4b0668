"""Writes an episode's media: an H.264 MP4 of its frames and an SRT of its speech lines.

The encoder runs single-threaded and nothing time-dependent goes into the container, so equal
frames give byte-identical files (the cache and the release's file hashes rely on that).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from taskmem_bench.schema import TextEvent

GOP_SECONDS = 2.0
X264_OPTIONS = {"crf": "18", "preset": "veryfast", "threads": "1", "tune": "animation"}


def write_mp4(path: Path, frame_at: Callable[[float], np.ndarray], n_frames: int,
              fps: float) -> None:
    """Encode ``frame_at(i / fps)`` for each frame index as yuv420p H.264."""
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate, options=X264_OPTIONS)
        first = frame_at(0.0)
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = max(1, round(GOP_SECONDS * fps))
        for index in range(n_frames):
            pixels = first if index == 0 else frame_at(index / fps)
            # converted here, on one thread: left to the encoder, swscale may slice the frame
            # over threads
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(
                format="yuv420p", threads=1)
            frame.pts = index
            frame.time_base = 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, minutes, secs = millis // 3_600_000, millis // 60_000 % 60, millis // 1000 % 60
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis % 1000:03d}"


def write_srt(path: Path, events: Iterable[TextEvent]) -> None:
    cues = [
        f"{k}\n{srt_time(e.t_start)} --> {srt_time(e.t_end)}\n{e.text}\n"
        for k, e in enumerate(sorted(events, key=lambda e: e.t_start), start=1)
    ]
    path.write_text("\n".join(cues), encoding="utf-8")
