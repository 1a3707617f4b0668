"""The ``vllm`` backend.

vLLM and a GPU are absent in CI, so the request conversion (messages to vLLM prompts through
the tiny models' real processors), the sampling and engine arguments and the adapter lookup
are tested on CPU; the engine itself runs only in the ``gpu`` tests, which skip without CUDA
and vLLM.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, AutoTokenizer
from transformers.video_utils import VideoMetadata

from taskmem_bench.backends import BackendSettings, get_backend
from taskmem_bench.backends.base import (
    ChatRequest,
    ImagePart,
    Message,
    Sampling,
    TextPart,
    VideoPart,
)
from taskmem_bench.backends.vllm_engine import (
    EngineAdapter,
    VLLMBackend,
    engine_args,
    load_adapter,
    sampling_params,
    vllm_prompt,
)
from taskmem_bench.plugins import UnknownPluginError

HAS_VLLM = importlib.util.find_spec("vllm") is not None
gpu = pytest.mark.skipif(
    not (HAS_VLLM and torch.cuda.is_available()), reason="needs vLLM and a CUDA GPU"
)

# Frames 300.0 s to 303.0 s into a 10 fps stream; Qwen3-VL merges frame pairs and prints
# each pair's mean time.
VIDEO = VideoPart(
    np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8),
    np.array([3000, 3010, 3020, 3030]) / 10.0,
    source_fps=10.0,
)
VIDEO_REQUEST = ChatRequest(
    (
        Message.text("system", "You watch a stream."),
        Message("user", (VIDEO, TextPart("What happens?"))),
    ),
    Sampling(max_new_tokens=8),
)


class ParameterCount(EngineAdapter):
    """An adapter that only looks at the model in vLLM's workers."""

    name = "parameter-count"

    def attach(self, llm: Any) -> None:
        self.counts = llm.apply_model(lambda model: sum(p.numel() for p in model.parameters()))

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.name, "parameters": self.counts}


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed")
def test_missing_vllm_names_the_extra():
    with pytest.raises(ImportError, match=r"pip install 'taskmem-bench\[vllm\]'"):
        get_backend(BackendSettings(backend="vllm", model="any"))


def test_video_prompts_carry_the_stream_times(tiny_vl_model: Path):
    """The prompt has the chat template's video placeholder and the metadata is what vLLM hands
    the HF processor (less ``do_sample_frames``), which prints the frames' stream times."""
    processor = AutoProcessor.from_pretrained(tiny_vl_model)
    prompt = vllm_prompt(VIDEO_REQUEST, processor)
    assert prompt["prompt"] == (
        "<|im_start|>system\nYou watch a stream.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>What happens?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    ((frames, metadata),) = prompt["multi_modal_data"]["video"]
    assert np.array_equal(frames, VIDEO.frames)
    assert metadata["fps"] == 10.0 and metadata["frames_indices"] == [3000, 3010, 3020, 3030]
    assert metadata["do_sample_frames"] is False
    assert prompt["mm_processor_kwargs"] == {"do_sample_frames": False}
    fields = {k: v for k, v in metadata.items() if k != "do_sample_frames"}
    inputs = processor(
        text=[prompt["prompt"]],
        videos=[frames],
        video_metadata=[VideoMetadata(**fields)],
        **prompt["mm_processor_kwargs"],
    )
    text = processor.tokenizer.decode(inputs["input_ids"][0])
    assert "<300.5 seconds>" in text and "<302.5 seconds>" in text


def test_images_go_in_prompt_order(tiny_vl_model: Path):
    processor = AutoProcessor.from_pretrained(tiny_vl_model)
    first, second = (np.full((16, 16, 3), value, np.uint8) for value in (255, 9))
    request = ChatRequest((Message("user", (ImagePart(first), TextPart("and"), ImagePart(second))),))
    prompt = vllm_prompt(request, processor)
    assert prompt["prompt"].count("<|image_pad|>") == 2 and "mm_processor_kwargs" not in prompt
    assert [np.asarray(i)[0, 0, 0] for i in prompt["multi_modal_data"]["image"]] == [255, 9]


def test_text_models_get_plain_messages(tiny_text_model: Path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_text_model)
    request = ChatRequest((Message("user", (TextPart("one "), TextPart("two"))),))
    assert vllm_prompt(request, tokenizer) == {
        "prompt": "<|im_start|>user\none two<|im_end|>\n<|im_start|>assistant\n"
    }
    with pytest.raises(ValueError, match="message 1 has media, but the model is text-only"):
        vllm_prompt(VIDEO_REQUEST, tokenizer)


def test_sampling_maps_one_to_one():
    assert sampling_params(Sampling(max_new_tokens=5, temperature=0.7, top_p=0.9, seed=3)) == {
        "max_tokens": 5, "temperature": 0.7, "top_p": 0.9, "seed": 3
    }
    assert sampling_params(Sampling(temperature=0.6, top_k=20))["top_k"] == 20


def test_engine_arguments(tmp_path: Path):
    settings = BackendSettings(backend="vllm", model="m", dtype="bfloat16", max_model_len=8192)
    assert engine_args(settings, multimodal=True) == {
        "model": "m",
        "dtype": "bfloat16",
        "gpu_memory_utilization": 0.9,
        "tensor_parallel_size": 1,
        "max_model_len": 8192,
        "limit_mm_per_prompt": {"image": 8, "video": 1},
    }
    assert "limit_mm_per_prompt" not in engine_args(settings, multimodal=False)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 32, "lora_alpha": 64}))
    lora = BackendSettings(backend="vllm", model="m", lora_path=str(tmp_path))
    lora_args = engine_args(lora, multimodal=False)
    assert {k: lora_args[k] for k in ("enable_lora", "max_loras", "max_lora_rank")} == {
        "enable_lora": True, "max_loras": 1, "max_lora_rank": 32
    }
    with pytest.raises(ValueError, match="is not a PEFT LoRA adapter folder"):
        engine_args(BackendSettings(backend="vllm", model="m", lora_path=str(tmp_path / "no")),
                    multimodal=False)


def test_adapters_load_by_module_path():
    assert load_adapter("test_backend_vllm:ParameterCount") is ParameterCount
    with pytest.raises(UnknownPluginError, match="not a EngineAdapter subclass"):
        load_adapter("test_backend_vllm:BackendSettings")


class _OneCallEngine:
    """Stands for ``vllm.LLM``: its first ``generate`` waits for ``release``, and it counts the
    calls inside it at once."""

    def __init__(self, **engine_args: Any) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.inside = self.most_inside = 0

    def generate(self, prompts, params, *, lora_request, use_tqdm):
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        self.entered.set()
        self.release.wait(30)
        self.inside -= 1
        completion = SimpleNamespace(text="ok", finish_reason="stop", token_ids=[1])
        return [SimpleNamespace(outputs=[completion], prompt_token_ids=[1, 2]) for _ in prompts]


def test_the_engine_gets_one_generate_call_at_a_time(monkeypatch):
    """``LLM.generate`` is not thread-safe, and a policy and a reader share one engine: a call
    the runner abandoned after call_timeout_s may still run when the other component calls."""
    from taskmem_bench.backends import vllm_engine

    template = SimpleNamespace(apply_chat_template=lambda conversation, **kw: "prompt")
    monkeypatch.setattr(vllm_engine, "_import_vllm",
                        lambda: SimpleNamespace(LLM=_OneCallEngine, SamplingParams=dict))
    monkeypatch.setattr(vllm_engine.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(vllm_engine.AutoProcessor, "from_pretrained", lambda name: template)
    backend = VLLMBackend(BackendSettings(backend="vllm", model="text-model"))
    request = [ChatRequest((Message.text("user", "hi"),), Sampling(max_new_tokens=4))]
    first = threading.Thread(target=backend.generate, args=(request,))
    second = threading.Thread(target=backend.generate, args=(request,))
    first.start()
    assert backend.llm.entered.wait(30)
    second.start()
    second.join(0.5)  # without the lock it is inside the engine by now
    backend.llm.release.set()
    first.join(30)
    second.join(30)
    assert backend.llm.most_inside == 1


@pytest.mark.gpu
@gpu
def test_engine_generates_in_order_with_per_request_seeds(tiny_vl_model: Path, monkeypatch):
    monkeypatch.setenv("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")  # apply_model ships a lambda
    backend = VLLMBackend(
        BackendSettings(
            backend="vllm",
            model=str(tiny_vl_model),
            max_model_len=4096,
            gpu_memory_utilization=0.3,
            adapter="test_backend_vllm:ParameterCount",
        )
    )
    assert backend.describe()["adapter"]["parameters"][0] > 0
    sampled = [
        ChatRequest((Message.text("user", "Describe the room."),),
                    Sampling(max_new_tokens=12, temperature=1.0, seed=seed))
        for seed in (1, 2, 1)
    ]
    generations = backend.generate([VIDEO_REQUEST, *sampled])
    assert len(generations) == 4
    assert generations[1].text == generations[3].text  # same seed, same sample
    assert all(g.finish_reason in ("stop", "length") for g in generations)
    assert generations[0].usage["completion_tokens"] <= 8
    assert generations[0].usage["prompt_tokens"] > generations[1].usage["prompt_tokens"]  # video
    # the engine's own prompt tokens hold the stream times
    prompt = vllm_prompt(VIDEO_REQUEST, backend.processor)
    (output,) = backend.llm.generate([prompt], use_tqdm=False)
    prompt_text = backend.processor.tokenizer.decode(output.prompt_token_ids)
    assert "<300.5 seconds>" in prompt_text and "<302.5 seconds>" in prompt_text
