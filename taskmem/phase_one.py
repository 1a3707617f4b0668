"""Phase One (learn *how* to memorize): GSPO through trl's ``GRPOTrainer`` on on-policy
streaming rollouts (``taskmem.rollout``), rewarded by ``taskmem.rewards``; on mini episodes with
the simulator's facts as the judge, or on a real task's streams with an LLM judge."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from taskmem.record import TrainingRecord
from taskmem.stages import (
    MODEL_DIR, cpu_fields, last_checkpoint, parent_record, save_checkpoint, slim_split,
)


@dataclass(frozen=True)
class PhaseOneConfig:
    """GSPO through trl's ``GRPOTrainer`` on streaming rollouts (``taskmem.rollout``): group
    advantages, sequence-level importance ratio, clip 0.2/0.28, no KL, no entropy bonus.

    ``data`` is ``mini`` (the training split, judged against the simulator's facts) or a task
    name (e.g. ``videomme_stream`` with ``data_root``), whose streams need ``judge=llm``: a
    model served through any backend (``judge_backend``, ``judge_model``, ``judge_base_url``).
    ``device``/``dtype`` pick CPU float32 (mini) or GPU bfloat16 (Qwen3-VL-30B-A3B).

    Rollouts sample at ``temperature`` 0.6 (the authors' Phase Two sampling temperature): at 1.0
    the mini warm start's replies were fully true 3 % of the time, too rarely for group
    advantages to carry a signal; at 0.6, 10 %.
    """

    data: str = "mini"
    data_root: str | None = None
    episodes: int = 120
    """mini: training episodes to draw from; a task: the first this many streams."""
    streams: int = 4
    groups: int = 2
    num_generations: int = 8
    steps: int = 60
    learning_rate: float = 5e-5
    temperature: float = 0.6
    max_completion_length: int = 48
    budget_tokens: int | None = 24
    window_seconds: float = 50.0
    frame_size: int = 128
    new_frames: int = 6
    context_frames: int = 1
    format_penalty: float = -1.5
    quality_value: float = 0.5
    richness_scale: float = 0.1
    thinking_limit: int = 1200
    judge: Literal["facts", "llm"] = "facts"
    judge_backend: str = "openai"
    judge_model: str = ""
    judge_base_url: str | None = None
    judge_max_new_tokens: int = 256
    freeze_vision: bool = True
    device: Literal["cpu", "cuda"] = "cpu"
    dtype: Literal["float32", "bfloat16"] = "float32"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.data != "mini" and self.judge != "llm":
            raise ValueError("real-data rollouts have no simulator facts: set judge=llm")
        if self.judge == "llm" and not self.judge_model:
            raise ValueError("judge=llm needs judge_model (and judge_base_url for a served model)")

    @property
    def frames(self):
        from taskmem.protocol import FrameSpec

        return FrameSpec(self.frame_size, self.new_frames, self.context_frames)

    def claim_judge(self):
        from taskmem.judges import LLMClaimJudge
        from taskmem.rewards import FactJudge
        from taskmem_bench.backends import BackendSettings

        if self.judge == "facts":
            return FactJudge()
        settings = BackendSettings(backend=self.judge_backend, model=self.judge_model,
                                   base_url=self.judge_base_url)
        return LLMClaimJudge(settings, self.judge_max_new_tokens)


def phase_one(parent: Path | str, out: Path, config: PhaseOneConfig, *,
              resume: bool = False) -> dict[str, Any]:
    """Phase One from ``parent`` (a checkpoint folder, or a hub name for the real-size model).

    On ``--resume`` the weights, optimiser and step come back from the last checkpoint and the
    rolling batch starts afresh (``ignore_data_skip``: a live stream cannot be replayed)."""
    import numpy as np
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    from taskmem.rewards import Terms
    from taskmem.rollout import StreamingRollouts, endless

    record = TrainingRecord("phase-one", asdict(config), config.seed, parent=parent_record(Path(parent)))
    model = AutoModelForImageTextToText.from_pretrained(parent, dtype=getattr(torch, config.dtype))
    processor = AutoProcessor.from_pretrained(parent)
    # trl left-pads prompts for the forward pass but takes the multimodal fields (Qwen's
    # mm_token_type_ids) from a processor call with the tokenizer's own padding side: they line
    # up only when that side is left too (else prompts of unequal length break mrope indexing)
    processor.tokenizer.padding_side = "left"
    if config.freeze_vision:
        model.model.visual.requires_grad_(False)
    rollouts = StreamingRollouts(
        endless(rollout_loaders(config), np.random.default_rng(config.seed)), config.streams,
        config.groups, config.budget_tokens, config.window_seconds, config.frames,
    )
    terms = Terms(config.claim_judge(), config.format_penalty, config.quality_value,
                  config.richness_scale, config.thinking_limit)
    per_step = config.streams // config.groups
    args = GRPOConfig(
        **(cpu_fields(out, config.seed) | device_fields(config.device, config.dtype)
           | {"save_steps": 25, "ignore_data_skip": True}),
        per_device_train_batch_size=per_step * config.num_generations,
        num_generations=config.num_generations, max_steps=config.steps,
        learning_rate=config.learning_rate, lr_scheduler_type="constant",
        loss_type="grpo", importance_sampling_level="sequence", beta=0.0,
        epsilon=0.2, epsilon_high=0.28, num_iterations=1, steps_per_generation=1,
        shuffle_dataset=False, temperature=config.temperature,
        max_completion_length=config.max_completion_length, log_completions=False,
        reward_weights=[1.0, 1.0, 1.0, 1.0, 0.0],  # the last "term" records the history
        generation_kwargs={"suppress_tokens": vision_token_ids(processor)},
    )
    trainer = GRPOTrainer(
        model=model, args=args, processing_class=processor,
        reward_funcs=[*terms.callables(), rollouts.record],
        train_dataset=live_dataset(rollouts.prompts),
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(out) if resume else None)
    save_checkpoint(model, processor, out / MODEL_DIR)
    record.finish(trainer.state.log_history, {
        "judge_failures": terms.quality.failures, "judged": terms.quality.judged,
        "clips_recorded": len(rollouts.history),
    })
    record.write(out / MODEL_DIR)
    return record.metrics


def vision_token_ids(processor) -> list[int]:
    """Vision placeholder tokens, which a rollout must never sample: the model's forward pass
    takes every one in the sequence for an image, so one sampled placeholder breaks the step."""
    tokens = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
    ids = processor.tokenizer.convert_tokens_to_ids(list(tokens))
    return [i for i in ids if i is not None and i != processor.tokenizer.unk_token_id]


def device_fields(device: str, dtype: str) -> dict[str, Any]:
    """Overrides of :func:`cpu_fields` for a GPU run (bf16; trl/accelerate place the model)."""
    if device == "cpu":
        return {}
    return {"use_cpu": False, "bf16": dtype == "bfloat16"}


def rollout_loaders(config: PhaseOneConfig) -> list:
    """One loader per training episode: mini's training split (decoded once, slimmed), or the
    first ``episodes`` streams of a task's release (decoded when the rolling batch needs them)."""
    if config.data == "mini":
        episodes = slim_split("train", config.episodes, config.frames)
        return [lambda e=e: e for e in episodes]
    from taskmem.streams import slimmed
    from taskmem_bench.datasets import load_adapter
    from taskmem_bench.media import iter_clips
    from taskmem_bench.taskconfig import load_task, validate

    from taskmem.minidata import ClipSample

    task = load_task(config.data)
    adapter = load_adapter(task.dataset)()
    args = {**task.dataset_args, **({"root": config.data_root} if config.data_root else {})}
    release = adapter.load(validate(adapter.Config, args, f"dataset {task.dataset}"))

    def loader(index: int, stream) -> list:
        clips = iter_clips(stream, clip_seconds=task.stream.clip_seconds,
                           sample_fps=task.stream.sample_fps, channels=task.side_channels.allowed,
                           max_side=task.stream.max_side)
        return [slimmed(ClipSample(index, clip, None), config.frames) for clip in clips]

    streams = [e.stream for e in release.episodes[: config.episodes]]
    return [lambda i=i, s=s: loader(i, s) for i, s in enumerate(streams)]


def live_dataset(rows):
    """A ``datasets.IterableDataset`` over ``rows()`` read as the trainer asks for them.
    ``IterableDataset.from_generator`` would pickle the generator's state to fingerprint it; a
    live stream has no fingerprint, so the examples iterable is built directly."""
    from datasets import IterableDataset
    from datasets.iterable_dataset import ExamplesIterable

    def keyed(make):
        yield from enumerate(make())

    return IterableDataset(ExamplesIterable(keyed, {"make": rows}))
