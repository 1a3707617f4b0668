"""The CPU reader: general word-overlap answering that is right on full memory and abstains on
missing memory, so that mini measures memorization rather than reading."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from taskmem_bench.datasets.mini import ENVIRONMENTS, Config, plan_episode
from taskmem_bench.memory import MemoryEntry, MemorySnapshot
from taskmem_bench.readers import ReaderInput, load_reader
from taskmem_bench.readers.cpu import CpuReader

FINAL = re.compile(r"\nAnswer: ([A-E])\Z")
OPTIONS = ("red circle", "blue star", "green hexagon", "yellow square")


def ask(question: str, options: tuple[str, ...], *entries: tuple[float, str],
        answer_format: str = "multiple_choice") -> str:
    memory = MemorySnapshot("s", 100.0, tuple(MemoryEntry(t, t + 1.0, text) for t, text in entries))
    (output,) = CpuReader().answer([ReaderInput(question, options, memory, answer_format)])
    return output.raw


def letter(raw: str) -> str:
    match = FINAL.search(raw)
    assert match, raw
    assert raw.split("\n")[0].strip(), "a reasoning line comes first"
    return match.group(1)


def test_is_the_registered_cpu_reader() -> None:
    assert load_reader("cpu") is CpuReader
    assert CpuReader.prompt and CpuReader.version and CpuReader.prompt_hash()


def test_answers_the_option_a_sentence_states() -> None:
    raw = ask("Which of these appears on the shelf?", OPTIONS,
              (3.0, "A blue star appears on the table."),
              (9.0, "Some noise. A green hexagon appears on the shelf; nothing else."))
    assert letter(raw) == "C" and "00:00:09" in raw


def test_normalizes_case_and_plurals() -> None:
    raw = ask("How many Red Circles were on the rug?", ("2", "3", "4", "5"),
              (5.0, "there are 4 red circle on the RUG"))
    assert letter(raw) == "C"


def test_reads_transcript_lines_as_speech() -> None:
    options = ("Alice", "Bob", "Carol", "Dave")
    raw = ask("Who says the password is TIGER?", options, (7.0, "Carol: the password is TIGER"))
    assert letter(raw) == "C"


def test_option_words_must_be_adjacent() -> None:
    raw = ask("Which of these was left of the purple diamond?", OPTIONS,
              (1.0, "The green star is left of the blue hexagon and the purple diamond."))
    assert letter(raw) == "E"


def test_abstains_on_partial_or_ambiguous_support() -> None:
    question = "Which of these appears on the shelf?"
    assert letter(ask(question, OPTIONS, (1.0, "A red circle appears on the table."))) == "E"
    both = ask(question, OPTIONS, (1.0, "A red circle appears on the shelf."),
               (2.0, "A blue star appears on the shelf."))
    assert letter(both) == "E"
    assert letter(ask(question, OPTIONS)) == "E"


def test_orders_options_by_entry_time() -> None:
    events = ("Alice says hello", "the person waves", "a red circle appears", "the sign shows STOP")
    memory = [(30.0, "Alice says hello."), (12.0, "The person waves."),
              (55.0, "A red circle appears."), (41.0, "The sign shows STOP.")]
    assert letter(ask("Which of these happens first?", events, *memory)) == "B"
    assert letter(ask("Which of these happens last?", events, *memory)) == "C"
    assert letter(ask("Which of these happens first?", events, *memory[:3])) == "E"


def test_open_questions_quote_memory_or_abstain() -> None:
    raw = ask("What does Bob say the password is?", (), (4.0, "Bob says the password is TIGER."),
              answer_format="open")
    assert raw.endswith("Answer: Bob says the password is TIGER.")
    unknown = ask("Who is Carol?", (), answer_format="open")
    assert unknown.endswith("Answer: Insufficient Information")


def test_is_deterministic_and_ignores_entry_order() -> None:
    entries = [(float(t), f"A red circle appears on the shelf number {t}.") for t in range(5)]
    question = ("Which of these appears on the shelf?", OPTIONS)
    assert ask(*question, *entries) == ask(*question, *reversed(entries))


def _evaluate(environment: str, keep: float) -> Counter:
    """Verdicts on a split's questions with a random ``keep`` share of the facts done by then."""
    reader, verdicts = CpuReader(), Counter()
    config = Config(environment=environment)
    rng = np.random.default_rng(0)
    for index in range(config.episodes):
        plan = plan_episode(config, index)
        inputs, golds = [], []
        for question, hidden in plan.questions:
            facts = [f for f in plan.world.facts if f.span.end <= question.ask_time]
            entries = tuple(
                MemoryEntry(f.span.start, f.span.end, f.text, f.kind)
                for f in facts if rng.random() < keep
            )
            memory = MemorySnapshot(plan.stream_id, question.ask_time, entries)
            inputs.append(ReaderInput(question.text, question.options, memory))
            golds.append(hidden.gold)
        for output, gold in zip(reader.answer(inputs), golds):
            said = letter(output.raw)
            verdicts["abstain" if said == "E" else "right" if said == gold else "wrong"] += 1
    return verdicts


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_full_oracle_memory_is_answered(environment: str) -> None:
    verdicts = _evaluate(environment, keep=1.0)
    assert verdicts["right"] >= 0.95 * sum(verdicts.values()), verdicts


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_empty_memory_is_abstained(environment: str) -> None:
    verdicts = _evaluate(environment, keep=0.0)
    assert set(verdicts) == {"abstain"} and verdicts["abstain"] >= 6 * Config().episodes


def test_half_memory_abstains_rather_than_errs() -> None:
    verdicts = _evaluate("mixed", keep=0.5)
    total = sum(verdicts.values())
    assert verdicts["wrong"] <= 0.05 * total, verdicts
    assert 0.2 * total <= verdicts["right"] <= 0.8 * total, verdicts
