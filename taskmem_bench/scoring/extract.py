"""Final-answer extraction for multiple-choice reader replies.

The paper's released scorer compared the *first character* of the reply with the gold letter,
which scores a chatty or thinking reader by its formatting rather than its memory. This module
reads the letter the reply actually commits to, in a fixed order of decreasing trust, and says
how it found it (``method``) or why it found none (``failure``), so parse-failure rates can be
reported next to accuracy. The raw reply is kept by the caller; this is a pure function of it.

Order of rules (the first that yields a letter wins):

1. ``answer_line`` / ``answer_text`` / ``boxed`` / ``is_correct``: the LAST explicit final-answer
   statement ("Answer: B", "The answer is (B).", "**Final answer:** B", ``\\boxed{B}``,
   ``<answer>B</answer>``, "option B is correct", "Answer: Cannot be determined" → abstain);
2. ``bare_letter``: a one-line reply that is a letter, possibly decorated ("(C)", "C.",
   "C) red circle");
3. ``letter_line``: in a longer reply, the lines that are a bare letter (or a letter followed by
   exactly its option's text) all name the same letter;
4. ``option_text``: the whole reply equals exactly one option's text (normalised);
5. ``abstain_text``: no label token anywhere, and the reply says the memory cannot tell
   ("cannot be determined", "insufficient information") → the abstain label;
6. ``single_letter_token``: exactly one distinct standalone capital label appears.

Failures: ``empty`` (nothing after the thinking part), ``unclosed_think`` (the reply stopped
inside ``<think>``), ``ambiguous`` (several distinct label tokens and no rule above decided),
``no_choice`` (no label at all).

Letters are only read as standalone tokens: "A" in "Apple", "E" in "e-mail" and "A" in "A.M."
are not labels, nor is a sentence-initial article "A person ..." or the pronoun "I". A lowercase
letter counts only where it cannot be an article ("answer: b", a reply that is just "c").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache


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
_ABSTAIN_PHRASE = (
    r"\b(?:(?:cannot|can\s*not|can['’]t|could\s+not|couldn['’]t|unable\s+to|impossible\s+to)"
    r"\s+(?:be\s+)?(?:determined?|answer(?:ed)?|tell|infer(?:red)?)\b"
    r"|(?:insufficient|(?:not|no|without)\s+(?:\w+\s+){0,2}?(?:enough|sufficient))"
    r"\s+(?:information|info|evidence|context|details?)\b)"
)
_ABSTAIN = re.compile("(?i)" + _ABSTAIN_PHRASE)
# After an answer marker the phrase must come first: "Answer: it cannot be determined".
_ABSTAIN_AT_START = re.compile(r"(?i)(?:(?:it|this|that)\s+(?:is\s+)?)?" + _ABSTAIN_PHRASE)
# "A" and "I" followed by a lowercase word are an article / a pronoun, unless the word shows the
# letter is being talked about ("A is correct").
_LETTER_VERBS = frozenset(
    "is was seems would could should might must matches fits says states and or because since "
    "as but".split()
)
_NEXT_WORD = re.compile(r"\s+([a-z]+)")
_MARKDOWN = re.compile(r"[*_`#]")
_EDGE_PUNCT = ".,;:!?\"'()[]{}<> "
_WS = re.compile(r"\s+")
_ARTICLE = re.compile(r"^(?:the|an|a)\s+")


@dataclass(frozen=True)
class _Patterns:
    """Regexes that depend on the label set, compiled once per label set."""

    explicit_letter: re.Pattern[str]
    boxed: re.Pattern[str]
    is_correct: re.Pattern[str]
    line: re.Pattern[str]
    token: re.Pattern[str]
    label_prefix: re.Pattern[str]


@lru_cache(maxsize=32)
def _patterns(labels: str) -> _Patterns:
    both = f"[{labels}{labels.lower()}]"
    # A letter followed by "or B", "/B", ", B" is a list of candidates, not an answer.
    end = rf"(?![\w\-])(?!\s*(?:,|/|\bor\b|\band\b)\s*[(*]*[{labels}](?![\w\-]))"
    prefix = _OPEN + r"(?:(?i:option|choice|letter)\s*)?" + _OPEN
    return _Patterns(
        explicit_letter=re.compile(prefix + f"(?P<letter>{both})" + end),
        boxed=re.compile(
            r"\\boxed\s*\{\s*(?:\\text(?:bf)?\s*\{\s*)?" + prefix + f"(?P<letter>{both})" + end
        ),
        is_correct=re.compile(
            rf"(?<![\w\-])(?:(?i:option|choice)\s+)?[(*]*(?P<letter>[{labels}])[)*]*\s+"
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
        label: _normalise(pats.label_prefix.sub("", opt.strip()))
        for label, opt in zip(labels, options)
    }
    found = (
        _explicit(text, pats, option_norm, abstain)
        or _bare_letter(text, pats, option_norm)
        or _letter_lines(text, pats, option_norm)
        or _option_text(text, option_norm)
    )
    if found is not None:
        return Extraction(found[0], found[1], None)
    tokens = _label_tokens(text, pats)
    if not tokens and abstain is not None and _ABSTAIN.search(text):
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
    text: str, pats: _Patterns, option_norm: dict[str, str], abstain: str | None
) -> tuple[str, str] | None:
    """The last explicit final-answer statement, by position in the reply."""
    found: list[tuple[int, str, str]] = []
    # A line much longer than every option cannot name one; skipping it keeps this linear.
    max_len = 2 * max(map(len, option_norm.values()), default=0) + 64
    for m in _MARKER.finditer(text):
        letter = pats.explicit_letter.match(text, m.end())
        if letter is not None and _letter_ok(text, letter):
            found.append((m.start(), letter["letter"].upper(), "answer_line"))
            continue
        eol = text.find("\n", m.end())
        rest = text[m.end() : eol if eol >= 0 else len(text)]
        by_text = _unique_option(_normalise(rest), option_norm) if len(rest) <= max_len else None
        if by_text is not None:
            found.append((m.start(), by_text, "answer_text"))
        elif abstain and _ABSTAIN_AT_START.match(rest) and not _label_tokens(rest, pats):
            found.append((m.start(), abstain, "answer_text"))
    for m in pats.boxed.finditer(text):
        if _letter_ok(text, m):
            found.append((m.start(), m["letter"].upper(), "boxed"))
    for m in pats.is_correct.finditer(text):
        found.append((m.start(), m["letter"], "is_correct"))
    if not found:
        return None
    _, label, method = max(found, key=lambda f: f[0])
    return label, method


def _letter_ok(text: str, m: re.Match[str]) -> bool:
    """A lowercase letter followed by a word is an article ("the answer is a red circle")."""
    letter = m["letter"]
    return letter.isupper() or _NEXT_WORD.match(text, m.end("letter")) is None


def _bare_letter(
    text: str, pats: _Patterns, option_norm: dict[str, str]
) -> tuple[str, str] | None:
    """A one-line reply that is a letter, alone or followed by a separator and any text."""
    if "\n" in text:
        return None
    label = _line_label(text, pats, option_norm, any_text=True)
    return None if label is None else (label, "bare_letter")


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
    return letter if _normalise(rest) == option_norm.get(letter) else None


def _option_text(text: str, option_norm: dict[str, str]) -> tuple[str, str] | None:
    label = _unique_option(_normalise(text), option_norm)
    return None if label is None else (label, "option_text")


def _unique_option(norm: str, option_norm: dict[str, str]) -> str | None:
    matches = [label for label, opt in option_norm.items() if opt and opt == norm]
    return matches[0] if len(matches) == 1 else None


def _label_tokens(text: str, pats: _Patterns) -> list[str]:
    """Standalone capital label letters, in order, minus articles and the pronoun "I"."""
    out = []
    for m in pats.token.finditer(text):
        letter = m["letter"]
        if letter in "AI":
            nxt = _NEXT_WORD.match(text, m.end())
            if nxt is not None and nxt[1] not in _LETTER_VERBS:
                continue
        out.append(letter)
    return out


def _normalise(s: str) -> str:
    """Lowercase, markdown-free, single-spaced, without surrounding punctuation or a leading
    article, so "The answer is a red circle." meets the option "Red circle"."""
    return _ARTICLE.sub("", _WS.sub(" ", _MARKDOWN.sub("", s).lower()).strip(_EDGE_PUNCT))
