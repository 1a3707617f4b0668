"""Phase Two's step 5: DPO (trl ``DPOTrainer``) of a small adapter on the frozen memorizer, from
(chosen, rejected) completions of one prompt each.

Two adapter kinds, both PEFT folders that ``--set lora_path=FOLDER`` loads:

* ``steering``: the paper's steering vector, a peft ``BEFT`` bias (zero-initialised) on the
  ``down_proj`` of the text decoder layer at ``layer_fraction`` of the depth, which adds one
  vector to the residual stream after that layer; multiplied by ``scale`` after training;
* ``lora``: a peft LoRA on the language model's projections only.

The base stays frozen; with a peft model trl's reference is the model with the adapter off.
Prompts are rendered as the backends render them (the chat template's generation prompt, which
opens ``<think>`` on thinking models) and the completions are the model's own text after it, so
DPO scores exactly the tokens the memorizer sampled.
"""

from __future__ import annotations

import hashlib
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from taskmem.protocol import Prompt
from taskmem.record import TrainingRecord
from taskmem.stages import cpu_fields, parent_record

WEIGHTS_FILE = "adapter_model.safetensors"
LORA_TARGETS = r".*language_model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)"
"""The text decoder's attention and MLP projections; the vision tower is never adapted."""


@dataclass(frozen=True)
class AdapterConfig:
    """What Phase Two trains: the adapter's kind and shape and the DPO settings (the paper's:
    sigmoid loss, beta 0.1, lr 1e-3, 10 steps). ``scale`` multiplies a steering vector after
    training (the authors' 1.5); a LoRA's strength is ``lora_alpha / lora_r`` instead."""

    kind: Literal["steering", "lora"] = "steering"
    layer_fraction: float = 0.46
    scale: float = 1.5
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    beta: float = 0.1
    learning_rate: float = 1e-3
    steps: int = 10
    batch_size: int = 4
    seed: int = 0
    device: Literal["cpu", "cuda"] = "cpu"
    dtype: Literal["float32", "bfloat16"] = "float32"

    def __post_init__(self) -> None:
        problems = [
            (self.kind not in ("steering", "lora"), f"kind must be steering or lora, not {self.kind!r}"),
            (not 0.0 <= self.layer_fraction <= 1.0, "layer_fraction must be in [0, 1]"),
            (not self.scale > 0, "scale must be positive"),
            (self.lora_r < 1 or self.lora_alpha <= 0, "lora_r >= 1 and lora_alpha > 0"),
            (not 0.0 <= self.lora_dropout < 1.0, "lora_dropout must be in [0, 1)"),
            (not self.beta > 0 or not self.learning_rate > 0, "beta and learning_rate must be positive"),
            (self.steps < 1 or self.batch_size < 1, "steps and batch_size must be at least 1"),
            (self.device not in ("cpu", "cuda"), "device must be cpu or cuda"),
            (self.dtype not in ("float32", "bfloat16"), "dtype must be float32 or bfloat16"),
        ]
        for failed, message in problems:
            if failed:
                raise ValueError(message)

    def layer(self, num_layers: int) -> int:
        """The steered decoder layer: ``round(layer_fraction * num_layers)``, clamped to the
        model (22 of 48 for Qwen3-VL-30B-A3B, as the authors)."""
        return min(max(round(self.layer_fraction * num_layers), 0), num_layers - 1)

    def peft_config(self, num_layers: int):
        from peft import BeftConfig, LoraConfig

        if self.kind == "steering":
            return BeftConfig(target_modules=[steering_target(self.layer(num_layers))])
        return LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha,
                          lora_dropout=self.lora_dropout, target_modules=LORA_TARGETS)


def steering_target(layer: int) -> str:
    return f"language_model.layers.{layer}.mlp.down_proj"


class PreferencePair(Protocol):
    """One DPO example: the memorizer's prompt (supplement included) and two whole completions
    it wrote for it (thinking text, ``</think>``, the JSON answer). ``taskmem.pairs`` selects
    them."""

    @property
    def prompt(self) -> Prompt: ...

    @property
    def chosen_completion(self) -> str: ...

    @property
    def rejected_completion(self) -> str: ...


@dataclass(frozen=True)
class DpoStep:
    """One optimiser step as trl logged it (rewards are beta-scaled log-ratios to the base)."""

    step: int
    loss: float
    chosen_reward: float
    rejected_reward: float
    margin: float
    accuracy: float


@dataclass(frozen=True)
class AdapterResult:
    """A trained adapter folder and how it was made. ``peak_rss_mib`` is the process's peak
    resident memory during this training (the high-water mark is reset to the current size when
    it starts, where the system lets :func:`reset_peak_rss` work, on Linux), so it includes what
    the process held before; elsewhere the process's peak so far (see :func:`peak_rss_mib`)."""

    folder: Path
    steps: tuple[DpoStep, ...]
    weights_sha256: str
    wall_seconds: float
    peak_rss_mib: float
    pairs: int
    skipped: tuple[str, ...] = ()
    """One line per pair left out, naming its problem."""

    @property
    def losses(self) -> tuple[float, ...]:
        return tuple(s.loss for s in self.steps)


def pair_problem(pair: PreferencePair) -> str | None:
    """Why ``pair`` cannot be trained on, or None."""
    if not isinstance(pair.prompt, Prompt):
        return "the prompt is not a taskmem Prompt"
    completions = {"chosen": pair.chosen_completion, "rejected": pair.rejected_completion}
    for name, text in completions.items():
        if not isinstance(text, str) or text.count("</think>") != 1:
            return f"the {name} completion must be text with exactly one </think>"
    if pair.chosen_completion == pair.rejected_completion:
        return "chosen and rejected are the same completion"
    return None


def usable_pairs(pairs: Sequence[PreferencePair]) -> tuple[list[PreferencePair], list[str]]:
    """The pairs to train on, and one line for each pair left out."""
    kept, skipped = [], []
    for index, pair in enumerate(pairs):
        problem = pair_problem(pair)
        if problem is None:
            kept.append(pair)
        else:
            skipped.append(f"pair {index}: {problem}")
    return kept, skipped


def preference_rows(pairs: Sequence[PreferencePair], processor) -> list[dict[str, Any]]:
    """trl's standard preference rows: the prompt rendered with the generation prompt (as the
    backends render it), each completion closed by the end-of-turn token the model stops at."""
    from taskmem.streams import trl_prompt

    end = processor.tokenizer.eos_token
    rows = []
    for pair in pairs:
        messages, images = trl_prompt(pair.prompt)
        text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        rows.append({"prompt": text, "chosen": pair.chosen_completion + end,
                     "rejected": pair.rejected_completion + end, "images": images})
    return rows


def fit_adapter(model, processor, pairs: Sequence[PreferencePair], config: AdapterConfig):
    """DPO of a fresh adapter on ``model`` (frozen); returns the peft model, its steering vector
    already scaled, and the logged steps."""
    from datasets import Dataset
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    from taskmem.phase_one import device_fields

    set_seed(config.seed)  # trl wraps the model before the Trainer seeds: LoRA's init draws here
    num_layers = model.config.get_text_config().num_hidden_layers
    with tempfile.TemporaryDirectory() as work:
        args = DPOConfig(
            **(cpu_fields(Path(work), config.seed) | device_fields(config.device, config.dtype)
               | {"save_strategy": "no"}),
            per_device_train_batch_size=config.batch_size, max_steps=config.steps,
            learning_rate=config.learning_rate, lr_scheduler_type="constant",
            loss_type=["sigmoid"], beta=config.beta, max_length=None,
            # dropout only where asked for (a LoRA's); trl would otherwise switch it off
            disable_dropout=config.lora_dropout == 0.0 or config.kind != "lora",
        )
        trainer = DPOTrainer(
            model=model, args=args, processing_class=processor,
            train_dataset=Dataset.from_list(preference_rows(pairs, processor)),
            peft_config=config.peft_config(num_layers),
        )
        trainer.train()
    adapted = trainer.model
    if config.kind == "steering":
        with torch.no_grad():
            for name, parameter in adapted.named_parameters():
                if "beft_bias" in name:
                    parameter.mul_(config.scale)
    return adapted, dpo_steps(trainer.state.log_history)


def dpo_steps(history: Sequence[dict[str, Any]]) -> tuple[DpoStep, ...]:
    return tuple(
        DpoStep(int(h["step"]), float(h["loss"]), float(h["rewards/chosen"]),
                float(h["rewards/rejected"]), float(h["rewards/margins"]),
                float(h["rewards/accuracies"]))
        for h in history if "loss" in h and "rewards/margins" in h
    )


def train_adapter(model_folder: Path, pairs: Sequence[PreferencePair], config: AdapterConfig,
                  out: Path) -> AdapterResult:
    """Train an adapter of the frozen model in ``model_folder`` on ``pairs`` and save it as a
    PEFT folder at ``out`` with its ``training_record.json``. Pairs that cannot be trained on
    are left out, each named in the result; none left raises ``ValueError``."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    started = time.perf_counter()
    reset_peak_rss()
    kept, skipped = usable_pairs(pairs)
    if not kept:
        raise ValueError(f"no pair to train on ({len(pairs)} given: {'; '.join(skipped[:3])})")
    record = TrainingRecord(f"phase-two-{config.kind}", asdict(config), config.seed, data_seeds={},
                            parent=parent_record(Path(model_folder)))
    model = AutoModelForImageTextToText.from_pretrained(model_folder, dtype=getattr(torch, config.dtype))
    processor = AutoProcessor.from_pretrained(model_folder)
    adapted, steps = fit_adapter(model, processor, kept, config)
    out = Path(out)
    adapted.save_pretrained(out)
    result = AdapterResult(
        folder=out, steps=steps,
        weights_sha256=hashlib.sha256((out / WEIGHTS_FILE).read_bytes()).hexdigest(),
        wall_seconds=round(time.perf_counter() - started, 2), peak_rss_mib=peak_rss_mib(),
        pairs=len(kept), skipped=tuple(skipped),
    )
    record.finish([asdict(s) for s in steps], {
        "pairs": result.pairs, "skipped": list(skipped), "weights_sha256": result.weights_sha256,
        "peak_rss_mib": result.peak_rss_mib,
    })
    record.write(out)
    return result


CLEAR_REFS = Path("/proc/self/clear_refs")
PROC_STATUS = Path("/proc/self/status")


def reset_peak_rss() -> bool:
    """Start a new peak for :func:`peak_rss_mib`: reset the kernel's resident-memory high-water
    mark to the current size (Linux 4+: "5" written to /proc/self/clear_refs), so that one
    process adapting several times reports each adaptation's own peak, not the largest earlier
    one. False where that is impossible (no /proc, or the write refused)."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    """The peak resident set size in MiB since the last :func:`reset_peak_rss` (``VmHWM`` in
    /proc/self/status). Where /proc is not available (macOS) it falls back to ``ru_maxrss``
    (KiB on Linux, bytes on macOS), and where the reset was refused the mark was never reset:
    either way it is then the process's peak since it started, earlier work included."""
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 2**10, 1)  # "VmHWM:  123 kB"
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
