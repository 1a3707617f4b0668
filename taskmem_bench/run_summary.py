"""A run's closing files: all rows merged into ``rows.parquet``, and ``summary.json`` (scores,
streams, failures, memory written per video-hour, timing of this invocation)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from taskmem_bench.memory import StoredEntry, count_tokens
from taskmem_bench.plan import RunPlan
from taskmem_bench.results import RunDir, summarize, write_json, write_parquet
from taskmem_bench.schema import Episode


@dataclass
class Timing:
    """What this invocation did and the seconds each part took."""

    clips: int = 0
    frames: int = 0
    video_s: float = 0.0
    questions: int = 0
    decode_s: float = 0.0
    observe_s: float = 0.0
    read_s: float = 0.0
    judge_s: float = 0.0

    def __add__(self, other: Timing) -> Timing:
        """Both invocations' counts and seconds: a Ray run's is the sum of its actors'."""
        return Timing(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                         for f in fields(self)})

    def __sub__(self, other: Timing) -> Timing:
        return Timing(**{f.name: getattr(self, f.name) - getattr(other, f.name)
                         for f in fields(self)})

    def as_dict(self, wall_s: float) -> dict[str, float | None]:
        """Counts and seconds; ``realtime_factor`` is seconds of video memorized per second the
        policy spent, so ≥ 1 means memorization keeps up with a live stream."""
        return {
            "clips": self.clips,
            "frames": self.frames,
            "video_s": round(self.video_s, 3),
            "realtime_factor": round(self.video_s / self.observe_s, 2) if self.observe_s else None,
            "questions": self.questions,
            "decode_s": round(self.decode_s, 3),
            "observe_s": round(self.observe_s, 3),
            "read_s": round(self.read_s, 3),
            "judge_s": round(self.judge_s, 3),
            "wall_s": round(wall_s, 3),
        }


def write_summary(
    run_dir: RunDir, plan: RunPlan, episodes: Sequence[Episode], skipped: int, timing: Timing,
    wall_s: float,
) -> dict[str, Any]:
    """Merge the finished streams' rows into ``rows.parquet`` and write the summary of the run
    (all its streams, resumed ones included); returns the summary."""
    rows = run_dir.merged_rows()
    write_parquet(run_dir.rows_path, rows)
    finished = run_dir.finished_streams()
    summary = summarize(
        rows,
        {
            "task": plan.task.name,
            "policy": plan.policy_name,
            "reader": plan.reader_name,
            "streams": {
                "total": len(episodes),
                "finished": len(finished),
                "failed": sum(finished.values()),
            },
            "stream_failures": run_dir.stream_failures(),
            "skipped": skipped,
            "memory": memory_size(run_dir, episodes, finished),
            "memory_view": plan.task.memory_view,
            "timing": timing.as_dict(wall_s),
        },
        scoring=plan.task.scoring,
    )
    write_json(run_dir.summary_path, summary)
    return summary


def memory_size(
    run_dir: RunDir, episodes: Sequence[Episode], finished: dict[int, bool]
) -> dict[str, float | None]:
    """Memory written per hour of video (media time, not timeline span), over streams that
    finished."""
    tokens = chars = 0
    seconds = 0.0
    for index in finished:
        log = run_dir.memory_log(index)
        tokens += sum(count_tokens(s.entry.text) for s in log)
        chars += sum(len(s.entry.text) for s in log)
        seconds += episodes[index].stream.media_seconds or _last_written(log)
    hours = seconds / 3600
    return {
        "tokens_total": tokens,
        "chars_total": chars,
        "video_hours": round(hours, 4),
        "tokens_per_hour": round(tokens / hours, 1) if hours else None,
        "chars_per_hour": round(chars / hours, 1) if hours else None,
    }


def _last_written(log: Sequence[StoredEntry]) -> float:
    return max((s.written_at for s in log), default=0.0)
