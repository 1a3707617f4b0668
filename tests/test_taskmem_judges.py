"""Phase One's quality term with an LLM judge through a real backend: the openai backend over
HTTP on 127.0.0.1 against ``taskmem_bench.testing.server``."""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence

import numpy as np
from PIL import Image

from taskmem.judges import JUDGE_QUESTION, LLMClaimJudge, verdict_of
from taskmem.protocol import Frame, build_prompt, format_reply
from taskmem.rewards import QualityTerm
from taskmem.streams import trl_prompt
from taskmem_bench.backends import (
    Backend, BackendSettings, ChatRequest, Generation, ImagePart,
)
from taskmem_bench.testing.server import ChatServer

MODEL = "judge-model"


class ScriptedJudge(Backend):
    """Test double standing for a hosted judge model (a served VLM cannot run here): passes a
    candidate naming EXIT, fails others, and answers nonsense for one that says "garble". It
    records how many images each request carried."""

    name = "scripted-judge"

    def __init__(self) -> None:
        super().__init__(BackendSettings(backend="scripted-judge", model=MODEL))
        self.images: list[int] = []

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        out = []
        for request in requests:
            parts = request.messages[-1].content
            self.images.append(sum(isinstance(p, ImagePart) for p in parts))
            question = parts[-1].text
            if "garble" in question:
                out.append(Generation("I am not sure."))
            else:
                out.append(Generation(json.dumps({"pass": "EXIT" in question, "reason": "r"})))
        return out


def rows(n: int) -> dict:
    frames = [Frame(float(t), np.full((32, 32, 3), 40 * t, dtype=np.uint8)) for t in range(3)]
    prompt, images = trl_prompt(build_prompt(0.0, 10.0, frames, [], (), budget_tokens=24))
    return dict(prompt=[prompt] * n, images=[images] * n, stated=[[]] * n, budget=[24] * n,
                group=["g"] * n)


def test_an_llm_judge_over_http_decides_quality_and_failures_are_counted(tmp_path):
    backend = ScriptedJudge()
    with ChatServer(backend) as server:
        judge = LLMClaimJudge(BackendSettings(
            backend="openai", model=MODEL, base_url=server.url,
            response_cache_dir=str(tmp_path / "cache")))
        quality = QualityTerm(judge)
        replies = [format_reply("The sign shows the word EXIT."),
                   format_reply("The sign shows the word STOP."),
                   format_reply("Words garble here."), "unparseable"]
        assert quality(None, replies, **rows(4)) == [0.5, -0.5, 0.0, 0.0]
    assert (quality.judged, quality.failures) == (3, 1)
    assert backend.images == [3, 3, 3]  # the judge saw the memorizer's frames


def test_a_dead_judge_costs_only_its_term_and_is_counted(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    judge = LLMClaimJudge(BackendSettings(
        backend="openai", model=MODEL, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0,
        timeout_s=5, response_cache_dir=str(tmp_path / "cache")))
    quality = QualityTerm(judge)
    assert quality(None, [format_reply("The sign shows the word EXIT.")], **rows(1)) == [0.0]
    assert quality.failures == 1


def test_the_judge_sees_the_prompt_in_order_then_the_candidate():
    judge = LLMClaimJudge(BackendSettings(backend="openai", model=MODEL))
    from taskmem.rewards import Claim

    context = {k: v[0] for k, v in rows(1).items()}
    request = judge.request(Claim(("A b.",), context))
    parts = request.messages[0].content
    kinds = [type(p).__name__ for p in parts]
    assert kinds.count("ImagePart") == 3 and kinds[-1] == "TextPart"
    assert parts[-1].text == JUDGE_QUESTION.format(candidate="A b.")
    assert isinstance(context["images"][0], Image.Image)


def test_judge_replies_become_verdicts_or_failures():
    assert verdict_of('{"pass": true, "reason": "ok"}', 2).true == (True, True)
    assert verdict_of('Sure. {"pass": false}', 1).true == (False,)
    assert verdict_of('{"pass": "yes"}', 1).true is None
    assert verdict_of("no json", 1).error


def test_a_judge_backend_answering_too_few_costs_every_claim_and_is_counted(monkeypatch):
    class ShortJudge(ScriptedJudge):
        def generate(self, requests):
            return super().generate(requests)[:-1]

    monkeypatch.setattr("taskmem_bench.model_policy.get_backend", lambda settings: ShortJudge())
    quality = QualityTerm(LLMClaimJudge(BackendSettings(backend="scripted-judge", model=MODEL)))
    replies = [format_reply("The sign shows the word EXIT."),
               format_reply("The sign shows the word STOP.")]
    assert quality(None, replies, **rows(2)) == [0.0, 0.0]
    assert (quality.judged, quality.failures) == (2, 2)
