"""Phase Two's DPO (``taskmem.dpo``) on the tiny Qwen3-VL kit, both adapter kinds: 2 trl
``DPOTrainer`` steps on CPU. The kit's model is random, so these check what the adapter is,
where it sits, that nothing else moves, that the backends load it, and that a seed pins it;
benchmarks/taskmem_dpo.py measures a full-size step on the mini memorizer."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor

from taskmem import dpo
from taskmem.dpo import (
    WEIGHTS_FILE, AdapterConfig, fit_adapter, peak_rss_mib, reset_peak_rss, train_adapter,
    usable_pairs,
)
from taskmem.protocol import Frame, Prompt, format_reply
from taskmem.record import read_record
from taskmem_bench.backends import BackendSettings
from taskmem_bench.backends.hf import TransformersBackend


@dataclass(frozen=True)
class Pair:
    """A hand-made ``taskmem.dpo.PreferencePair``."""

    prompt: Prompt
    chosen_completion: str
    rejected_completion: str


def tiny_pairs(n: int = 3) -> list[Pair]:
    """Prompts of unequal length, one small frame each, and short whole completions."""
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(n):
        frame = Frame(float(i), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        prompt = Prompt((f"Segment {i}{' again' * i}: ", frame, "\nDescribe the segment."))
        pairs.append(Pair(prompt, format_reply("a red cup on the table.", "cup"),
                          format_reply("The person waves.", "hm")))
    return pairs


def config(kind: str, **more) -> AdapterConfig:
    return AdapterConfig(kind=kind, steps=2, batch_size=2, **more)


@pytest.fixture(scope="module")
def trained(tiny_vl_model: Path, tmp_path_factory) -> dict:
    """Each kind trained once at the paper's scale, and the steering vector once unscaled."""
    out = tmp_path_factory.mktemp("dpo")
    runs = {"steering": config("steering"), "lora": config("lora"),
            "unscaled": config("steering", scale=1.0)}
    return {name: train_adapter(tiny_vl_model, tiny_pairs(), c, out / name)
            for name, c in runs.items()}


@pytest.mark.parametrize("kind", ["steering", "lora"])
def test_only_the_adapter_learns(tiny_vl_model: Path, kind: str) -> None:
    model = AutoModelForImageTextToText.from_pretrained(tiny_vl_model)
    processor = AutoProcessor.from_pretrained(tiny_vl_model)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    adapted, steps = fit_adapter(model, processor, tiny_pairs(), config(kind))
    adapter, base = {}, {}
    for name, p in adapted.named_parameters():
        if "beft_bias" in name or "lora_" in name:
            adapter[name] = p
        else:
            base[name.removeprefix("base_model.model.").replace(".base_layer", "")] = p
    assert all(p.requires_grad for p in adapter.values())
    assert base.keys() == before.keys()
    assert all(not p.requires_grad and torch.equal(p, before[n]) for n, p in base.items())
    assert any(p.abs().sum() > 0 for n, p in adapter.items() if "lora_A" not in n)  # it moved
    assert [s.step for s in steps] == [1, 2] and all(s.loss > 0 for s in steps)


def test_the_steering_vector_sits_after_the_layer_at_46_percent_scaled_by_1_5(trained) -> None:
    assert [AdapterConfig().layer(n) for n in (48, 4, 2, 1)] == [22, 2, 1, 0]
    scaled = load_file(trained["steering"].folder / WEIGHTS_FILE)
    unscaled = load_file(trained["unscaled"].folder / WEIGHTS_FILE)
    (name,) = scaled  # one vector; the tiny kit has 2 layers, so layer round(0.92) = 1
    assert name.endswith("language_model.layers.1.mlp.down_proj.beft_bias")
    assert scaled[name].abs().max() > 0
    assert torch.allclose(scaled[name], 1.5 * unscaled[name])


def test_a_lora_adapts_only_the_language_models_projections(trained) -> None:
    names = load_file(trained["lora"].folder / WEIGHTS_FILE)
    pattern = r".*\.language_model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.lora_[AB]\.weight"
    assert names and all(re.fullmatch(pattern, n) for n in names)
    assert not any("visual" in n for n in names)


@pytest.mark.parametrize("kind", ["steering", "lora"])
def test_each_step_is_logged_in_the_result_and_the_record(trained, kind: str) -> None:
    result = trained[kind]
    assert len(result.losses) == 2 and result.pairs == 3 and not result.skipped
    assert result.losses[0] == pytest.approx(np.log(2), abs=1e-4)  # adapter starts at the base
    assert result.steps[1].margin != 0.0
    assert result.wall_seconds > 0 and result.peak_rss_mib > 0
    record = read_record(result.folder)
    assert record["stage"] == f"phase-two-{kind}" and record["config"]["beta"] == 0.1
    assert [s["loss"] for s in record["steps"]] == list(result.losses)
    assert record["metrics"]["weights_sha256"] == result.weights_sha256
    assert record["git"] is not None


@pytest.mark.parametrize("kind", ["steering", "lora"])
def test_the_saved_folder_changes_the_backends_logits(trained, tiny_vl_model: Path, kind: str) -> None:
    def logits(**more) -> torch.Tensor:
        backend = TransformersBackend(BackendSettings(
            backend="transformers", model=str(tiny_vl_model), device="cpu", dtype="float32", **more))
        ids = backend.tokenizer("Describe the room.", return_tensors="pt").input_ids
        with torch.no_grad():
            return backend.model(input_ids=ids).logits

    adapted = logits(lora_path=str(trained[kind].folder))
    assert json.loads((trained[kind].folder / "adapter_config.json").read_text())["peft_type"] == (
        "BEFT" if kind == "steering" else "LORA")
    assert not torch.allclose(adapted, logits())


@pytest.mark.parametrize("kind", ["steering", "lora"])
def test_a_fixed_seed_gives_the_same_adapter_bytes(trained, tiny_vl_model: Path, tmp_path: Path,
                                                   kind: str) -> None:
    again = train_adapter(tiny_vl_model, tiny_pairs(), config(kind), tmp_path / kind)
    assert again.weights_sha256 == trained[kind].weights_sha256
    assert again.losses == trained[kind].losses


def test_a_bad_pair_costs_only_itself(tiny_vl_model: Path, tmp_path: Path) -> None:
    good = tiny_pairs(1)[0]
    chosen, rejected = good.chosen_completion, good.rejected_completion
    bad = [Pair(good.prompt, '{"description": "no thinking"}', rejected),
           Pair(good.prompt, chosen, chosen),
           Pair("a string prompt", chosen, rejected)]
    kept, skipped = usable_pairs([bad[0], good, *bad[1:]])
    assert kept == [good]
    assert skipped == ["pair 0: the chosen completion must be text with exactly one </think>",
                       "pair 2: chosen and rejected are the same completion",
                       "pair 3: the prompt is not a taskmem Prompt"]
    with pytest.raises(ValueError, match="no pair to train on"):
        train_adapter(tiny_vl_model, bad, config("lora"), tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_a_peak_measured_after_a_reset_is_not_an_earlier_larger_one(monkeypatch) -> None:
    """One process adapts several times: each adaptation's peak must be its own."""
    big = np.ones(2**27 // 8)  # 128 MiB, every page written
    earlier = peak_rss_mib()
    del big
    if not reset_peak_rss():
        pytest.skip("this system cannot reset the resident-memory high-water mark")
    assert peak_rss_mib() < earlier - 100
    monkeypatch.setattr(dpo, "CLEAR_REFS", Path("/no/proc/self/clear_refs"))
    assert reset_peak_rss() is False  # refused: the caller learns it, nothing raises


@pytest.mark.parametrize("bad, message", [
    ({"kind": "prefix"}, "kind"), ({"layer_fraction": 1.2}, "layer_fraction"),
    ({"scale": 0.0}, "scale"), ({"lora_r": 0}, "lora_r"), ({"beta": -1.0}, "beta"),
    ({"steps": 0}, "steps"), ({"device": "tpu"}, "device"),
])
def test_a_config_rejects_bad_values(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AdapterConfig(**bad)
