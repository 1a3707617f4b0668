"""The TaskMem paper's EgoLife answering window: memories near the query and near the evidence.

The paper did not hand its reader a week of memory for an EgoLife question: it showed only the
memories of the clips around the query time and around the annotated evidence (``target_time``)
time, an oracle-localised window, and took the majority of 3 answers. The harness's default is
the causal full history; this module is the pure selection the ``egolife_paper`` task applies to
a question's memory snapshot (already cut at the ask time, so nothing here can add later memory),
registered as the memory view ``paper_window`` (:class:`PaperWindow`).

Window sizes (the paper's code does not state them; these are this harness's, named in the run):

* ``before_query`` = 600 s: the situation the question is asked in. EgoLifeQA questions are
  triggered by what happens at the query (their ``trigger`` field), and 10 minutes covers that
  scene and its lead-up (60 entries of 10 s clips);
* ``around_evidence`` = 300 s on each side of each evidence span: target times are mostly single
  annotated instants inside an activity that lasts minutes (using a tool, a conversation), so
  +-5 minutes holds the activity while staying two to three orders of magnitude smaller than the
  history (a week is ~60,000 ten-second entries), which is what the localisation is for.

An entry is kept when its claimed span ``[t_start, t_end]`` overlaps a window; input order is
kept. Evidence annotated after the query selects nothing beyond the ask time (the snapshot holds
no such memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from taskmem_bench.memory import MemoryEntry
from taskmem_bench.memory_view import MemoryView
from taskmem_bench.schema import Question, Span

BEFORE_QUERY = 600.0
AROUND_EVIDENCE = 300.0


def windows(ask_time: float, evidence: Sequence[Span], *, before_query: float = BEFORE_QUERY,
            around_evidence: float = AROUND_EVIDENCE) -> list[Span]:
    """The time windows memory is shown from, each ending no later than the ask time."""
    if before_query < 0 or around_evidence < 0:
        raise ValueError("window sizes must be >= 0")
    spans = [Span(max(0.0, ask_time - before_query), ask_time)]
    for span in evidence:
        start = max(0.0, span.start - around_evidence)
        if start <= ask_time:
            spans.append(Span(start, min(span.end + around_evidence, ask_time)))
    return spans


def paper_window(entries: Sequence[MemoryEntry], ask_time: float, evidence: Sequence[Span], *,
                 before_query: float = BEFORE_QUERY,
                 around_evidence: float = AROUND_EVIDENCE) -> tuple[MemoryEntry, ...]:
    """The entries of a snapshot at ``ask_time`` that the paper's EgoLife mode shows."""
    shown = windows(ask_time, evidence, before_query=before_query,
                    around_evidence=around_evidence)
    return tuple(e for e in entries
                 if any(e.t_end >= w.start and e.t_start <= w.end for w in shown))


@dataclass(frozen=True)
class PaperWindow(MemoryView):
    """The memory view ``paper_window``: the paper's window around the query and the question's
    annotated evidence, so oracle-localised."""

    oracle_localised = True
    before_query: float = BEFORE_QUERY
    around_evidence: float = AROUND_EVIDENCE

    def keep(self, entries: tuple[MemoryEntry, ...], question: Question) -> Sequence[MemoryEntry]:
        return paper_window(entries, question.ask_time, question.evidence,
                            before_query=self.before_query, around_evidence=self.around_evidence)

    def settings(self) -> dict[str, Any]:
        return {"before_query_s": self.before_query, "around_evidence_s": self.around_evidence}
