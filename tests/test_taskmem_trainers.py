"""TaskMem's trainers on the tiny Qwen3-VL test kit: perception heads, 2 warm-start (trl
SFTTrainer) steps and 2 Phase One (trl GRPOTrainer, GSPO settings) steps on CPU, each leaving a
checkpoint and a training record. The kit's model is random, so these check the code paths and
the records, not what is learned (benchmarks/taskmem_mini.py measures that)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from taskmem.minidata import HEADS, IGNORE, split_samples, training_config
from taskmem.perception import FrameCollator, PerceptionModel, labelled_frames
from taskmem.record import read_record
from taskmem.phase_one import PhaseOneConfig, phase_one
from taskmem.stages import MODEL_DIR, WarmConfig, warm_start
from taskmem_bench.testing.tiny_models import build_tiny_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model("qwen3-vl", tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TASKMEM_BENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def test_perception_heads_fit_the_labels_of_a_few_frames(tiny):
    model = AutoModelForImageTextToText.from_pretrained(tiny)
    processor = AutoProcessor.from_pretrained(tiny)
    samples = next(split_samples(training_config("train", 1)))[:2]
    frames = labelled_frames(samples, per_clip=2, size=64)
    collator = FrameCollator(processor.image_processor)
    batch = collator(frames)
    tokens = int(batch["image_grid_thw"][0].prod()) // 4  # merged 2 x 2
    heads = PerceptionModel(model.model.visual, tokens, model.config.text_config.hidden_size)
    logits = heads.logits(batch["pixel_values"], batch["image_grid_thw"])
    assert [l.shape for l in logits] == [(len(frames), len(c)) for c in HEADS.values()]
    assert (batch["labels"] != IGNORE).any()
    optimiser = torch.optim.Adam(heads.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = heads(**batch)["loss"]
        optimiser.zero_grad(); loss.backward(); optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]  # the vision tower and heads learn the labels


def test_two_warm_start_steps_leave_a_checkpoint_and_a_record(tiny, tmp_path):
    config = WarmConfig(episodes=1, passes=1, max_steps=2, batch_size=2, seed=3)
    warm_start(tiny, tmp_path, config)
    folder = tmp_path / MODEL_DIR
    AutoModelForImageTextToText.from_pretrained(folder)  # loads as a checkpoint
    record = read_record(folder)
    assert record["stage"] == "warm" and record["seed"] == 3
    assert record["config"]["max_steps"] == 2
    assert record["data_seeds"]["train"] == 1000 and record["git"] is not None
    losses = [s["loss"] for s in record["steps"] if "loss" in s]
    assert losses and all(loss > 0 for loss in losses)


def test_two_phase_one_steps_score_stream_and_record(tiny, tmp_path):
    """Two prompts per step (two streams in each half of the rolling batch), each scored by
    every reward term, and each stream's clip recorded for its next prompt."""
    config = PhaseOneConfig(episodes=2, streams=4, groups=2, num_generations=2, steps=2,
                            max_completion_length=8)
    metrics = phase_one(tiny, tmp_path, config)
    assert metrics["clips_recorded"] == 4  # each step advanced its half of the rolling batch
    record = read_record(tmp_path / MODEL_DIR)
    steps = [s for s in record["steps"] if "reward" in s]
    assert len(steps) == 2
    for term in ("format", "quality", "richness", "thinking"):
        assert f"rewards/{term}/mean" in steps[0]
    assert steps[0]["rewards/format/mean"] == -1.5  # a random model never writes the format
    assert record["config"]["num_generations"] == 2


def test_a_stage_starts_from_a_checkpoint_folder_or_a_hub_id(tmp_path):
    from pathlib import Path

    from taskmem.cli import checkpoint
    from taskmem_bench.taskconfig import ConfigError

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    assert checkpoint(tmp_path / "model", "warm") == tmp_path / "model"
    assert checkpoint(Path("Qwen/Qwen3-VL-30B-A3B-Thinking"), "phase-one") == "Qwen/Qwen3-VL-30B-A3B-Thinking"
    with pytest.raises(ConfigError, match="holds no checkpoint"):
        checkpoint(tmp_path, "warm")
