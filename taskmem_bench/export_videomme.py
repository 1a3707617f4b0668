"""A finished Video-MME run as the official per-video results JSON, for the authors' script.

Format (Video-MME's ``output_test_template.json``): a list of videos ``{video_id, duration,
domain, sub_category, questions: [{question_id, task_type, question, options, answer,
response}]}`` with the options' "A. " prefixes restored, ``answer`` the gold letter and
``response`` the reader's raw output ("" for a failed question, which the script cannot read
as null). Each video also carries ``"missing": false``: the script reads that key when run
with ``skip_missing=True``, which a partial run (``--limit``, excluded media) needs, since
otherwise it requires all 300 videos of a duration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from taskmem_bench.results import RunDir, RunDirError, write_json
from taskmem_bench.schema import ANSWER_LABELS
from taskmem_bench.scoring.videomme import row_tags


def results_json(rows: pl.DataFrame) -> list[dict[str, Any]]:
    """The official results structure of a run's rows, videos and questions in id order."""
    videos: dict[str, dict[str, Any]] = {}
    ordered = rows.sort("question_id")
    for row, tags in zip(ordered.iter_rows(named=True), row_tags(ordered)):
        video = videos.setdefault(tags["video_id"], {
            "video_id": tags["video_id"], "duration": tags["duration"],
            "domain": tags["domain"], "sub_category": tags["sub_category"], "missing": False,
            "questions": [],
        })
        video["questions"].append({
            "question_id": row["question_id"],
            "task_type": tags["task_type"],
            "question": row["question"],
            "options": [f"{label}. {text}"
                        for label, text in zip(ANSWER_LABELS, json.loads(row["options"]))],
            "answer": row["gold"],
            "response": row["raw_output"] or "",
        })
    return [videos[k] for k in sorted(videos)]


def export_videomme(run_dir: Path, out: Path) -> list[dict[str, Any]]:
    """Write ``run_dir``'s results as the official JSON to ``out``; returns what it wrote."""
    run = RunDir(run_dir)
    if not run.rows_path.is_file():
        raise RunDirError(f"{run.rows_path}: no rows; is {run_dir} a finished (task, policy) run?")
    results = results_json(pl.read_parquet(run.rows_path))
    write_json(out, results)
    return results
