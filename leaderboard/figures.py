"""A real benchmark's own headline figures beside Acc / Cov / Prec, and the paper's numbers.

Each figure is computed here from the accepted run's rows by the dataset's scoring code (the
code the runner and validation use), never read from the bundle's summary: Video-MME's official
and strict accuracy by duration, EgoLife's EgoRAG accuracy by question type and by evidence
delay, EgoTempo's judged accuracy by question type with the judge's model identity. The paper's
published numbers (``PUBLISHED``, from its headline table) are shown as a reference that this
site did not re-score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pydantic

from leaderboard.accepted import AcceptedRun
from leaderboard.display import model_label
from taskmem_bench.datasets.videomme import DURATIONS
from taskmem_bench.manifest import ModelIdentity
from taskmem_bench.scoring import egolife, videomme
from taskmem_bench.scoring.metrics import score_by

Value = float | str | None


@dataclass(frozen=True)
class FigureTable:
    """One table of a benchmark page: a row per run, a column per figure (a rate, or text)."""

    title: str
    note: str
    columns: list[str]
    runs: list[tuple[AcceptedRun, dict[str, Value]]]


def _videomme(runs: Sequence[AcceptedRun]) -> list[FigureTable]:
    columns = ["official", "strict"] + [f"{k} {d}" for d in DURATIONS for k in ("official", "strict")]
    found = []
    for run in runs:
        scores = videomme.score_rows(run.bundle.rows)
        by = scores["by"]["duration"]
        values: dict[str, Value] = {"official": scores["videomme_official"],
                                    "strict": scores["videomme_strict"]}
        for d in DURATIONS:
            for k in ("official", "strict"):
                values[f"{k} {d}"] = by[d][f"videomme_{k}"] if d in by else None
        found.append((run, values))
    return [FigureTable(
        "Video-MME official and strict, by duration",
        "official: the authors' extractor over the questions it finds an answer in; strict: the "
        "same extractor over all questions (an unanswered one is wrong)", columns, found)]


def _egolife(runs: Sequence[AcceptedRun]) -> list[FigureTable]:
    scored = [(run, egolife.score_rows(run.bundle.rows)["egorag"]) for run in runs]
    tables = []
    for key, title in (("by_type", "question type"), ("by_delay", "evidence delay")):
        columns = list(dict.fromkeys(g for _, s in scored for g in s[key]))
        tables.append(FigureTable(
            f"EgoRAG accuracy by {title}",
            "EgoRAG's rule: the first standalone option letter of the reply",
            columns, [(run, {c: s[key].get(c, {}).get("acc") for c in columns})
                      for run, s in scored]))
    return tables


def _egotempo(runs: Sequence[AcceptedRun]) -> list[FigureTable]:
    scored = [(run, score_by(run.bundle.rows, "category")) for run in runs]
    types = sorted({c for _, s in scored for c in s})
    return [FigureTable(
        "Judged accuracy by question type",
        "open answers judged by the LLM judge named (its reply re-parsed from each row)",
        ["judge", *types],
        [(run, {"judge": judge_label(run), **{t: s[t].acc if t in s else None for t in types}})
         for run, s in scored])]


FIGURES: dict[str, Callable[[Sequence[AcceptedRun]], list[FigureTable]]] = {
    "videomme": _videomme, "egolife": _egolife, "egotempo": _egotempo,
}
"""A scoring's own figure tables, by the shipped task's ``scoring``."""


def dataset_figures(scoring: str, runs: Sequence[AcceptedRun]) -> list[FigureTable]:
    """The figure tables of a benchmark scored by ``scoring`` (none for the others)."""
    make = FIGURES.get(scoring)
    return make(runs) if make and runs else []


def judge_label(run: AcceptedRun) -> str:
    """The LLM judge's model identity as the site labels models; ``—`` without one."""
    judge = run.manifest.judge or {}
    try:
        return model_label(ModelIdentity.model_validate(judge.get("model")))
    except pydantic.ValidationError:
        return "—"


@dataclass(frozen=True)
class Published:
    """The paper's numbers for one benchmark, in %: a reference, not re-scored here."""

    benchmark: str
    note: str
    rows: tuple[tuple[str, float, float, float], ...]
    """(memorizer, Acc, Cov, Prec)."""


_READER = "reader GPT-4o-2024-11-20, whole memory in the prompt"
PUBLISHED: dict[str, Published] = {
    "videomme_stream": Published("Video-MME", _READER, (
        ("Qwen3-VL-30B-A3B (base)", 61.6, 74.7, 82.5), ("TaskMem", 67.9, 79.3, 85.6),
        ("M3-Agent", 62.5, 77.7, 80.4), ("Gemini-2.5-Pro", 63.2, 74.8, 84.4),
        ("GPT-5.2", 67.3, 80.8, 83.3),
    )),
    "egolife_stream": Published(
        "EgoLife",
        "reader GPT-4o-2024-11-20 on the paper's oracle-localised window with a majority of 3 "
        "samples (task egolife_paper, which this leaderboard does not rank), not this causal "
        "task", (
            ("Qwen3-VL-30B-A3B (base)", 38.4, 52.4, 73.3), ("TaskMem", 45.4, 56.4, 80.5),
            ("M3-Agent", 21.8, 30.8, 70.8), ("Gemini-2.5-Pro", 43.8, 56.6, 77.4),
            ("GPT-5.2", 34.8, 48.2, 72.2),
        )),
    "egotempo_stream": Published("EgoTempo", _READER + "; LLM-judged open answers", (
        ("Qwen3-VL-30B-A3B (base)", 22.3, 38.9, 57.2), ("TaskMem", 27.6, 43.7, 63.2),
        ("M3-Agent", 16.0, 36.3, 44.2), ("Gemini-2.5-Pro", 25.8, 42.3, 61.0),
        ("GPT-5.2", 32.1, 51.4, 62.4),
    )),
}
"""The TaskMem paper's headline table (memorizer varies, reader fixed), by task."""
