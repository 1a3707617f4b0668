"""Names a visitor reads: each must read as what it is, and a policy must not pass for a control
(or a reader for another) by looking like it.

The site prints a manifest's names as they are, so ``check_names`` requires them printable,
without spaces at either end, and not lookalikes of a control's or a registered reader's name.

Two names look alike when their ``skeleton`` is equal: the NFKC form (fullwidth ``ｂｌｉｎｄ`` is
``blind``), case folded, accents dropped, letters of other scripts that are drawn like Latin
ones mapped to those (Cyrillic ``о``, Greek ``ο``, ...), the usual glyph pairs merged (``1``,
``i`` and ``l``; ``0`` and ``o``; ``rn`` and ``m``) and separators ignored. This is the idea
of Unicode's confusables skeleton (UTS #39), over the scripts that pass for Latin.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from leaderboard.errors import Rejected
from leaderboard.tracks import CONTROL_POLICIES
from taskmem_bench.manifest import Manifest
from taskmem_bench.readers import available_readers
from taskmem_bench.untrusted import show

LOOKS_LATIN = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "ь": "b", "с": "c", "ԁ": "d", "е": "e", "ё": "e", "һ": "h", "і": "i",
    "ї": "i", "ј": "j", "к": "k", "ӏ": "l", "м": "m", "п": "n", "о": "o", "р": "p", "ԛ": "q",
    "г": "r", "ѕ": "s", "т": "t", "ц": "u", "ѵ": "v", "ԝ": "w", "х": "x", "у": "y", "ү": "y",
    # Greek
    "α": "a", "β": "b", "ϲ": "c", "ε": "e", "η": "n", "ι": "i", "ϳ": "j", "κ": "k", "ν": "v",
    "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ω": "w", "ϝ": "f",
    # Armenian, Latin extensions and symbols
    "օ": "o", "ս": "u", "ց": "g", "հ": "h", "ո": "n", "ɑ": "a", "ɡ": "g", "ı": "i", "ɩ": "i",
    "ȷ": "j", "ʟ": "l", "ɴ": "n", "ʀ": "r", "ʏ": "y", "ø": "o", "đ": "d", "ħ": "h",
    "ł": "l",
    # glyphs that are drawn alike
    "0": "o", "1": "l", "i": "l", "|": "l", "5": "s", "$": "s", "@": "a",
})
SEPARATORS = re.compile(r"[\W_]+")


def skeleton(name: str) -> str:
    """What ``name`` looks like; equal skeletons are names a reader can mistake for each other."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", name).casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.replace("rn", "m").replace("vv", "w").translate(LOOKS_LATIN)
    return SEPARATORS.sub("", text)


def lookalike(name: str, reserved: Iterable[str]) -> str | None:
    """The reserved name that ``name`` looks like without being it, if any."""
    shape = skeleton(name)
    return next((r for r in reserved if r != name and skeleton(r) == shape), None)


def check_names(m: Manifest) -> None:
    """The manifest's policy and reader names and versions are 1 to 200 printable characters
    without spaces at either end, and the names do not look like (``skeleton``) a control's
    or a registered reader's without being it, which would pass for that control or reader
    on the site."""
    for what, name in (("policy name", m.policy.name), ("policy version", m.policy.version),
                       ("reader name", m.reader.name), ("reader version", m.reader.version)):
        if not (0 < len(name) <= 200 and name.isprintable() and name == name.strip()):
            raise Rejected(f"manifest {what} {show(name)} must be 1 to 200 printable characters "
                           "(no control or bidi characters, no spaces at either end)")
    for what, name, reserved in (("policy", m.policy.name, CONTROL_POLICIES),
                                 ("reader", m.reader.name, available_readers())):
        like = lookalike(name, reserved)
        if like is not None:
            raise Rejected(f"{what} name {show(name)} looks like {like!r} (after NFKC and "
                           f"confusable letters) without being it; choose a name that does not "
                           f"pass for {like!r}")
