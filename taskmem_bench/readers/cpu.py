"""A model-free reader that answers from memory text by word overlap, on a CPU, deterministically.

It knows nothing about any dataset: it reads only the question, the options and the memory
entries (their text and times). An option counts as supported when one memory sentence contains
the option's content words as a phrase (in order, adjacent: "green hexagon" must not match "green
star ... blue hexagon") and all of the question's content words; the reader answers only when
exactly one option is supported, and otherwise abstains. That makes it precise rather than
clever: it rewards memory that states the needed fact, and never guesses from an empty memory.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from taskmem_bench.memory import MemorySnapshot, render_time
from taskmem_bench.readers.base import Reader, ReaderInput, ReaderOutput
from taskmem_bench.schema import ANSWER_LABELS, ScoringSpec

STOPWORDS = frozenset("""
a an the this that these those there here it its they them their he she his her him i me my we
our you your is are was were be been being am do does did done has have had having of on in at
to from by for with into onto about as and or but not no if then than so which what who whom
whose where when why how many much near next up down out over under after before during while
can could will would should shall may might must also just only very relative one ones
""".split())
ORDER_WORDS = {"first": "first", "earliest": "first", "last": "last", "latest": "last"}
_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")
_SPEAKER = re.compile(r"^([A-Z][\w'-]*):\s+")
ABSTAIN_TEXT = ScoringSpec().abstain_text


def stem(word: str) -> str:
    """Light normalisation: plural and third-person -s, so 'appears' meets 'appear'."""
    if len(word) <= 3 or word.endswith("ss"):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") else word


def phrase(text: str) -> tuple[str, ...]:
    """The content words of ``text``, in order."""
    return tuple(stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS)


def content_words(text: str) -> frozenset[str]:
    return frozenset(phrase(text))


@dataclass(frozen=True)
class Sentence:
    """One sentence of a memory entry, with the entry's start time."""

    t_start: float
    text: str
    phrase: tuple[str, ...]
    words: frozenset[str]

    def contains(self, option: tuple[str, ...]) -> bool:
        """Whether the option's content words occur here as one adjacent run."""
        n = len(option)
        starts = range(len(self.phrase) - n + 1)
        return n > 0 and any(self.phrase[k:k + n] == option for k in starts)


def attributed(sentence: str) -> str:
    """Reads the transcript convention 'Alice: hello' as 'Alice says hello'."""
    return _SPEAKER.sub(r"\1 says ", sentence)


def sentences(memory: MemorySnapshot) -> list[Sentence]:
    found = []
    for entry in sorted(memory.entries, key=lambda e: (e.t_start, e.t_end, e.text)):
        for part in map(str.strip, _SENTENCE_END.split(entry.text)):
            if part:
                words = phrase(attributed(part))
                found.append(Sentence(entry.t_start, part, words, frozenset(words)))
    return found


class CpuReader(Reader):
    """The fixed reader of ``mini``: no model, no download, the same answer every time."""

    name = "cpu"
    version = "1"
    deterministic = True
    prompt = (
        "cpu-reader v1: lowercase, drop stopwords, strip plural -s, read 'Name: text' as "
        "'Name says text'. Multiple choice: an option is supported by a memory sentence that "
        "contains its words as an adjacent phrase and all the question's words; answer the single "
        "supported option, else E. Questions with first/earliest/last/latest: find every option "
        "in memory and answer the earliest/latest by entry start time, else E. Open: the first "
        "sentence with all the question's words, else 'Insufficient Information'."
    )

    def answer(self, inputs: Sequence[ReaderInput]) -> list[ReaderOutput]:
        return [ReaderOutput(self._answer_one(i)) for i in inputs]

    def _answer_one(self, task: ReaderInput) -> str:
        memory = sentences(task.memory)
        question = content_words(task.question)
        if task.answer_format == "open":
            reason, answer = self._open(question, memory)
        else:
            abstain = ANSWER_LABELS[len(task.options)]
            direction = next(
                (ORDER_WORDS[w] for w in _WORD.findall(task.question.lower()) if w in ORDER_WORDS),
                None,
            )
            options = [phrase(o) for o in task.options]
            if direction is None:
                reason, answer = self._match(question, options, memory, abstain)
            else:
                reason, answer = self._order(direction, options, memory, abstain)
        return f"{reason}\nAnswer: {answer}"

    @staticmethod
    def _match(question: frozenset[str], options: list[tuple[str, ...]],
               memory: list[Sentence], abstain: str) -> tuple[str, str]:
        supported = []
        for k, option in enumerate(options):
            found = [s for s in memory if s.contains(option) and question <= s.words]
            if found:
                supported.append((k, found[0]))
        if len(supported) != 1:
            why = "no option" if not supported else f"{len(supported)} options"
            return f"Memory fully supports {why}; cannot decide.", abstain
        k, sentence = supported[0]
        label = ANSWER_LABELS[k]
        when = render_time(sentence.t_start)
        return f"Option {label} is stated at {when}: {sentence.text}", label

    @staticmethod
    def _order(direction: str, options: list[tuple[str, ...]], memory: list[Sentence],
               abstain: str) -> tuple[str, str]:
        times = []
        for k, option in enumerate(options):
            found = [s.t_start for s in memory if s.contains(option)]
            if not found:
                return f"Option {ANSWER_LABELS[k]} is not in memory; cannot order.", abstain
            times.append(min(found) if direction == "first" else max(found))
        pick = min(times) if direction == "first" else max(times)
        if times.count(pick) > 1:
            return f"Several options share the {direction} time; cannot order.", abstain
        label = ANSWER_LABELS[times.index(pick)]
        listed = ", ".join(f"{ANSWER_LABELS[k]} {render_time(t)}" for k, t in enumerate(times))
        return f"Options in memory at {listed}; {label} is {direction}.", label

    @staticmethod
    def _open(question: frozenset[str], memory: list[Sentence]) -> tuple[str, str]:
        sentence = next((s for s in memory if question <= s.words), None)
        if sentence is None or not question:
            return "No memory sentence covers the question.", ABSTAIN_TEXT
        return f"Stated at {render_time(sentence.t_start)}.", sentence.text
