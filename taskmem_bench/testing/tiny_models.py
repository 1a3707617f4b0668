"""Tiny random models from real transformers architectures, built offline in a fraction of a
second (once transformers is imported).

Tests and CPU dry runs need the real code paths (processor, chat template, vision tower,
``generate``) without downloading weights. :func:`build_tiny_model` writes a directory that the
ordinary Auto classes load: a byte-level BPE tokenizer trained here on a short English text, a
Qwen-style chat template, the model's image and video processors, and a randomly initialised
model of about a megabyte. The same seed gives byte-identical files.

    python -m taskmem_bench.testing.tiny_models qwen3-vl /tmp/tiny-vl
    taskmem-bench run --task mini --policy caption --reader paper --set model=/tmp/tiny-vl
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch
from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers
from tokenizers.trainers import BpeTrainer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, Qwen2Tokenizer

Kind = Literal["qwen3-vl", "qwen3-vl-moe", "qwen2.5-vl", "qwen3"]
KINDS: tuple[str, ...] = get_args(Kind)

# Qwen's pre-tokenizer split (as in transformers' Qwen2Tokenizer), so merges never cross it.
_PRETOKENIZE = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Control tokens the Qwen processors and chat templates use; skipped when decoding.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
EOS, PAD = "<|im_end|>", "<|endoftext|>"
# Ordinary added tokens, as in real Qwen3 tokenizers: kept when decoding, so thinking can be
# split from the answer.
THINK_TOKENS = ("<think>", "</think>")
VOCAB_SIZE = 1024
EOS_SCALE = 1.5

CORPUS = """\
A woman walks into the kitchen and puts a red cup on the table next to the window.
The man opens the fridge, takes out two eggs and a bottle of milk, and closes the door.
She picks up the blue book from the shelf and reads the first page aloud.
Two children play with a yellow ball in the garden while their father waters the plants.
The camera shows a busy street with cars, buses and people crossing at the light.
He writes a short note on a piece of paper and leaves it under the green lamp.
The dog runs across the room, jumps on the sofa and falls asleep near the door.
Someone knocks on the door; the old man stands up slowly and walks to answer it.
The cook cuts the onions, adds salt and pepper, and stirs the soup in a large pot.
A cyclist rides past the bakery, stops at the corner and checks his phone.
The teacher draws a circle and a square on the board and asks a question.
Three people sit at a round table, talking and drinking coffee in the morning.
She counts the coins on the desk: one, two, three, four, five, six, seven, eight.
At ten o'clock the lights go out and the room becomes very dark and quiet.
The person in the black jacket places the keys in the top drawer of the cabinet.
Later the same person returns, opens the drawer and takes the keys away again.
A white van parks in front of the house and a man carries boxes inside.
The girl paints a picture of the sea with a small boat and a bright sun.
He puts the laptop in his bag, turns off the screen and leaves the office.
Water boils in the kettle; she pours it into the teapot and waits for a minute.
The sign above the shop says OPEN in large letters, and the clock shows half past nine.
People wait for the train on the platform; the train arrives five minutes late.
He loses his glasses, searches under the bed and finally finds them in the bathroom.
The video starts in a small room with a wooden chair, a plant and a window.
The speaker says that the meeting will begin after lunch in the main hall.
A hand moves the chess piece forward, and the other player thinks for a long time.
The scene changes to a park where an old woman feeds the birds with bread.
She takes a photo of the mountains, then puts the camera back into her bag.
The number on the door is twelve, and the light in the hall is still on.
Between the first and the second clip, the man has changed his shirt.
Question: what did the woman put on the table? Answer: a red cup.
Question: where are the keys now? Options: A. drawer B. table C. bag D. floor E. cannot tell.
The answer is C because the person took the keys away after opening the drawer.
Reasoning: the memory says the cup was on the table before the man arrived.
Final answer: B. Insufficient information to answer from memory.
{"description": "A man cooks soup in a kitchen and talks on the phone."}
{"description": "Two people walk in the park and sit on a bench near the lake."}
Summary: the person cleaned the room, moved the chair and left at the end of the video.
Memory entry at 12.5 seconds: a woman holds a green bag and looks at the screen.
In the afternoon they watch a movie, eat some fruit and talk about the weekend.
The weather is cold and rainy, so everyone wears a coat and carries an umbrella.
He fixes the broken bike with a small tool and tests it on the road outside.
A phone rings on the desk, but nobody answers it and the call stops after a while.
The student opens a notebook, writes the date and underlines the title twice.
Then the light turns green, the cars move on and the street becomes empty again.
"""

# A Qwen-style ChatML template: string or multimodal list content; Qwen3-VL's layout of image and
# video placeholders (the processor expands each pad token); earlier assistant turns lose their
# thinking; ``enable_thinking=false`` closes an empty think block as Qwen3 does.
CHAT_TEMPLATE = """\
{%- set image_count = namespace(value=0) -%}
{%- set video_count = namespace(value=0) -%}
{%- for message in messages -%}
    {{- '<|im_start|>' + message.role + '\\n' -}}
    {%- if message.content is string -%}
        {%- if message.role == 'assistant' -%}
            {{- message.content.split('</think>')[-1].lstrip('\\n') -}}
        {%- else -%}
            {{- message.content -}}
        {%- endif -%}
    {%- else -%}
        {%- for part in message.content -%}
            {%- if part.type == 'image' or 'image' in part or 'image_url' in part -%}
                {%- set image_count.value = image_count.value + 1 -%}
                {%- if add_vision_id -%}{{- 'Picture ' ~ image_count.value ~ ': ' -}}{%- endif -%}
                {{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
            {%- elif part.type == 'video' or 'video' in part -%}
                {%- set video_count.value = video_count.value + 1 -%}
                {%- if add_vision_id -%}{{- 'Video ' ~ video_count.value ~ ': ' -}}{%- endif -%}
                {{- '<|vision_start|><|video_pad|><|vision_end|>' -}}
            {%- elif 'text' in part -%}
                {{- part.text -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- '<|im_end|>\\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\\n' -}}
    {%- if enable_thinking is defined and enable_thinking is false -%}
        {{- '<think>\\n\\n</think>\\n\\n' -}}
    {%- endif -%}
{%- endif -%}
"""

# Vision sizes: 4-pixel patches merged 2 x 2, so the processors resize to multiples of 8 px.
PATCH, MERGE, TEMPORAL = 4, 2, 2
IMAGE_PIXELS = {"shortest_edge": 16 * 16, "longest_edge": 64 * 64}
VIDEO_PIXELS = {"shortest_edge": 16 * 16, "longest_edge": 32 * 32 * 16}
VIDEO_TOKENS_PER_FRAME = 16
TEXT = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=4096,
    initializer_range=0.2,  # wide enough that greedy decoding wanders over the vocabulary
)
VISION = dict(
    depth=2,
    hidden_size=32,
    intermediate_size=64,
    num_heads=2,
    patch_size=PATCH,
    spatial_merge_size=MERGE,
    temporal_patch_size=TEMPORAL,
    out_hidden_size=TEXT["hidden_size"],
)


def train_tokenizer(
    corpus: str = CORPUS, vocab_size: int = VOCAB_SIZE, chat_template: str = CHAT_TEMPLATE
) -> Qwen2Tokenizer:
    """A Qwen2 tokenizer (byte-level BPE) trained on ``corpus``, with Qwen's special tokens;
    ``<|im_end|>`` ends a turn and ``<|endoftext|>`` pads, as in Qwen instruct models."""
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PRETOKENIZE), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS) - len(THINK_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus.splitlines(keepends=True), trainer)
    trained = json.loads(bpe.to_str())["model"]
    tokenizer = Qwen2Tokenizer(
        vocab=trained["vocab"],
        merges=[tuple(m) for m in trained["merges"]],
        eos_token=EOS,
        pad_token=PAD,
        unk_token=None,
        extra_special_tokens=[t for t in SPECIAL_TOKENS if t not in (EOS, PAD)],
        model_max_length=TEXT["max_position_embeddings"],
    )
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    tokenizer.chat_template = chat_template
    return tokenizer


def token_ids(tokenizer) -> dict[str, int]:
    """A Qwen-VL config's vision token ids, as ``tokenizer`` numbers them."""
    ids = tokenizer.convert_tokens_to_ids
    return dict(
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )


def text_ids(tokenizer) -> dict[str, object]:
    """A text config's vocabulary size (padded to a multiple of 64) and special token ids."""
    return dict(
        vocab_size=-(-len(tokenizer) // 64) * 64,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )


def _qwen3_vl(tokenizer, moe: bool):
    from transformers import (
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLMoeConfig,
        Qwen3VLMoeForConditionalGeneration,
    )

    text = dict(
        TEXT,
        **text_ids(tokenizer),
        rope_parameters={"rope_type": "default", "rope_theta": 5e5, "mrope_section": [4, 2, 2],
                         "mrope_interleaved": True},
    )
    vision = dict(VISION, num_position_embeddings=64, deepstack_visual_indexes=[0])
    if moe:
        text.update(
            num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, decoder_sparse_step=1
        )
        config = Qwen3VLMoeConfig(text_config=text, vision_config=vision, **token_ids(tokenizer))
        return Qwen3VLMoeForConditionalGeneration(config)
    config = Qwen3VLConfig(text_config=text, vision_config=vision, **token_ids(tokenizer))
    return Qwen3VLForConditionalGeneration(config)


def _qwen25_vl(tokenizer):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    text = dict(
        TEXT,
        **text_ids(tokenizer),
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
    )
    text.pop("head_dim")  # Qwen2.5 derives it: hidden_size / num_attention_heads = 16
    vision = dict(
        VISION,
        hidden_act="silu",
        window_size=PATCH * MERGE * 2,
        fullatt_block_indexes=[1],
        tokens_per_second=2,
    )
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **token_ids(tokenizer))
    return Qwen2_5_VLForConditionalGeneration(config)


def _qwen3(tokenizer):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    return Qwen3ForCausalLM(Qwen3Config(**TEXT, **text_ids(tokenizer)))


def _readable_output(model: PreTrainedModel, tokenizer) -> None:
    """Shape a random model's output so its greedy text reads as a jumble of words that ends.

    Tokens that decode to no readable text (stray bytes of UTF-8 characters, control and think
    tokens) get a zero output row, so their logit 0 loses to the best of the hundreds of word
    pieces. The end-of-turn row is scaled up by :data:`EOS_SCALE`, so that about half of the
    completions stop within a hundred tokens instead of all running to ``max_new_tokens``.
    """
    unreadable = [
        i
        for token, i in tokenizer.get_vocab().items()
        if token in SPECIAL_TOKENS + THINK_TOKENS
        or not (text := tokenizer.decode([i])).strip()
        or not all(c.isprintable() and c != "\ufffd" or c in " \n" for c in text)
    ]
    with torch.no_grad():
        output = model.get_output_embeddings().weight
        end_of_turn = output[tokenizer.eos_token_id] * EOS_SCALE
        output[unreadable] = 0
        output[tokenizer.eos_token_id] = end_of_turn


@dataclass(frozen=True)
class _Spec:
    """How to build one kind: its model, and for VL kinds the transformers classes of its
    processor and video processor (the image processor is Qwen2-VL's for all of them)."""

    model: Callable[[Any], PreTrainedModel]
    processor: str | None = None
    video_processor: str | None = None


SPECS: dict[str, _Spec] = {
    "qwen3-vl": _Spec(partial(_qwen3_vl, moe=False), "Qwen3VLProcessor", "Qwen3VLVideoProcessor"),
    "qwen3-vl-moe": _Spec(
        partial(_qwen3_vl, moe=True), "Qwen3VLProcessor", "Qwen3VLVideoProcessor"
    ),
    "qwen2.5-vl": _Spec(_qwen25_vl, "Qwen2_5_VLProcessor", "Qwen2VLVideoProcessor"),
    "qwen3": _Spec(_qwen3),
}


def _processor(spec: _Spec, tokenizer):
    import transformers

    vision = dict(patch_size=PATCH, merge_size=MERGE, temporal_patch_size=TEMPORAL)
    video_processor = getattr(transformers, spec.video_processor)(
        size=VIDEO_PIXELS,
        cap_pixels_per_frame=True,
        max_video_tokens=VIDEO_TOKENS_PER_FRAME,
        **vision,
    )
    return getattr(transformers, spec.processor)(
        image_processor=transformers.Qwen2VLImageProcessor(size=IMAGE_PIXELS, **vision),
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def greedy_generation(tokenizer):
    """Greedy decoding that stops at the end-of-turn or the padding token."""
    from transformers import GenerationConfig

    return GenerationConfig(eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
                            pad_token_id=tokenizer.pad_token_id, do_sample=False)


def build_tiny_model(kind: Kind, out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random ``kind`` model with its tokenizer (and processor) to ``out_dir``."""
    if kind not in SPECS:
        raise ValueError(f"unknown tiny model kind {kind!r}; choose one of {', '.join(KINDS)}")
    spec = SPECS[kind]
    out = Path(out_dir)
    tokenizer = train_tokenizer()
    with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
        torch.manual_seed(seed)
        model = spec.model(tokenizer)
    _readable_output(model, tokenizer)
    model.generation_config = greedy_generation(tokenizer)
    model.save_pretrained(out)
    (_processor(spec, tokenizer) if spec.processor else tokenizer).save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m taskmem_bench.testing.tiny_models",
        description="Build a tiny random model (offline) for CPU runs: --set model=OUT_DIR",
    )
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_tiny_model(args.kind, args.out_dir, seed=args.seed))


if __name__ == "__main__":
    main()
