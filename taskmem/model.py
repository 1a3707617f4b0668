"""The mini memorizer: a small model of the Qwen3-VL architecture, built from transformers'
own classes, with a tokenizer over mini's closed vocabulary and a Qwen3-VL processor.

It is a thinking model like the paper's memorizer (Qwen3-VL-30B-A3B-Thinking): its chat
template opens ``<think>`` in the generation prompt, so a completion is thinking, ``</think>``
and the JSON answer. Frames are 128 px images (16 merged visual tokens each); see
``taskmem.protocol`` for why frames go in as images.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch

from taskmem_bench.datasets.mini import sentences as say
from taskmem_bench.datasets.mini.dataset import plan_episode
from taskmem_bench.datasets.mini.vocab import (
    COLOURS, GESTURES, GROUP_ZONE, ITEM_ZONES, PATTERNS, SHAPES, SIGN_WORDS, SPEAKERS, TOPICS,
    Item,
)
from taskmem_bench.testing.tiny_models import (
    SPECIAL_TOKENS, greedy_generation, text_ids, token_ids, train_tokenizer,
)

from taskmem import protocol
from taskmem.minidata import training_config

FRAME_SIZE = 128
PATCH, MERGE, TEMPORAL = 16, 2, 2
VOCAB_SIZE = 1024
TEXT = dict(
    hidden_size=256,
    intermediate_size=384,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=64,
    max_position_embeddings=2048,
    rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [12, 10, 10],
                     "mrope_interleaved": True},
)
VISION = dict(
    depth=3,
    hidden_size=192,
    intermediate_size=512,
    num_heads=3,
    patch_size=PATCH,
    spatial_merge_size=MERGE,
    temporal_patch_size=TEMPORAL,
    out_hidden_size=TEXT["hidden_size"],
    num_position_embeddings=(FRAME_SIZE // PATCH) ** 2,
    deepstack_visual_indexes=[1],
)

CHAT_TEMPLATE = """\
{%- for message in messages -%}
    {{- '<|im_start|>' + message.role + '\\n' -}}
    {%- if message.content is string -%}
        {{- message.content -}}
    {%- else -%}
        {%- for part in message.content -%}
            {%- if part.type == 'image' or 'image' in part -%}
                {{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
            {%- elif part.type == 'video' or 'video' in part -%}
                {{- '<|vision_start|><|video_pad|><|vision_end|>' -}}
            {%- elif 'text' in part -%}
                {{- part.text -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- '<|im_end|>\\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\\n<think>\\n' -}}
{%- endif -%}
"""
"""ChatML with Qwen3-VL's vision placeholders; the generation prompt opens ``<think>`` as
Qwen3 thinking models do, and an assistant message is rendered as written, so a warm-start
target ``<think>\\n...</think>\\n{json}`` continues the generation prompt exactly."""


def corpus() -> str:
    """Text the tokenizer is trained on: every fact sentence mini can state, the questions of
    a training split, the prompts, JSON and stream times."""
    items = [Item(c, s) for c in COLOURS for s in SHAPES]
    lines = []
    for item, other in itertools.product(items, repeat=2):
        if item != other:
            lines += [say.beside(item, side, other) for side in ("left", "right")]
    for item in items:
        for zone in ITEM_ZONES:
            lines += [say.appears(item, zone), say.disappears(item, zone),
                      say.person_does(zone, say.picks_up(item)),
                      say.person_does(zone, say.places(item))]
        lines += [say.has_pattern(item, p) for p in PATTERNS]
        lines += [say.there_are(n, item, GROUP_ZONE) for n in range(2, 8)]
    for zone in (*ITEM_ZONES, GROUP_ZONE):
        lines += [say.person_does(zone, g) for g in GESTURES]
    lines += [say.sign_shows(w) for w in SIGN_WORDS]
    for topic in TOPICS:
        for speaker, value in itertools.product(SPEAKERS, topic.values):
            lines += [say.says(speaker, topic.say(value)),
                      say.heard_line(speaker, topic.say(value))]
            lines.append(topic.question.format(speaker=speaker))
    config = training_config("train", episodes=40)
    for index in range(config.episodes):
        for question, _ in plan_episode(config, index).questions:
            lines.append(question.text + " " + " ".join(question.options))
    lines += [f"{h:02d}:{m:02d}:{s:02d}" for h in range(3) for m in range(60) for s in range(0, 60, 7)]
    lines += [str(n) for n in range(100)]
    lines += [protocol.CONTEXT, protocol.PRECEDING, protocol.NO_PRECEDING, protocol.SIDE_TEXT,
              protocol.RULES, protocol.LIMIT, protocol.FORMAT, protocol.SUPPLEMENT,
              '{"description": ""}']
    return "\n".join(lines) + "\n"


def build_memorizer(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write a randomly initialised mini memorizer (weights, tokenizer, processor) to
    ``out_dir``; the same seed gives the same files."""
    from transformers import (
        Qwen2VLImageProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    tokenizer = train_tokenizer(corpus(), VOCAB_SIZE, CHAT_TEMPLATE)
    config = Qwen3VLConfig(text_config=dict(TEXT, **text_ids(tokenizer)), vision_config=VISION,
                           **token_ids(tokenizer))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3VLForConditionalGeneration(config)
    model.generation_config = greedy_generation(tokenizer)
    out = Path(out_dir)
    model.save_pretrained(out)
    pixels = {"shortest_edge": FRAME_SIZE * FRAME_SIZE, "longest_edge": FRAME_SIZE * FRAME_SIZE}
    vision = dict(patch_size=PATCH, merge_size=MERGE, temporal_patch_size=TEMPORAL)
    Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=pixels, **vision),
        video_processor=Qwen3VLVideoProcessor(size=pixels, **vision),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    ).save_pretrained(out)
    return out


__all__ = ["CHAT_TEMPLATE", "FRAME_SIZE", "SPECIAL_TOKENS", "build_memorizer", "corpus"]
