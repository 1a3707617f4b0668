"""The LLM judge of open answers: reply parsing, the batched call, failures, a real tiny model.

The HTTP tests run the judge through the real ``openai`` backend against
:class:`~taskmem_bench.testing.server.ChatServer` on 127.0.0.1; the model behind that server is
:class:`ScriptedBackend`, a test double standing at the paid-API boundary (a hosted judge
model), which replies per question from a script. The last tests judge with the tiny random
Qwen3 through the real transformers backend.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from taskmem_bench.backends import BackendSettings, get_backend
from taskmem_bench.backends.base import Backend, ChatRequest, Generation, TextPart
from taskmem_bench.scoring import judge as judge_module
from taskmem_bench.scoring.judge import (
    JUDGE_SYSTEM,
    JudgeConfig,
    JudgeItem,
    Judgment,
    LLMJudge,
    parse_judgment,
    prompt_hash,
)
from taskmem_bench.testing.server import ChatServer

MODEL = "scripted-judge"

# -- parse_judgment -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"pred": "correct", "score": 5}', ("correct", 5)),
        ('{"pred": "incorrect", "score": 0}', ("incorrect", 0)),
        ("{'pred': 'correct', 'score': 4}", ("correct", 4)),  # Python dict quoting
        ('{"Pred": "CORRECT", "Score": "3"}', ("correct", 3)),  # keys and pred: any case
        ('{"pred": " Yes ", "score": 4.0}', ("correct", 4)),
        ('{"pred": "no", "score": "1.0"}', ("incorrect", 1)),
        ('<think>maybe {"pred": "incorrect", "score": 0}</think>\n{"pred": "correct", "score": 5}',
         ("correct", 5)),  # thinking is ignored
        ('It matches.\n```json\n{"pred": "correct", "score": 4}\n```\nDone.', ("correct", 4)),
        ('{"pred": "correct", "score": 5} on reflection {"pred": "incorrect", "score": 1}',
         ("incorrect", 1)),  # the last object wins
        ('{"pred": "correct", "score": 5, "why": "it\'s {the} same"}', ("correct", 5)),
        ('{"pred": "correct", "score": 5} {"note": "no verdict here"}', ("correct", 5)),
        ('{"verdict": {"pred": "incorrect", "score": 2}}', ("incorrect", 2)),
    ],
)
def test_parse_accepts_documented_forms(raw: str, expected: tuple[str, int]) -> None:
    assert parse_judgment(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "The answer is correct, score 5.",
        '{"pred": "correct", "score": 6}',
        '{"pred": "correct", "score": -1}',
        '{"pred": "correct", "score": 4.5}',
        '{"pred": "correct", "score": "high"}',
        '{"pred": "correct", "score": true}',
        '{"pred": "correct"}',
        '{"score": 5}',
        '{"pred": "partially correct", "score": 3}',
        '{"pred": true, "score": 5}',
        '{"pred": "correct", "score": 5',  # never closed
        '{"pred": "correct", "score": 5} later {"pred": "maybe", "score": 3}',  # last is invalid
        '<think>{"pred": "correct", "score": 5}',  # unclosed thinking: no answer part
    ],
)
def test_parse_rejects_everything_else(raw: str) -> None:
    assert parse_judgment(raw) is None


# -- the prompt -----------------------------------------------------------------------------


def test_prompt_holds_question_gold_and_answer() -> None:
    judge = LLMJudge(JudgeConfig(backend="openai", model=MODEL))
    item = JudgeItem("What did I pick up after the knife?", "a red cup", "the crimson mug")
    system, user = judge.messages(item)
    assert system.role == "system" and system.content == (TextPart(JUDGE_SYSTEM),)
    text = user.content[0].text
    assert user.role == "user"
    for piece in (item.question, item.gold, item.answer, '"pred"', '"score"'):
        assert piece in text


def test_prompt_hash_follows_the_template(monkeypatch: pytest.MonkeyPatch) -> None:
    before = prompt_hash()
    assert re.fullmatch(r"[0-9a-f]{16}", before) and prompt_hash() == before
    monkeypatch.setattr(judge_module, "JUDGE_TEMPLATE", judge_module.JUDGE_TEMPLATE + " ")
    changed = prompt_hash()
    monkeypatch.setattr(judge_module, "JUDGE_SYSTEM", judge_module.JUDGE_SYSTEM + " ")
    assert len({before, changed, prompt_hash()}) == 3


def test_missing_model_names_the_setting() -> None:
    for config in (JudgeConfig(), JudgeConfig(model="")):
        with pytest.raises(ValueError, match=r"judge\.model"):
            LLMJudge(config)


# -- through the real openai backend over HTTP ------------------------------------------------


class ScriptedBackend(Backend):
    """Test double for the hosted judge model behind the server: replies to each request with
    ``script[question]``, raising when that is an exception; records every request."""

    name = "scripted"

    def __init__(self, script: Mapping[str, str | Exception]) -> None:
        super().__init__(BackendSettings(backend="scripted", model=MODEL))
        self.script = script
        self.seen: list[ChatRequest] = []

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        out = []
        for request in requests:
            self.seen.append(request)
            prompt = request.messages[-1].content[0].text
            reply = self.script[re.search(r"^Question: (.*)$", prompt, re.MULTILINE).group(1)]
            if isinstance(reply, Exception):
                raise reply
            out.append(Generation(reply, "stop"))
        return out


def http_config(server_url: str, tmp_path: Path, **overrides) -> JudgeConfig:
    return JudgeConfig(
        backend="openai",
        model=MODEL,
        base_url=server_url,
        response_cache_dir=str(tmp_path / "cache"),
        max_retries=0,
        timeout_s=10.0,
        **overrides,
    )


ITEMS = [
    JudgeItem("q-right", "a red cup", "the red mug"),
    JudgeItem("q-wrong", "three times", "twice"),
    JudgeItem("q-garbled", "the sink", "near the sink"),
]
SCRIPT = {
    "q-right": 'Same object. {"pred": "correct", "score": 5}',
    "q-wrong": "<think>3 vs 2</think>{'pred': 'incorrect', 'score': 1}",
    "q-garbled": "I think it is basically right.",
}


def test_verdicts_over_http_in_one_batched_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted = ScriptedBackend(SCRIPT)
    with ChatServer(scripted) as server:
        config = http_config(server.url, tmp_path)
        backend = get_backend(config)
        calls: list[int] = []
        real_generate = backend.generate

        def counting(requests):
            calls.append(len(requests))
            return real_generate(requests)

        monkeypatch.setattr(backend, "generate", counting)
        judgments = LLMJudge(config, seed=3).judge(ITEMS)
    assert calls == [3] and server.stats.requests == 3
    assert judgments == [
        Judgment("judged", "correct", 5, SCRIPT["q-right"]),
        Judgment("judged", "incorrect", 1, SCRIPT["q-wrong"]),
        Judgment("unparseable", None, None, SCRIPT["q-garbled"]),
    ]
    assert [j.correct for j in judgments] == [True, False, False]
    # greedy, and each seed comes from the item itself, not from its place in the batch
    assert all(r.sampling.temperature == 0 for r in scripted.seen)
    seeds = {r.messages[-1].content[0].text: r.sampling.seed for r in scripted.seen}
    assert len(set(seeds.values())) == 3
    with ChatServer(scripted) as again:
        config = http_config(again.url, tmp_path / "fresh")
        LLMJudge(config, seed=3).judge(ITEMS[::-1])
    reseen = {r.messages[-1].content[0].text: r.sampling.seed for r in scripted.seen[3:]}
    assert reseen == seeds


def test_judge_errors_are_reported_per_item_never_raised(tmp_path: Path) -> None:
    script = {**SCRIPT, "q-wrong": RuntimeError("judge model overloaded\nsecond line")}
    with ChatServer(ScriptedBackend(script)) as server:
        judgments = LLMJudge(http_config(server.url, tmp_path)).judge(ITEMS)
    # the failed batch is asked again item by item: only the failing item is lost
    assert [j.status for j in judgments] == ["judged", "judge_error", "unparseable"]
    for j in judgments[1:2]:
        assert (j.pred, j.score, j.raw, j.correct) == (None, None, None, False)
        assert j.error.startswith("OpenAIBackendError: ") and "\n" not in j.error
        assert "HTTP 500" in j.error


def test_unreachable_judge_is_a_judge_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = http_config(f"http://127.0.0.1:{port}/v1", tmp_path)
    judgments = LLMJudge(config).judge(ITEMS[:2])
    assert [j.status for j in judgments] == ["judge_error"] * 2
    assert "cannot reach" in judgments[0].error


def test_empty_batch_calls_nothing() -> None:
    assert LLMJudge(JudgeConfig(backend="no-such-backend", model="m")).judge([]) == []


def test_describe_records_model_prompt_hash_and_config(tmp_path: Path) -> None:
    config = http_config("http://127.0.0.1:9/v1", tmp_path)
    described = LLMJudge(config).describe()
    assert described["kind"] == "llm" and described["prompt_hash"] == prompt_hash()
    assert described["model"] == {"backend": "openai", "model": MODEL}
    assert described["config"]["temperature"] == 0.0
    assert described["config"]["base_url"] == config.base_url


# -- a real tiny model ----------------------------------------------------------------------


def test_tiny_model_judges_every_item_deterministically(tiny_text_model: Path) -> None:
    config = JudgeConfig(
        backend="transformers", model=str(tiny_text_model), device="cpu", dtype="float32",
        max_new_tokens=16,
    )
    judge = LLMJudge(config)
    first = judge.judge(ITEMS)
    assert len(first) == len(ITEMS)
    for judgment in first:
        assert judgment.status in ("judged", "unparseable")
        assert judgment.raw and judgment.error is None
    assert judge.judge(ITEMS) == first
    assert judge.describe()["model"]["weights"]  # the local folder is pinned by its files
