"""Final-answer extraction on realistic reader replies."""

from __future__ import annotations

import time

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
    # after an answer marker, a capital "A" before an option's text is an article; a decorated
    # or separated letter stays the letter, whatever text follows it
    ("Answer: A blue square", "B", None),
    ("The answer is A green star.", "C", None),
    ("Answer: A Yellow Triangle", "D", None),
    ("Answer: A red circle", "A", None),
    ("Answer: A", "A", None),
    ("Answer: A.", "A", None),
    ("Answer: A) blue square", "A", None),
    ("Answer: A. red circle", "A", None),
    ("Answer: (A) red circle", "A", None),
    ("**Answer:** **A** blue square", "A", None),
    ("Answer: A because the memory shows a red circle", "A", None),
    ("Answer: A red thing", None, "no_choice"),
    # a final statement offering several labels is ambiguous, not its first letter
    ("Answer: (A) red circle or (B) blue square", None, "ambiguous"),
    ("Answer: A. red circle or B. blue square", None, "ambiguous"),
    ("Answer: C green star or D yellow triangle", None, "ambiguous"),
    ("Answer: B or maybe C", None, "ambiguous"),
    ("Answer: B/C", None, "ambiguous"),
    ("(A) red circle or (B) blue square", None, "ambiguous"),
    ("Answer: C\n\nHmm, on reflection. Final answer: A or B", None, "ambiguous"),
    # ... but labels talked about, ruled out or in a later sentence are not alternatives
    ("Answer: B. Either A or C would contradict the memory.", "B", None),
    ("Answer: B, and A is wrong.", "B", None),
    ("Answer: C, not A or B", "C", None),
    ("Answer: B (not A)", "B", None),
    ("Answer: B or a red circle, the memory says the blue one", "B", None),
    # abstention phrasing after an answer marker ...
    ("Answer: It is not possible to tell", "E", None),
    ("Answer: not possible to determine.", "E", None),
    ("Answer: I can't tell.", "E", None),
    ("Answer: Unknown", "E", None),
    ("Answer: I don't know.", "E", None),
    ("Answer: Not enough information.", "E", None),
    ("Answer: Not mentioned in the memory.", "E", None),
    ("Answer: The memory does not say.", "E", None),
    ("**Final answer:** There is insufficient information.", "E", None),
    # ... and in a reply with no label
    ("It is not possible to answer from the memory.", "E", None),
    ("Cannot tell.", "E", None),
    ("I can't tell which object it was.", "E", None),
    ("Unknown.", "E", None),
    ("I don't know.", "E", None),
    ("I do not know which shape the person picked up.", "E", None),
    ("Not enough information.", "E", None),
    ("This is not mentioned in the memory.", "E", None),
    ("The memory does not say what colour the star was.", "E", None),
    ("The memory doesn't mention whether it was the red circle or the blue square.", "E", None),
    # ... but not ordinary answers that use such words
    ("Answer: unknown object", None, "no_choice"),
    ("The person picked up an unknown object.", None, "no_choice"),
    ("It was the red circle, which is not mentioned in the memory until later.", None, "no_choice"),
    (
        "The red circle is not mentioned in the memory, so it must be the blue square.",
        None,
        "no_choice",
    ),
    ("Cannot be determined for sure, but probably the green star.", None, "no_choice"),
    ("The memory does not show the circle being moved.", None, "no_choice"),
    ("I don't know much, but the star looked green.", None, "no_choice"),
    ("The person held the blue square; I don't know when it was put down.", None, "no_choice"),
    ("Not enough information to answer whether it was the red circle.", "E", None),
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


def test_the_reviewed_article_example() -> None:
    # the option order of the review finding: "A red circle" is option B, not label A
    options = ["blue square", "red circle", "green star", "yellow hexagon"]
    assert extract_choice("Answer: A red circle", options) == Extraction("B", "answer_text", None)
    assert extract_choice("Answer: A", options).label == "A"
    assert extract_choice("Answer: A.", options).label == "A"
    assert extract_choice("Answer: A) red circle", options).label == "A"
    assert extract_choice("Answer: A. blue square", options).label == "A"
    assert extract_choice("Answer: A is correct", options).label == "A"


def test_an_option_whose_text_is_a_letter_does_not_shadow_the_label() -> None:
    # "Which letter was on the sign?": "Answer: A" still names label A
    assert extract_choice("Answer: A", ("B", "A", "C", "D")).label == "A"


def test_abstention_phrasing_needs_an_abstain_label() -> None:
    for reply in ("Answer: It is not possible to tell", "Unknown.", "I don't know."):
        assert extract_choice(reply, OPTIONS).label == "E"
        assert extract_choice(reply, OPTIONS, labels="ABCD").failure == "no_choice"
        assert extract_choice(reply, OPTIONS[:3], labels="ABCD").label == "D"


def test_pronoun_after_a_marker_is_not_label_i() -> None:
    options = tuple(f"option {i}" for i in range(9))
    got = extract_choice("Answer: I think it is H.", options, "ABCDEFGHIJ")
    assert got.label == "H"
    assert extract_choice("Answer: I", options, "ABCDEFGHIJ").label == "I"


# Inputs that a backtracking regex or a per-marker rescan of the reply would make quadratic
# (the last two took minutes before the "is correct" pattern anchored its "(" / "*" run).
PATHOLOGICAL = [
    "answer " * 8000,
    "the answer is " * 4000,
    "Answer: A or " * 4000,
    "Answer: (A) red circle or " * 2000,
    "Answer: A red " * 4000,
    "Answer: cannot tell " * 3000,
    "not mentioned in the memory " * 2000,
    "the memory does not say so but red circle " * 1200,
    "I don't know " * 4000,
    "A " * 25000,
    "A\n" * 25000,
    "Answer:" + " " * 50000 + "B",
    "\\boxed{" * 7000,
    "Answer: " + "*" * 50000,
    "(" * 50000,
]


@pytest.mark.parametrize("reply", PATHOLOGICAL, ids=lambda r: repr(r[:16]))
def test_pathological_replies_stay_fast(reply: str) -> None:
    assert len(reply) >= 25000
    start = time.perf_counter()
    extract_choice(reply, OPTIONS)
    assert time.perf_counter() - start < 2.0


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
