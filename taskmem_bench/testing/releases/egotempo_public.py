"""An EgoTempo release laid out from a real annotation file, with tiny generated media.

The public ``egotempo_openQA.json`` is copied as released and every clip it names gets a tiny
pre-trimmed ``clips/<clip_id>.mp4`` (index-coded, 1 fps) at least as long as its window, so the
adapter's streams last exactly their windows, as with Ego4D's full videos. This is how the
shipped EgoTempo question manifest was made (ask times = window lengths), and how tests run the
benchmark end to end without Ego4D's videos::

    python -m taskmem_bench.testing.releases.egotempo_public egotempo_openQA.json /tmp/egotempo
    taskmem-bench prepare egotempo --root /tmp/egotempo --publish-manifest egotempo.json
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

from taskmem_bench.datasets.egotempo import ANNOTATIONS, parse_clip_id
from taskmem_bench.testing.videos import write_video

FPS = 1
SIDE = 16


def lay_out(annotations: Path, root: Path) -> Path:
    """Copy ``annotations`` to ``root`` and write a clip for every well-formed ``clip_id`` in
    it that has none yet; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(annotations, root / ANNOTATIONS)
    records = json.loads(Path(annotations).read_text(encoding="utf-8"))["annotations"]
    clips = root / "clips"
    clips.mkdir(exist_ok=True)
    for clip_id in dict.fromkeys(r.get("clip_id") for r in records if isinstance(r, dict)):
        try:
            window = parse_clip_id(clip_id)
        except (ValueError, AttributeError):
            continue  # the adapter reports it as malformed
        path = clips / f"{clip_id}.mp4"
        if not path.exists():
            seconds = math.ceil(window.end - window.start) + 1
            write_video(path, seconds * FPS, fps=FPS, width=SIDE, height=SIDE, gop=10)
    return root


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m taskmem_bench.testing.releases.egotempo_public "
                 "egotempo_openQA.json ROOT")
    print(lay_out(Path(sys.argv[1]), Path(sys.argv[2])))
