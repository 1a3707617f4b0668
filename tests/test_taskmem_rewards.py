"""Phase One's reward terms and the memorizer's reply format, on hand-made replies."""

from __future__ import annotations

import pytest

from taskmem.protocol import format_reply, parse_reply, sentences, within_budget
from taskmem.rewards import (
    Claim, FactJudge, FormatTerm, QualityTerm, RichnessTerm, ThinkingTerm, Terms, Verdict,
)

SIGN = "The sign shows the word EXIT."
DOG = "Alice says the dog is called Rex."
COUNT = "There are 5 red stars on the rug."
WINDOW = [SIGN, DOG, COUNT]


def columns(n: int, *, stated=(), budget=24, group="g", facts=WINDOW) -> dict:
    return dict(window_facts=[list(facts)] * n, stated=[list(stated)] * n, budget=[budget] * n,
                group=[group] * n)


@pytest.mark.parametrize("reply, why", [
    ('{"description": "x."}', "exactly one </think>"),
    ('a</think>b</think>{"description": "x."}', "exactly one </think>"),
    ("</think>not json", "not one JSON object"),
    ('</think>{"description": "x.", "extra": 1}', 'exactly the key "description"'),
    ('</think>{"description": "   "}', "non-empty string"),
    ('</think>["description"]', 'exactly the key "description"'),
])
def test_unparseable_replies_say_why(reply, why):
    parsed = parse_reply(reply)
    assert not parsed.ok and why in parsed.error


def test_a_fenced_reply_with_thinking_parses():
    parsed = parse_reply('<think>\nI see a sign.\n</think>\n```json\n{"description": "A b."}\n```')
    assert parsed.ok and parsed.description == "A b." and parsed.thinking == "I see a sign."


def test_format_costs_the_penalty_and_nothing_else():
    replies = [format_reply(SIGN), "no json at all"]
    assert FormatTerm()(None, replies) == [0.0, -1.5]
    assert QualityTerm(FactJudge())(None, replies, **columns(2)) == [0.5, 0.0]


def test_quality_needs_every_claim_true_new_and_within_budget():
    replies = [
        format_reply(f"{SIGN} {DOG}"),  # all true
        format_reply(f"{SIGN} The sign shows the word STOP."),  # one false claim
        format_reply(DOG),  # repeats an earlier description
        format_reply(f"{SIGN} {DOG} {COUNT}"),  # true, but 24 tokens over a 20-token budget
    ]
    quality = QualityTerm(FactJudge())
    assert quality(None, replies[:2], **columns(2)) == [0.5, -0.5]
    assert quality(None, replies[2:3], **columns(1, stated=[DOG])) == [-0.5]
    assert quality(None, replies[3:], **columns(1, budget=20)) == [-0.5]
    assert quality(None, replies[3:], **columns(1, budget=24)) == [0.5]


def test_richness_ranks_the_groups_correct_replies_by_distinct_true_facts():
    replies = [format_reply(f"{SIGN} {DOG} {COUNT}"), format_reply(f"{SIGN} {DOG}"),
               format_reply(SIGN), format_reply("The sign shows the word STOP.")]
    richness = RichnessTerm(QualityTerm(FactJudge()))
    assert richness(None, replies, **columns(4)) == pytest.approx([0.05, 0.025, 0.0, 0.0])
    # groups are ranked apart: alone in its group, a correct reply earns no bonus
    split = columns(4) | {"group": ["a", "a", "b", "c"]}
    assert richness(None, replies, **split) == pytest.approx([0.05, 0.0, 0.0, 0.0])


def test_thinking_length_is_free_up_to_the_limit_then_falls_to_minus_one():
    term = ThinkingTerm(limit=10)
    replies = [format_reply(SIGN, " ".join(["w"] * n)) for n in (10, 15, 20, 40)]
    assert term(None, replies) == pytest.approx([0.0, -0.5, -1.0, -1.0])


def test_judge_failures_score_zero_and_are_counted():
    class Down:
        def __call__(self, claims):
            return [Verdict(None, "judge unreachable") for _ in claims]

    quality = QualityTerm(Down())
    assert quality(None, [format_reply(SIGN), "broken"], **columns(2)) == [0.0, 0.0]
    assert (quality.failures, quality.judged) == (1, 1)


def test_the_terms_share_one_judgement_per_batch():
    calls = []

    class Counting(FactJudge):
        def __call__(self, claims):
            calls.append(len(claims))
            return super().__call__(claims)

    terms = Terms(Counting())
    replies, cols = [format_reply(SIGN), format_reply(DOG)], columns(2)
    for term in terms.callables():  # as trl calls them: the same lists for every term
        term(None, replies, **cols)
    assert calls == [2]


def test_the_fact_judge_checks_sentences_against_the_window():
    verdicts = FactJudge()([Claim((SIGN, "Bob says hi."), {"window_facts": WINDOW})])
    assert verdicts[0].true == (True, False)


def test_budget_cuts_whole_sentences():
    text = f"{SIGN} {COUNT} {DOG}"
    assert sentences(text) == [SIGN, COUNT, DOG]
    assert within_budget(text, 17) == f"{SIGN} {COUNT}"
    assert within_budget(text, 6) == ""
    assert within_budget(text, None) == text
