"""Phase Two, steps 1 and 2: candidates sampled from a real tiny Qwen3-VL with the supplement
prompt, and the fidelity filter (Phase One's quality judge) on hand-made candidates."""

from __future__ import annotations

import numpy as np
import pytest

from taskmem.candidates import (
    Candidate, ClipKey, ClipPrompt, chat_request, sample_candidates, supplement_line,
)
from taskmem.fidelity import ConsensusJudge, fidelity_filter
from taskmem.phase_two import BufferedClip
from taskmem.protocol import Frame, FrameSpec, build_prompt, format_reply
from taskmem.rewards import Claim, FactJudge, Verdict
from taskmem.streams import Window
from taskmem_bench.backends import BackendSettings, Sampling
from taskmem_bench.model_policy import generate_all
from taskmem_bench.schema import Clip, TaskNotice

COUNT = TaskNotice("s", "q1", 30.0, "How many red hexagons were on the rug?",
                   ("4", "3", "2", "5"), "counting")
OCR = TaskNotice("s", "q2", 40.0, "Which of these words does the sign show?",
                 ("STOP", "WAIT", "SALE", "PUSH"), "ocr")


def test_a_supplement_line_is_the_questions_text_and_options():
    assert supplement_line(COUNT) == "How many red hexagons were on the rug? Options: 4; 3; 2; 5"
    lines = [supplement_line(COUNT), supplement_line(OCR)]
    prompt = build_prompt(0.0, 10.0, [], [], (), budget_tokens=24, supplement=lines)
    assert "recent ones:\n- How many red hexagons were on the rug? Options: 4; 3; 2; 5\n- Which" in prompt.text
    assert "counting" not in prompt.text  # the category is not a question's text


def clip_of(stream_id: str, index: int, size: int = 32) -> Clip:
    rng = np.random.default_rng(index)
    times = index * 10.0 + np.arange(4) * 2.5
    frames = rng.integers(0, 256, (4, size, size, 3), dtype=np.uint8)
    return Clip(stream_id, index, index * 10.0, index * 10.0 + 10.0, frames, times)


def clip_prompt(window: Window, clip: Clip, questions: list[str]) -> ClipPrompt:
    """The prompt the policy's buffer builds for ``clip`` (budget 24)."""
    return BufferedClip.of(0, window, clip, window.new_frames(clip), 24).prompt(questions)


@pytest.fixture(scope="module")
def prompts() -> list[ClipPrompt]:
    window = Window(spec=FrameSpec(size=32, new_frames=2))
    questions = [supplement_line(COUNT), supplement_line(OCR)]
    return [clip_prompt(window, clip_of("a", 0), questions),
            clip_prompt(window, clip_of("b", 3), questions)]


def test_candidates_from_a_real_tiny_model_are_n_per_clip_and_reproducible(tiny_vl_model, prompts):
    settings = BackendSettings(model=str(tiny_vl_model), device="cpu")
    sample = dict(n=3, seed=7, max_new_tokens=8, temperature=1.5, top_k=None)
    first = sample_candidates(settings, prompts, **sample)
    assert [len(c) for c in first] == [3, 3]
    assert [c.key for c in first[1]] == [ClipKey("b", 3)] * 3
    assert sample_candidates(settings, prompts, **sample) == first  # the same seed, the same text
    assert len({c.completion for group in first for c in group}) > 1
    assert sample_candidates(settings, prompts, **{**sample, "seed": 8}) != first
    for candidate in first[0]:  # the random model breaks the format
        assert candidate.description is None and candidate.tokens == 0


def test_top_k_reaches_the_backend(tiny_vl_model, prompts):
    """With top_k 1 every sample is the greedy text: the setting reached the model."""
    settings = BackendSettings(model=str(tiny_vl_model), device="cpu")
    sampled = sample_candidates(settings, prompts[:1], 3, seed=7, max_new_tokens=8,
                                temperature=1.5, top_k=1)
    greedy = generate_all(settings, [chat_request(prompts[0].prompt, Sampling(max_new_tokens=8))])
    assert [c.completion for c in sampled[0]] == [greedy[0].text] * 3


def test_the_clip_prompt_carries_the_supplement_and_what_the_window_stated():
    window = Window(spec=FrameSpec(size=32, new_frames=2))
    first = clip_of("a", 0)
    window = window.advanced(first, window.new_frames(first), "The sign shows the word EXIT.")
    clip = clip_prompt(window, clip_of("a", 1), [supplement_line(OCR)])
    assert clip.stated == {"The sign shows the word EXIT."}
    assert clip.questions == (supplement_line(OCR),)
    assert supplement_line(OCR) in clip.prompt.text


def hand_clip(budget: int | None = 24, stated=frozenset()) -> ClipPrompt:
    frames = [Frame(float(t), np.full((16, 16, 3), 40 * t, dtype=np.uint8)) for t in range(2)]
    prompt = build_prompt(0.0, 10.0, frames, [], (), budget_tokens=budget)
    return ClipPrompt(ClipKey("s", 0), prompt, (supplement_line(OCR),), frozenset(stated), budget)


def cand(description: str | None, thinking: str = "") -> Candidate:
    completion = format_reply(description, thinking) if description else "no answer"
    return Candidate.of(ClipKey("s", 0), completion)


FACTS = ("The sign shows the word EXIT.", "There are 3 red hexagons on the rug.",
         "A red cup appears on the table.")


def fact_judge(claims: list[Claim]) -> list[Verdict]:
    """FactJudge's rule with the window's facts closed over: the filter gives a judge no facts."""
    return FactJudge()([Claim(c.sentences, {"window_facts": FACTS}) for c in claims])


def test_the_filter_drops_broken_and_overlong_replies_and_judges_the_rest():
    group = [
        cand("The sign shows the word EXIT."),                         # true
        cand(None),                                                     # unparseable
        cand("There are 3 red hexagons on the rug.", "think " * 30),   # thinks too long
        cand("The sign shows the word STOP."),                          # false
        cand("There are 3 red hexagons on the rug."),                   # true but stated
        cand("The sign shows the word EXIT. A red cup appears on the table."),  # over 12
    ]
    clip = hand_clip(budget=12, stated={"There are 3 red hexagons on the rug."})
    [out] = fidelity_filter([clip], [group], fact_judge, thinking_limit=20)
    assert (out.unparseable, out.overlong, out.judge_failures) == (1, 1, 0)
    assert [(j.candidate, j.correct) for j in out.kept] == [
        (group[0], True), (group[3], False), (group[4], False), (group[5], False)]
    assert out.clip is clip


def test_the_length_cap_applies_when_the_clip_has_no_budget():
    group = [cand("The sign shows the word EXIT.")]  # 7 tokens
    [capped] = fidelity_filter([hand_clip(None)], [group], fact_judge, length_cap=6)
    [free] = fidelity_filter([hand_clip(None)], [group], fact_judge)
    assert [j.correct for j in capped.kept] == [False] and [j.correct for j in free.kept] == [True]


def test_a_failing_judge_drops_its_candidates_and_is_counted():
    def broken(claims):  # answers about EXIT, fails on anything else
        return [fact_judge([c])[0] if "EXIT" in c.sentences[0] else Verdict(None, "down")
                for c in claims]

    group = [cand("The sign shows the word EXIT."), cand("The sign shows the word STOP.")]
    [out] = fidelity_filter([hand_clip()], [group], broken)
    assert [j.candidate for j in out.kept] == [group[0]] and out.judge_failures == 1


def test_the_consensus_judge_supports_what_most_samples_of_the_clip_say():
    """No facts: at deployment the samples of the frozen memorizer vouch for each other."""
    group = [cand("The sign shows the word EXIT. A red cup appears on the table."),
             cand("The sign shows the word EXIT."),
             cand("the sign shows the word exit"),  # the same sentence, spelled loosely
             cand("The sign shows the word STOP."),
             cand(None)]
    [out] = fidelity_filter([hand_clip()], [group], ConsensusJudge(0.5))
    assert [(j.candidate, j.correct) for j in out.kept] == [
        (group[0], False), (group[1], True), (group[2], True), (group[3], False)]
    assert ConsensusJudge(0.2)([Claim(("A red cup appears on the table.",),
                                      {"peers": (frozenset({"a red cup appears on the table"}),
                                                 frozenset())})])[0].true == (True,)
    assert ConsensusJudge()([Claim(("x.",), {})])[0].true is None
    with pytest.raises(ValueError, match="share"):
        ConsensusJudge(0)
