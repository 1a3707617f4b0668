"""Whether a reply says the memory cannot tell: the multiple-choice abstention rule.

:func:`~taskmem_bench.scoring.extract.extract_choice` asks this twice: after an answer marker
("Answer: it is not possible to tell"), and for a whole reply with no label token in it. Phrases
that count anywhere in the reply: "cannot be determined / tell / answer / say / know", "not
possible to tell", "unable to determine", "insufficient information", "not enough information",
"no information about", "not mentioned in the memory", "the memory does not say / mention /
specify", "I don't know which ...". Only as the reply's (or the answer's) whole first sentence:
"Unknown.", "Unclear.", "I don't know.", "No idea.". The memory-silence and "I don't know
which ..." phrases do not count after an option's text in their sentence ("It was the red
circle, which is not mentioned in the memory until later" answers), and a phrase followed by a
committing word and an option's text ("cannot be determined, but probably the red circle") is a
hedged guess: neither is an abstention.
"""

from __future__ import annotations

import re

from taskmem_bench.scoring.option_text import mentions_option

_MEMORY = r"(?:memory|memories|notes?|context|records?|logs?|entries|transcripts?|video|clips?)"
# Phrases that say the memory cannot tell, wherever they stand in a reply without a label.
_ABSTAIN_PHRASE = (
    r"\b(?:(?:cannot|can\s*not|can['’]?t|could\s*not|couldn['’]?t|unable\s+to|not\s+able\s+to"
    r"|(?:im|not\s+)possible\s+to|no\s+way\s+to)"
    r"\s+(?:be\s+)?(?:determined?|answer(?:ed)?|tell|told|infer(?:red)?|say|said|know|known"
    r"|identif(?:y|ied)|conclude[ds]?)\b"
    r"|(?:insufficient|(?:not|no|without)\s+(?:\w+\s+){0,2}?(?:enough|sufficient))"
    r"\s+(?:information|info|evidence|context|details?)\b"
    r"|no\s+(?:relevant\s+)?(?:information|info|evidence|mention|record)\s+"
    r"(?:of|about|on|regarding|in)\b"
    # weak: the memory is silent, or the reader does not know something; these abstain only
    # where no option's text stands before them in their sentence (see ``abstains``)
    r"|(?P<weak>(?:not|never)\s+(?:mentioned|recorded|described|stated|specified)\s+"
    r"(?:in|by)\s+(?:the\s+|my\s+)?" + _MEMORY + r"\b"
    r"|(?:the\s+|my\s+)?" + _MEMORY + r"\s+(?:does|do|did)\s*(?:n['’]?t|\s+not)\s+"
    r"(?:say|mention|specify|state|tell|indicate)\b"
    r"|I\s+(?:do\s*not|don['’]?t)\s+know\s+(?:which|what|whether|if|how|when|where|who)\b))"
)
# Phrases that abstain only as a whole first sentence: "Unknown." but not "an unknown object".
_ABSTAIN_SHORT = (
    r"(?:unknown|not\s+known|unclear|undetermined|indeterminate|no\s+idea"
    r"|I\s+(?:do\s*not|don['’]?t)\s+know(?:\s+the\s+answer)?)"
    r"(?:\s+(?:from|based\s+on|given|according\s+to|in|with)\s+(?:the\s+|my\s+)?"
    + _MEMORY
    + r")?"
    r"[\s*_`\"')\]]*(?:[.!;\n]|$)"
)
_ABSTAIN = re.compile("(?i)" + _ABSTAIN_PHRASE)
# At the start of an answer (or of the reply): "Answer: it is not possible to tell",
# "There is not enough information", "I can't tell", "Unknown.".
_ABSTAIN_AT_START = re.compile(
    r"(?i)[\s*_`\"'(\[]*(?:(?:(?:the\s+answer|it|this|that|there)\s+(?:(?:is|was)\s+)?"
    r"|(?:it|that|there)['’]s\s+|I\s+|we\s+)(?:simply\s+|just\s+|really\s+)?)?"
    r"(?:" + _ABSTAIN_PHRASE + "|" + _ABSTAIN_SHORT + ")"
)
# After an abstention phrase, one of these followed by an option's text is a guess.
_COMMIT = re.compile(
    r"(?i)\b(?:so|therefore|thus|hence|but|however|though|although|yet|instead|probably"
    r"|likely|presumably|perhaps|maybe|guess)\b"
)


def abstains(
    text: str, start: int, end: int, option_norm: dict[str, str], anywhere: bool
) -> bool:
    """Whether ``text[start:end]`` opens with abstention phrasing (or, with ``anywhere``,
    contains a phrase that may stand anywhere), and does not go on to a guess: a committing
    word followed by an option's text ("..., but probably the red circle")."""
    last = -1
    at_start = _ABSTAIN_AT_START.match(text, start, end)
    if at_start is not None:
        last = at_start.end()
    if anywhere:
        for m in _ABSTAIN.finditer(text, max(start, last), end):
            # "It was the red circle, which is not mentioned in the memory ..." is an answer
            head = max(start, m.start() - 300)
            if m["weak"] is None or not _option_before(text, head, m.start(), option_norm):
                last = m.end()
    if last < 0:
        return False
    commit = _COMMIT.search(text, last, end)
    return commit is None or not mentions_option(text[commit.end() : end], option_norm)


def _option_before(text: str, start: int, pos: int, option_norm: dict[str, str]) -> bool:
    """Whether an option's text stands earlier in the sentence that ``pos`` is in."""
    head = text[start:pos]
    cut = max(head.rfind(c) for c in ".!?\n")
    return mentions_option(head[cut + 1 :], option_norm)

