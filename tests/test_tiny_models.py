"""The offline tiny-model kit: real architectures, loadable by the Auto classes, deterministic."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
)

from taskmem_bench.testing.tiny_models import build_tiny_model

# fixture -> (model class, processor class, video processor class)
VL_FIXTURES = {
    "tiny_vl_model": (
        "Qwen3VLForConditionalGeneration", "Qwen3VLProcessor", "Qwen3VLVideoProcessor"
    ),
    "tiny_vl_moe_model": (
        "Qwen3VLMoeForConditionalGeneration", "Qwen3VLProcessor", "Qwen3VLVideoProcessor"
    ),
    "tiny_qwen25_vl_model": (
        "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor", "Qwen2VLVideoProcessor"
    ),
}


@pytest.mark.parametrize("fixture", VL_FIXTURES)
def test_vl_kinds_load_with_the_auto_classes_and_agree_on_token_ids(fixture, request) -> None:
    folder = request.getfixturevalue(fixture)
    architecture, processor_class, video_processor_class = VL_FIXTURES[fixture]
    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder)
    assert type(model).__name__ == architecture
    assert type(processor).__name__ == processor_class
    assert type(processor.video_processor).__name__ == video_processor_class

    ids = processor.tokenizer.convert_tokens_to_ids
    config = model.config
    assert config.image_token_id == ids("<|image_pad|>") == processor.image_token_id
    assert config.video_token_id == ids("<|video_pad|>") == processor.video_token_id
    assert config.vision_start_token_id == ids("<|vision_start|>")
    assert config.text_config.vocab_size >= len(processor.tokenizer)
    assert processor.tokenizer.eos_token == "<|im_end|>"
    assert processor.tokenizer.pad_token == "<|endoftext|>"
    assert set(model.generation_config.eos_token_id) == {ids("<|im_end|>"), ids("<|endoftext|>")}
    # Patch and merge sizes of the processor are the vision tower's.
    vision = config.vision_config
    for sub in (processor.image_processor, processor.video_processor):
        assert (sub.patch_size, sub.merge_size, sub.temporal_patch_size) == (
            vision.patch_size,
            vision.spatial_merge_size,
            vision.temporal_patch_size,
        )


def test_text_kind_loads_as_a_causal_lm(tiny_text_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_text_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_text_model)
    assert type(model).__name__ == "Qwen3ForCausalLM"
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert not (tiny_text_model / "processor_config.json").exists()


def test_tokenizer_is_qwen_like(tiny_vl_model: Path) -> None:
    """Words stay words, control tokens are single tokens skipped on decoding, and the think
    tags survive decoding so thinking can be split from the answer."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_vl_model)
    assert 1000 <= len(tokenizer) <= 2048
    words = tokenizer.tokenize(" the woman walks into the kitchen")
    assert len(words) <= 7
    text = "<|im_start|>assistant\n<think>plan</think>Answer: C<|im_end|>"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert ids[-1] == tokenizer.eos_token_id
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    assert decoded == "assistant\n<think>plan</think>Answer: C"
    assert tokenizer.decode(tokenizer("façade ☕")["input_ids"]) == "façade ☕"  # byte-level


def test_chat_template_renders_string_and_multimodal_content(tiny_vl_model: Path) -> None:
    processor = AutoProcessor.from_pretrained(tiny_vl_model)
    conversation = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "video"},
                {"type": "text", "text": "Then "},
                {"type": "image"},
                {"type": "text", "text": "what?"},
            ],
        },
        {"role": "assistant", "content": "<think>hmm</think>\n\nA cup."},
        {"role": "user", "content": "And now?"},
    ]
    prompt = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Then "
        "<|vision_start|><|image_pad|><|vision_end|>what?<|im_end|>\n"
        "<|im_start|>assistant\nA cup.<|im_end|>\n"
        "<|im_start|>user\nAnd now?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    no_thinking = processor.apply_chat_template(
        conversation[-1:], tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    assert no_thinking.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_builds_are_deterministic(tiny_vl_model: Path, tmp_path: Path) -> None:
    again = build_tiny_model("qwen3-vl", tmp_path / "again", seed=0)
    other = build_tiny_model("qwen3-vl", tmp_path / "other", seed=1)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "processor_config.json"):
        assert (again / name).read_bytes() == (tiny_vl_model / name).read_bytes(), name
    assert (other / "model.safetensors").read_bytes() != (again / "model.safetensors").read_bytes()


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tiny model kind 'llama'"):
        build_tiny_model("llama", tmp_path)  # type: ignore[arg-type]


def test_command_line_writes_a_loadable_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m taskmem_bench.testing.tiny_models KIND OUT_DIR``, run the way ``-m`` runs it
    (runpy, as ``__main__``) but in this process, to spare a second import of torch."""
    out = tmp_path / "cli-model"
    monkeypatch.setattr(sys, "argv", ["tiny_models", "qwen3", str(out), "--seed", "3"])
    monkeypatch.delitem(sys.modules, "taskmem_bench.testing.tiny_models")  # as in a fresh process
    runpy.run_module("taskmem_bench.testing.tiny_models", run_name="__main__", alter_sys=True)
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    assert AutoConfig.from_pretrained(out).model_type == "qwen3"
    assert (out / "model.safetensors").read_bytes() == (
        build_tiny_model("qwen3", tmp_path / "same", seed=3) / "model.safetensors"
    ).read_bytes()
