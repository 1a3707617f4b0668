"""Phase Two, step 4: one DPO pair per clip from its consistent wins, on hand-made wins."""

from __future__ import annotations

from taskmem.candidates import Candidate, ClipKey, ClipPrompt
from taskmem.fidelity import Filtered, Judged
from taskmem.pairs import select_pair, select_pairs
from taskmem.protocol import build_prompt, format_reply
from taskmem.usefulness import ClipWins


def clip_wins(spec: dict[str, tuple[int, bool]], wins: str, stream: str = "s") -> ClipWins:
    """Candidates named by letters with (tokens, correct), and wins written "ab bc" (a beat b,
    b beat c)."""
    names = list(spec)
    prompt = build_prompt(0.0, 10.0, [], [], (), budget_tokens=None)
    clip = ClipPrompt(ClipKey(stream, 0), prompt, ("How many cups? Options: 1; 2",))
    kept = tuple(
        Judged(Candidate.of(clip.key, format_reply(name + " word" * (tokens - 2) + ".")), correct)
        for name, (tokens, correct) in spec.items())
    assert [j.candidate.tokens for j in kept] == [t for t, _ in spec.values()]
    pairs = tuple((names.index(w), names.index(l)) for w, l in wins.split())
    return ClipWins(Filtered(clip, kept), pairs, len(pairs), 0, 0, False)


def ends(result: ClipWins) -> tuple[str, str, int] | None:
    pair = select_pair(result)
    if pair is None:
        return None
    return pair.chosen.description[0], pair.rejected.description[0], pair.chain


def test_the_longest_chain_from_the_undefeated_candidate_is_the_pair():
    result = clip_wins({"a": (10, True), "b": (11, True), "c": (12, True), "d": (13, True),
                        "e": (10, True)}, "ab bc cd ae")
    assert ends(result) == ("a", "d", 3)
    pair = select_pair(result)
    assert pair.key == ClipKey("s", 0) and pair.clip is result.clip.clip
    assert pair.chosen.completion == format_reply(pair.chosen.description)
    assert pair.gap == 3
    kept = result.clip.kept  # what DPO reads: the clip's prompt and a's and d's whole completions
    assert pair.prompt is result.clip.clip.prompt
    assert (pair.chosen_completion, pair.rejected_completion) == (
        kept[0].candidate.completion, kept[3].candidate.completion)


def test_a_clip_whose_wins_contradict_each_other_gives_no_pair():
    assert ends(clip_wins({"a": (10, True), "b": (10, True), "c": (10, True)}, "ab bc ca")) is None


def test_a_win_over_a_more_correct_candidate_is_ignored():
    # c (incorrect) beating a (correct) is dropped, which also breaks the cycle
    result = clip_wins({"a": (10, True), "b": (10, True), "c": (10, False)}, "ab bc ca")
    assert ends(result) == ("a", "c", 2)
    assert ends(clip_wins({"a": (10, False), "b": (10, True)}, "ab")) is None


def test_both_incorrect_gives_no_pair():
    assert ends(clip_wins({"a": (10, False), "b": (12, False)}, "ab")) is None
    assert ends(clip_wins({"a": (10, True), "b": (12, False)}, "ab")) == ("a", "b", 1)


def test_the_length_gap_must_be_under_the_limit_and_the_smaller_gap_wins():
    # a's longest chain ends 20 tokens away; f's chain is shorter but within the gap
    far = clip_wins({"a": (10, True), "b": (20, True), "c": (30, True),
                     "f": (12, True), "g": (15, True)}, "ab bc fg")
    assert ends(far) == ("f", "g", 1)
    chain = clip_wins({"a": (10, True), "b": (20, True), "c": (30, True)}, "ab bc")
    assert ends(chain) is None  # a gap of exactly 20 is not under 20
    assert select_pair(chain, max_gap=21).rejected.description[0] == "c"
    # two chains of the same length below a: the smaller gap is chosen
    assert ends(clip_wins({"a": (10, True), "b": (18, True), "c": (11, True)}, "ab ac")) == ("a", "c", 1)
    # undefeated candidates compete on the gap
    assert ends(clip_wins({"a": (10, True), "b": (16, True), "f": (12, True), "g": (14, True)},
                          "ab fg")) == ("f", "g", 1)


def test_one_pair_per_clip_at_most():
    results = [clip_wins({"a": (10, True), "b": (11, True), "c": (12, True)}, "ab ac bc", "s1"),
               clip_wins({"a": (10, True), "b": (10, True), "c": (10, True)}, "ab bc ca", "s2"),
               clip_wins({"a": (10, True)}, "", "s3"),
               clip_wins({"x": (10, True), "y": (11, True)}, "yx", "s4")]
    pairs = select_pairs(results)
    assert [(p.key.stream_id, p.chosen.description[0], p.rejected.description[0]) for p in pairs] == [
        ("s1", "a", "c"), ("s4", "y", "x")]
