"""The mini memorizer's training stages, each one call: perception, captions, warm start (Phase
One is in ``taskmem.phase_one``), and what all stages share.

Every stage reads its parent's checkpoint folder, trains with a library trainer (transformers'
``Trainer`` for perception, trl's ``SFTTrainer`` for captions and the warm start, and
``GRPOTrainer`` for Phase One), and
writes a checkpoint folder holding the full model (safetensors), its processor and
``training_record.json``. Stages take one frozen Config dataclass each; ``--set`` fills it.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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

    episodes: int = 120
    dev_episodes: int = 12
    frames_per_clip: int = 6
    epochs: float = 3.0
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 0


def perception(out: Path, config: PerceptionConfig, *, resume: bool = False) -> dict[str, Any]:
    from transformers import AutoModelForImageTextToText, AutoProcessor, Trainer

    from taskmem.perception import FrameCollator, FrameDataset, PerceptionModel, head_accuracy

    record = TrainingRecord("perception", asdict(config), config.seed)
    init = out / "init"
    if not (init / "config.json").is_file():
        build_memorizer(init, seed=config.seed)
    memorizer = AutoModelForImageTextToText.from_pretrained(init, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(init)
    hidden = memorizer.config.text_config.hidden_size
    tokens = (FRAME_SIZE // memorizer.config.vision_config.patch_size // MERGE) ** 2
    model = PerceptionModel(memorizer.model.visual, tokens, hidden)

    train = list(split_frames("train", config.episodes, config.frames_per_clip))
    dev = list(split_frames("dev", config.dev_episodes, config.frames_per_clip))
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

    yield from rows(split_frames("train", config.episodes, config.frames_per_clip))


def split_frames(split: str, episodes: int, per_clip: int):
    """A training split's labelled frames (``perception.labelled_frames``), episode by episode,
    so only one episode's decoded clips are held at a time."""
    from taskmem.perception import labelled_frames

    for samples in split_samples(training_config(split, episodes)):
        yield from labelled_frames(samples, per_clip, FRAME_SIZE)


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
    learning_rate: float = 5e-4
    seed: int = 0


def warm_examples(config: WarmConfig):
    """Prompt-completion rows for trl: each episode walked clip by clip, the history being the
    composed targets themselves (teacher forcing)."""
    import numpy as np

    from taskmem.protocol import FrameSpec, format_reply
    from taskmem.streams import Window, clip_facts, compose_target, trl_prompt

    spec = FrameSpec()
    rng = np.random.default_rng(config.seed)
    episodes = slim_split("train", config.episodes, spec)
    for _ in range(config.passes):
        for samples in episodes:
            window = Window(config.window_seconds, spec)
            for sample in samples:
                new = window.new_frames(sample.clip)
                target = compose_target(clip_facts(sample), window.stated(sample.clip),
                                        config.budget_tokens, rng)
                if target:
                    prompt, images = trl_prompt(
                        window.prompt(sample.clip, new, config.budget_tokens))
                    yield {
                        "prompt": prompt,
                        "completion": [{"role": "assistant",
                                        "content": "<think>" + format_reply(target)}],
                        "images": images,
                    }
                window = window.advanced(sample.clip, new, target)


def warm_start(parent: Path, out: Path, config: WarmConfig, *, resume: bool = False) -> dict[str, Any]:
    return _sft("warm", parent, out, config, warm_examples, resume)


def _sft(stage: str, parent: Path, out: Path, config, rows, resume: bool) -> dict[str, Any]:
    """trl ``SFTTrainer`` on prompt-completion ``rows(config)`` (written to disk as they are
    made), with the vision tower frozen as perception left it."""
    from datasets import Dataset
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    record = TrainingRecord(stage, asdict(config), config.seed, parent=parent_record(parent))
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


def parent_record(folder: Path) -> dict[str, Any] | None:
    from taskmem.record import read_record

    try:
        parent = read_record(folder)
    except OSError:
        return None
    return {"folder": str(folder), "stage": parent["stage"], "git": parent.get("git")}


def slim_split(split: str, episodes: int, spec) -> list:
    """A training split's episodes, each clip holding only the frames the memorizer sees."""
    from taskmem.streams import slimmed

    return [[slimmed(s, spec) for s in samples]
            for samples in split_samples(training_config(split, episodes))]
