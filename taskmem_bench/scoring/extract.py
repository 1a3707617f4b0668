"""Final-answer extraction for multiple-choice reader replies.

The paper's released scorer compared the *first character* of the reply with the gold letter,
which scores a chatty or thinking reader by its formatting rather than its memory. This module
reads the letter the reply actually commits to, in a fixed order of decreasing trust, and says
how it found it (``method``) or why it found none (``failure``), so parse-failure rates can be
reported next to accuracy. The raw reply is kept by the caller; this is a pure function of it.
The rules below share the label-set patterns and the article/letter tests, and each is read
against the ones before it, so they stay in one module at about 400 lines.

Order of rules (the first that yields a letter wins):

1. ``answer_line`` / ``answer_text`` / ``boxed`` / ``is_correct``: the LAST explicit final-answer
   statement ("Answer: B", "The answer is (B).", "**Final answer:** B", ``\\boxed{B}``,
   ``<answer>B</answer>``, "option B is correct", "Answer: Cannot be determined" → abstain).
   After an answer marker, the rest of the line is read as follows:

   * if it is a bare letter followed by words ("A red circle") and, without a leading article,
     equals one option's text, that option wins (``answer_text``): the "A" was an article.
     A decorated or separated letter ("(A) red circle", "A. blue square", "**A** ...") stays
     the letter;
   * "A" (or "I") followed by a lowercase word is an article (a pronoun), not a label, unless
     the word talks about the letter ("A is correct", "A because ...");
   * a letter followed by an alternative label ("A or B", "A/B", "(A) blue square or (B) red
     circle", "B. blue square, C. green star") makes the final statement ``ambiguous``;
   * abstention phrasing at its start ("It is not possible to tell", "Unknown", "I don't
     know", "Not mentioned in the memory") is the abstain label;
2. ``bare_letter``: a one-line reply that is a letter, possibly decorated ("(C)", "C.",
   "C) red circle");
3. ``letter_line``: in a longer reply, the lines that are a bare letter (or a letter followed by
   exactly its option's text) all name the same letter;
4. ``option_text``: the whole reply equals exactly one option's text (normalised);
5. ``abstain_text``: no label token anywhere, and the reply says the memory cannot tell
   → the abstain label (which phrases count, and where: :mod:`~taskmem_bench.scoring.abstention`);
6. ``single_letter_token``: exactly one distinct standalone capital label appears.

Failures: ``empty`` (nothing after the thinking part), ``unclosed_think`` (the reply stopped
inside ``<think>``), ``ambiguous`` (the last explicit statement names alternatives, or several
distinct label tokens and no rule above decided), ``no_choice`` (no label at all).

Letters are only read as standalone tokens: "A" in "Apple", "E" in "e-mail" and "A" in "A.M."
are not labels, nor is a sentence-initial article "A person ..." or the pronoun "I". A lowercase
letter counts only where it cannot be an article ("answer: b", a reply that is just "c").
Option texts are compared as :mod:`~taskmem_bench.scoring.option_text` normalises them.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from taskmem_bench.scoring.abstention import abstains
from taskmem_bench.scoring.option_text import normalise_answer, unique_option


@dataclass(frozen=True)
class Extraction:
    """The chosen label (``None`` on failure), the rule that found it, and why none was found."""

    label: str | None
    method: str
    failure: str | None


_OPEN = r"[\s*_`\"'(\[{<]*+"  # markup that may precede a letter: bold, quotes, brackets
# What may follow a line's letter before any text: closing markup and at most a separator.
_LETTER_TAIL = re.compile(r"[\s*_`\"')\]}>.:\-–—]*")
_SEPARATORS = frozenset(".:)]-–—")
# Words joining an answer marker to its letter: "answer is", "answer would be", "Answer:", ...
_LINK = (
    r"(?:[\s*_#:=\-–—\"'>]|(?i:\bis\b|\bwas\b|\bwould\s+be\b|\bshould\s+be\b|\bmust\s+be\b"
    r"|\bwill\s+be\b|\bseems\s+to\s+be\b|\btherefore\b|\bthus\b|\bhere\b|\blikely\b"
    r"|\bprobably\b|\bclearly\b|\bdefinitely\b))*+"
)
_MARKER = re.compile(
    r"(?i:<answer>|\banswer\b|\b(?:correct|right|best|final)\s+(?:option|choice|letter)\b"
    r"|\bmy\s+(?:final\s+)?choice\b|\bI(?:'ll|’ll|'d|’d|\s+will|\s+would)?\s+"
    r"(?:choose|pick|select|go\s+with)\b)" + _LINK
)
# "A" and "I" followed by a lowercase word are an article / a pronoun, unless the word shows the
# letter is being talked about ("A is correct").
_LETTER_VERBS = frozenset(
    "is was seems would could should might must matches fits says states and or because since "
    "as but".split()
)
_NEXT_WORD = re.compile(r"\s+([a-z]+)")
_NEXT_WORD_ON_LINE = re.compile(r"[^\S\n]+([a-z]+)")
# An undecorated capital letter followed by a word may be an article: "Answer: A red circle".
_WORD_FOLLOWS = re.compile(r"[^\S\n]+[A-Za-z]")
_SENTENCE_END = re.compile(r"[.!?;](?=\s|$)")
# After one of these, labels are ruled out, not offered: "C, not A or B", "C rather than A/B".
_NEGATION = re.compile(
    r"(?i)\b(?:not|no|neither|nor|never|isn['’]?t|aren['’]?t|rather\s+than|instead\s+of"
    r"|except|excluding|unlike)\b"
)
_NEWLINE = re.compile(r"\n")


@dataclass(frozen=True)
class _Patterns:
    """Regexes that depend on the label set, compiled once per label set."""

    explicit_letter: re.Pattern[str]
    list_next: re.Pattern[str]
    alternative: re.Pattern[str]
    boxed: re.Pattern[str]
    is_correct: re.Pattern[str]
    line: re.Pattern[str]
    token: re.Pattern[str]
    label_prefix: re.Pattern[str]


@lru_cache(maxsize=32)
def _patterns(labels: str) -> _Patterns:
    both = f"[{labels}{labels.lower()}]"
    # A letter followed by "or B", "/B", ", B" is a list of candidates, not an answer.
    list_core = r"\s*(?:,|/|\bor\b|\band\b)\s*[(*]*"
    list_next = list_core + rf"(?P<letter>[{labels}])(?![\w\-])"
    end = rf"(?![\w\-])(?!{list_core}[{labels}](?![\w\-]))"
    prefix = _OPEN + r"(?:(?i:option|choice|letter)\s*)?" + _OPEN
    return _Patterns(
        explicit_letter=re.compile(prefix + f"(?P<letter>{both})" + r"(?![\w\-])"),
        list_next=re.compile(list_next),
        # "... or (B) red circle", ", maybe C", "/ option D": another label offered as answer
        alternative=re.compile(
            r"(?:,|/|(?i:\bor\b|\band\b|\bvs\b\.?))\s*"
            r"(?i:(?:maybe|possibly|perhaps|probably|else|even)\s+)?"
            r"(?i:(?:option|choice|letter)\s+)?[\s*_`\"'(\[]*+"
            rf"(?P<letter>[{labels}])(?![\w\-'’])(?!\.\w)"
        ),
        boxed=re.compile(
            r"\\boxed\s*\{\s*(?:\\text(?:bf)?\s*\{\s*)?" + prefix + f"(?P<letter>{both})" + end
        ),
        is_correct=re.compile(
            # a run of "(" / "*" is entered only at its start, which keeps the search linear
            r"(?:(?<![\w\-])(?i:option|choice)\s+[(*]*+|(?<![\w\-(*])[(*]++|(?<![\w\-]))"
            rf"(?P<letter>[{labels}])[)*]*+\s+"
            r"(?i:is\s+(?:the\s+)?(?:correct|right|best)\b)"
        ),
        line=re.compile(
            prefix + f"(?P<letter>{both})" + r"(?![\w\-])(?!\.\w)(?P<rest>.*)", re.DOTALL
        ),
        token=re.compile(
            rf"(?<![\w\-'’])(?<![A-Za-z]\.)(?P<letter>[{labels}])(?![\w\-'’])(?!\.\w)"
        ),
        label_prefix=re.compile(rf"^\(?[{labels}{labels.lower()}][.):]\s+"),
    )


def extract_choice(raw: str, options: Sequence[str], labels: str = "ABCDE") -> Extraction:
    """Read the label a multiple-choice reply commits to.

    ``options[i]`` is the text of ``labels[i]``. As in the reader contract, a label one past the
    last option (``labels`` exactly one longer than ``options``, e.g. "E" after four options) is
    "cannot be determined from memory": abstention phrasing maps to it. With any other length
    no label is an abstention, and letters are still read (``options`` may be empty).
    """
    if not labels or not labels.isascii() or not labels.isupper() or not labels.isalpha():
        raise ValueError(f"labels must be upper-case ASCII letters, got {labels!r}")
    if len(set(labels)) != len(labels) or len(options) > len(labels):
        raise ValueError(f"labels {labels!r} must be distinct and cover {len(options)} options")
    abstain = labels[-1] if len(labels) == len(options) + 1 else None
    pats = _patterns(labels)

    text, failure = _answer_part(raw)
    if failure is not None:
        return Extraction(None, "none", failure)

    option_norm = {
        label: normalise_answer(pats.label_prefix.sub("", opt.strip()))
        for label, opt in zip(labels, options)
    }
    token_spans = _label_token_spans(text, pats)
    found = (
        _explicit(text, pats, option_norm, abstain, [pos for pos, _ in token_spans])
        or _bare_letter(text, pats, option_norm)
        or _letter_lines(text, pats, option_norm)
        or _option_text(text, option_norm)
    )
    if found is not None:
        # a ``None`` label: the deciding statement offers several labels ("(A) ... or (B) ...")
        if found[0] is None:
            return Extraction(None, "none", "ambiguous")
        return Extraction(found[0], found[1], None)
    tokens = [letter for _, letter in token_spans]
    if not tokens and abstain is not None and abstains(text, 0, len(text), option_norm, True):
        return Extraction(abstain, "abstain_text", None)
    distinct = set(tokens)
    if len(distinct) == 1:
        return Extraction(tokens[0], "single_letter_token", None)
    return Extraction(None, "none", "ambiguous" if distinct else "no_choice")


def _answer_part(raw: str) -> tuple[str, str | None]:
    """Drop the thinking part: everything up to the last ``</think>``; an open ``<think>`` left
    unclosed means the reader never reached its answer."""
    text = raw or ""
    close = text.lower().rfind("</think>")
    if close >= 0:
        text = text[close + len("</think>") :]
    if "<think>" in text.lower():
        return "", "unclosed_think"
    text = text.strip()
    return text, (None if text else "empty")


def _explicit(
    text: str,
    pats: _Patterns,
    option_norm: dict[str, str],
    abstain: str | None,
    token_pos: list[int],
) -> tuple[str | None, str] | None:
    """The last explicit final-answer statement, by position in the reply; a ``None`` label
    means that statement names several labels (ambiguous).

    Markers are read from the last one back, stopping at the first that states an answer (or
    once they stand before the last ``\\boxed``/"B is correct"), and the work per marker is
    bounded by ``max_len`` characters plus a binary search, so any reply stays linear.
    """
    found: list[tuple[int, str | None, str]] = []
    for m in pats.boxed.finditer(text):
        if _letter_ok(text, m):
            found.append((m.start(), m["letter"].upper(), "boxed"))
    for m in pats.is_correct.finditer(text):
        found.append((m.start(), m["letter"], "is_correct"))
    latest = max(found, key=lambda f: f[0]) if found else None

    newlines = [m.start() for m in _NEWLINE.finditer(text)]

    def line_end(pos: int) -> int:
        i = bisect_left(newlines, pos)
        return newlines[i] if i < len(newlines) else len(text)

    for m in reversed(list(_MARKER.finditer(text))):
        if latest is not None and m.start() < latest[0]:
            break
        stated = _marker_answer(text, m.end(), pats, option_norm, abstain, token_pos, line_end)
        if stated is not None:
            return stated
    return None if latest is None else (latest[1], latest[2])


def _marker_answer(
    text: str,
    start: int,
    pats: _Patterns,
    option_norm: dict[str, str],
    abstain: str | None,
    token_pos: list[int],
    line_end: Callable[[int], int],
) -> tuple[str | None, str] | None:
    """What the statement after one answer marker (ending at ``start``) commits to, if
    anything: a letter (``None`` if it offers alternatives), an option's text, or abstention."""
    max_len = _max_len(option_norm)
    eol = line_end(start)
    letter = pats.explicit_letter.match(text, start)
    if letter is not None and not _letter_ok(text, letter):
        letter = None
    # Option text wins over a letter only where the letter could be an article: undecorated,
    # and followed by a word ("Answer: A red circle"), never for "(A) ..." or "A. ...".
    if eol - start <= max_len and (
        letter is None
        or (
            letter.start("letter") == start
            and _WORD_FOLLOWS.match(text, letter.end("letter")) is not None
        )
    ):
        by_text = unique_option(normalise_answer(text[start:eol]), option_norm)
        if by_text is not None:
            return by_text, "answer_text"
    if letter is not None:
        label = letter["letter"].upper()
        after = letter.end("letter")
        end = min(line_end(after), after + max_len)
        if _names_alternative(text, after, end, label, pats, option_norm):
            return None, "answer_line"
        return label, "answer_line"
    if (
        abstain
        and abstains(text, start, min(eol, start + 4 * max_len), option_norm, False)
        and not _any_between(token_pos, start, eol)
    ):
        return abstain, "answer_text"
    return None


def _max_len(option_norm: dict[str, str]) -> int:
    """A span much longer than every option cannot name one; looking no further than this past
    each marker or letter keeps the work linear."""
    return 2 * max(map(len, option_norm.values()), default=0) + 64


def _names_alternative(
    text: str, pos: int, end: int, label: str, pats: _Patterns, option_norm: dict[str, str]
) -> bool:
    """Whether the statement after the chosen letter (``text[pos:end]``, one line) offers
    another label as the answer: "A or B", "A/B", "(A) blue square or (B) red circle",
    "B. blue square, C. green star". A label that is talked about ("or C is wrong") or an
    article ("or a red circle") is not an alternative; the statement ends at the first
    sentence end after the letter's own separator ("B. Either A or C is wrong" names B), and
    labels after a negation are ruled out, not offered ("C, not A or B" names C)."""
    listed = pats.list_next.match(text, pos, end)
    if listed is not None:
        return listed["letter"] != label
    tail_end = _LETTER_TAIL.match(text, pos, end).end()
    stop = _SENTENCE_END.search(text, tail_end, end)
    stmt_end = stop.end() if stop is not None else end
    negated = _NEGATION.search(text, pos, stmt_end)
    if negated is not None:
        stmt_end = negated.start()
    for alt in pats.alternative.finditer(text, pos, stmt_end):
        other = alt["letter"]
        if other == label:
            continue
        if _WORD_FOLLOWS.match(text, alt.end("letter"), stmt_end) is None:
            return True  # "or B", "or (B) red circle", "or C." : offered as an answer
        # "or B blue square" names B by its text; "or B is wrong", "or A red ..." do not
        rest = normalise_answer(text[alt.end("letter") : stmt_end])
        opt = option_norm.get(other)
        if opt and (rest == opt or rest.startswith(opt + " ")):
            return True
    return False


def _any_between(positions: list[int], start: int, end: int) -> bool:
    i = bisect_left(positions, start)
    return i < len(positions) and positions[i] < end


def _letter_ok(text: str, m: re.Match[str]) -> bool:
    """A lowercase letter followed by a word is an article ("the answer is a red circle"), and
    so is a capital "A" (or the pronoun "I") followed on its line by a lowercase word that does
    not talk about the letter ("Answer: A red circle" but not "Answer: A is correct")."""
    letter = m["letter"]
    if letter.islower():
        return _NEXT_WORD.match(text, m.end("letter")) is None
    if letter in "AI":
        nxt = _NEXT_WORD_ON_LINE.match(text, m.end("letter"))
        return nxt is None or nxt[1] in _LETTER_VERBS
    return True


def _bare_letter(
    text: str, pats: _Patterns, option_norm: dict[str, str]
) -> tuple[str | None, str] | None:
    """A one-line reply that is a letter, alone or followed by a separator and any text; a
    ``None`` label if that text offers another label ("(A) red circle or (B) blue square")."""
    if "\n" in text:
        return None
    label = _line_label(text, pats, option_norm, any_text=True)
    if label is None:
        return None
    after = pats.line.fullmatch(text).end("letter")
    end = min(len(text), after + _max_len(option_norm))
    if _names_alternative(text, after, end, label, pats, option_norm):
        return None, "bare_letter"
    return label, "bare_letter"


def _letter_lines(
    text: str, pats: _Patterns, option_norm: dict[str, str]
) -> tuple[str, str] | None:
    """Lines such as "B" or "**(B) red circle**" that all name one letter. Only exact option
    text may follow the letter, so an echoed option list (several letters) decides nothing."""
    named = {
        label
        for line in text.splitlines()
        if (label := _line_label(line.strip(), pats, option_norm, any_text=False)) is not None
    }
    return (named.pop(), "letter_line") if len(named) == 1 else None


def _line_label(
    line: str, pats: _Patterns, option_norm: dict[str, str], *, any_text: bool
) -> str | None:
    """The letter a line consists of: alone, followed by its own option's text, or (with
    ``any_text``) followed by a separator such as ")" or "." and anything."""
    m = pats.line.fullmatch(line)
    if m is None:
        return None
    letter, rest = m["letter"], m["rest"]
    tail = _LETTER_TAIL.match(rest).group()
    rest = rest[len(tail) :].strip()
    if not rest:
        return letter.upper()
    if letter.islower():
        return None
    if any_text and _SEPARATORS.intersection(tail):
        return letter
    return letter if normalise_answer(rest) == option_norm.get(letter) else None


def _option_text(text: str, option_norm: dict[str, str]) -> tuple[str, str] | None:
    label = unique_option(normalise_answer(text), option_norm)
    return None if label is None else (label, "option_text")


def _label_token_spans(text: str, pats: _Patterns) -> list[tuple[int, str]]:
    """Standalone capital label letters with their positions, in order, minus articles and the
    pronoun "I"."""
    out = []
    for m in pats.token.finditer(text):
        letter = m["letter"]
        if letter in "AI":
            nxt = _NEXT_WORD.match(text, m.end())
            if nxt is not None and nxt[1] not in _LETTER_VERBS:
                continue
        out.append((m.start(), letter))
    return out

