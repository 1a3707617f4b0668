"""The ``vllm`` backend: vLLM's offline engine (``vllm.LLM``) on CUDA GPUs.

vLLM is an optional extra (``pip install 'taskmem-bench[vllm]'``), imported only when this
backend loads. Each request is rendered to a prompt with the model's own chat template (the HF
processor's, exactly as the transformers backend renders it) and handed to ``LLM.generate``
with its media:

- images as PIL images under ``multi_modal_data["image"]``;
- videos as ``(frames, metadata)`` tuples under ``multi_modal_data["video"]``, the form vLLM's
  Qwen-VL processors take for pre-sampled frames, with the transformers backend's frames and
  metadata (:func:`taskmem_bench.backends.hf.video_input`): ``fps`` is the source frame rate
  and ``frames_indices`` the frames' absolute indices on the stream, from which Qwen3-VL
  prints the true timestamps; ``do_sample_frames=False`` (in the metadata and in the
  request's ``mm_processor_kwargs``) keeps the processor from resampling.

Offline, ``LLM.chat`` takes media options only engine-wide (``media_io_kwargs``), so per-video
metadata needs ``LLM.generate`` with prompts rendered here.

Sampling maps one to one to ``SamplingParams`` (``max_tokens``, ``temperature``, ``top_p``, a
per-request ``seed``, and ``top_k`` when a request sets it); everything else keeps vLLM's neutral defaults, never the checkpoint's
suggested ``top_k`` or penalties, as in the transformers backend. A LoRA adapter (``lora_path``, a PEFT folder) is served with every
request as a ``LoRARequest``; its rank is read from its ``adapter_config.json``. Changes that
are not LoRA adapters (TaskMem's steering vector, later) plug in as an
:class:`EngineAdapter` named by ``adapter``.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor

from taskmem_bench.backends.base import (
    Backend,
    BackendSettings,
    ChatRequest,
    Generation,
    ImagePart,
    Message,
    Sampling,
    TextPart,
)
from taskmem_bench.backends.hf import video_input
from taskmem_bench.backends.packaged import resolve
from taskmem_bench.plugins import load

ADAPTER_GROUP = "taskmem_bench.vllm_adapters"
INSTALL_HINT = "pip install 'taskmem-bench[vllm]'"


class EngineAdapter(ABC):
    """A change to a loaded engine that is not a LoRA adapter, e.g. a steering vector added to
    one decoder layer's output.

    The backend builds the adapter with its settings and calls :meth:`attach` once, right
    after the engine has loaded and before any request. The model lives in vLLM's worker
    process(es), not in the caller's: reach it with ``llm.apply_model(fn)`` (``fn`` receives
    the ``nn.Module`` in each worker and must be picklable; vLLM may require
    ``VLLM_ALLOW_INSECURE_SERIALIZATION=1`` to ship a function) or ``llm.collective_rpc``.
    What :meth:`describe` returns goes into the run manifest, so it should pin the change
    down (a file hash, a layer, a scale).
    """

    name: ClassVar[str]

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings

    @abstractmethod
    def attach(self, llm: Any) -> None: ...

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.name}


def load_adapter(name: str) -> type[EngineAdapter]:
    return load(ADAPTER_GROUP, "vllm adapter", name, EngineAdapter)


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self.settings = settings
        if settings.device not in ("auto", "cuda"):
            raise ValueError(f"the vllm backend runs on CUDA GPUs, not device={settings.device!r}")
        if settings.attn_implementation:
            raise ValueError(
                "attn_implementation is a transformers option; vLLM picks its attention "
                "kernels itself (environment variable VLLM_ATTENTION_BACKEND)"
            )
        adapter_cls = load_adapter(settings.adapter) if settings.adapter else None
        vllm = _import_vllm()
        if not torch.cuda.is_available():
            raise RuntimeError("the vllm backend needs a CUDA GPU; use backend=transformers on CPU")
        self.processor = AutoProcessor.from_pretrained(resolve(settings.model))
        multimodal = hasattr(self.processor, "video_processor")
        self.llm = vllm.LLM(**engine_args(settings, multimodal=multimodal))
        self._sampling = vllm.SamplingParams
        self._lora = None
        if settings.lora_path:
            from vllm.lora.request import LoRARequest

            self._lora = LoRARequest("adapter", 1, str(settings.adapter_folder))
        self.adapter = adapter_cls(settings) if adapter_cls else None
        if self.adapter:
            self.adapter.attach(self.llm)
        # ``LLM.generate`` is not thread-safe; a policy and a reader share one engine, and a
        # call abandoned after call_timeout_s may still be running when the other one calls
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        record = {**super().describe(), "lora_path": self.settings.lora_path}
        if self.adapter:
            record["adapter"] = self.adapter.describe()
        return record

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        prompts = [vllm_prompt(r, self.processor) for r in requests]
        params = [self._sampling(**sampling_params(r.sampling)) for r in requests]
        with self._lock:
            outputs = self.llm.generate(prompts, params, lora_request=self._lora, use_tqdm=False)
        return [_generation(output) for output in outputs]


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as err:
        raise ImportError(f"the vllm backend needs vLLM, an optional extra: {INSTALL_HINT}") from err
    return vllm


def engine_args(settings: BackendSettings, *, multimodal: bool) -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM`` for these settings."""
    args: dict[str, Any] = {
        "model": resolve(settings.model),
        "dtype": settings.dtype,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "tensor_parallel_size": settings.tensor_parallel_size,
    }
    if settings.max_model_len:
        args["max_model_len"] = settings.max_model_len
    if multimodal:  # vLLM refuses the limit for text-only models
        args["limit_mm_per_prompt"] = {
            "image": settings.max_images_per_prompt,
            "video": settings.max_videos_per_prompt,
        }
    if settings.lora_path:
        args.update(enable_lora=True, max_loras=1, max_lora_rank=lora_rank(settings.adapter_folder))
    return args


def lora_rank(folder: Path) -> int:
    """The rank ``r`` of a PEFT LoRA adapter folder, which vLLM must reserve room for."""
    config = folder / "adapter_config.json"
    try:
        return int(json.loads(config.read_text())["r"])
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"lora_path {str(folder)!r} is not a PEFT LoRA adapter folder: {err}") from err


def sampling_params(sampling: Sampling) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams``; ``top_k`` only when set (vLLM's own
    default keeps every token)."""
    params: dict[str, Any] = {
        "max_tokens": sampling.max_new_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "seed": sampling.seed,
    }
    if sampling.top_k is not None:
        params["top_k"] = sampling.top_k
    return params


def vllm_prompt(request: ChatRequest, processor: Any) -> dict[str, Any]:
    """One ``LLM.generate`` prompt: the chat rendered with ``processor``'s chat template (an HF
    processor, or a tokenizer for a text-only model) as the transformers backend renders it,
    and the media in prompt order."""
    video_processor = getattr(processor, "video_processor", None)
    if video_processor is None:
        conversation = [_text_message(m, i) for i, m in enumerate(request.messages)]
        videos: list[tuple[np.ndarray, dict[str, Any]]] = []
        images: list[Image.Image] = []
    else:
        conversation, images, videos = _multimodal_messages(
            request, video_processor.temporal_patch_size
        )
    text = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    prompt: dict[str, Any] = {"prompt": text}
    media = {k: v for k, v in (("image", images), ("video", videos)) if v}
    if media:
        prompt["multi_modal_data"] = media
    if videos:
        prompt["mm_processor_kwargs"] = {"do_sample_frames": False}
    return prompt


def _text_message(message: Message, index: int) -> dict[str, str]:
    if not all(isinstance(p, TextPart) for p in message.content):
        raise ValueError(f"message {index} has media, but the model is text-only")
    return {"role": message.role, "content": "".join(p.text for p in message.content)}


def _multimodal_messages(request: ChatRequest, temporal_patch_size: int):
    """Chat-template messages with ``{"type": "image"|"video"}`` placeholders, the images,
    and each video as ``(frames, metadata)``: the transformers backend's frames and metadata
    (true fps, absolute frame indices), with frame sampling off."""
    conversation: list[dict[str, Any]] = []
    images: list[Image.Image] = []
    videos: list[tuple[np.ndarray, dict[str, Any]]] = []
    for message in request.messages:
        content: list[dict[str, Any]] = []
        for part in message.content:
            if isinstance(part, TextPart):
                content.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart):
                content.append({"type": "image"})
                images.append(Image.fromarray(part.image))
            else:
                content.append({"type": "video"})
                frames, metadata = video_input(part, temporal_patch_size)
                videos.append((frames, {**metadata, "do_sample_frames": False}))
        conversation.append({"role": message.role, "content": content})
    return conversation, images, videos


def _generation(output: Any) -> Generation:
    completion = output.outputs[0]
    prompt_tokens, completion_tokens = len(output.prompt_token_ids or ()), len(completion.token_ids)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    return Generation(text=completion.text, finish_reason=completion.finish_reason, usage=usage)
