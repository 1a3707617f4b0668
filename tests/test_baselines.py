"""The baseline memorization policies: prompts, reply parsing, windows, cadences and batching.
End-to-end runs of every shipped baseline are in ``test_hardening_baselines.py``."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from baselines.caption import (
    NO_PRECEDING,
    WINDOW_INSTRUCTIONS,
    CaptionPolicy,
    CaptionWindowPolicy,
)
from baselines.episodic import SEMANTIC_PROMPT, EpisodicSemanticPolicy
from baselines.prompting import CAPTION_PROMPT, parse_description, parse_list
from baselines.subtitles import SubtitlesPolicy
from baselines.summary import NO_SUMMARY, SummaryPolicy
from taskmem_bench.backends import (
    Backend,
    BackendSettings,
    ChatRequest,
    Generation,
    TextPart,
    VideoPart,
    get_backend,
)
from taskmem_bench.memory import MemoryEntry, count_tokens, render_time
from taskmem_bench.model_policy import GenerationConfig, ModelPolicy
from taskmem_bench.policy import load_policy
from taskmem_bench.schema import Clip, MemoryBudget, StreamInfo, TextEvent
from taskmem_bench.taskconfig import ConfigError, validate

MODEL_POLICIES = (CaptionPolicy, CaptionWindowPolicy, SummaryPolicy, EpisodicSemanticPolicy)


class ScriptedBackend(Backend):
    """Stands in for the model so a test can script its replies: ``reply(request)`` gives each
    reply (settable per test), ``calls`` records every ``generate`` call's requests, and
    ``fail`` makes the next call raise, as a model that runs out of memory would."""

    name = "scripted"

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self.calls: list[list[ChatRequest]] = []
        self.reply: Callable[[ChatRequest], str] = digest_reply
        self.fail = False

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        self.calls.append(list(requests))
        if self.fail:
            self.fail = False
            raise RuntimeError("scripted failure")
        return [Generation(self.reply(r)) for r in requests]


def text_of(request: ChatRequest) -> str:
    return "".join(p.text for m in request.messages for p in m.content if isinstance(p, TextPart))


def video_of(request: ChatRequest) -> VideoPart | None:
    videos = [p for m in request.messages for p in m.content if isinstance(p, VideoPart)]
    assert len(videos) <= 1
    return videos[0] if videos else None


def fingerprint(request: ChatRequest) -> tuple:
    """What a request asks, comparable across runs (a VideoPart itself compares by identity)."""
    video = video_of(request)
    times = None if video is None else tuple(video.timestamps.tolist())
    pixels = None if video is None else hashlib.sha256(video.frames.tobytes()).hexdigest()
    return text_of(request), times, pixels, request.sampling


def digest_reply(request: ChatRequest) -> str:
    """A reply that depends on everything the request holds, as a model's would."""
    digest = hashlib.sha256(repr(fingerprint(request)).encode()).hexdigest()[:8]
    return f'<think>looking</think>{{"description": "saw {digest}"}}'


@pytest.fixture
def scripted(request: pytest.FixtureRequest) -> tuple[dict[str, str], ScriptedBackend]:
    """Backend settings naming a fresh scripted backend, and that backend."""
    settings = {"backend": f"{__name__}:ScriptedBackend", "model": request.node.nodeid}
    backend = get_backend(BackendSettings(**settings))
    assert isinstance(backend, ScriptedBackend)
    return settings, backend


def info(stream_id: str, fps: float | None = 10.0) -> StreamInfo:
    return StreamInfo(
        stream_id=stream_id, fps=fps, duration=None, clip_seconds=10.0, sample_fps=2.0,
        side_channels=("speech", "ocr"), budget=MemoryBudget(),
    )


def clip(
    stream_id: str, index: int, t0: float, t1: float, text: tuple[TextEvent, ...] = ()
) -> Clip:
    """A clip sampled at 2 fps; each frame's pixels code its stream, clip and frame."""
    times = np.arange(np.ceil(t0 * 2), np.ceil(t1 * 2)) / 2
    frames = np.zeros((len(times), 4, 4, 3), np.uint8)
    frames[:, 0, 0, 0] = index
    frames[:, 0, 0, 1] = np.arange(len(times))
    frames[:, 0, 0, 2] = sum(map(ord, stream_id)) % 256
    return Clip(stream_id, index, t0, t1, frames, times, text)


def clips_of(stream_id: str, bounds: Sequence[float]) -> list[Clip]:
    return [clip(stream_id, k, a, b) for k, (a, b) in enumerate(zip(bounds, bounds[1:]))]


def make(cls: type[ModelPolicy], settings: dict[str, str], seed: int = 0, **fields) -> ModelPolicy:
    return cls(cls.Config(**settings, **fields), seed=seed)


# -- registration and configs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [("caption", CaptionPolicy), ("caption-window", CaptionWindowPolicy),
     ("subtitles", SubtitlesPolicy), ("summary", SummaryPolicy),
     ("episodic-semantic", EpisodicSemanticPolicy)],
)
def test_policies_are_registered_with_documented_frozen_configs(name: str, cls: type) -> None:
    assert load_policy(name) is cls and cls.name == name and cls.version
    config = cls.Config()
    assert dataclasses.is_dataclass(config) and cls.Config.__doc__
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.model = "x"  # type: ignore[misc]
    if cls is not SubtitlesPolicy:
        assert isinstance(config, BackendSettings) and isinstance(config, GenerationConfig)
        assert config.temperature == 0 and config.max_new_tokens >= 1


def test_configs_take_set_values_and_name_bad_ones() -> None:
    config = validate(
        CaptionWindowPolicy.Config,
        {"window_seconds": "30", "model": "/m", "max_new_tokens": "64", "temperature": "0.7"},
        "policy",
    )
    assert (config.window_seconds, config.model, config.max_new_tokens, config.temperature) == (
        30.0, "/m", 64, 0.7,
    )
    with pytest.raises(ConfigError, match="window_seconds must be positive"):
        validate(CaptionWindowPolicy.Config, {"window_seconds": 0}, "policy")
    with pytest.raises(ConfigError, match="every_clips"):
        validate(SummaryPolicy.Config, {"every_clips": 0}, "policy")
    with pytest.raises(ConfigError, match="semantic_every"):
        validate(EpisodicSemanticPolicy.Config, {"semantic_every": 0}, "policy")
    subtitles = validate(SubtitlesPolicy.Config, {"channels": ["speech"]}, "policy")
    assert subtitles.channels == ("speech",)


# -- caption ----------------------------------------------------------------------------------


def test_caption_sends_each_clip_as_a_video_with_its_side_text_in_one_call(scripted) -> None:
    settings, backend = scripted
    backend.reply = lambda r: "<think>a cup? no, a mug</think>\n A red mug on a table. "
    policy = make(CaptionPolicy, settings)
    for s in ("a", "b", "c"):
        policy.start_stream(info(s, fps=None if s == "c" else 10.0))
    speech = (TextEvent("speech", 3.0, 4.0, "Ann: hello"), TextEvent("ocr", 5.0, 6.0, "EXIT"))
    batch = [clip("a", 0, 0.0, 10.0, speech), clip("b", 0, 0.0, 10.0), clip("c", 3, 30.0, 37.5)]
    results = policy.observe(batch)

    assert len(backend.calls) == 1 and len(backend.calls[0]) == 3
    for request, c, fps in zip(backend.calls[0], batch, (10.0, 10.0, 2.0)):
        assert [m.role for m in request.messages] == ["user"]
        video = video_of(request)
        assert video is not None
        np.testing.assert_array_equal(video.frames, c.frames)
        np.testing.assert_array_equal(video.timestamps, c.timestamps)
        assert video.source_fps == fps  # the native rate, or the sample rate when unknown
        expected = CAPTION_PROMPT.format(start=render_time(c.t_start), end=render_time(c.t_end))
        assert text_of(request).startswith(expected)
    assert video_of(backend.calls[0][2]).frame_indices == list(range(60, 75))  # 30-37 s at 2 fps
    assert "[speech] Ann: hello\n[ocr] EXIT" in text_of(backend.calls[0][0])
    assert "[speech]" not in text_of(backend.calls[0][1])
    mug = "A red mug on a table."
    assert results == [[MemoryEntry(c.t_start, c.t_end, mug, "caption")] for c in batch]


def test_a_text_only_clip_is_sent_without_video_and_an_empty_reply_writes_nothing(
    scripted,
) -> None:
    settings, backend = scripted
    backend.reply = lambda r: "<think>nothing to say"  # unclosed thinking: no answer
    policy = make(CaptionPolicy, settings)
    policy.start_stream(info("a"))
    text_only = Clip("a", 0, 0.0, 10.0, np.empty((0, 0, 0, 3), np.uint8), np.empty(0),
                     (TextEvent("speech", 1.0, 2.0, "Bob: hi"),))
    assert policy.observe([text_only]) == [[]]
    (request,) = backend.calls[0]
    assert video_of(request) is None and "[speech] Bob: hi" in text_of(request)


def test_sampling_settings_and_seeds_are_reproducible_per_stream_and_clip(scripted) -> None:
    settings, backend = scripted

    def seeds(seed: int, batch: list[Clip]) -> list[int]:
        policy = make(CaptionPolicy, settings, seed=seed, temperature=0.8, max_new_tokens=33)
        for s in {c.stream_id for c in batch}:
            policy.start_stream(info(s))
        policy.observe(batch)
        sampling = [r.sampling for r in backend.calls[-1]]
        assert all((s.temperature, s.max_new_tokens) == (0.8, 33) for s in sampling)
        return [s.seed for s in sampling]

    batch = [clip("a", 0, 0.0, 10.0), clip("b", 0, 0.0, 10.0), clip("c", 1, 10.0, 20.0)]
    first = seeds(7, batch)
    assert len(set(first)) == 3  # streams and clips get their own seeds
    assert seeds(7, batch) == first  # a rerun samples the same
    assert seeds(7, batch[::-1]) == first[::-1]  # batching does not change a clip's seed
    assert seeds(8, batch) != first  # the run's seed matters


# -- reply parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "description", "error"),
    [
        ('{"description": "Ann waves."}', "Ann waves.", False),
        ('```json\n{"description": "Ann waves."}\n```', "Ann waves.", False),
        ('Here it is:\n```\n{"description": "Ann waves."}\n```\nDone.', "Ann waves.", False),
        ('Sure. {"description": "Ann waves."}', "Ann waves.", False),
        ('{"description": "A sign reads {OPEN}.", "extra": {"k": [1]}}', "A sign reads {OPEN}.",
         False),
        ('{"description": "first"}\n{"description": "second"}', "second", False),
        ('{"description": "Hi."} Hope it helps', '{"description": "Hi."} Hope it helps', True),
        ("Ann waves at Bob.", "Ann waves at Bob.", True),
        ('{"summary": "Ann waves."}', '{"summary": "Ann waves."}', True),
        ('{"description": "  "}', '{"description": "  "}', True),
        ('{"description": "Ann', '{"description": "Ann', True),
        ("", "", True),
    ],
)
def test_parse_description(answer: str, description: str, error: bool) -> None:
    assert parse_description(answer) == (description, error)


@pytest.mark.parametrize(
    ("answer", "items", "error"),
    [
        ('["Ann is a cook.", "The keys are kept in the drawer."]',
         ["Ann is a cook.", "The keys are kept in the drawer."], False),
        ('```json\n["a", "b", "c", "d"]\n```', ["a", "b", "c"], False),
        ("Facts:\n- Ann is a cook.\n2. Bob wears glasses.\n\n* The room is a kitchen.\n- extra",
         ["Ann is a cook.", "Bob wears glasses.", "The room is a kitchen."], True),
        ('[1, 2]', ["[1, 2]"], True),
        ("", [], True),
    ],
)
def test_parse_list(answer: str, items: list[str], error: bool) -> None:
    assert parse_list(answer, 3) == (items, error)


# -- caption-window ---------------------------------------------------------------------------

BOUNDS = (0.0, 10.0, 12.5, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 90.0)


def test_window_holds_the_last_50_seconds_and_the_policys_own_descriptions(scripted) -> None:
    settings, backend = scripted
    outputs: list[str] = []

    def reply(request: ChatRequest) -> str:
        n = len(outputs)
        outputs.append("Ann waves, no JSON." if n == 4 else f"d{n} written")
        return outputs[-1] if n == 4 else f'<think>x</think>{{"description": "{outputs[-1]}"}}'

    backend.reply = reply
    policy = make(CaptionWindowPolicy, settings)
    policy.start_stream(info("s"))
    clips = clips_of("s", BOUNDS)
    written = []
    for k, c in enumerate(clips):
        (entries,) = policy.observe([c])
        written.append(entries)
        (request,) = backend.calls[-1]
        start = c.t_end - 50.0
        in_window = [j for j in range(k) if clips[j].t_end > start]
        video = video_of(request)
        expected_times = np.concatenate([x.timestamps for x in clips[: k + 1]])
        np.testing.assert_array_equal(video.timestamps, expected_times[expected_times >= start])
        assert video.timestamps[-1] == c.timestamps[-1]
        text = text_of(request)
        shown = re.findall(r"^(\d\d:\d\d:\d\d-\d\d:\d\d:\d\d) (.*)$", text, re.M)
        assert shown == [
            (f"{render_time(clips[j].t_start)}-{render_time(clips[j].t_end)}", outputs[j])
            for j in in_window
        ]
        if not in_window:
            assert NO_PRECEDING in text
        new = f"the new segment runs from {render_time(c.t_start)} to {render_time(c.t_end)}"
        assert new in text
        assert text.endswith(WINDOW_INSTRUCTIONS)
        # bounded: only clips overlapping the current window are kept
        assert len(policy.states["s"]) == len(in_window) + 1

    assert written[4] == [
        MemoryEntry(30.0, 40.0, "Ann waves, no JSON.", "description", {"format_error": True})
    ]
    assert written[5] == [
        MemoryEntry(40.0, 50.0, "d5 written", "description", {"format_error": False})
    ]
    # a clip cut short (70-75 s) keeps the 50 s window, trimmed inside an earlier clip
    np.testing.assert_array_equal(video_of(backend.calls[8][0]).timestamps[:2], [25.0, 25.5])


def test_windows_of_streams_in_one_batch_stay_apart(scripted) -> None:
    settings, backend = scripted
    policy = make(CaptionWindowPolicy, settings, window_seconds=20.0)
    a, b = clips_of("a", (0.0, 10.0, 20.0, 30.0)), clips_of("b", (0.0, 10.0, 20.0, 30.0))
    for s in ("a", "b"):
        policy.start_stream(info(s))
    for pair in zip(a, b):
        policy.observe(list(pair))
    request_a, request_b = backend.calls[-1]
    assert (video_of(request_a).frames[:, 0, 0, 2] == sum(map(ord, "a")) % 256).all()
    assert (video_of(request_b).frames[:, 0, 0, 2] == sum(map(ord, "b")) % 256).all()
    np.testing.assert_array_equal(video_of(request_a).timestamps, np.arange(20, 60) / 2)
    assert text_of(request_a).count("saw ") == 1  # the one earlier clip of its own stream


# -- summary ----------------------------------------------------------------------------------


def test_summary_is_rewritten_every_k_clips_within_its_token_budget(scripted) -> None:
    settings, backend = scripted
    long_summary = " ".join(f"word{i}" for i in range(40))

    def reply(request: ChatRequest) -> str:
        if video_of(request) is not None:
            return f"caption of {video_of(request).timestamps[0]:g}"
        return long_summary if NO_SUMMARY in text_of(request) else "<think>merge</think>Short."

    backend.reply = reply
    policy = make(SummaryPolicy, settings, every_clips=3, summary_tokens=10)
    policy.start_stream(info("s"))
    clips = clips_of("s", (5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0))
    written = [policy.observe([c])[0] for c in clips]

    assert [len(call) for call in backend.calls] == [1, 1, 1, 2, 1, 1, 2]  # one call per observe
    first, second = text_of(backend.calls[3][1]), text_of(backend.calls[6][1])
    assert video_of(backend.calls[3][1]) is None  # the rewrite is text-only
    assert NO_SUMMARY in first and "00:00:05-00:00:10 caption of 5\n" in first
    assert "00:00:20-00:00:30 caption of 20" in first and "caption of 30" not in first
    assert "words" in first and "word0" not in first
    cut = " ".join(f"word{i}" for i in range(10))
    assert f"Summary so far:\n{cut}\n" in second and "caption of 30" in second
    assert "caption of 20" not in second and "caption of 60" not in second
    assert written == [
        [], [], [], [MemoryEntry(5.0, 30.0, cut, "summary", {"truncated": True})],
        [], [], [MemoryEntry(5.0, 60.0, "Short.", "summary", {"truncated": False})],
    ]
    assert count_tokens(cut) == 10


# -- episodic-semantic -----------------------------------------------------------------------


def test_episodic_entry_per_clip_and_semantic_facts_every_k_clips(scripted) -> None:
    settings, backend = scripted
    replies = iter([
        '["Ann is a cook.", "The keys live in the drawer.", "The room is a kitchen.", "extra"]',
        "- Bob wears glasses.\n- Bob is Ann's brother.",
    ])

    def reply(request: ChatRequest) -> str:
        video = video_of(request)
        return f"event at {video.timestamps[0]:g}" if video is not None else next(replies)

    backend.reply = reply
    policy = make(EpisodicSemanticPolicy, settings, semantic_every=2)
    policy.start_stream(info("s"))
    clips = clips_of("s", (0.0, 10.0, 20.0, 30.0, 40.0, 50.0))
    written = [policy.observe([c])[0] for c in clips]

    assert [len(call) for call in backend.calls] == [1, 1, 2, 1, 2]
    semantic = text_of(backend.calls[2][1])
    assert semantic.startswith(SEMANTIC_PROMPT.split("{")[0])
    assert semantic.endswith("00:00:00-00:00:10 event at 0\n00:00:10-00:00:20 event at 10")
    assert text_of(backend.calls[4][1]).endswith(
        "00:00:20-00:00:30 event at 20\n00:00:30-00:00:40 event at 30"
    )
    for c, entries in zip(clips, written):
        assert MemoryEntry(c.t_start, c.t_end, f"event at {c.t_start:g}", "episodic") in entries
    assert written[2][:3] == [
        MemoryEntry(0.0, 20.0, fact, "semantic", {"format_error": False})
        for fact in ("Ann is a cook.", "The keys live in the drawer.", "The room is a kitchen.")
    ]
    assert written[4][:2] == [
        MemoryEntry(20.0, 40.0, fact, "semantic", {"format_error": True})
        for fact in ("Bob wears glasses.", "Bob is Ann's brother.")
    ]
    assert [len(e) for e in written] == [1, 1, 4, 1, 3]


# -- subtitles --------------------------------------------------------------------------------


def test_subtitles_keep_the_chosen_channels_and_skip_clips_without_text() -> None:
    lines = (TextEvent("speech", 1.0, 2.0, "Ann: hello"), TextEvent("ocr", 2.0, 3.0, "EXIT"),
             TextEvent("speech", 4.0, 5.0, "Bob: hi"))
    batch = [clip("a", 0, 0.0, 10.0, lines), clip("b", 0, 0.0, 10.0),
             clip("c", 0, 0.0, 10.0, lines[1:2])]
    everything = SubtitlesPolicy()
    speech = SubtitlesPolicy(SubtitlesPolicy.Config(channels=("speech",)))
    for policy in (everything, speech):
        for s in "abc":
            policy.start_stream(info(s))
    ann, exit_sign, bob = (MemoryEntry(1.0, 2.0, "Ann: hello", "speech"),
                           MemoryEntry(2.0, 3.0, "EXIT", "ocr"),
                           MemoryEntry(4.0, 5.0, "Bob: hi", "speech"))
    assert everything.observe(batch) == [[ann, exit_sign, bob], [], [exit_sign]]
    assert speech.observe(batch) == [[ann, bob], [], []]


# -- batching and failures, for every model policy -------------------------------------------


@pytest.mark.parametrize("cls", MODEL_POLICIES)
def test_each_observe_batch_is_one_generate_call(cls: type[ModelPolicy], scripted) -> None:
    settings, backend = scripted
    policy = make(cls, settings)
    streams = {s: clips_of(s, (0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0)) for s in "abcd"}
    for s in streams:
        policy.start_stream(info(s))
    for k in range(6):
        batch = [streams[s][k] for s in "abcd"]
        results = policy.observe(batch)
        assert len(results) == 4 and len(backend.calls) == k + 1
        first = backend.calls[-1][:4]  # one request per clip with its video, in batch order
        assert [video_of(r).timestamps[-1] for r in first] == [c.timestamps[-1] for c in batch]
    for s in streams:
        policy.end_stream(s)
    assert not policy.info


@pytest.mark.parametrize("cls", MODEL_POLICIES)
def test_a_raising_batch_commits_no_state(cls: type[ModelPolicy], scripted) -> None:
    """A run whose third batch raises once and is retried gives the same requests and memory
    as a run where nothing failed."""
    settings, backend = scripted

    def run(fail_at: int | None) -> tuple[list, list]:
        policy = make(cls, settings, every_clips=2) if cls is SummaryPolicy else make(cls, settings)
        streams = {s: clips_of(s, (0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0)) for s in "ab"}
        for s in streams:
            policy.start_stream(info(s))
        backend.calls.clear()
        written = []
        for k in range(7):
            batch = [streams["a"][k], streams["b"][k]]
            if k == fail_at:
                backend.fail = True
                with pytest.raises(RuntimeError, match="scripted failure"):
                    policy.observe(batch)
            written.append(policy.observe(batch))
        requests = [[fingerprint(r) for r in call] for call in backend.calls]
        if fail_at is not None:
            assert requests[fail_at] == requests[fail_at + 1]
            del requests[fail_at]
        return requests, written

    clean, failed = run(None), run(2)
    assert failed == clean
    assert any(entries for clip_entries in clean[1] for entries in clip_entries)
