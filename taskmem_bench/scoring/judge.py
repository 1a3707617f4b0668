"""An LLM judge for open answers (EgoTempo), as the TaskMem protocol scores them.

EgoTempo answers are free text, so exact match undercounts paraphrases and ANLS
(:mod:`~taskmem_bench.scoring.anls`) is only a string-similarity proxy; a judge model compares
the meaning of the reader's answer with the reference and replies with one JSON object
``{"pred": "correct" | "incorrect", "score": 0-5}``. Abstentions ("Insufficient Information")
are decided by the caller before the judge and never reach it.

* The judge's model is configurable (:class:`JudgeConfig` extends the backend settings) and a
  run records it (:meth:`LLMJudge.describe`: model identity and :func:`prompt_hash`).
* Decoding is greedy by default, and each item's seed comes from a hash of its own question,
  gold and answer, so a verdict never depends on which items shared its batch.
* A judge call that fails is never dropped and never raises: a failed batch is asked again
  item by item (:func:`~taskmem_bench.isolation.call_isolating`, the runner's rule for plugin
  calls; not once the backend is known to be down: ``BackendUnavailable`` goes to every item not
  yet judged), and each item that still fails becomes a ``judge_error`` judgment (counted
  wrong, with the error kept for the report; ``--resume`` judges its stream again); a reply
  that holds no valid verdict is ``unparseable`` (also wrong, with the reply kept).
* ``max_new_tokens`` (256) suits a judge that answers directly; a thinking judge needs room to
  close its ``</think>``, or its judgments are ``unparseable``: raise ``judge.max_new_tokens``.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from taskmem_bench.backends import (
    BackendSettings,
    BackendUnavailable,
    ChatRequest,
    Message,
    Sampling,
    get_backend,
    split_thinking,
)
from taskmem_bench.backends.identity import model_identity
from taskmem_bench.isolation import call_isolating

JUDGE_SYSTEM = (
    "You grade answers to questions about first-person videos. You compare a candidate answer "
    "with a reference answer and decide whether the two mean the same thing. You never use "
    "outside knowledge about the video: the reference answer is the truth."
)
JUDGE_TEMPLATE = (
    "Question: {question}\n"
    "Reference answer: {gold}\n"
    "Candidate answer: {answer}\n\n"
    "The candidate is correct when it states what the reference states. Different wording, "
    "synonyms and extra harmless detail are fine. Numbers, counts, times and orders of events "
    "must agree with the reference. An answer that is only partly right, names several "
    "alternatives, hedges between possibilities, or contradicts the reference is incorrect.\n\n"
    "Reply with one JSON object and nothing else: "
    '{{"pred": "correct" or "incorrect", "score": an integer from 0 to 5}}, where the score '
    "rates how closely the candidate matches the meaning of the reference (5 = fully, "
    "0 = not at all)."
)
_PREDS = {"correct": "correct", "incorrect": "incorrect", "yes": "correct", "no": "incorrect"}


@dataclass(frozen=True)
class JudgeConfig(BackendSettings):
    """Settings of the LLM judge; the backend fields choose its model (model None = not
    configured)."""

    model: str | None = None  # type: ignore[assignment]
    max_new_tokens: int = 256
    temperature: float = 0.0  # greedy by default: a judge should be deterministic

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"judge max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"judge temperature must be >= 0, got {self.temperature}")


@dataclass(frozen=True)
class JudgeItem:
    question: str
    gold: str
    answer: str  # the reader's final answer (already extracted, not abstained)


@dataclass(frozen=True)
class Judgment:
    status: Literal["judged", "unparseable", "judge_error"]
    pred: Literal["correct", "incorrect"] | None
    score: int | None  # 0..5
    raw: str | None  # the judge's full reply (None on judge_error)
    error: str | None = None  # judge_error: "<ExceptionType>: <first line of its message>"

    @property
    def correct(self) -> bool:
        return self.status == "judged" and self.pred == "correct"


def parse_judgment(raw: str) -> tuple[str, int] | None:
    """``(pred, score)`` from a judge's reply, or None.

    Accepted: the text after any thinking (:func:`split_thinking`); in it, the last ``{...}``
    object (prose, code fences and other objects around it allowed; an object nested in
    another counts on its own) that parses as JSON or as a Python dict literal (single quotes,
    ``True``) and has a ``pred`` key (keys matched case-insensitively). Its ``pred`` must be a
    string, case and surrounding spaces ignored, in correct / incorrect / yes (= correct) / no
    (= incorrect); its ``score`` an integer 0..5, given as an int, an integral float (``4.0``)
    or a string of either (``"4"``, ``"4.0"``). Anything else (no such object, a missing key,
    another pred, a score out of range or fractional) is None; an earlier valid object does
    not rescue an invalid last one.
    """
    text = split_thinking(raw)[1]
    for start in reversed([i for i, ch in enumerate(text) if ch == "{"]):
        found = _object_at(text, start)
        if found is not None and "pred" in found:
            return _verdict(found)
    return None


def _object_at(text: str, start: int) -> dict[str, Any] | None:
    """The dict literal that starts at ``text[start]`` (balanced braces, quotes respected)."""
    depth, quote, escaped = 0, "", False
    for end in range(start, len(text)):
        ch = text[end]
        if escaped:
            escaped = False
        elif quote:
            escaped, quote = ch == "\\", "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "{}":
            depth += 1 if ch == "{" else -1
            if depth == 0:
                return _load(text[start : end + 1])
    return None


def _load(snippet: str) -> dict[str, Any] | None:
    for loader in (json.loads, ast.literal_eval):
        try:
            value = loader(snippet)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict):
            return {str(k).strip().lower(): v for k, v in value.items()}
    return None


def _verdict(found: dict[str, Any]) -> tuple[str, int] | None:
    pred = found["pred"]
    pred = _PREDS.get(pred.strip().lower()) if isinstance(pred, str) else None
    score = found.get("score")
    if isinstance(score, str):
        try:
            score = float(score.strip())
        except ValueError:
            return None
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        return None
    if pred is None or score != int(score) or not 0 <= score <= 5:
        return None
    return pred, int(score)


def judgment_of(reply: str | BaseException) -> Judgment:
    """The judgment a judge reply gives (``judged`` or ``unparseable``), or a failed call's
    (``judge_error``, the exception's type and first line kept)."""
    if isinstance(reply, BaseException):
        first = (str(reply).strip().splitlines() or [""])[0]
        error = f"{type(reply).__name__}: {first}" if first else type(reply).__name__
        return Judgment("judge_error", None, None, None, error=error)
    verdict = parse_judgment(reply)
    if verdict is None:
        return Judgment("unparseable", None, None, reply)
    pred, score = verdict
    return Judgment("judged", pred, score, reply)  # type: ignore[arg-type]


def prompt_hash() -> str:
    """sha256[:16] of the texts that decide verdicts: the system prompt and the template."""
    text = f"[system]\n{JUDGE_SYSTEM}\n\n[template]\n{JUDGE_TEMPLATE}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def item_seed(seed: int, item: JudgeItem) -> int:
    """The item's sampling seed: from ``seed`` and its own texts only, never its position."""
    key = json.dumps([seed, item.question, item.gold, item.answer], ensure_ascii=False)
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 2**31


class LLMJudge:
    """Judges open answers with one batched backend call per :meth:`judge`."""

    def __init__(self, config: JudgeConfig, *, seed: int = 0) -> None:
        if not config.model:
            raise ValueError(
                "the LLM judge has no model: set judge.model (e.g. --set judge.model=<name or "
                "local path>, with judge.backend and judge.base_url as needed)"
            )
        self.config = config
        self.seed = seed

    def messages(self, item: JudgeItem) -> tuple[Message, ...]:
        user = JUDGE_TEMPLATE.format(question=item.question, gold=item.gold, answer=item.answer)
        return (Message.text("system", JUDGE_SYSTEM), Message.text("user", user))

    def judge(self, items: Sequence[JudgeItem]) -> list[Judgment]:
        if not items:
            return []
        requests = [
            ChatRequest(
                self.messages(item),
                Sampling(self.config.max_new_tokens, self.config.temperature,
                         seed=item_seed(self.seed, item)),
            )
            for item in items
        ]
        replies = call_isolating(self._generate, requests, "the judge backend's generate()",
                                 whole_batch=(BackendUnavailable,))
        return [judgment_of(reply) for reply in replies]

    def _generate(self, requests: list[ChatRequest]) -> list[str]:
        """The replies; loading the backend is part of the call, so a judge model that cannot
        be loaded fails its items like any failed call."""
        return [g.text for g in get_backend(self.config).generate(requests)]

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "llm",
            "prompt_hash": prompt_hash(),
            "config": dataclasses.asdict(self.config),
            "model": model_identity(self.config),
        }
