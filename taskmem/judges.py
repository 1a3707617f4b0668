"""The LLM claim judge for real data: Phase One's quality judge through any backend.

The paper's video-grounded judge sees the clip's frames and subtitles, the preceding
descriptions and the candidate, and decides whether the candidate is accurate and a coherent,
non-repeating continuation. Here the judge is shown exactly the memorizer's own prompt (frames
with their times, earlier descriptions, side text) followed by the candidate, through any
backend (``openai`` for a served model), and answers one JSON object. It judges a reply as a
whole, so every sentence of a reply shares its verdict. A call or reply that fails is a
:class:`~taskmem.rewards.Verdict` with an error: the quality term scores it 0 and counts it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from taskmem_bench.backends import (
    BackendSettings, ChatRequest, ImagePart, Message, Sampling, TextPart,
)
from taskmem_bench.model_policy import generate_all

from taskmem.rewards import Claim, Verdict

JUDGE_QUESTION = (
    "Above is what a memory writer was shown for the newest segment of a video stream. It wrote "
    "this memory entry:\n{candidate}\n\nCheck it against the frames, the side text and the "
    "earlier descriptions. It passes only if every statement is supported by what was shown, "
    "it does not repeat a fact the earlier descriptions already state, and it has no remarks "
    'about the video or subtitles themselves ("the video shows", "the subtitles say") and no '
    'closing remarks. Reply with one JSON object only: {{"pass": true or false, "reason": '
    '"<short>"}}'
)


@dataclass(frozen=True)
class LLMClaimJudge:
    """Judges replies with a model named by ``settings`` (e.g. backend ``openai``)."""

    settings: BackendSettings
    max_new_tokens: int = 256

    def __call__(self, claims: Sequence[Claim]) -> list[Verdict]:
        if not claims:
            return []
        requests = [self.request(c) for c in claims]
        try:
            generations = generate_all(self.settings, requests)
        except Exception as exc:  # noqa: BLE001 - a failed call or a short answer costs its replies
            return [Verdict(None, f"judge call failed: {type(exc).__name__}: {exc}")] * len(claims)
        return [verdict_of(g.answer, len(c.sentences)) for g, c in zip(generations, claims)]

    def request(self, claim: Claim) -> ChatRequest:
        images = iter(claim.context["images"])
        parts = []
        for block in claim.context["prompt"][0]["content"]:
            if block.get("type") == "image":
                image = next(images)
                parts.append(ImagePart(_array(image)))
            else:
                parts.append(TextPart(block["text"]))
        parts.append(TextPart(JUDGE_QUESTION.format(candidate=" ".join(claim.sentences))))
        return ChatRequest((Message("user", tuple(parts)),),
                           Sampling(max_new_tokens=self.max_new_tokens))


def verdict_of(answer: str, n_sentences: int) -> Verdict:
    """The judge's reply as a verdict shared by the reply's sentences; unparseable is a failure."""
    start, end = answer.find("{"), answer.rfind("}")
    try:
        value = json.loads(answer[start:end + 1]) if start >= 0 else None
    except ValueError:
        value = None
    if not isinstance(value, dict) or not isinstance(value.get("pass"), bool):
        return Verdict(None, f"unparseable judge reply: {answer[:200]!r}")
    return Verdict((value["pass"],) * n_sentences)


def _array(image):
    import numpy as np

    return np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
