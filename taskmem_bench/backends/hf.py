"""The ``transformers`` backend: local chat generation with Qwen-style VLMs and text LLMs.

A VL checkpoint (one ``AutoModelForImageTextToText`` knows) is served through its processor, so
images, videos and the chat template go exactly the way the model was trained on; any other
checkpoint is served as a text-only causal LM. Video frames keep their place on the stream
timeline: they reach the processor with their true frame rate and absolute frame indices and
frame sampling switched off, so the processor never resamples and Qwen3-VL's timestamp tokens
name the stream times.

Decoding follows each request's :class:`Sampling` only; the checkpoint's suggested sampling
defaults are dropped at load, as they would silently change results. Requests are batched into
one left-padded ``generate`` call per group of equal decoding settings; a sampled request draws
from its own seeded generator, so its completion does not depend on its batch-mates.
"""

from __future__ import annotations

import hashlib
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub import is_offline_mode
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    BatchEncoding,
    BatchFeature,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
)
from transformers.video_utils import VideoMetadata

from taskmem_bench.backends.base import (
    Backend,
    BackendSettings,
    ChatRequest,
    Generation,
    ImagePart,
    Message,
    Part,
    TextPart,
    VideoPart,
)
from taskmem_bench.backends.identity import DEFINITION_FILES
from taskmem_bench.backends.packaged import resolve


class TransformersBackend(Backend):
    name = "transformers"

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        load_args: dict[str, Any] = {
            "dtype": _dtype(settings.dtype),
            "device_map": resolved_device(settings.device),
        }
        if settings.attn_implementation:
            load_args["attn_implementation"] = settings.attn_implementation
        self.source = _locate(settings.model)
        config = _load_config(settings.model, self.source)
        self.vision = config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
        self.architecture = (config.architectures or [type(config).__name__])[0]
        if self.vision:
            self.processor = AutoProcessor.from_pretrained(self.source)
            self.tokenizer = self.processor.tokenizer
            self.model = AutoModelForImageTextToText.from_pretrained(self.source, **load_args)
        else:
            self.processor = None
            self.tokenizer = AutoTokenizer.from_pretrained(self.source)
            self.model = AutoModelForCausalLM.from_pretrained(self.source, **load_args)
        if settings.adapter_folder is not None:
            self.model = _with_adapter(self.model, settings.adapter_folder, settings.lora_path)
        self.model.eval()
        suggested = self.model.generation_config
        self.stop_ids = _stop_ids(suggested.eos_token_id, self.tokenizer.eos_token_id)
        pad_id = self.tokenizer.pad_token_id
        self.pad_id = pad_id if pad_id is not None else self.stop_ids[0]
        self.model.generation_config = GenerationConfig(
            eos_token_id=self.stop_ids, pad_token_id=self.pad_id
        )
        self._lock = threading.Lock()

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        groups: dict[tuple[int, float, float, int | None], list[int]] = defaultdict(list)
        for i, request in enumerate(requests):
            if not self.vision:
                _check_text_only(request, i, self.architecture)
            s = request.sampling
            groups[(s.max_new_tokens, s.temperature, s.top_p, s.top_k)].append(i)
        results: list[Generation | None] = [None] * len(requests)
        with self._lock:
            for members in groups.values():
                batch = [requests[i] for i in members]
                for i, generation in zip(members, self._generate_batch(batch), strict=True):
                    results[i] = generation
        return results  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        folder = _local_folder(self.source)
        return {
            **super().describe(),
            "path": str(folder),
            "architecture": self.architecture,
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "device": str(self.model.device),
            "attn_implementation": self.model.config._attn_implementation,
            "files_sha256": _files_hash(folder),
            **({"lora_path": self.settings.lora_path} if self.settings.lora_path else {}),
        }

    # ------------------------------------------------------------------ internals

    def _generate_batch(self, batch: list[ChatRequest]) -> list[Generation]:
        """One ``generate`` call for requests that share their decoding settings."""
        sampling = batch[0].sampling
        inputs = self.encode(batch).to(self.model.device)
        prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
        if self.settings.max_model_len and max(prompt_lengths) > self.settings.max_model_len:
            raise ValueError(
                f"a prompt of {max(prompt_lengths)} tokens exceeds max_model_len="
                f"{self.settings.max_model_len} ({self.settings.model})"
            )
        processors = LogitsProcessorList()
        if not sampling.greedy:
            seeds = [r.sampling.seed for r in batch]
            processors.append(
                SeededSampling(sampling.temperature, sampling.top_p, seeds, sampling.top_k)
            )
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                generation_config=GenerationConfig(
                    max_new_tokens=sampling.max_new_tokens,
                    do_sample=False,  # SeededSampling has drawn the token when sampling
                    eos_token_id=self.stop_ids,
                    pad_token_id=self.pad_id,
                ),
                logits_processor=processors,
            )
        completions = output[:, inputs["input_ids"].shape[1] :].tolist()
        return [
            self._generation(ids, n) for ids, n in zip(completions, prompt_lengths, strict=True)
        ]

    def encode(self, batch: Sequence[ChatRequest]) -> BatchEncoding | BatchFeature:
        """The left-padded model inputs of a batch (chat template, then tokenizer or processor);
        decoding its ``input_ids`` shows the prompt exactly as the model reads it."""
        if self.processor is None:
            conversations = [[_text_message(m) for m in r.messages] for r in batch]
            prompts = self.tokenizer.apply_chat_template(
                conversations, tokenize=False, add_generation_prompt=True
            )
            return self.tokenizer(
                prompts,
                padding=True,
                padding_side="left",
                add_special_tokens=False,
                return_tensors="pt",
            )
        video_processor = getattr(self.processor, "video_processor", None)
        media = _Media(getattr(video_processor, "temporal_patch_size", 1))
        conversations = [[media.message(m) for m in r.messages] for r in batch]
        prompts = self.processor.apply_chat_template(
            conversations, tokenize=False, add_generation_prompt=True
        )
        return self.processor(
            text=prompts,
            images=media.images or None,
            videos=media.videos or None,
            video_metadata=media.metadata or None,
            do_sample_frames=False,
            input_data_format="channels_last",
            padding=True,
            padding_side="left",
            add_special_tokens=False,
            return_tensors="pt",
        )

    def _generation(self, ids: list[int], prompt_tokens: int) -> Generation:
        stop = next((k for k, token in enumerate(ids) if token in self.stop_ids), None)
        kept = ids if stop is None else ids[:stop]
        completion_tokens = len(ids) if stop is None else stop + 1
        return Generation(
            text=self.tokenizer.decode(kept, skip_special_tokens=True),
            finish_reason="length" if stop is None else "stop",
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        )


class SeededSampling(LogitsProcessor):
    """Samples each row's next token from its own seeded generator and leaves only that token
    possible, so ``generate`` in greedy mode emits it.

    ``generate``'s own sampling draws a whole batch from the global RNG, so a completion would
    depend on which requests shared its batch; here row ``i`` draws only from ``seeds[i]``.
    """

    def __init__(
        self, temperature: float, top_p: float, seeds: Sequence[int], top_k: int | None = None
    ) -> None:
        self.warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
        if top_k is not None:  # transformers' own order: temperature, top-k, top-p
            self.warpers.append(TopKLogitsWarper(top_k))
        if top_p < 1:
            self.warpers.append(TopPLogitsWarper(top_p))
        self.seeds = list(seeds)
        self.generators: list[torch.Generator] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.generators is None:
            self.generators = [torch.Generator(scores.device).manual_seed(s) for s in self.seeds]
        probs = self.warpers(input_ids, scores).softmax(dim=-1)
        rows = zip(probs, self.generators, strict=True)
        tokens = torch.cat([torch.multinomial(p, 1, generator=g) for p, g in rows])
        chosen = torch.full_like(scores, -float("inf"))
        return chosen.scatter_(1, tokens[:, None], 0.0)


@dataclass
class _Media:
    """Images and videos of a batch in prompt order, as the processor pairs them with the
    placeholders its chat template writes."""

    temporal_patch_size: int
    images: list[Any] = field(default_factory=list)
    videos: list[np.ndarray] = field(default_factory=list)
    metadata: list[VideoMetadata] = field(default_factory=list)

    def message(self, message: Message) -> dict[str, Any]:
        return {"role": message.role, "content": [self._part(p) for p in message.content]}

    def _part(self, part: Part) -> dict[str, Any]:
        if isinstance(part, TextPart):
            return {"type": "text", "text": part.text}
        if isinstance(part, ImagePart):
            self.images.append(part.image)
            return {"type": "image"}
        if isinstance(part, VideoPart):
            frames, metadata = video_input(part, self.temporal_patch_size)
            self.videos.append(frames)
            self.metadata.append(metadata)
            return {"type": "video"}
        raise TypeError(f"unknown message part {type(part).__name__}")


def video_input(part: VideoPart, min_frames: int = 1) -> tuple[np.ndarray, VideoMetadata]:
    """The frames and metadata a processor gets for a video part.

    ``frames_indices`` are the absolute indices on the stream timeline at the native ``fps``, so
    Qwen3-VL prints each frame's stream time; ``total_num_frames`` is the span of source frames
    the clip covers, so the sampled rate Qwen2.5-VL derives for its temporal positions is the
    clip's true rate. A clip shorter than ``min_frames`` (the temporal patch; Qwen3-VL's video
    processor refuses fewer) gets its last frame repeated, as the processor pads longer clips.
    """
    frames, indices = part.frames, part.frame_indices
    if len(frames) < min_frames:
        pad = min_frames - len(frames)
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
        indices = indices + [indices[-1]] * pad
    step = round((indices[-1] - indices[0]) / (len(indices) - 1)) if len(indices) > 1 else 1
    span = max(indices[-1] - indices[0] + max(step, 1), 1)
    metadata = VideoMetadata(
        total_num_frames=span,
        fps=part.source_fps,
        frames_indices=indices,
        duration=span / part.source_fps,
        height=frames.shape[1],
        width=frames.shape[2],
    )
    return frames, metadata


def _text_message(message: Message) -> dict[str, str]:
    return {"role": message.role, "content": "".join(p.text for p in message.content)}


def _check_text_only(request: ChatRequest, index: int, architecture: str) -> None:
    for message in request.messages:
        for part in message.content:
            if not isinstance(part, TextPart):
                raise ValueError(
                    f"request {index} has a {type(part).__name__}, but the model is text-only "
                    f"({architecture}); use a vision-language model for images and video"
                )


def _with_adapter(model, folder: Path, name: str):
    """The model with the PEFT adapter in ``folder`` (named ``name`` in the settings) applied:
    a LoRA, or a steering vector trained as a BEFT bias (TaskMem's Phase Two); the base
    weights stay as loaded."""
    from peft import PeftModel

    if not (folder / "adapter_config.json").is_file():
        raise FileNotFoundError(f"lora_path '{name}' is not a PEFT adapter folder")
    return PeftModel.from_pretrained(model, str(folder))


def _locate(model: str) -> str:
    """A local model directory (a ``package:`` name resolved to one), checked, or a Hugging
    Face Hub id left to transformers."""
    model = resolve(model)
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"'{model}' is not a model directory: it has no config.json")
        return str(path)
    if path.exists():
        raise ValueError(f"'{model}' is a file, not a model directory")
    if path.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1:
        raise FileNotFoundError(f"model directory '{model}' does not exist")
    return model


def _load_config(model: str, source: str):
    try:
        return AutoConfig.from_pretrained(source)
    except OSError as err:
        hub = "is offline (HF_HUB_OFFLINE)" if is_offline_mode() else "lacks it or is unreachable"
        raise FileNotFoundError(
            f"cannot load model '{model}': it is not a local directory, "
            f"and the Hugging Face Hub {hub}: {err}"
        ) from err
    except ValueError as err:
        raise ValueError(f"'{model}' is not a transformers model: {err}") from err


def _dtype(name: str) -> str | torch.dtype:
    if name == "auto":
        return "auto"
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype '{name}': use auto, float32, bfloat16 or float16")
    return dtype


def resolved_device(name: str) -> str:
    """A device setting as torch takes it: ``auto`` is CUDA where there is one, else CPU; the
    one rule for every in-process model (backend, retrieval embedder, Phase Two's DPO)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _stop_ids(*candidates: int | list[int] | None) -> list[int]:
    ids: list[int] = []
    for candidate in candidates:
        for token in [candidate] if isinstance(candidate, int) else candidate or []:
            if token not in ids:
                ids.append(token)
    if not ids:
        raise ValueError("the model defines no end-of-sequence token")
    return ids


def _local_folder(source: str) -> Path:
    """The folder the checkpoint was loaded from (a Hub id's cached snapshot)."""
    if Path(source).is_dir():
        return Path(source).resolve()
    from transformers.utils import cached_file

    return Path(cached_file(source, "config.json")).parent


def _files_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in DEFINITION_FILES:
        path = folder / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


__all__ = ["SeededSampling", "TransformersBackend", "video_input"]
