"""lm-eval task functions: a saved taskmem-bench run's questions, each with the memory snapshot
it was answered from, asked again through any lm-eval model::

    lm_eval --model hf --model_args pretrained=MODEL --apply_chat_template \
        --include_path "$(taskmem-bench list lm-eval)" --tasks taskmem_memory_mc \
        --metadata run_dir=runs/x/mini/oracle --log_samples --output_path out/

lm-eval loads this file by path from the task folder; the run comes in as ``--metadata
run_dir=RUN_DIR`` (one (task, policy) folder). lm-eval hands custom datasets every metadata key,
the model args among them, so :func:`load_run` takes ``**_``.

Nothing here re-implements the harness: the prompt is the paper reader's
(:func:`taskmem_bench.readers.prompts.render_prompt`, one user message, so pass
``--apply_chat_template`` as the harness always applies it, and no ``--system_instruction``),
snapshots are rebuilt and their digests checked as the leaderboard checks them
(:func:`taskmem_bench.memorylog.row_snapshots`), and replies are judged by the runner's
:func:`~taskmem_bench.scoring.verdict.verdict_choice`. With the run's reader model, lm-eval's
Acc and per-question answers are the run's (``same_as_run`` = 1) when:

* the run has no failed rows (the harness counts them wrong; lm-eval re-asks a question whose
  reader failed and leaves out one whose stream failed, with a warning);
* the run's reader was ``paper`` with one sample (else a warning: a different prompt or a vote);
* decoding matches: :class:`MemoryTask` takes ``max_new_tokens`` and temperature from the run's
  manifest, but lm-eval's ``hf`` model keeps the checkpoint's ``generation_config.json``
  defaults that greedy decoding still obeys (``repetition_penalty``, ``no_repeat_ngram_size``),
  which the harness's transformers backend drops: neutralise them with e.g. ``--gen_kwargs
  repetition_penalty=1.0``, or run the harness reader with ``backend=lm-eval``
  (``lm_eval_model=hf``), which decodes through the same lm-eval code.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import datasets
import polars as pl
from lm_eval.api.task import ConfigurableTask

from taskmem_bench.memory import MemoryEntry, MemorySnapshot
from taskmem_bench.memorylog import row_snapshots
from taskmem_bench.readers.base import ReaderInput
from taskmem_bench.readers.paper import PaperReader, PaperReaderConfig
from taskmem_bench.readers.prompts import render_prompt
from taskmem_bench.results import RunDir
from taskmem_bench.scoring.verdict import verdict_choice

log = logging.getLogger(__name__)
SPLIT = "test"


class MemoryTask(ConfigurableTask):
    """The YAML task, decoding as the run's reader did: greedy or its temperature, its
    ``max_new_tokens``, no stop string but the end of sequence (``--gen_kwargs`` still
    overrides)."""

    def __init__(self, config: dict[str, Any]) -> None:
        config = {k: v for k, v in config.items() if k != "class"}
        reader = reader_config(finished_run((config.get("metadata") or {}).get("run_dir")))
        config["generation_kwargs"] = {
            "until": [],
            "max_gen_toks": reader.max_new_tokens,
            "do_sample": reader.temperature > 0,
            "temperature": reader.temperature,
        }
        super().__init__(config=config)


def finished_run(run_dir: str | None) -> RunDir:
    """The run at ``run_dir``, checked to be a finished (task, policy) folder."""
    if not run_dir:
        raise ValueError("taskmem tasks need the run to score: --metadata run_dir=RUN_DIR "
                         "(one task/policy folder of a finished taskmem-bench run)")
    run = RunDir(Path(run_dir).expanduser())
    for needed in (run.manifest_path, run.rows_path):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed} not found: run_dir must be one task/policy folder "
                                    "of a finished run, e.g. runs/x/mini/oracle")
    return run


def reader_config(run: RunDir) -> PaperReaderConfig:
    """The run's paper-reader decoding settings; a run read by another reader (or by a vote
    over samples) is still scored, with a warning that the harness's answers will differ."""
    reader = run.manifest().reader
    if reader.name != PaperReader.name or reader.prompt_hash != PaperReader.prompt_hash():
        log.warning("run %s was read by reader %r (prompt %s), not this package's paper reader: "
                    "lm-eval asks the paper reader's prompt, so its answers are not the run's",
                    run.path, reader.name, reader.prompt_hash)
    known = {f.name for f in dataclasses.fields(PaperReaderConfig)}
    config = PaperReaderConfig(**{k: v for k, v in reader.config.items() if k in known})
    if config.samples > 1:
        log.warning("run %s voted over %d samples; lm-eval asks once per question",
                    run.path, config.samples)
    return config


def load_run(run_dir: str | None = None, **_: Any) -> datasets.DatasetDict:
    """One document per question whose memory snapshot the run recorded, in the run's order;
    each snapshot is rebuilt from the memory log and its digest checked."""
    run = finished_run(run_dir)
    rows = pl.read_parquet(run.rows_path)
    logs = {log.stream_id: log for log in run.memory_logs().values()}
    snapshots = row_snapshots(rows, logs)
    skipped = rows.height - len(snapshots)
    if skipped:
        log.warning("%d of %d questions of %s have no memory snapshot (their stream failed) "
                    "and are left out", skipped, rows.height, run.path)
    docs = [
        {
            "question_id": row["question_id"],
            "stream_id": row["stream_id"],
            "category": row["category"],
            "question": row["question"],
            "options": json.loads(row["options"]),
            "answer_format": row["answer_format"],
            "ask_time": row["ask_time"],
            "memory": json.dumps([e.to_json() for e in snapshots[row["question_id"]].entries]),
            "memory_digest": row["memory_digest"],
            "gold": row["gold"],
            "run_parsed": row["parsed"],
        }
        for row in rows.iter_rows(named=True)
        if row["question_id"] in snapshots
    ]
    return datasets.DatasetDict({SPLIT: datasets.Dataset.from_list(docs)})


def reader_input(doc: dict[str, Any]) -> ReaderInput:
    entries = tuple(
        MemoryEntry(e["t_start"], e["t_end"], e["text"], e["kind"], e["meta"])
        for e in json.loads(doc["memory"])
    )
    memory = MemorySnapshot(doc["stream_id"], doc["ask_time"], entries)
    return ReaderInput(doc["question"], tuple(doc["options"]), memory, doc["answer_format"])


def doc_to_text(doc: dict[str, Any]) -> str:
    """The paper reader's user message for this question, character for character."""
    return render_prompt(reader_input(doc), PaperReader.templates)


def parse(resps: list[list[str]], docs: list[dict[str, Any]]) -> list[str]:
    """Filter: each reply's parsed letter, as the runner's ``verdict_choice`` reads it ("" when
    none parses); this is what ``--log_samples`` shows as ``filtered_resps``."""
    return [
        verdict_choice(replies[0], doc["options"], doc["gold"]).parsed or ""
        for replies, doc in zip(resps, docs, strict=True)
    ]


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """Acc and Cov as ``taskmem-bench report`` counts them (a parse failure is wrong and not an
    abstention), the parse-failure rate, and agreement with the run's own parsed answers.
    ``verdict_choice`` of the parsed letter (a bare letter, or "") gives the reply's verdict."""
    verdict = verdict_choice(results[0], doc["options"], doc["gold"])
    return {
        "acc": float(verdict.correct),
        "coverage": float(not verdict.abstained),
        "parse_failed": float(verdict.parse_failed),
        "same_as_run": float(verdict.parsed == doc["run_parsed"]),
    }
