"""Re-running a deterministic reader on a bundle's questions and memory.

Re-scoring shows that verdicts follow from the raw outputs, not that the reader wrote them: a
bundle whose raw outputs all read "Answer: <gold>" re-scores perfectly. When the manifest names
a reader registered with this package (by entry-point name; a ``module:Class`` path from a
bundle is never imported), with the installed version and prompt hash, and that reader is
``deterministic``, the raw outputs are recomputed from each row's question, options and rebuilt
memory snapshot and must match byte for byte. What remains unchecked is the memory itself,
i.e. that the policy is the code it names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import polars as pl

from leaderboard.errors import Rejected
from taskmem_bench.manifest import Manifest
from taskmem_bench.memory import MemorySnapshot
from taskmem_bench.readers import Reader, available_readers, load_reader
from taskmem_bench.readers.base import ReaderInput
from taskmem_bench.taskconfig import ConfigError, validate
from taskmem_bench.untrusted import show


def reproducible_reader(m: Manifest) -> Reader | None:
    """An instance of the reader that made the outputs, if they can be reproduced; else None."""
    if m.reader.name not in available_readers():
        return None
    cls = load_reader(m.reader.name)
    if not (cls.deterministic and cls.version == m.reader.version
            and cls.prompt_hash() == m.reader.prompt_hash):
        return None
    try:
        config = validate(cls.Config, m.reader.config, "reader")
    except ConfigError as exc:
        raise Rejected(f"reader config is not valid for reader {m.reader.name}: {exc}") from None
    return cls(config, seed=m.seed)


def check_outputs(reader: Reader, name: str, rows: pl.DataFrame,
                  snapshots: Mapping[str, MemorySnapshot]) -> None:
    """Every answered row's raw output is what ``reader`` gives for its question and memory."""
    answered = rows.filter(pl.col("failure").is_null())
    inputs = [
        ReaderInput(row["question"], tuple(json.loads(row["options"])),
                    snapshots[row["question_id"]], row["answer_format"])
        for row in answered.iter_rows(named=True)
    ]
    outputs = reader.answer(inputs)
    for row, output in zip(answered.iter_rows(named=True), outputs, strict=True):
        if output.raw != row["raw_output"]:
            raise Rejected(f"raw output of question {show(row['question_id'])} is not what "
                           f"reader {name} produces from the bundled memory")
