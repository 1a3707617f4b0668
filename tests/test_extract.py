"""Final-answer extraction on realistic reader replies."""

from __future__ import annotations

import pytest

from taskmem_bench.scoring.extract import Extraction, extract_choice

OPTIONS = ("red circle", "blue square", "green star", "yellow triangle")

# (reply, expected label, expected failure)
CASES: list[tuple[str, str | None, str | None]] = [
    # explicit final-answer statements
    ("Answer: B", "B", None),
    ("The answer is C.", "C", None),
    ("Final answer: (B)", "B", None),
    ("**Answer:** D", "D", None),
    ("answer: b", "B", None),
    ("The correct answer is **A**.", "A", None),
    ("The answer is option C.", "C", None),
    ("Answer: B. blue square", "B", None),
    ("$\\boxed{D}$", "D", None),
    ("\\boxed{\\text{C}}", "C", None),
    ('{"answer": "E"}', "E", None),
    ("<answer>C</answer>", "C", None),
    ("### Final Answer\n\n**B**", "B", None),
    ("After weighing everything, I'll go with D.", "D", None),
    ("Option B is correct.", "B", None),
    # several letters in the reasoning, then a conclusion: the last statement wins
    (
        "The memory at 00:00:10-00:00:20 mentions a red circle (A) and a blue square (B). "
        "Option C is never mentioned and D appears only later.\n\nAnswer: B",
        "B",
        None,
    ),
    ("Answer: A\n\nWait, the circle was moved away at 00:01:00. Final answer: C", "C", None),
    ("The answer is not clear at first: A or B? Checking again, the answer is B.", "B", None),
    (
        "Without the timestamp the answer cannot be determined directly, but the entry at "
        "00:02:10 shows a green star, so the answer is C.",
        "C",
        None,
    ),
    # thinking models
    ("<think>A seems plausible, but B matches better.</think>\n\nAnswer: B", "B", None),
    ("Maybe A? No, D.</think>C", "C", None),
    ("<think>A</think>draft<think>B</think>\n(E)", "E", None),
    ("<think>The memory says the star is green, so the answer is", None, "unclosed_think"),
    ("<think>Answer: C</think>   ", None, "empty"),
    # a bare letter, decorated
    ("C", "C", None),
    ("(C)", "C", None),
    ("C.", "C", None),
    ("**D**", "D", None),
    ("C) red circle", "C", None),
    ("c", "C", None),
    ("E - cannot be determined from the memory", "E", None),
    ("B\n\nThe entry at 00:01:30 shows the person holding a blue square.", "B", None),
    # option text and abstention phrasing
    ("Blue square.", "B", None),
    ("The answer is a red circle.", "A", None),
    ("Cannot be determined from the memory.", "E", None),
    ("Insufficient information.", "E", None),
    ("Answer: It cannot be determined from the memory.", "E", None),
    ("The memory does not contain enough information to tell what colour the star was.", "E", None),
    # a single standalone letter somewhere
    ("I think B.", "B", None),
    ("Looking at the memory, the person put down the object described in B.", "B", None),
    # letters inside words, articles and abbreviations are not labels
    ("Apple", None, "no_choice"),
    ("A person walked in and sat down.", None, "no_choice"),
    ("I am not sure.", None, "no_choice"),
    ("E.g. the red one, around 10 A.M.", None, "no_choice"),
    ("An e-mail was read.", None, "no_choice"),
    # failures
    ("", None, "empty"),
    ("   \n\t ", None, "empty"),
    ("asdf qwerty 12345", None, "no_choice"),
    ("A person picked up the star, so the answer must be C or D.", None, "ambiguous"),
    ("Answer: A or B", None, "ambiguous"),
    (
        "A) red circle\nB) blue square\nC) green star\nD) yellow triangle",
        None,
        "ambiguous",
    ),
]


@pytest.mark.parametrize(("reply", "label", "failure"), CASES)
def test_reply_table(reply: str, label: str | None, failure: str | None) -> None:
    got = extract_choice(reply, OPTIONS)
    assert (got.label, got.failure) == (label, failure), got
    assert (got.method == "none") == (label is None)


def test_table_is_large_and_covers_every_rule() -> None:
    methods = {extract_choice(reply, OPTIONS).method for reply, _, _ in CASES}
    assert len(CASES) >= 30
    assert methods == {
        "answer_line",
        "answer_text",
        "boxed",
        "is_correct",
        "bare_letter",
        "letter_line",
        "option_text",
        "abstain_text",
        "single_letter_token",
        "none",
    }


def test_methods_name_the_rule_that_fired() -> None:
    assert extract_choice("Answer: B", OPTIONS) == Extraction("B", "answer_line", None)
    assert extract_choice("\\boxed{B}", OPTIONS).method == "boxed"
    assert extract_choice("(B)", OPTIONS).method == "bare_letter"
    assert extract_choice("green star", OPTIONS) == Extraction("C", "option_text", None)
    assert extract_choice("I think B.", OPTIONS).method == "single_letter_token"


def test_labels_beyond_the_label_set_are_not_answers() -> None:
    assert extract_choice("Answer: F", OPTIONS).failure == "no_choice"
    assert extract_choice("Answer: E", OPTIONS, labels="ABCD").failure == "no_choice"


def test_the_abstain_label_is_the_one_after_the_last_option() -> None:
    reply = "Cannot be determined from the memory."
    assert extract_choice(reply, OPTIONS, labels="ABCDE").label == "E"
    assert extract_choice(reply, OPTIONS[:3], labels="ABCD").label == "D"
    assert extract_choice(reply, OPTIONS + ("white hexagon",), labels="ABCDEF").label == "F"
    assert extract_choice(reply, OPTIONS, labels="ABCD").failure == "no_choice"
    # without options no label is known to mean abstention, but letters are still read
    assert extract_choice(reply, ()).failure == "no_choice"
    assert extract_choice("Answer: C", ()).label == "C"


def test_longer_label_sets_keep_the_pronoun_out() -> None:
    options = tuple(f"option {i}" for i in range(9))
    assert extract_choice("I believe the answer is H.", options, "ABCDEFGHIJ").label == "H"
    assert extract_choice("I saw it, so (I)", options, "ABCDEFGHIJ").label == "I"


def test_labelled_option_texts_still_match() -> None:
    assert extract_choice("blue square", ("A. red circle", "B. blue square")).label == "B"


def test_invalid_label_sets_are_rejected() -> None:
    with pytest.raises(ValueError):
        extract_choice("A", OPTIONS, labels="abcde")
    with pytest.raises(ValueError):
        extract_choice("A", OPTIONS, labels="ABC")
