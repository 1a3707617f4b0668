"""The ``transformers`` backend on tiny random Qwen models, through the real classes on CPU."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch

from taskmem_bench.backends import (
    BackendSettings,
    ChatRequest,
    ImagePart,
    Message,
    Sampling,
    TextPart,
    VideoPart,
    get_backend,
)
from taskmem_bench.backends.hf import TransformersBackend


def settings(model: Path | str, **more: object) -> BackendSettings:
    return BackendSettings(backend="transformers", model=str(model), device="cpu", dtype="float32",
                           **more)


def ask(text: str, max_new_tokens: int = 12, **sampling) -> ChatRequest:
    return ChatRequest((Message.text("user", text),), Sampling(max_new_tokens, **sampling))


def clip(t_start: float, seconds: float = 10.0, sample_fps: float = 2.0) -> VideoPart:
    """Random 64 x 48 frames sampled at ``sample_fps`` from a 10 fps source."""
    times = t_start + np.arange(int(seconds * sample_fps)) / sample_fps
    rng = np.random.default_rng(int(t_start))
    return VideoPart(rng.integers(0, 256, (len(times), 48, 64, 3), dtype=np.uint8), times, 10.0)


def watch(part: VideoPart | ImagePart, max_new_tokens: int = 12) -> ChatRequest:
    message = Message("user", (part, TextPart("What happens?")))
    system = Message.text("system", "You watch videos.")
    return ChatRequest((system, message), Sampling(max_new_tokens))


@pytest.fixture(scope="module")
def text_backend(tiny_text_model: Path) -> TransformersBackend:
    return TransformersBackend(settings(tiny_text_model))


@pytest.fixture(scope="module")
def vl_backend(tiny_vl_model: Path) -> TransformersBackend:
    return TransformersBackend(settings(tiny_vl_model))


def test_text_model_generates_with_usage_and_finish_reason(
    text_backend: TransformersBackend,
) -> None:
    requests = [ask("Where are the keys?", 8), ask("What did the woman put on the table?", 5)]
    generations = text_backend.generate(requests)
    assert len(generations) == 2
    prompts = text_backend.encode(requests)["attention_mask"]
    assert any(g.text.strip() for g in generations)
    for request, generation, prompt in zip(requests, generations, prompts, strict=True):
        usage = generation.usage
        assert usage["prompt_tokens"] == int(prompt.sum())
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert generation.finish_reason in ("stop", "length")
        if generation.finish_reason == "length":
            assert usage["completion_tokens"] == request.sampling.max_new_tokens
        else:
            assert usage["completion_tokens"] <= request.sampling.max_new_tokens
        assert "<|im_end|>" not in generation.text and "<|endoftext|>" not in generation.text


def test_batched_greedy_decoding_equals_one_request_at_a_time(
    text_backend: TransformersBackend, vl_backend: TransformersBackend
) -> None:
    """Left padding leaves greedy outputs unchanged: on this CPU in float32 a padded row's
    logits differ from the unpadded ones by ~1e-6 (logit spread ~1.4), far from flipping an
    argmax."""
    texts = [ask("hi"), ask("Where are the keys now, in the drawer or on the table? " * 3, 16)]
    assert text_backend.generate(texts) == [text_backend.generate([r])[0] for r in texts]

    image = ImagePart(clip(5.0).frames[0])
    mixed = [*texts, watch(clip(120.0)), watch(image), watch(clip(7.0, 3.0))]
    batched = vl_backend.generate(mixed)
    assert batched == [vl_backend.generate([r])[0] for r in mixed]
    assert len({g.text for g in batched}) > 1  # the inputs matter


@pytest.mark.parametrize("fixture", ["tiny_qwen25_vl_model", "tiny_vl_moe_model"])
def test_qwen25_vl_and_qwen3_vl_moe_load_and_generate(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    backend = TransformersBackend(settings(request.getfixturevalue(fixture)))
    requests = [watch(clip(30.0)), watch(ImagePart(clip(1.0).frames[0])), ask("hello", 6)]
    generations = backend.generate(requests)
    for generation, sent in zip(generations, requests, strict=True):
        assert generation.usage["completion_tokens"] <= sent.sampling.max_new_tokens
    assert any(g.text.strip() for g in generations)
    assert generations == [backend.generate([r])[0] for r in requests]


def test_qwen3_vl_timestamps_are_the_stream_times(vl_backend: TransformersBackend) -> None:
    """A clip at 120.0-129.5 s (2 fps from a 10 fps source) is shown at its stream times: each
    pair of frames merged by the temporal patch is stamped with its mean time."""
    part = clip(120.0)
    assert part.frame_indices[:3] == [1200, 1205, 1210]
    prompt = vl_backend.tokenizer.decode(vl_backend.encode([watch(part)])["input_ids"][0])
    stamps = re.findall(r"<(\d+\.\d) seconds>", prompt)
    expected = [f"{(a + b) / 2:.1f}" for a, b in zip(part.timestamps[::2], part.timestamps[1::2])]
    assert stamps == expected
    assert (stamps[0], stamps[-1]) == ("120.2", "129.2")


def test_a_single_frame_video_is_accepted(vl_backend: TransformersBackend) -> None:
    """Qwen3-VL's video processor refuses fewer frames than its temporal patch; the backend
    repeats the frame, as the processor itself pads odd counts."""
    part = VideoPart(clip(50.0).frames[:1], np.array([50.0]), 10.0)
    prompt = vl_backend.tokenizer.decode(vl_backend.encode([watch(part)])["input_ids"][0])
    assert re.findall(r"<(\d+\.\d) seconds>", prompt) == ["50.0"]
    assert vl_backend.generate([watch(part)])[0].usage["completion_tokens"] >= 1


def test_qwen25_vl_temporal_spacing_is_the_clip_rate(tiny_qwen25_vl_model: Path) -> None:
    """Qwen2.5-VL places frames in time by seconds per temporal patch: 2 frames at 2 fps = 1 s."""
    backend = TransformersBackend(settings(tiny_qwen25_vl_model))
    inputs = backend.encode([watch(clip(120.0)), watch(clip(10.0, sample_fps=1.0))])
    assert inputs["second_per_grid_ts"].tolist() == pytest.approx([1.0, 2.0])


def test_text_model_refuses_images_and_video(text_backend: TransformersBackend) -> None:
    text_only = r"request 1 has a VideoPart, but the model is text-only \(Qwen3ForCausalLM\)"
    with pytest.raises(ValueError, match=text_only):
        text_backend.generate([ask("hi"), watch(clip(0.0))])


def test_thinking_survives_decoding_and_is_split(tiny_text_model: Path) -> None:
    """A real Qwen3 with hand-set weights: its layers write nothing into the residual stream,
    so each next token is read off the current token's embedding, and the embeddings and output
    rows spell ``<think> kitchen</think> table<|im_end|>``."""
    backend = TransformersBackend(settings(tiny_text_model))
    model, tokenizer = backend.model, backend.tokenizer
    assert not model.config.tie_word_embeddings
    request = ask("Where is the cup?", 10)
    last_prompt_token = int(backend.encode([request])["input_ids"][0, -1])
    [kitchen] = tokenizer.encode(" kitchen", add_special_tokens=False)  # one token each
    [table] = tokenizer.encode(" table", add_special_tokens=False)
    think, unthink = tokenizer.convert_tokens_to_ids(["<think>", "</think>"])
    script = [last_prompt_token, think, kitchen, unthink, table, tokenizer.eos_token_id]
    hidden = model.config.hidden_size
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embeddings = model.get_input_embeddings().weight
        output = model.get_output_embeddings().weight
        for k, (current, following) in enumerate(zip(script, script[1:])):
            embeddings[current] = torch.eye(hidden)[k]
            output[following] = 10 * torch.eye(hidden)[k]

    generation = backend.generate([request])[0]
    assert generation.text == "<think> kitchen</think> table"
    assert (generation.thinking, generation.answer) == ("kitchen", "table")
    assert generation.finish_reason == "stop"
    assert generation.usage["completion_tokens"] == 5  # counting the end of turn, as OpenAI does


def test_sampling_is_reproducible_per_request_seed(text_backend: TransformersBackend) -> None:
    def sampled(seed: int) -> ChatRequest:
        return ask("Describe the kitchen.", 16, temperature=1.0, top_p=0.95, seed=seed)

    first = text_backend.generate([sampled(1)])[0]
    assert text_backend.generate([sampled(1)])[0] == first
    in_a_batch = text_backend.generate([sampled(7), sampled(1), sampled(2), ask("greedy")])
    assert in_a_batch[1] == first  # a sampled request does not depend on its batch-mates
    assert len({g.text for g in in_a_batch[:3]} | {first.text}) == 3
    greedy = text_backend.generate([ask("Describe the kitchen.", 16)])[0]
    assert greedy.text not in {g.text for g in in_a_batch[:3]}


def test_top_k_one_samples_the_greedy_text(text_backend: TransformersBackend) -> None:
    greedy = text_backend.generate([ask("Describe the kitchen.", 16)])[0]
    sampled = [ask("Describe the kitchen.", 16, temperature=1.5, seed=s, top_k=1) for s in (1, 2)]
    assert [g.text for g in text_backend.generate(sampled)] == [greedy.text] * 2
    unrestricted = ask("Describe the kitchen.", 16, temperature=1.5, seed=1)
    assert text_backend.generate([unrestricted])[0].text != greedy.text
    with pytest.raises(ValueError, match="invalid sampling"):
        Sampling(top_k=0)


def test_describe_identifies_the_model(
    vl_backend: TransformersBackend, tiny_vl_model: Path, tmp_path: Path
) -> None:
    described = vl_backend.describe()
    assert described | {"files_sha256": ""} == {
        "backend": "transformers",
        "model": str(tiny_vl_model),
        "path": str(tiny_vl_model.resolve()),
        "architecture": "Qwen3VLForConditionalGeneration",
        "dtype": "float32",
        "device": "cpu",
        "attn_implementation": "sdpa",
        "files_sha256": "",
    }
    assert re.fullmatch(r"[0-9a-f]{16}", described["files_sha256"])
    copy = shutil.copytree(tiny_vl_model, tmp_path / "copy")

    def files_hash() -> str:
        return TransformersBackend(settings(copy)).describe()["files_sha256"]

    assert files_hash() == described["files_sha256"]
    (copy / "chat_template.jinja").write_text("{{ messages[0].content }}")
    assert files_hash() != described["files_sha256"]


def test_attention_implementation_is_applied(
    vl_backend: TransformersBackend, tiny_vl_model: Path
) -> None:
    eager = TransformersBackend(
        BackendSettings(model=str(tiny_vl_model), device="cpu", attn_implementation="eager")
    )
    assert eager.describe()["attn_implementation"] == "eager"
    assert eager.describe()["dtype"] == "float32"  # "auto": as saved
    requests = [watch(clip(60.0)), ask("Where are the keys?")]
    assert eager.generate(requests) == vl_backend.generate(requests)


def test_registered_under_its_name_and_shared_per_settings(tiny_text_model: Path) -> None:
    backend = get_backend(settings(tiny_text_model))
    assert isinstance(backend, TransformersBackend)
    assert get_backend(settings(tiny_text_model)) is backend


def test_bad_models_fail_with_a_clear_error(
    tiny_text_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(FileNotFoundError, match="model directory '/no/such/model' does not exist"):
        TransformersBackend(settings("/no/such/model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is not a model directory: it has no config.json"):
        TransformersBackend(settings(tmp_path / "empty"))
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="is a file, not a model directory"):
        TransformersBackend(settings(tmp_path / "weights.bin"))
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text('{"hidden_size": 4}')
    with pytest.raises(ValueError, match="is not a transformers model"):
        TransformersBackend(settings(tmp_path / "odd"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    offline = "not a local directory, and the Hugging Face Hub is offline"
    with pytest.raises(FileNotFoundError, match=offline):
        TransformersBackend(settings("no-such-org/no-such-model"))
    with pytest.raises(ValueError, match="unknown dtype 'float33'"):
        TransformersBackend(BackendSettings(model=str(tiny_text_model), dtype="float33"))
    with pytest.raises(ValueError, match="needs a model"):
        TransformersBackend(BackendSettings(model=""))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_device_and_bfloat16_on_a_gpu(tiny_vl_model: Path) -> None:
    backend = TransformersBackend(
        BackendSettings(model=str(tiny_vl_model), dtype="bfloat16", device="auto")
    )
    assert backend.describe()["device"].startswith("cuda")
    assert backend.describe()["dtype"] == "bfloat16"
    requests = [watch(clip(120.0)), ask("hello", 6)]
    for generation in backend.generate(requests):
        assert generation.usage["completion_tokens"] >= 1


@pytest.mark.parametrize("kind", ["lora", "steering"])
def test_a_peft_adapter_folder_applies_to_every_request(
    vl_backend: TransformersBackend, tiny_vl_model: Path, tmp_path: Path, kind: str
) -> None:
    """``lora_path`` takes a PEFT folder: a LoRA, or TaskMem's steering vector (a BEFT bias on
    one layer's ``down_proj``). Non-zero adapter weights change what the model writes."""
    from peft import BeftConfig, LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_vl_model)
    if kind == "lora":
        config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    else:
        config = BeftConfig(target_modules=["language_model.layers.1.mlp.down_proj"])
    adapted = get_peft_model(base, config)
    with torch.no_grad():
        for name, p in adapted.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 2.0)
    adapted.save_pretrained(tmp_path / "adapter")
    backend = TransformersBackend(settings(tiny_vl_model, lora_path=str(tmp_path / "adapter")))
    request = ask("Describe the room.")
    assert backend.generate([request])[0].text != vl_backend.generate([request])[0].text
    assert backend.describe()["lora_path"] == str(tmp_path / "adapter")
    with pytest.raises(FileNotFoundError, match="not a PEFT adapter folder"):
        TransformersBackend(settings(tiny_vl_model, lora_path=str(tiny_vl_model)))
