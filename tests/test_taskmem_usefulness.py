"""Phase Two, step 3: the usefulness judges (an LLM over real HTTP on loopback, and the
model-free question-overlap stand-in) and asking every pair in both orders."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Sequence

import pytest

from taskmem.candidates import Candidate, ClipKey, ClipPrompt
from taskmem.fidelity import Filtered, Judged
from taskmem.protocol import build_prompt, format_reply
from taskmem.usefulness import (
    USEFULNESS_QUESTION, Comparison, LLMUsefulnessJudge, Preference, QuestionOverlapJudge,
    content_words, judge_both_orders, preference_of,
)
from taskmem_bench.backends import Backend, BackendSettings, ChatRequest, Generation
from taskmem_bench.testing.server import ChatServer

COUNTING = ("How many red hexagons were on the rug? Options: 4; 3; 2; 5",
            "How many blue stars were on the table? Options: 2; 1; 3; 6")
OCR = ("Which of these words does the sign show? Options: STOP; WAIT; SALE; PUSH",
       "Which of these words does the sign show? Options: TAXI; EXIT; BANK; PUSH")
ACTION = ("What does the person do at the box? Options: picks up the red square; places the "
          "orange circle; picks up the orange diamond; places the red star",)
COUNT_SENTENCE = "There are 7 green circles on the shelf."  # 7 is no option: any count is
SIGN_SENTENCE = "The sign shows the word BANK."
PATTERN_SENTENCE = "The green circle has a striped pattern."
ACTION_SENTENCE = "At the box, the person places the yellow square."


def prefers(questions, first, second) -> str:
    [preference] = QuestionOverlapJudge()([Comparison(tuple(questions), first, second)])
    return preference.choice


def test_the_overlap_judge_prefers_what_the_recent_questions_ask_about():
    """The same two descriptions are ranked by the questions alone: a count question's options
    are numbers, an OCR question's options are sign words."""
    assert prefers(COUNTING, COUNT_SENTENCE, SIGN_SENTENCE) == "first"
    assert prefers(COUNTING, PATTERN_SENTENCE, COUNT_SENTENCE) == "second"
    assert prefers(OCR, COUNT_SENTENCE, SIGN_SENTENCE) == "second"
    assert prefers(ACTION, ACTION_SENTENCE, PATTERN_SENTENCE) == "first"
    assert prefers(OCR, COUNT_SENTENCE, PATTERN_SENTENCE) == "tie"


def test_content_words_drop_function_words_and_plural_s():
    assert content_words("There are 3 red hexagons on the rug.") == {"#", "red", "hexagon", "rug"}
    assert content_words("Which of these words does the sign show? Options: STOP") == {
        "word", "sign", "show", "stop"}
    assert content_words("The glass") == {"glass"}


def test_llm_replies_are_parsed_strictly():
    assert preference_of('{"better": 1, "reason": "counts"}') == Preference("first")
    assert preference_of('```json\n{"better": 2}\n```') == Preference("second")
    assert preference_of('{"better": "tie"}') == Preference("tie")
    for bad in ('Entry 1. {"better": 1}', '{"better": true}', '{"better": 3}', "[1]", "1"):
        assert preference_of(bad).choice is None and "unparseable" in preference_of(bad).error


MODEL = "usefulness-model"


class ScriptedUsefulness(Backend):
    """Test double standing for a served judge model: prefers the entry naming EXIT, ties when
    neither or both do, and answers nonsense when an entry says "garble"."""

    name = "scripted-usefulness"

    def __init__(self) -> None:
        super().__init__(BackendSettings(backend="scripted-usefulness", model=MODEL))
        self.prompts: list[str] = []

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        out = []
        for request in requests:
            text = request.messages[-1].content[-1].text
            self.prompts.append(text)
            first, second = re.search(r"Entry 1: (.*)\nEntry 2: (.*)\n", text).groups()
            if "garble" in text:
                out.append(Generation("<think>hmm</think> Both are fine."))
                continue
            better = {(True, False): 1, (False, True): 2}.get(("EXIT" in first, "EXIT" in second), "tie")
            out.append(Generation("<think>compare</think>" + json.dumps({"better": better})))
        return out


def test_an_llm_usefulness_judge_over_http(tmp_path):
    backend = ScriptedUsefulness()
    comparisons = [Comparison(OCR, SIGN_SENTENCE.replace("BANK", "EXIT"), COUNT_SENTENCE),
                   Comparison(OCR, COUNT_SENTENCE, "The sign shows EXIT."),
                   Comparison(OCR, COUNT_SENTENCE, PATTERN_SENTENCE),
                   Comparison(OCR, "Words garble.", COUNT_SENTENCE)]
    with ChatServer(backend) as server:
        judge = LLMUsefulnessJudge(BackendSettings(
            backend="openai", model=MODEL, base_url=server.url,
            response_cache_dir=str(tmp_path / "cache")))
        preferences = judge(comparisons)
    assert [p.choice for p in preferences] == ["first", "second", "tie", None]
    assert "unparseable" in preferences[3].error
    # the client sends its requests concurrently: the server sees them in any order
    assert USEFULNESS_QUESTION.format(
        questions="\n".join(f"- {q}" for q in OCR), first=comparisons[0].first,
        second=comparisons[0].second) in backend.prompts


def test_a_dead_usefulness_judge_is_an_error_never_a_tie(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    judge = LLMUsefulnessJudge(BackendSettings(
        backend="openai", model=MODEL, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0,
        timeout_s=5, response_cache_dir=str(tmp_path / "cache")))
    [preference] = judge([Comparison(OCR, "a.", "b.")])
    assert preference.choice is None and "failed" in preference.error


def filtered(descriptions: Sequence[str], questions=OCR) -> Filtered:
    prompt = build_prompt(0.0, 10.0, [], [], (), budget_tokens=None)
    clip = ClipPrompt(ClipKey("s", 0), prompt, tuple(questions))
    kept = tuple(Judged(Candidate.of(clip.key, format_reply(d)), True) for d in descriptions)
    return Filtered(clip, kept)


class Table:
    """A usefulness judge answering from a table {(first, second): choice}; "tie" otherwise.
    It records its calls."""

    def __init__(self, table: dict[tuple[str, str], str | None]) -> None:
        self.table = table
        self.calls: list[list[Comparison]] = []

    def __call__(self, comparisons: Sequence[Comparison]) -> list[Preference]:
        self.calls.append(list(comparisons))
        return [Preference(self.table.get((c.first, c.second), "tie"),
                           "" if self.table.get((c.first, c.second), "tie") else "boom")
                for c in comparisons]


def test_only_wins_both_orders_agree_on_are_kept():
    clip = filtered(["A.", "B.", "C.", "D.", "A."])
    judge = Table({
        ("A.", "B."): "first", ("B.", "A."): "second",    # A beats B in both orders
        ("C.", "A."): "first", ("A.", "C."): "first",     # each order prefers its first: position bias
        ("B.", "C."): "second", ("C.", "B."): "first",    # C beats B
        ("A.", "D."): None, ("D.", "A."): "second",       # an error in one order
    })
    [result] = judge_both_orders(judge, [clip])
    assert len(judge.calls) == 1  # every pair, both orders, in one batched call
    assert len(judge.calls[0]) == 2 * 9  # 10 pairs less the one of identical descriptions
    assert set(result.wins) == {(0, 1), (2, 1), (4, 1)}
    assert (result.asked, result.failed, result.errors, result.gave_up) == (9, 6, 2, False)
    assert result.clip is clip


def test_a_clip_is_given_up_after_consecutive_failed_pairs():
    descriptions = [f"D{k}." for k in range(9)]  # 36 pairs
    late_win = {("D7.", "D8."): "first", ("D8.", "D7."): "second"}  # the last pair
    [gave_up] = judge_both_orders(Table(late_win), [filtered(descriptions)])
    assert gave_up.gave_up and gave_up.wins == () and gave_up.asked == 30
    [patient] = judge_both_orders(Table(late_win), [filtered(descriptions)], give_up_after=36)
    assert not patient.gave_up and patient.wins == ((7, 8),)
    early_win = {("D0.", "D8."): "second", ("D8.", "D0."): "first", **late_win}  # pair 8 resets
    [reset] = judge_both_orders(Table(early_win), [filtered(descriptions)])
    assert not reset.gave_up and reset.wins == ((8, 0), (7, 8))


def test_a_judge_that_raises_or_answers_short_fails_every_pair_counted():
    def raises(comparisons):
        raise RuntimeError("no judge")

    def short(comparisons):
        return [Preference("first")]

    for judge in (raises, short):
        [result] = judge_both_orders(judge, [filtered(["A.", "B.", "C."])])
        assert result.wins == () and (result.failed, result.errors) == (3, 3)


def test_clips_are_judged_apart_in_one_call():
    judge = QuestionOverlapJudge()
    clips = [filtered([COUNT_SENTENCE, SIGN_SENTENCE], COUNTING),
             filtered([COUNT_SENTENCE, SIGN_SENTENCE], OCR), filtered(["Only one."])]
    results = judge_both_orders(judge, clips)
    assert [r.wins for r in results] == [((0, 1),), ((1, 0),), ()]
    assert sum(r.asked for r in results) == 2
    with pytest.raises(ValueError):
        judge_both_orders(judge, clips, give_up_after=0)
