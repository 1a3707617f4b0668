"""Chat requests to and from the OpenAI chat-completions wire format, as vLLM serves it.

One module encodes (the ``openai`` backend) and decodes (the loopback test server), so the two
are exact inverses and a round trip through HTTP delivers the same pixels, frame times, text
and sampling settings.

- Text: a message that is one text part is sent as a plain string (every OpenAI-compatible
  server accepts that); otherwise content is a list of parts.
- Images: ``image_url`` parts holding a lossless PNG data URL.
- Video: vLLM's client-side-frames format, one ``video_url`` part whose URL is
  ``data:video/jpeg;base64,<frame 1>,<frame 2>,...``. vLLM's ``VideoMediaIO`` decodes each
  frame with PIL, which reads PNG as well as JPEG whatever the media type says, so frames are
  PNG (lossless) by default and JPEG (quality 95) on request: on a natural 427x640 photo JPEG
  is 185 KiB against PNG's 672 KiB and encodes about ten times faster (2.6 against 37 ms).
  The media type stays ``video/jpeg`` because that is what selects vLLM's frame-list decoder.
- Video metadata: vLLM's request-level extensions ``media_io_kwargs={"video": {"fps",
  "frames_indices", "num_frames"}}`` and ``mm_processor_kwargs={"do_sample_frames": false}``.
  ``fps`` is the source frame rate and ``frames_indices`` the frames' absolute indices on the
  stream, from which Qwen3-VL's processor prints the true timestamps; ``num_frames`` is the
  number sent, since vLLM keeps only the first ``num_frames`` (default 32) of a frame list;
  ``do_sample_frames=false`` stops the HF processor from resampling. These fields are
  request-wide in vLLM, so every video of one request must share them. They are sent only
  when a request has video, so text and image requests stay plain OpenAI requests.

Timestamps travel as ``frames_indices / fps``: a frame time that is not on the source frame
grid arrives rounded to it, the same rounding :attr:`VideoPart.frame_indices` applies for every
backend. A one-frame video arrives as two copies of its frame (see :data:`MIN_VIDEO_FRAMES`),
which the transformers backend treats exactly as the single frame.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from PIL import Image

from taskmem_bench.backends.base import (
    ChatRequest,
    Generation,
    ImagePart,
    Message,
    Part,
    Sampling,
    TextPart,
    VideoPart,
)

FrameCodec = Literal["png", "jpeg"]
# compress_level only trades CPU for size; PNG pixels are exact at any level.
_SAVE_ARGS: dict[str, dict[str, Any]] = {
    "png": {"format": "PNG", "compress_level": 1},
    "jpeg": {"format": "JPEG", "quality": 95},
}
_VIDEO_PREFIX = "data:video/jpeg;base64,"
EXTENSION_KEYS = ("media_io_kwargs", "mm_processor_kwargs", "top_k")
"""vLLM's request fields beyond the OpenAI API (the ``openai`` client sends them as
``extra_body``)."""
_ROLES = ("system", "user", "assistant")
MIN_VIDEO_FRAMES = 2
"""Qwen-VL video processors refuse fewer frames than their temporal patch (2), so a shorter
video is sent with its last frame repeated, as the transformers backend pads it."""


def encode_frame(image: np.ndarray, codec: FrameCodec = "png") -> str:
    """One RGB frame as base64 (no data-URL prefix)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, **_SAVE_ARGS[codec])
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_frame(data: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as image:
        return np.array(image.convert("RGB"))  # writable, as torch wants


def encode_request(
    request: ChatRequest, model: str, frame_codec: FrameCodec = "png"
) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions`` for ``request``."""
    messages = [
        Message(m.role, tuple(_padded(p) if isinstance(p, VideoPart) else p for p in m.content))
        for m in request.messages
    ]
    videos = [p for m in messages for p in m.content if isinstance(p, VideoPart)]
    body: dict[str, Any] = {
        "model": model,
        "messages": [_encode_message(m, frame_codec) for m in messages],
        **encode_sampling(request.sampling),
    }
    if videos:
        body.update(_video_extensions(videos))
    return body


def _padded(video: VideoPart) -> VideoPart:
    """A video of fewer than :data:`MIN_VIDEO_FRAMES` frames with its last frame repeated."""
    pad = MIN_VIDEO_FRAMES - len(video.frames)
    if pad <= 0:
        return video
    return VideoPart(
        np.concatenate([video.frames, np.repeat(video.frames[-1:], pad, axis=0)]),
        np.concatenate([video.timestamps, np.repeat(video.timestamps[-1:], pad)]),
        video.source_fps,
    )


def encode_sampling(sampling: Sampling) -> dict[str, Any]:
    # max_completion_tokens is the current OpenAI name (hosted reasoning models refuse
    # max_tokens); vLLM accepts both. top_k (vLLM's extension) only when set, so a request
    # without it stays a plain OpenAI request with the same cache key as before.
    body: dict[str, Any] = {
        "max_completion_tokens": sampling.max_new_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "seed": sampling.seed,
    }
    if sampling.top_k is not None:
        body["top_k"] = sampling.top_k
    return body


def _encode_message(message: Message, codec: FrameCodec) -> dict[str, Any]:
    if len(message.content) == 1 and isinstance(message.content[0], TextPart):
        return {"role": message.role, "content": message.content[0].text}
    return {"role": message.role, "content": [_encode_part(p, codec) for p in message.content]}


def _encode_part(part: Part, codec: FrameCodec) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        url = "data:image/png;base64," + encode_frame(part.image, "png")
        return {"type": "image_url", "image_url": {"url": url}}
    frames = ",".join(encode_frame(frame, codec) for frame in part.frames)
    return {"type": "video_url", "video_url": {"url": _VIDEO_PREFIX + frames}}


def _video_extensions(videos: Sequence[VideoPart]) -> dict[str, Any]:
    first = videos[0]
    if any(v.source_fps != first.source_fps or v.frame_indices != first.frame_indices
           for v in videos[1:]):
        raise ValueError(
            "the OpenAI wire format carries one video metadata per request (vLLM's "
            "request-level media_io_kwargs): all videos of a request must share fps and "
            "frame indices; send differing videos in separate requests"
        )
    video = {
        "fps": first.source_fps,
        "frames_indices": first.frame_indices,
        "num_frames": len(first.frame_indices),
    }
    return {"media_io_kwargs": {"video": video}, "mm_processor_kwargs": {"do_sample_frames": False}}


def decode_request(body: Mapping[str, Any]) -> tuple[str, ChatRequest]:
    """``(model, request)`` from a chat-completions body; ``ValueError`` says what is wrong."""
    if not isinstance(body, Mapping):
        raise ValueError("the request body must be a JSON object")
    if body.get("stream"):
        raise ValueError("streaming is not supported")
    if body.get("n", 1) != 1:
        raise ValueError("only n=1 is supported")
    model = body.get("model")
    messages = body.get("messages")
    if not isinstance(model, str) or not isinstance(messages, list) or not messages:
        raise ValueError("'model' (a string) and 'messages' (a non-empty list) are required")
    video = (body.get("media_io_kwargs") or {}).get("video")
    decoded = tuple(_decode_message(m, video) for m in messages)
    return model, ChatRequest(decoded, _decode_sampling(body))


def _decode_sampling(body: Mapping[str, Any]) -> Sampling:
    """Absent fields take the OpenAI API's defaults."""
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    temperature, top_p = body.get("temperature"), body.get("top_p")
    return Sampling(
        max_new_tokens=int(max_tokens) if max_tokens else Sampling.max_new_tokens,
        temperature=1.0 if temperature is None else float(temperature),
        top_p=1.0 if top_p is None else float(top_p),
        seed=int(body.get("seed") or 0),
        top_k=_top_k(body.get("top_k")),
    )


def _top_k(value: Any) -> int | None:
    """vLLM reads a top_k of 0 or -1 as "keep every token"."""
    return None if value is None or int(value) in (0, -1) else int(value)


def _decode_message(message: Any, video: Mapping[str, Any] | None) -> Message:
    if not isinstance(message, Mapping) or message.get("role") not in _ROLES:
        raise ValueError(f"each message needs a role in {_ROLES}, got {message!r:.200}")
    content = message.get("content")
    if isinstance(content, str):
        return Message(message["role"], (TextPart(content),))
    if not isinstance(content, list):
        raise ValueError("message content must be a string or a list of parts")
    return Message(message["role"], tuple(_decode_part(p, video) for p in content))


def _decode_part(part: Any, video: Mapping[str, Any] | None) -> Part:
    kind = part.get("type") if isinstance(part, Mapping) else None
    if kind == "text":
        return TextPart(str(part["text"]))
    if kind == "image_url":
        url = part["image_url"]["url"]
        header, _, data = url.partition(",")
        if not (header.startswith("data:image/") and header.endswith(";base64")):
            raise ValueError("image_url must be a base64 data URL")
        return ImagePart(decode_frame(data))
    if kind == "video_url":
        url = part["video_url"]["url"]
        if not url.startswith(_VIDEO_PREFIX):
            raise ValueError(f"video_url must be a frame list ({_VIDEO_PREFIX}<frame>,...)")
        if not video or "fps" not in video or "frames_indices" not in video:
            raise ValueError("a video_url needs media_io_kwargs.video.fps and .frames_indices")
        frames = np.stack([decode_frame(f) for f in url[len(_VIDEO_PREFIX):].split(",")])
        fps = float(video["fps"])
        indices = np.asarray(video["frames_indices"], dtype=np.int64)
        return VideoPart(frames=frames, timestamps=indices / fps, source_fps=fps)
    raise ValueError(f"unsupported content part type {kind!r}")


def completion_body(generation: Generation, model: str, request_id: str) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object for one generation."""
    usage = dict(generation.usage)
    if "prompt_tokens" in usage and "completion_tokens" in usage:
        usage.setdefault("total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": generation.text},
                "finish_reason": generation.finish_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": usage or None,
    }


class UnusableCompletion(ValueError):
    """A reply that holds no generation: its message names the field at fault and what it held."""


def decode_completion(payload: Any) -> Generation:
    """The generation in a ``chat.completion`` object; :class:`UnusableCompletion` if the object
    does not hold one (checked field by field, so nothing unusable reaches a cache or a reader).

    ``content`` may be null (OpenAI's API allows it; it reads as empty text). A server running a
    reasoning parser (``vllm serve --reasoning-parser``) returns the thinking apart from the
    content; it is put back in front as ``<think>...</think>`` so :class:`Generation` splits it
    as for every other backend. Of ``usage``, the integer counts are kept (nested details are
    not token counts).
    """
    _check(payload, Mapping, "the reply")
    choices = _check(payload.get("choices"), list, "choices")
    if not choices:
        raise UnusableCompletion("choices is an empty list, expected one choice")
    choice = _check(choices[0], Mapping, "choices[0]")
    message = _check(choice.get("message"), Mapping, "choices[0].message")
    text = _optional_text(message, "content") or ""
    reasoning = _optional_text(message, "reasoning_content") or _optional_text(message, "reasoning")
    if reasoning:
        text = f"<think>{reasoning}</think>{text}"
    finish_reason = _optional_text(choice, "finish_reason", "choices[0].")
    usage = payload.get("usage")
    usage = {} if usage is None else _check(usage, Mapping, "usage")
    counts = {k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)}
    return Generation(text=text, finish_reason=finish_reason, usage=counts)


def _check(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind):
        raise UnusableCompletion(
            f"{where} is {type(value).__name__} {value!r:.80}, expected {_KIND_NAMES[kind]}"
        )
    return value


def _optional_text(
    fields: Mapping[str, Any], key: str, where: str = "choices[0].message."
) -> str | None:
    value = fields.get(key)
    if value is not None and not isinstance(value, str):
        raise UnusableCompletion(
            f"{where}{key} is {type(value).__name__} {value!r:.80}, expected a string or null"
        )
    return value


_KIND_NAMES: dict[type, str] = {Mapping: "an object", list: "a list"}
