"""The model-backed readers: the paper reader's prompt, batching, majority vote, retrieval, and
end to end through the real transformers backend on a tiny Qwen3."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
import pytest

from taskmem_bench.backends import (
    Backend,
    ChatRequest,
    Generation,
    TextPart,
    VideoPart,
    get_backend,
)
from taskmem_bench.memory import MemoryEntry, MemorySnapshot, count_tokens
from taskmem_bench.plan import build_plan
from taskmem_bench.readers import ReaderInput, load_reader
from taskmem_bench.readers.paper import PaperReader, PaperReaderConfig
from taskmem_bench.readers.prompts import PAPER_TEMPLATES, build_messages, render_prompt
from taskmem_bench.readers.retrieval import (
    HashingEmbedder,
    RetrievalReader,
    RetrievalReaderConfig,
    TransformersEmbedder,
)
from taskmem_bench.readers.vote import combine
from taskmem_bench.scoring.extract import extract_choice
from taskmem_bench.scoring.verdict import verdict_choice
from taskmem_bench.taskconfig import ConfigError, load_task, parse_override

OPTIONS = ("kitchen table", "red car", "garden bench", "front door")
MEMORY = MemorySnapshot(
    "s0",
    60.0,
    (
        MemoryEntry(0.0, 5.0, "A red car parks in front of the house."),
        MemoryEntry(5.0, 12.0, "Ann: I left my keys on the kitchen table."),
        MemoryEntry(12.0, 20.0, "Bob waters the plants in the garden."),
    ),
)
QUESTION = "Where did Ann leave her keys?"
TASK = ReaderInput(QUESTION, OPTIONS, MEMORY)
OPEN_TASK = ReaderInput(QUESTION, (), MEMORY, answer_format="open")


class ScriptedBackend(Backend):
    """Stands in for a model so that replies, and therefore votes, can be scripted: each request
    is answered by ``SCRIPTS[model](request)``; every ``generate`` call is recorded. Registered
    only here, by its ``module:Class`` path."""

    name = "scripted"
    SCRIPTS: ClassVar[dict[str, Callable[[ChatRequest], str]]] = {}

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.calls: list[list[ChatRequest]] = []

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        self.calls.append(list(requests))
        script = self.SCRIPTS[self.settings.model]
        return [Generation(script(r)) for r in requests]


def scripted(model: str, script: Callable[[ChatRequest], str], **fields) -> PaperReaderConfig:
    """A reader config on the scripted backend; ``model`` names the script (and the backend
    instance, which ``get_backend`` memoizes per settings)."""
    ScriptedBackend.SCRIPTS[model] = script
    return PaperReaderConfig(backend=f"{__name__}:ScriptedBackend", model=model, **fields)


def by_seed(replies: Sequence[str]) -> Callable[[ChatRequest], str]:
    return lambda request: replies[request.sampling.seed]


def voted(replies: Sequence[str], task: ReaderInput = TASK) -> str:
    return combine(list(replies), list(range(len(replies))), task)


# --- the prompt -----------------------------------------------------------------------------


def test_prompt_shows_memory_options_abstain_label_question_and_final_line() -> None:
    text = render_prompt(TASK)
    assert MEMORY.render() in text
    assert QUESTION in text
    for line in ("A. kitchen table", "B. red car", "C. garden bench", "D. front door",
                 "E. Cannot be determined from the memory"):
        assert f"\n{line}" in text
    assert '"Answer: X"' in text and "A, B, C, D or E" in text and "Choose E when" in text
    assert text.index("Memory:") < text.index(QUESTION)


def test_open_prompt_asks_for_a_phrase_or_insufficient_information() -> None:
    text = render_prompt(OPEN_TASK)
    assert MEMORY.render() in text and QUESTION in text
    assert 'exactly "Answer: Insufficient Information"' in text
    assert "Options:" not in text and "\nA. " not in text


def test_empty_memory_is_stated() -> None:
    text = render_prompt(dataclasses.replace(TASK, memory=MemorySnapshot("s0", 0.0, ())))
    assert "Memory:\n(the memory holds no notes)\n" in text


def test_prompt_text_comes_from_the_hashed_templates() -> None:
    """Every fixed word of the prompt is in ``PaperReader.prompt``, so changing a template
    changes the manifest's prompt hash; a subclass's hash follows its templates."""
    assert PaperReader.prompt == PAPER_TEMPLATES.text
    for value in dataclasses.asdict(PAPER_TEMPLATES).values():
        assert value in PaperReader.prompt
    assert PaperReader().render_prompt(TASK) == render_prompt(TASK)

    class Reworded(PaperReader):
        templates = dataclasses.replace(PAPER_TEMPLATES, abstain_option="Not in memory")

    assert Reworded.prompt_hash() != PaperReader.prompt_hash()
    assert "E. Not in memory" in Reworded().render_prompt(TASK)
    assert RetrievalReader.prompt_hash() == PaperReader.prompt_hash()  # the same prompt


def test_frames_go_between_the_memory_and_the_question() -> None:
    frames = VideoPart(np.zeros((2, 8, 8, 3), np.uint8), np.array([58.0, 59.0]), 30.0)
    (message,) = build_messages(dataclasses.replace(TASK, frames=frames))
    before, video, after = message.content
    assert message.role == "user" and video is frames
    assert MEMORY.render() in before.text and before.text.endswith(PAPER_TEMPLATES.frames_note)
    assert after.text.startswith(f"Question (asked at 00:01:00): {QUESTION}")
    note = f"\n\n{PAPER_TEMPLATES.frames_note}"
    assert f"{before.text.removesuffix(note)}\n\n{after.text}" == render_prompt(TASK)
    with pytest.raises(ValueError, match="frames"):
        render_prompt(dataclasses.replace(TASK, frames=frames))
    assert build_messages(TASK)[0].content == (TextPart(render_prompt(TASK)),)


# --- batching and configuration -------------------------------------------------------------


def test_one_batched_generate_call_per_answer_with_seeded_samples() -> None:
    config = scripted("batch", lambda r: "Answer: A", samples=3, temperature=0.7,
                      max_new_tokens=64)
    reader = PaperReader(config, seed=10)
    outputs = reader.answer([TASK, OPEN_TASK, TASK])
    (call,) = get_backend(config).calls
    assert len(call) == 9 and len(outputs) == 3
    assert [r.sampling.seed for r in call] == [10, 11, 12] * 3
    assert {(r.sampling.temperature, r.sampling.max_new_tokens) for r in call} == {(0.7, 64)}
    assert call[3].messages == reader.messages(OPEN_TASK)
    assert reader.answer([]) == [] and len(get_backend(config).calls) == 1


def test_one_sample_returns_the_model_text_unchanged() -> None:
    reply = "<think>the keys</think>The memory says the kitchen table.\nAnswer: A"
    (output,) = PaperReader(scripted("single", lambda r: reply)).answer([TASK])
    assert output.raw == reply


def test_config_reaches_the_reader_through_set_and_is_validated() -> None:
    overrides = [parse_override(s) for s in
                 ("backend=openai", "model=m", "samples=3", "temperature=0.7", "top_k=5")]
    plan = build_plan(load_task("mini"), "blind", reader="retrieval", overrides=overrides)
    assert plan.reader_config == RetrievalReaderConfig(
        backend="openai", model="m", samples=3, temperature=0.7, top_k=5
    )
    assert load_reader("paper") is PaperReader and load_reader("retrieval") is RetrievalReader
    with pytest.raises(ConfigError, match="samples"):
        build_plan(load_task("mini"), "blind", reader="paper",
                   overrides=[parse_override("samples=0")])


def test_a_greedy_vote_warns() -> None:
    with pytest.warns(UserWarning, match="temperature 0"):
        PaperReader(PaperReaderConfig(model="m", samples=3))


# --- majority vote --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replies", "winner"),
    [
        (["Answer: B", "Answer: C", "Answer: B"], "B"),
        (["Answer: C", "Answer: B"], "C"),  # a tie goes to the answer seen first
        (["no idea what to pick", "Answer: B", "Answer: C", "Answer: C"], "C"),
        (["gibberish", "Answer: D", "Answer: A", "more gibberish"], "D"),  # unparsed: no vote
        (["<think>B, surely", "Answer: E"], "E"),  # truncated thinking does not vote
        (["The memory does not say.", "Answer: A", "It cannot be determined."], "E"),
    ],
)
def test_majority_vote(replies: list[str], winner: str) -> None:
    config = scripted(f"vote-{replies}", by_seed(replies), samples=len(replies), temperature=1.0)
    (output,) = PaperReader(config).answer([TASK])
    assert output.raw.endswith(f"\nAnswer: {winner}")
    assert extract_choice(output.raw, OPTIONS).label == winner
    assert verdict_choice(output.raw, OPTIONS, gold=winner).correct
    for k, reply in enumerate(replies):  # every sample is shown, with its seed
        assert f"[sample {k + 1} of {len(replies)}, seed {k}: " in output.raw
        assert reply in output.raw


def test_vote_shows_the_tally() -> None:
    raw = voted(["Answer: B", "nothing", "Answer: C", "Answer: B"])
    assert "\nVotes: B x2, C x1, unparsed x1.\nAnswer: B" in raw


def test_all_unparseable_samples_give_a_parse_failure() -> None:
    raw = voted(["<think>A or B", "B or C?", "hmm"])
    assert "Answer:" not in raw.rpartition("</think>")[2]
    verdict = verdict_choice(raw, OPTIONS, gold="A")
    assert verdict.parse_failed and not verdict.correct


def test_open_answers_vote_on_normalised_text() -> None:
    replies = ["She put them down.\nAnswer: Kitchen table", "Answer: blue sofa",
               "**Answer:** the kitchen table.", "Answer: Blue sofa"]
    raw = voted(replies, OPEN_TASK)
    assert raw.endswith("\nAnswer: Kitchen table")  # 2-2 tie, first seen wins, its spelling
    assert "Votes: 'Kitchen table' x2, 'blue sofa' x2." in raw
    raw = voted(["I don't know.", "Answer: Insufficient Information", "Answer: garden"],
                OPEN_TASK)
    assert raw.endswith("\nAnswer: Insufficient Information")  # a tie; the unparsed don't vote


# --- retrieval ------------------------------------------------------------------------------


def long_memory() -> MemorySnapshot:
    """Twenty entries of filler around two that mention keys, written in time order."""
    entries = [
        MemoryEntry(10.0 * k, 10.0 * k + 9, f"The camera pans over shelf number {k} of books.")
        for k in range(20)
    ]
    entries[13] = MemoryEntry(130.0, 139.0, "Ann puts her keys on the kitchen table.")
    entries[4] = MemoryEntry(40.0, 49.0, "Ann looks for her keys near the door.")
    return MemorySnapshot("s0", 200.0, tuple(entries))


def test_hashing_embedder_ranks_shared_rare_words_highest() -> None:
    docs = [e.text for e in long_memory().entries]
    scores = HashingEmbedder().similarities(f"{QUESTION}\nkitchen table", docs)
    order = np.argsort(-scores, kind="stable")
    assert list(order[:2]) == [13, 4] and scores[13] > scores[4] > 0
    assert np.array_equal(scores, HashingEmbedder().similarities(f"{QUESTION}\nkitchen table",
                                                                  docs))
    assert HashingEmbedder().similarities("", docs).tolist() == [0.0] * 20
    assert HashingEmbedder().similarities("keys", []).shape == (0,)


def test_retrieval_keeps_top_k_in_time_order_when_memory_overflows() -> None:
    memory = long_memory()
    task = ReaderInput(QUESTION, OPTIONS, memory)
    budget = count_tokens(memory.render()) - 1
    reader = RetrievalReader(RetrievalReaderConfig(model="m", max_memory_tokens=budget, top_k=2))
    assert reader.select(task) == (4, 13)  # ranked 13 first; shown in time order
    shown = reader.render_prompt(task)
    assert shown == render_prompt(dataclasses.replace(
        task, memory=dataclasses.replace(memory, entries=(memory.entries[4], memory.entries[13]))
    ))
    assert shown.index("near the door") < shown.index("on the kitchen table")
    assert "shelf number" not in shown


def test_retrieval_respects_the_token_budget() -> None:
    memory = long_memory()
    task = ReaderInput(QUESTION, OPTIONS, memory)
    one = count_tokens(dataclasses.replace(memory, entries=(memory.entries[13],)).render())
    reader = RetrievalReader(RetrievalReaderConfig(model="m", max_memory_tokens=one, top_k=5))
    assert reader.select(task) == (13,)


def test_retrieval_is_the_paper_reader_when_memory_fits() -> None:
    reader = RetrievalReader(RetrievalReaderConfig(model="m", top_k=1))
    assert reader.select(TASK) is None
    assert reader.messages(TASK) == PaperReader().messages(TASK)
    config = scripted("retrieval", lambda r: "Answer: A")
    retrieval_config = RetrievalReaderConfig(**dataclasses.asdict(config))
    assert RetrievalReader(retrieval_config).answer([TASK]) == PaperReader(config).answer([TASK])


def test_a_bad_embedder_is_named() -> None:
    reader = RetrievalReader(RetrievalReaderConfig(model="m", max_memory_tokens=5,
                                                   embedder="/no/such/model"))
    with pytest.raises(ValueError, match="'/no/such/model' is neither"):
        reader.select(ReaderInput(QUESTION, OPTIONS, long_memory()))


# --- real models ----------------------------------------------------------------------------


def test_transformers_embedder_selection_is_deterministic(tiny_text_model) -> None:
    memory = long_memory()
    task = ReaderInput(QUESTION, OPTIONS, memory)
    config = RetrievalReaderConfig(model="m", max_memory_tokens=100, top_k=3,
                                   embedder=str(tiny_text_model), device="cpu")
    kept = RetrievalReader(config).select(task)
    assert kept is not None and len(kept) == 3 and list(kept) == sorted(kept)
    again = RetrievalReader(config)  # a fresh load of the model
    assert again.select(task) == kept
    assert isinstance(again.embedder, TransformersEmbedder)
    assert np.isclose(np.linalg.norm(again.embedder.embed("keys")), 1.0)


def test_paper_reader_end_to_end_on_a_tiny_qwen3(tiny_text_model) -> None:
    """The real transformers backend and a real (tiny, random) Qwen3: the reader answers every
    question in one batch, keeps the model's raw text, and greedy decoding repeats itself."""
    config = PaperReaderConfig(backend="transformers", model=str(tiny_text_model),
                               device="cpu", max_new_tokens=12)
    reader = PaperReader(config)
    first = reader.answer([TASK, OPEN_TASK])
    assert len(first) == 2 and all(o.raw for o in first)
    assert reader.answer([TASK, OPEN_TASK]) == first
    sampled = dataclasses.replace(config, samples=3, temperature=1.0)
    (vote,) = PaperReader(sampled, seed=5).answer([TASK])
    assert "[sample 3 of 3, seed 7: " in vote.raw
    assert PaperReader(sampled, seed=5).answer([TASK]) == [vote]  # seeded samples repeat


def test_frames_reach_a_tiny_qwen3_vl(tiny_vl_model) -> None:
    """The recent-frames layout (memory, video part, question) goes through the real Qwen3-VL
    processor and chat template, batched with a text-only question."""
    frames = VideoPart(np.random.default_rng(0).integers(0, 255, (4, 64, 64, 3), np.uint8),
                       np.array([56.0, 57.0, 58.0, 59.0]), 30.0)
    config = PaperReaderConfig(backend="transformers", model=str(tiny_vl_model), device="cpu",
                               max_new_tokens=8)
    outputs = PaperReader(config).answer([dataclasses.replace(TASK, frames=frames), TASK])
    assert len(outputs) == 2 and all(o.raw for o in outputs)
