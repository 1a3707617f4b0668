"""Perception pretraining: the vision tower learns to see mini before any description is trained.

The paper's memorizer starts from a pretrained MLLM that already perceives; a mini memorizer
trained from random weights by description targets alone never learned to see (TASKMEM.md:
9 % true sentences after 24 minutes). This stage stands in for that pretraining: the
memorizer's own vision tower (patch embedding, blocks and both mergers, exactly the modules the
language model later reads) is trained with linear heads on the simulator's per-frame labels
(:data:`taskmem.minidata.HEADS`). The heads are thrown away afterwards; per-head accuracy on
held-out frames says which fact kinds the memorizer can possibly write truthfully.

Training runs through transformers' ``Trainer`` (checkpoints, resume, progress) on a small
``nn.Module`` that returns its loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from taskmem.minidata import HEADS, IGNORE, ClipSample, label_vector
from taskmem.protocol import pick_frames


class PerceptionModel(nn.Module):
    """The memorizer's vision tower plus one linear head per label family over the frame's
    merged visual tokens (and the deepstack tokens), as the language model receives them."""

    def __init__(self, visual: nn.Module, tokens_per_frame: int, hidden: int) -> None:
        super().__init__()
        self.visual = visual
        self.tokens_per_frame = tokens_per_frame
        self.sizes = [len(classes) for classes in HEADS.values()]
        self.head = nn.Linear(2 * tokens_per_frame * hidden, sum(self.sizes))

    def logits(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> list[torch.Tensor]:
        out = self.visual(pixel_values, grid_thw=image_grid_thw, return_dict=True)
        merged = out.pooler_output.reshape(len(image_grid_thw), -1)
        deep = out.deepstack_features[0].reshape(len(image_grid_thw), -1)
        return list(torch.split(self.head(torch.cat([merged, deep], dim=-1)), self.sizes, dim=-1))

    def forward(self, pixel_values, image_grid_thw, labels=None):
        logits = self.logits(pixel_values, image_grid_thw)
        loss = None
        if labels is not None:
            loss = sum(
                nn.functional.cross_entropy(l, labels[:, k], ignore_index=IGNORE)
                for k, l in enumerate(logits)
                if (labels[:, k] != IGNORE).any()
            )
        return {"loss": loss, "logits": torch.cat(logits, dim=-1)}


@dataclass(frozen=True)
class LabelledFrame:
    image: np.ndarray  # (size, size, 3) uint8
    labels: tuple[int, ...]


def labelled_frames(samples: Sequence[ClipSample], per_clip: int, size: int) -> list[LabelledFrame]:
    """``per_clip`` frames of each clip, picked as the policy picks them, with their labels."""
    return [
        LabelledFrame(frame.image, tuple(label_vector(s.world, frame.time)))
        for s in samples
        for frame in pick_frames(s.clip, per_clip, size)
    ]


class FrameDataset(torch.utils.data.Dataset):
    def __init__(self, frames: Sequence[LabelledFrame]) -> None:
        self.frames = list(frames)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> LabelledFrame:
        return self.frames[i]


class FrameCollator:
    """Frames through the memorizer's own image processor, so pretraining sees exactly the
    pixels the policy will feed."""

    def __init__(self, image_processor) -> None:
        self.image_processor = image_processor

    def __call__(self, batch: Sequence[LabelledFrame]) -> dict[str, torch.Tensor]:
        inputs = self.image_processor(images=[f.image for f in batch], return_tensors="pt")
        return {
            "pixel_values": inputs["pixel_values"],
            "image_grid_thw": inputs["image_grid_thw"],
            "labels": torch.tensor([f.labels for f in batch], dtype=torch.long),
        }


@torch.no_grad()
def head_accuracy(model: PerceptionModel, collator: FrameCollator,
                  frames: Sequence[LabelledFrame], batch_size: int = 64) -> dict[str, float]:
    """Per-head accuracy over frames whose label is known, and over frames where something is
    there (class > 0) under ``<head>/present``: the share a blind majority guess cannot fake."""
    model.eval()
    right = np.zeros(len(HEADS)); known = np.zeros(len(HEADS))
    right_present = np.zeros(len(HEADS)); present = np.zeros(len(HEADS))
    for start in range(0, len(frames), batch_size):
        batch = collator(frames[start:start + batch_size])
        logits = model.logits(batch["pixel_values"], batch["image_grid_thw"])
        labels = batch["labels"].numpy()
        for k, l in enumerate(logits):
            guess, truth = l.argmax(-1).numpy(), labels[:, k]
            mask = truth != IGNORE
            right[k] += (guess[mask] == truth[mask]).sum(); known[k] += mask.sum()
            mask = truth > 0
            right_present[k] += (guess[mask] == truth[mask]).sum(); present[k] += mask.sum()
    report = {}
    for k, name in enumerate(HEADS):
        report[name] = float(right[k] / known[k]) if known[k] else float("nan")
        if present[k]:
            report[f"{name}/present"] = float(right_present[k] / present[k])
    return report


# -- captions: the language model learns to read what the vision tower sees ------------------

CAPTION_PROMPT = "List what this frame shows."


def state_caption(labels: dict[str, int]) -> str | None:
    """A fixed-order account of one frame's state in mini's words (the sign, the rug, each
    zone's objects left to right, the person, what they hold); None when a label is ambiguous.
    It names every kind the frame shows, so it teaches reading, not a focus."""
    from taskmem_bench.datasets.mini.layout import SLOTS

    if any(v == IGNORE for k, v in labels.items() if k != "person_zone"):
        return None
    name = {k: HEADS[k][v] if v != IGNORE else "walking" for k, v in labels.items()}
    parts = [f"The sign shows the word {name['sign']}." if labels["sign"] else "The sign is blank."]
    if labels["group_count"]:
        parts.append(f"There are {name['group_count']} {name['group_colour']} "
                     f"{name['group_shape']}s on the rug.")
    for zone, slots in SLOTS.items():
        things = [
            f"{name[f'{zone}{k}_colour']} {name[f'{zone}{k}_shape']} "
            f"{name[f'{zone}{k}_pattern']}" if labels[f"{zone}{k}_shape"] else "nothing"
            for k in range(len(slots))
        ]
        parts.append(f"The {zone} holds {', '.join(things)}.")
    where = name["person_zone"]
    if where == "walking":
        parts.append("The person walks.")
    else:
        doing = {"none": "stands", "reach": "reaches"}.get(name["person_act"], name["person_act"])
        parts.append(f"The person {doing}" + ("." if where == "none" else f" at the {where}."))
    if labels["held_shape"]:
        parts.append(f"The person holds the {name['held_colour']} {name['held_shape']}.")
    return " ".join(parts)


def caption_rows(frames: Iterable[LabelledFrame]):
    """Prompt-completion rows for trl: one frame, :data:`CAPTION_PROMPT`, its state caption."""
    from PIL import Image

    for frame in frames:
        caption = state_caption(dict(zip(HEADS, frame.labels)))
        if caption is None:
            continue
        yield {
            "prompt": [{"role": "user", "content": [{"type": "image"},
                                                    {"type": "text", "text": CAPTION_PROMPT}]}],
            "completion": [{"role": "assistant", "content": "<think>\n</think>\n" + caption}],
            "images": [Image.fromarray(frame.image)],
        }
