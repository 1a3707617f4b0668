"""Synthetic test videos whose every frame says which frame it is.

Frame ``i`` shows the binary digits of ``i`` as a 4 x 4 grid of black/white cells (row-major,
most significant bit first). Full-contrast cells several pixels wide survive H.264 compression
and downscaling, so a test can read back exactly which source frames a decoder delivered.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

GRID = 4
MAX_FRAMES = 2 ** (GRID * GRID)


def frame_luma(index: int, width: int, height: int) -> np.ndarray:
    """The (height, width) uint8 luma plane of frame ``index`` (video range: 16 to 235)."""
    if not 0 <= index < MAX_FRAMES:
        raise ValueError(f"frame index {index} does not fit in {GRID * GRID} bits")
    bits = (index >> np.arange(GRID * GRID - 1, -1, -1)) & 1
    cells = (bits.reshape(GRID, GRID) * 219 + 16).astype(np.uint8)
    rows = np.arange(height) * GRID // height
    cols = np.arange(width) * GRID // width
    return cells[rows][:, cols]


def read_index(image: np.ndarray) -> int:
    """Decode the frame index from a (possibly compressed or downscaled) RGB frame."""
    height, width = image.shape[:2]
    index = 0
    for r in range(GRID):
        for c in range(GRID):
            # Sample the middle half of each cell: edges blur under compression and scaling.
            y0, y1 = (4 * r + 1) * height // (4 * GRID), (4 * r + 3) * height // (4 * GRID)
            x0, x1 = (4 * c + 1) * width // (4 * GRID), (4 * c + 3) * width // (4 * GRID)
            index = (index << 1) | int(image[y0:y1, x0:x1].mean() > 127)
    return index


def write_video(
    path: Path,
    n_frames: int,
    *,
    width: int = 64,
    height: int = 48,
    fps: int = 30,
    gop: int | None = None,
    grain: int = 0,
) -> Path:
    """Write ``n_frames`` index-coded frames as H.264 at ``fps``; the suffix picks the container.

    Frames are built directly in yuv420p (grey, so chroma is flat) to skip a colour conversion
    that would dominate the writing time of long test videos. B-frames are on, so decoders must
    reorder as they do on real footage. ``gop`` sets the keyframe interval (x264's 250 when
    ``None``), so seeking tests can start from an offset that is not on a keyframe.
    ``grain`` adds moving noise of that amplitude (luma levels) so the video costs about as much
    to decode as camera footage; codes stay readable up to ~60.
    """
    if width % 2 or height % 2:
        raise ValueError(f"yuv420p needs even sizes, got {width}x{height}")
    options = {"preset": "ultrafast", "crf": "12", "bf": "2"}
    if gop is not None:
        options["g"] = str(gop)
    planes = np.full((height * 3 // 2, width), 128, np.uint8)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps), options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        rng = np.random.default_rng(0)
        for i in range(n_frames):
            luma = frame_luma(i, width, height)
            if grain:
                noise = rng.integers(-grain, grain + 1, luma.shape, dtype=np.int16)
                luma = np.clip(luma + noise, 16, 235).astype(np.uint8)
            planes[:height] = luma
            container.mux(stream.encode(av.VideoFrame.from_ndarray(planes, format="yuv420p")))
        container.mux(stream.encode(None))
    return path
