"""The ``openai`` backend over real HTTP on 127.0.0.1, against ``taskmem_bench.testing.server``.

Most tests serve :class:`EchoBackend`, a test double standing for the model behind the server,
so they can check exactly what crossed the wire; the last ones serve the tiny Qwen3-VL through
the real transformers backend and compare with calling that backend directly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from taskmem_bench.backends import BackendSettings, get_backend
from taskmem_bench.backends.base import (
    Backend,
    BackendUnavailable,
    ChatRequest,
    Generation,
    ImagePart,
    Message,
    Sampling,
    TextPart,
    VideoPart,
)
from taskmem_bench.backends import openai_http
from taskmem_bench.backends.http_transport import environment_proxy
from taskmem_bench.backends.openai_http import (
    OpenAIBackend,
    OpenAIBackendError,
    OpenAIServerUnavailable,
)
from taskmem_bench.backends.response_cache import cache_root, request_key
from taskmem_bench.backends.wire import (
    UnusableCompletion,
    decode_completion,
    decode_request,
    encode_request,
)
from taskmem_bench.testing.server import ChatServer

MODEL = "echo-model"


def digest(request: ChatRequest) -> str:
    """What a request holds, exactly: text, pixel bytes and shapes, frame times, fps, sampling."""
    h = hashlib.sha256()
    for message in request.messages:
        h.update(message.role.encode())
        for part in message.content:
            if isinstance(part, TextPart):
                h.update(b"text" + part.text.encode())
            elif isinstance(part, ImagePart):
                h.update(b"image" + str(part.image.shape).encode() + part.image.tobytes())
            else:
                h.update(b"video" + str(part.frames.shape).encode() + part.frames.tobytes())
                h.update(repr([float(t) for t in part.timestamps]).encode())
                h.update(repr(float(part.source_fps)).encode())
    h.update(repr(request.sampling).encode())
    return h.hexdigest()


class EchoBackend(Backend):
    """Test double standing for the model behind the server: it answers each request with a
    digest of exactly what it received, after ``delay(request)`` seconds."""

    name = "echo"

    def __init__(self, delay: Callable[[ChatRequest], float] = lambda r: 0.0) -> None:
        super().__init__(BackendSettings(backend="echo", model=MODEL))
        self.delay = delay

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        out = []
        for request in requests:
            time.sleep(self.delay(request))
            videos = [p for m in request.messages for p in m.content if isinstance(p, VideoPart)]
            text = json.dumps(
                {"digest": digest(request), "timestamps": [v.timestamps.tolist() for v in videos]}
            )
            out.append(Generation(text, "length", {"prompt_tokens": 3, "completion_tokens": 2}))
        return out


def client(server: ChatServer, tmp_path, **settings) -> OpenAIBackend:
    return OpenAIBackend(
        BackendSettings(
            backend="openai",
            model=MODEL,
            base_url=server.url,
            response_cache_dir=str(tmp_path / "cache"),
            **settings,
        )
    )


def text_request(text: str, seed: int = 0) -> ChatRequest:
    return ChatRequest((Message.text("user", text),), Sampling(max_new_tokens=8, seed=seed))


def media_request(rng: np.random.Generator) -> ChatRequest:
    """Random pixels (so any lossy step shows) and frame times on a 10 fps grid far into a
    stream."""
    frames = rng.integers(0, 256, size=(4, 24, 32, 3), dtype=np.uint8)
    video = VideoPart(frames, np.array([3000, 3005, 3010, 3020]) / 10.0, source_fps=10.0)
    image = ImagePart(rng.integers(0, 256, size=(20, 28, 3), dtype=np.uint8))
    return ChatRequest(
        (
            Message.text("system", "You watch a stream."),
            Message("user", (TextPart("Look: "), image, video, TextPart("What changed?"))),
        ),
        Sampling(max_new_tokens=7, temperature=0.7, top_p=0.9, seed=11),
    )


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_text_image_and_video_arrive_intact(tmp_path):
    rng = np.random.default_rng(0)
    requests = [media_request(rng), text_request("hello")]
    with ChatServer(EchoBackend()) as server:
        generations = client(server, tmp_path).generate(requests)
    for request, generation in zip(requests, generations):
        assert json.loads(generation.text)["digest"] == digest(request)
        assert generation.finish_reason == "length"
        assert generation.usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert json.loads(generations[0].text)["timestamps"] == [[300.0, 300.5, 301.0, 302.0]]


def test_requests_use_vllms_video_format():
    """Frames as one ``video_url`` frame list with PNG frames, metadata in vLLM's
    request-level ``media_io_kwargs``; text-only requests carry no vLLM extensions."""
    body = encode_request(media_request(np.random.default_rng(1)), MODEL)
    content = body["messages"][1]["content"]
    assert [p["type"] for p in content] == ["text", "image_url", "video_url", "text"]
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    prefix, _, frames = content[2]["video_url"]["url"].partition(",")
    assert prefix == "data:video/jpeg;base64"
    assert [base64.b64decode(f)[:4] for f in frames.split(",")] == [b"\x89PNG"] * 4
    assert body["media_io_kwargs"] == {
        "video": {"fps": 10.0, "frames_indices": [3000, 3005, 3010, 3020], "num_frames": 4}
    }
    assert body["mm_processor_kwargs"] == {"do_sample_frames": False}
    assert body["messages"][0] == {"role": "system", "content": "You watch a stream."}
    assert {k: body[k] for k in ("max_completion_tokens", "temperature", "top_p", "seed")} == {
        "max_completion_tokens": 7, "temperature": 0.7, "top_p": 0.9, "seed": 11
    }
    assert set(encode_request(text_request("hi"), MODEL)) == {
        "model", "messages", "max_completion_tokens", "temperature", "top_p", "seed"
    }


def test_jpeg_frames_are_close_and_keep_their_times():
    request = media_request(np.random.default_rng(2))
    frames = np.zeros((4, 24, 32, 3), np.uint8) + np.arange(32, dtype=np.uint8)[:, None] * 8
    video = VideoPart(frames, np.array([5, 7, 9, 11]) / 4.0, source_fps=4.0)
    request = ChatRequest((Message("user", (video,)),), request.sampling)
    (decoded,) = decode_request(encode_request(request, MODEL, "jpeg"))[1].messages[0].content
    assert np.abs(decoded.frames.astype(int) - frames).mean() < 3
    assert decoded.frame_indices == [5, 7, 9, 11] and decoded.source_fps == 4.0


def test_a_one_frame_video_is_sent_as_two_copies():
    """Qwen-VL processors (and so ``vllm serve``) refuse fewer than two frames."""
    frame = np.random.default_rng(4).integers(0, 256, size=(1, 8, 8, 3), dtype=np.uint8)
    request = ChatRequest((Message("user", (VideoPart(frame, np.array([1.5]), 10.0),)),))
    body = encode_request(request, MODEL)
    assert body["media_io_kwargs"]["video"]["frames_indices"] == [15, 15]
    (video,) = decode_request(body)[1].messages[0].content
    assert np.array_equal(video.frames, np.concatenate([frame, frame]))


def test_videos_of_one_request_must_share_their_metadata():
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    a = VideoPart(frames, np.array([0.0, 1.0]), 10.0)
    b = VideoPart(frames, np.array([2.0, 3.0]), 10.0)
    with pytest.raises(ValueError, match="share fps and frame indices"):
        encode_request(ChatRequest((Message("user", (a, b)),)), MODEL)


def test_429_and_503_are_retried_with_exponential_backoff(tmp_path):
    with ChatServer(EchoBackend(), faults=(429, 503)) as server:
        (generation,) = client(server, tmp_path, max_retries=2).generate([text_request("x")])
    assert json.loads(generation.text)["digest"] == digest(text_request("x"))
    assert server.stats.requests == 3
    first, second = np.diff(server.stats.arrivals)
    # the openai client waits 0.5 s then 1 s, each less up to 25 % jitter
    assert first >= 0.37 and second >= 0.74 and second > first


def test_retries_give_up_naming_the_status_and_the_servers_message(tmp_path):
    with ChatServer(EchoBackend(), faults=(503, 503, 503)) as server:
        backend = client(server, tmp_path, max_retries=1)
        with pytest.raises(BackendUnavailable, match=r"HTTP 503 \(after 1 retries\): .*injected"):
            backend.generate([text_request("x")])
    assert server.stats.requests == 2


def test_a_500_is_retried_but_is_the_requests_own_failure(tmp_path):
    """The server is up and failed on this request (the loopback server's answer when its
    model raises), so the runner may still try the other items."""
    with ChatServer(EchoBackend(), faults=(500, 500)) as server:
        with pytest.raises(OpenAIBackendError, match=r"HTTP 500 \(after 1 retries\)") as caught:
            client(server, tmp_path, max_retries=1).generate([text_request("x")])
    assert not isinstance(caught.value, BackendUnavailable)
    assert server.stats.requests == 2


def test_client_errors_are_not_retried_and_show_the_servers_message(tmp_path):
    with ChatServer(EchoBackend(), faults=(400,)) as server:
        backend = client(server, tmp_path, max_retries=3)
        with pytest.raises(OpenAIBackendError, match=r"HTTP 400 \(not retried\): .*fault") as a:
            backend.generate([text_request("x")])
        assert server.stats.requests == 1
    with ChatServer(EchoBackend(), model="another-model") as server:
        with pytest.raises(OpenAIBackendError, match="HTTP 404 .*`echo-model` does not") as b:
            client(server, tmp_path, max_retries=3).generate([text_request("x")])
        assert server.stats.requests == 1
    # the request was refused, the server is up: the runner may go on item by item
    assert not isinstance(a.value, BackendUnavailable)
    assert not isinstance(b.value, BackendUnavailable)


def test_an_unreachable_server_is_named(tmp_path):
    url = f"http://127.0.0.1:{unused_port()}/v1"
    backend = OpenAIBackend(
        BackendSettings(backend="openai", model=MODEL, base_url=url, max_retries=1,
                       response_cache_dir=str(tmp_path))
    )
    with pytest.raises(BackendUnavailable, match=f"cannot reach .*{url} \\(after 1 retries\\)"
                       ": ConnectionRefusedError"):
        backend.generate([text_request("x")])


def test_a_dead_server_fails_the_batch_after_one_retry_budget(tmp_path):
    """Requests still queued when the first one finds the server down are not sent: a batch of
    8 at concurrency 2 costs the 2 in flight their retries (4 requests), not 8 budgets (16)."""
    with ChatServer(EchoBackend(), faults=(503,) * 100) as server:
        backend = client(server, tmp_path, concurrency=2, max_retries=1)
        with pytest.raises(BackendUnavailable, match="HTTP 503"):
            backend.generate([text_request(f"item {i}") for i in range(8)])
    assert server.stats.requests == 4


def test_a_server_found_down_is_not_asked_again_until_the_cool_down_ends(tmp_path, monkeypatch):
    """Every later batch used to wait out the whole retry budget again (about 12 min each with
    the defaults against a server that never answers)."""
    port = unused_port()
    url = f"http://127.0.0.1:{port}/v1"  # closed: nothing listens there
    backend = OpenAIBackend(BackendSettings(backend="openai", model=MODEL, base_url=url,
                                            max_retries=2, response_cache_dir=str(tmp_path)))
    with pytest.raises(OpenAIServerUnavailable, match="cannot reach"):
        backend.generate([text_request("x")])  # its retry budget: two backoffs, over 1.1 s
    with ChatServer(EchoBackend(), port=port) as server:
        began = time.monotonic()  # the server is back, but the backend does not know yet
        with pytest.raises(OpenAIServerUnavailable, match=(
            rf"^not sent: within the 60 s cool-down after the OpenAI-compatible server at "
            rf"{re.escape(url)} was found down at \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\S* "
            r"\(cannot reach .* ConnectionRefusedError")):
            backend.generate([text_request("y")])
        assert time.monotonic() - began < 1.0  # at once, not after another retry budget
        assert server.stats.requests == 0  # nothing was sent
        monkeypatch.setattr(openai_http, "SERVER_DOWN_COOL_DOWN_S", 0.0)  # the cool-down ends
        assert json.loads(backend.generate([text_request("y")])[0].text)["digest"]
        assert server.stats.requests == 1


def test_a_slow_answer_times_out(tmp_path):
    with ChatServer(EchoBackend(delay=lambda r: 1.0)) as server:
        backend = client(server, tmp_path, timeout_s=0.3, max_retries=0)
        start = time.monotonic()
        with pytest.raises(BackendUnavailable, match=r"did not answer within timeout_s=0.3 s"):
            backend.generate([text_request("x")])
        assert time.monotonic() - start < 0.9


def test_a_trickling_answer_is_cut_off_at_timeout_s(tmp_path):
    """One byte every 0.2 s beats any per-read timeout of 0.5 s, and the whole answer would
    take over a minute; ``timeout_s`` ends each attempt, so two attempts end in seconds."""
    with ChatServer(EchoBackend(), trickle=0.2) as server:
        backend = client(server, tmp_path, timeout_s=0.5, max_retries=1)
        start = time.monotonic()
        with pytest.raises(BackendUnavailable, match=r"did not answer within timeout_s=0.5 s"):
            backend.generate([text_request("x")])
        assert time.monotonic() - start < 30
        assert server.stats.requests == 2


def test_concurrency_limit_is_respected_and_results_keep_request_order(tmp_path):
    """Later requests answer sooner, so answers complete out of order."""
    requests = [text_request(f"request {i}") for i in range(12)]
    delay = {r.messages[0].content[0].text: 0.02 * (12 - i) for i, r in enumerate(requests)}
    echo = EchoBackend(delay=lambda r: delay[r.messages[0].content[0].text])
    with ChatServer(echo, parallel=True) as server:
        generations = client(server, tmp_path, concurrency=4).generate(requests)
    assert server.stats.max_in_flight == 4
    assert [json.loads(g.text)["digest"] for g in generations] == [digest(r) for r in requests]


def test_cache_answers_reruns_without_requests(tmp_path):
    requests = [text_request("a"), text_request("b"), text_request("a")]
    with ChatServer(EchoBackend()) as server:
        first = client(server, tmp_path).generate(requests)
        assert server.stats.requests == 2  # the repeated request is sent once
        again = client(server, tmp_path).generate(requests)  # a new process, same cache
        assert server.stats.requests == 2 and again == first
        client(server, tmp_path).generate([text_request("a", seed=1)])
        assert server.stats.requests == 3  # any change to the request misses
    assert len(list((tmp_path / "cache").glob("*/*.json"))) == 3


def test_top_k_travels_as_vllms_extension_only_when_set_and_keys_the_cache(tmp_path):
    plain = text_request("a")
    top_k = ChatRequest(plain.messages, Sampling(max_new_tokens=8, temperature=0.6, top_k=20))
    assert "top_k" not in encode_request(plain, MODEL)
    assert encode_request(top_k, MODEL)["top_k"] == 20
    with ChatServer(EchoBackend()) as server:
        first, second = client(server, tmp_path).generate([plain, top_k])
        assert server.stats.requests == 2  # top_k is part of the cache key
    assert json.loads(second.text)["digest"] == digest(top_k)  # arrived intact
    assert first.text != second.text


def test_failed_requests_are_not_cached(tmp_path):
    with ChatServer(EchoBackend(), faults=(400,)) as server:
        with pytest.raises(OpenAIBackendError):
            client(server, tmp_path).generate([text_request("x")])
        client(server, tmp_path).generate([text_request("x")])
        client(server, tmp_path).generate([text_request("x")])
        assert server.stats.requests == 2


def content(value):
    """A rewrite that sets the first reply's ``content`` to ``value`` and leaves later ones."""
    def rewrite(number, body):
        if number == 1:
            body["choices"][0]["message"]["content"] = value
        return body
    return rewrite


UNUSABLE = {
    "int content": (content(12345), r"choices\[0\]\.message\.content is int 12345, expected a str"),
    "list content": (content(["a"]), r"choices\[0\]\.message\.content is list"),
    "not JSON": (lambda n, body: b"<html>\n busy\n</html>" if n == 1 else body,
                 r"not JSON .*: <html> busy </html>"),
    "no choices": (lambda n, body: {**body, "choices": []} if n == 1 else body,
                   "choices is an empty list"),
    "a list": (lambda n, body: [body] if n == 1 else body, "the reply is list"),
    "int reasoning": (lambda n, body: body if n > 1 else {
        **body, "choices": [{**body["choices"][0], "message": {"reasoning_content": 7}}]
    }, r"reasoning_content is int 7"),
    "int finish_reason": (lambda n, body: body if n > 1 else {
        **body, "choices": [{**body["choices"][0], "finish_reason": 0}]
    }, r"choices\[0\]\.finish_reason is int 0"),
}


@pytest.mark.parametrize("rewrite, problem", UNUSABLE.values(), ids=UNUSABLE)
def test_an_unusable_reply_fails_its_request_and_is_never_cached(tmp_path, rewrite, problem):
    """An answer that is not a usable completion fails its request with one line naming the
    field at fault, is not cached (the next run asks again and gets a usable answer), and is
    the request's own failure, not a server found down."""
    with ChatServer(EchoBackend(), rewrite=rewrite) as server:
        with pytest.raises(OpenAIBackendError, match=problem) as caught:
            client(server, tmp_path).generate([text_request("x")])
        assert not isinstance(caught.value, BackendUnavailable)
        assert "\n" not in str(caught.value)
        assert list((tmp_path / "cache").glob("*/*.json")) == []
        (generation,) = client(server, tmp_path).generate([text_request("x")])
        assert json.loads(generation.text)["digest"] == digest(text_request("x"))
        assert server.stats.requests == 2


def test_the_usable_replies_of_a_batch_are_kept_when_one_is_not(tmp_path):
    requests = [text_request("a"), text_request("b")]
    with ChatServer(EchoBackend(), rewrite=content(12345)) as server:
        with pytest.raises(OpenAIBackendError, match="content is int"):
            client(server, tmp_path, concurrency=1).generate(requests)
        generations = client(server, tmp_path).generate(requests)
        assert server.stats.requests == 3  # only the unusable one is sent again
    assert [json.loads(g.text)["digest"] for g in generations] == [digest(r) for r in requests]


def test_an_unusable_cached_reply_is_sent_again(tmp_path):
    """A cache an older version filled with an unusable reply does not fail every rerun."""
    request = text_request("x")
    with ChatServer(EchoBackend()) as server:
        backend = client(server, tmp_path)
        key = request_key(encode_request(request, MODEL))
        backend.cache.put(key, {"choices": [{"message": {"content": 12345}}]})
        (generation,) = backend.generate([request])
        assert server.stats.requests == 1
    assert json.loads(generation.text)["digest"] == digest(request)
    assert decode_completion(backend.cache.get(key)) == generation


def test_decoding_refuses_what_is_not_a_completion():
    good = {"choices": [{"message": {"content": None}, "finish_reason": "stop"}], "usage": None}
    assert decode_completion(good) == Generation("", "stop", {})
    for bad, problem in [
        ("text", "the reply is str 'text', expected an object"),
        ({"choices": {}}, "choices is dict {}, expected a list"),
        ({"choices": [{"message": "hi"}]}, "choices[0].message is str 'hi', expected an object"),
        ({**good, "usage": 3}, "usage is int 3, expected an object"),
    ]:
        with pytest.raises(UnusableCompletion) as caught:
            decode_completion(bad)
        assert str(caught.value) == problem


def test_the_environments_proxy_is_used_unless_no_proxy_exempts_the_host(monkeypatch):
    """The deadline transport replaces httpx's default one, so it looks proxies up itself."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        for variant in (name, name.lower()):
            monkeypatch.delenv(variant, raising=False)
    assert environment_proxy("https://api.example.com/v1") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,internal.example.com")
    assert environment_proxy("https://api.example.com/v1") == "http://proxy:3128"
    assert environment_proxy("https://internal.example.com/v1") is None
    assert environment_proxy("http://api.example.com/v1") is None


def test_api_key_comes_from_the_named_variable_and_loopback_needs_none(monkeypatch):
    monkeypatch.delenv("MY_KEY", raising=False)
    hosted = dict(backend="openai", model="gpt", api_key_env="MY_KEY", response_cache_dir="unused")
    with pytest.raises(ValueError, match="needs an API key for https://api.example.com/v1: .*MY_"):
        OpenAIBackend(BackendSettings(**hosted, base_url="https://api.example.com/v1"))
    for url in ("http://127.0.0.1:9/v1", "http://localhost:9/v1", "http://[::1]:9/v1"):
        assert OpenAIBackend(BackendSettings(**hosted, base_url=url)).client.api_key == "EMPTY"
    monkeypatch.setenv("MY_KEY", "sk-test")
    backend = OpenAIBackend(BackendSettings(**hosted, base_url="https://api.example.com/v1"))
    assert backend.client.api_key == "sk-test"


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv("TASKMEM_BENCH_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root(None) == tmp_path / "xdg" / "taskmem-bench" / "openai"
    monkeypatch.setenv("TASKMEM_BENCH_CACHE", str(tmp_path / "bench"))
    assert cache_root(None) == tmp_path / "bench" / "openai"
    assert cache_root(str(tmp_path / "mine")) == tmp_path / "mine"


def test_registered_as_openai():
    settings = BackendSettings(backend="openai", model=MODEL, base_url="http://127.0.0.1:9/v1")
    assert isinstance(get_backend(settings), OpenAIBackend)


def test_separate_reasoning_is_put_back_as_a_think_block():
    payload = {
        "choices": [
            {
                "message": {"content": "B", "reasoning_content": "two apples"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 4, "completion_tokens": 6, "prompt_tokens_details": None},
    }
    generation = decode_completion(payload)
    assert (generation.thinking, generation.answer) == ("two apples", "B")
    assert generation.usage == {"prompt_tokens": 4, "completion_tokens": 6}


def test_server_lists_its_model_and_rejects_malformed_requests():
    with ChatServer(EchoBackend()) as server:
        with urllib.request.urlopen(f"{server.url}/models") as answer:
            assert [m["id"] for m in json.load(answer)["data"]] == [MODEL]
        bad = urllib.request.Request(f"{server.url}/chat/completions", data=b'{"model": 1}')
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(bad)
        assert caught.value.code == 400
        assert "'model' (a string)" in json.load(caught.value)["error"]["message"]


def test_served_tiny_qwen3_vl_answers_as_the_transformers_backend(tiny_vl_model, tmp_path):
    """The tiny Qwen3-VL behind the loopback server, through the real transformers backend,
    gives byte-identical generations (text, finish reason, usage) over HTTP and directly,
    greedy and seeded sampling alike, for text, image and video requests (a one-frame video
    too, which the wire sends as two copies of its frame)."""
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    video = VideoPart(frames, np.array([3000, 3010, 3020, 3030]) / 10.0, source_fps=10.0)
    image = ImagePart(rng.integers(0, 256, size=(24, 24, 3), dtype=np.uint8))
    requests = [
        ChatRequest((Message.text("user", "Describe the room."),), Sampling(max_new_tokens=12)),
        ChatRequest(
            (
                Message.text("system", "You watch a stream."),
                Message("user", (video, TextPart("What happens?"))),
            ),
            Sampling(max_new_tokens=12),
        ),
        ChatRequest(
            (Message("user", (image, TextPart("Say what you see."))),),
            Sampling(max_new_tokens=12, temperature=0.8, top_p=0.9, seed=5),
        ),
        ChatRequest(
            (Message("user", (VideoPart(frames[:1], np.array([42.0]), 10.0), TextPart("Now?"))),),
            Sampling(max_new_tokens=12),
        ),
    ]
    settings = BackendSettings(backend="transformers", model=str(tiny_vl_model), device="cpu")
    direct = get_backend(settings)
    expected = [direct.generate([request])[0] for request in requests]
    with ChatServer(direct) as server:
        served = OpenAIBackend(
            BackendSettings(backend="openai", model=str(tiny_vl_model), base_url=server.url,
                           response_cache_dir=str(tmp_path))
        )
        assert served.generate(requests) == expected
    assert len({g.text for g in expected}) == len(requests)


def test_a_mini_run_through_the_server_matches_the_transformers_run(
    tiny_vl_model, mini_cache, tmp_path, monkeypatch
):
    """The issue's acceptance run: ``caption``, ``caption-window`` and ``summary`` with the
    ``paper`` reader on ``mini`` through the real transformers classes; the same run through
    the ``openai`` backend and the loopback server writes identical rows (every column) and
    identical memory (greedy decoding)."""
    import polars as pl

    from taskmem_bench.cli import main

    policies = ("caption", "caption-window", "summary")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    common = [
        "run", "--task", "mini", "--policy", ",".join(policies), "--reader", "paper",
        "--limit", "1", "--set", "episodes=1", "--set", "episode_seconds=30",
        "--set", "max_side=64", "--set", "sample_fps=1", "--set", "tokens_per_clip=none",
        "--set", "max_new_tokens=6", "--set", f"model={tiny_vl_model}",
    ]
    settings = BackendSettings(backend="transformers", model=str(tiny_vl_model), device="cpu")
    assert main([*common, "--out", str(tmp_path / "direct"), "--set", "device=cpu"]) == 0
    with ChatServer(get_backend(settings)) as server:
        served = ["--set", "backend=openai", "--set", f"base_url={server.url}",
                  "--set", f"response_cache_dir={tmp_path / 'cache'}"]
        assert main([*common, "--out", str(tmp_path / "served"), *served]) == 0

    def outputs(run: str, policy: str) -> tuple[pl.DataFrame, list[str]]:
        folder = tmp_path / run / "mini" / policy
        rows = pl.read_parquet(folder / "rows.parquet").sort("question_id")
        memory = [p.read_text() for p in sorted((folder / "memory").glob("*.jsonl"))]
        return rows, memory

    for policy in policies:
        manifest = json.loads((tmp_path / "direct" / "mini" / policy / "manifest.json").read_text())
        assert manifest["backends"]["policy"] == manifest["backends"]["reader"]  # one copy
        assert manifest["backends"]["policy"]["backend"] == "transformers"
        assert manifest["backends"]["policy"]["files_sha256"]
        rows, memory = outputs("direct", policy)
        assert rows.height and rows["raw_output"].null_count() == 0 and all(memory)
        assert rows["failure"].null_count() == rows.height
        served_rows, served_memory = outputs("served", policy)
        assert served_rows.equals(rows), policy
        assert served_memory == memory, policy
    assert server.stats.requests > 3 * rows.height  # memorizing and answering went over HTTP
