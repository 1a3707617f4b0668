"""The mini memorizer's training stages, each one call: perception, warm start, Phase One.

Every stage reads its parent's checkpoint folder, trains with a library trainer (transformers'
``Trainer`` for perception, trl's ``SFTTrainer`` and ``GRPOTrainer`` for the others), and
writes a checkpoint folder holding the full model (safetensors), its processor and
``training_record.json``. Stages take one frozen Config dataclass each; ``--set`` fills it.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from taskmem.minidata import split_samples, training_config
from taskmem.model import FRAME_SIZE, MERGE, build_memorizer
from taskmem.record import TrainingRecord

MODEL_DIR = "model"
"""Sub-folder of a stage's output that holds the checkpoint the next stage starts from."""


def cpu_arguments(out: Path, seed: int, **overrides: Any):
    """``TrainingArguments`` for the CPU (see :func:`cpu_fields`)."""
    from transformers import TrainingArguments

    return TrainingArguments(**(cpu_fields(out, seed) | {"remove_unused_columns": False}
                                | overrides))


def cpu_fields(out: Path, seed: int) -> dict[str, Any]:
    """Trainer settings for 2 CPU cores: no bf16 or gradient checkpointing (trl's GPU
    defaults), no reporting services, every step logged (the training record keeps them), and
    periodic checkpoints that ``--resume`` picks up."""
    return dict(
        output_dir=str(out / "checkpoints"), use_cpu=True, bf16=False, report_to="none",
        seed=seed, data_seed=seed, logging_steps=1, save_strategy="steps", save_steps=100,
        save_total_limit=1, dataloader_num_workers=0, gradient_checkpointing=False,
    )


def last_checkpoint(out: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = out / "checkpoints"
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


# -- perception -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerceptionConfig:
    """Perception pretraining of the vision tower (see ``taskmem.perception``)."""

    episodes: int = 160
    dev_episodes: int = 16
    frames_per_clip: int = 6
    epochs: float = 5.0
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 0


def perception(out: Path, config: PerceptionConfig, *, resume: bool = False) -> dict[str, Any]:
    from transformers import AutoModelForImageTextToText, AutoProcessor, Trainer

    from taskmem.perception import (
        FrameCollator, FrameDataset, PerceptionModel, head_accuracy, labelled_frames,
    )

    record = TrainingRecord("perception", asdict(config), config.seed)
    init = out / "init"
    if not (init / "config.json").is_file():
        build_memorizer(init, seed=config.seed)
    memorizer = AutoModelForImageTextToText.from_pretrained(init, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(init)
    hidden = memorizer.config.text_config.hidden_size
    tokens = (FRAME_SIZE // memorizer.config.vision_config.patch_size // MERGE) ** 2
    model = PerceptionModel(memorizer.model.visual, tokens, hidden)

    def frames(split: str, episodes: int):
        samples = [s for ep in split_samples(training_config(split, episodes)) for s in ep]
        return labelled_frames(samples, config.frames_per_clip, FRAME_SIZE)

    train, dev = frames("train", config.episodes), frames("dev", config.dev_episodes)
    collator = FrameCollator(processor.image_processor)
    args = cpu_arguments(
        out, config.seed, per_device_train_batch_size=config.batch_size,
        num_train_epochs=config.epochs, learning_rate=config.learning_rate,
        lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.01,
    )
    trainer = Trainer(model=model, args=args, train_dataset=FrameDataset(train),
                      data_collator=collator)
    trainer.train(resume_from_checkpoint=last_checkpoint(out) if resume else None)
    accuracy = head_accuracy(model, collator, dev)
    save_checkpoint(memorizer, processor, out / MODEL_DIR)
    record.finish(trainer.state.log_history, {
        "train_frames": len(train), "dev_frames": len(dev), "dev_accuracy": accuracy,
    })
    record.write(out / MODEL_DIR)
    shutil.rmtree(init)
    return record.metrics


@dataclass(frozen=True)
class CaptionConfig:
    """The language model learns to read the frames: each frame's fixed-order state caption
    (``perception.state_caption``) from the frame alone (trl ``SFTTrainer``, vision frozen).
    Like the heads, it stands in for the base MLLM's pretraining; it names every kind a frame
    shows, so it teaches reading, not a focus."""

    episodes: int = 120
    frames_per_clip: int = 6
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0


def caption_rows(config: CaptionConfig):
    from taskmem.perception import caption_rows as rows
    from taskmem.perception import labelled_frames

    for samples in split_samples(training_config("train", config.episodes)):
        yield from rows(labelled_frames(samples, config.frames_per_clip, FRAME_SIZE))


def captions(parent: Path, out: Path, config: CaptionConfig, *, resume: bool = False) -> dict[str, Any]:
    return _sft("captions", parent, out, config, caption_rows, resume)


def save_checkpoint(model, processor, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


# -- warm start --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WarmConfig:
    """Supervised warm start (trl ``SFTTrainer``) on composed descriptions; the vision tower
    stays frozen as perception left it."""

    episodes: int = 120
    passes: int = 2
    """Each pass walks every episode again with fresh random fact subsets and orders."""
    budget_tokens: int = 24
    window_seconds: float = 50.0
    epochs: float = 1.0
    max_steps: int = -1
    """Stop after this many optimiser steps (-1: run the epochs)."""
    batch_size: int = 8
    learning_rate: float = 1e-3
    seed: int = 0


def warm_examples(config: WarmConfig, spec=None):
    """Prompt-completion rows for trl: each episode walked clip by clip, the history being the
    composed targets themselves (teacher forcing)."""
    import numpy as np

    from taskmem.protocol import FrameSpec, format_reply
    from taskmem.streams import Window, clip_facts, compose_target, trl_prompt

    spec = spec or FrameSpec()
    rng = np.random.default_rng(config.seed)
    episodes = slim_split("train", config.episodes, spec)
    for _ in range(config.passes):
        for samples in episodes:
            window = Window(config.window_seconds, spec)
            for sample in samples:
                target = compose_target(clip_facts(sample), window.stated(sample.clip),
                                        config.budget_tokens, rng)
                if target:
                    prompt, images = trl_prompt(window.prompt(sample.clip, config.budget_tokens))
                    yield {
                        "prompt": prompt,
                        "completion": [{"role": "assistant",
                                        "content": "<think>" + format_reply(target)}],
                        "images": images,
                    }
                window = window.advanced(sample.clip, target)


def warm_start(parent: Path, out: Path, config: WarmConfig, *, resume: bool = False) -> dict[str, Any]:
    return _sft("warm", parent, out, config, warm_examples, resume)


def _sft(stage: str, parent: Path, out: Path, config, rows, resume: bool) -> dict[str, Any]:
    """trl ``SFTTrainer`` on prompt-completion ``rows(config)`` (written to disk as they are
    made), with the vision tower frozen as perception left it."""
    from datasets import Dataset
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    record = TrainingRecord(stage, asdict(config), config.seed, parent=_parent(parent))
    model = AutoModelForImageTextToText.from_pretrained(parent, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(parent)
    model.model.visual.requires_grad_(False)
    dataset = Dataset.from_generator(rows, gen_kwargs={"config": config},
                                     cache_dir=str(out / "data"))
    args = SFTConfig(
        **cpu_fields(out, config.seed), per_device_train_batch_size=config.batch_size,
        num_train_epochs=config.epochs, max_steps=config.max_steps,
        learning_rate=config.learning_rate, lr_scheduler_type="cosine", warmup_steps=0.03,
        max_length=None, shuffle_dataset=True,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor)
    trainer.train(resume_from_checkpoint=last_checkpoint(out) if resume else None)
    save_checkpoint(model, processor, out / MODEL_DIR)
    record.finish(trainer.state.log_history, {"examples": len(dataset)})
    record.write(out / MODEL_DIR)
    return record.metrics


def _parent(folder: Path) -> dict[str, Any] | None:
    from taskmem.record import read_record

    try:
        parent = read_record(folder)
    except OSError:
        return None
    return {"folder": str(folder), "stage": parent["stage"], "git": parent.get("git")}


# -- Phase One ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseOneConfig:
    """GSPO through trl's ``GRPOTrainer`` on streaming rollouts (``taskmem.rollout``): group
    advantages, sequence-level importance ratio, clip 0.2/0.28, no KL, no entropy bonus.

    ``data`` is ``mini`` (the training split, judged against the simulator's facts) or a task
    name (e.g. ``videomme_stream`` with ``data_root``), whose streams need ``judge=llm``: a
    model served through any backend (``judge_backend``, ``judge_model``, ``judge_base_url``).
    ``device``/``dtype`` pick CPU float32 (mini) or GPU bfloat16 (Qwen3-VL-30B-A3B).
    """

    data: str = "mini"
    data_root: str | None = None
    episodes: int = 120
    """mini: training episodes to draw from; a task: the first this many streams."""
    streams: int = 8
    groups: int = 2
    num_generations: int = 8
    steps: int = 100
    learning_rate: float = 1e-5
    temperature: float = 1.0
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

    record = TrainingRecord("phase-one", asdict(config), config.seed, parent=_parent(Path(parent)))
    model = AutoModelForImageTextToText.from_pretrained(parent, dtype=getattr(torch, config.dtype))
    processor = AutoProcessor.from_pretrained(parent)
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


def slim_split(split: str, episodes: int, spec) -> list:
    """A training split's episodes, each clip holding only the frames the memorizer sees."""
    from taskmem.streams import slimmed

    return [[slimmed(s, spec) for s in samples]
            for samples in split_samples(training_config(split, episodes))]
