"""The lm-eval bridge: any model that lm-eval can load, as a text-only chat backend.

``--set backend=lm-eval --set lm_eval_model=NAME --set model=M [--set lm_eval_args=K=V,...]``
loads ``lm_eval.api.registry.get_model(NAME)`` with ``create_from_arg_string``. ``model`` goes
in under the name the model class takes: ``pretrained=`` for local-weight models (``hf``,
``vllm``, ``sglang``, ...), ``model=`` for API models (``local-chat-completions``,
``openai-chat-completions``, ``anthropic-chat``, ...). ``dtype``, ``device`` and
``max_model_len`` go in where the class declares them (``max_length`` for ``hf``);
``lm_eval_args`` (lm-eval's own ``--model_args`` syntax) is passed as given and wins over all of
these, e.g. ``lm_eval_args=batch_size=8``, or for a served model
``lm_eval_model=local-chat-completions`` with
``lm_eval_args=base_url=http://127.0.0.1:8000/v1/chat/completions`` (needs ``lm-eval[api]``).

Each request's messages go through the model's own ``apply_chat_template`` (lm-eval's, the same
call ``lm_eval --apply_chat_template`` makes), or, for a model without a chat template, are
joined with blank lines. Decoding: ``until`` holds no stop strings, so the model stops at its
end-of-sequence token or ``max_new_tokens``, as the transformers backend does. A sampled
request carries its ``seed`` in its generation kwargs, except on lm-eval's transformers models,
whose ``generate`` rejects unknown kwargs and samples a whole batch from the global RNG: there
each sampled request is generated alone, after seeding the global RNGs with its seed (greedy
requests are batched as usual).

lm-eval is imported on first use: importing it (and its model modules) takes seconds.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskmem_bench.backends.base import (
    Backend,
    BackendSettings,
    ChatRequest,
    Generation,
    Sampling,
    TextPart,
)

if TYPE_CHECKING:
    from lm_eval.api.model import LM

# BackendSettings field -> the model-class parameters that may take it, in order of preference
_FORWARDED = {
    "dtype": ("dtype",),
    "device": ("device",),
    "max_model_len": ("max_model_len", "max_length"),
}


class LMEvalBackend(Backend):
    """Generation through an lm-eval model's ``generate_until``; text only."""

    name = "lm-eval"

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        from lm_eval.api.model import LM
        from lm_eval.api.registry import get_model
        from lm_eval.utils import simple_parse_args_string

        cls = get_model(settings.lm_eval_model)
        given = simple_parse_args_string(settings.lm_eval_args)
        self.model_args = {k: v for k, v in model_args(cls, settings).items() if k not in given}
        self.lm: LM = cls.create_from_arg_string(settings.lm_eval_args, self.model_args)
        self.chat = (
            type(self.lm).apply_chat_template is not LM.apply_chat_template
            and self.lm.chat_template(True) is not None
        )

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        prompts = [self.prompt(k, r) for k, r in enumerate(requests)]
        groups: dict[Sampling, list[int]] = {}
        for k, request in enumerate(requests):
            # greedy decoding ignores the seed: group all greedy requests into one batch
            key = replace(request.sampling, seed=0) if request.sampling.greedy else request.sampling
            groups.setdefault(key, []).append(k)
        texts: list[str] = [""] * len(requests)
        for sampling, indices in groups.items():
            kwargs = self.gen_kwargs(sampling)
            # transformers' generate samples a batch from the global RNG: seed each request alone
            seeded_alone = not sampling.greedy and _is_transformers(self.lm)
            for batch in [[k] for k in indices] if seeded_alone else [indices]:
                if seeded_alone:
                    from transformers import set_seed

                    set_seed(sampling.seed)
                for k, text in zip(batch, self.generate_until([prompts[k] for k in batch], kwargs)):
                    texts[k] = text
        return [Generation(text=t) for t in texts]

    def prompt(self, index: int, request: ChatRequest) -> Any:
        """The context lm-eval gets for one request: the chat-templated text (or, for API chat
        models, lm-eval's JSON message list)."""
        history = [{"role": m.role, "content": _text(index, m.content)} for m in request.messages]
        if self.chat:
            return self.lm.apply_chat_template(history, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in history)

    def gen_kwargs(self, sampling: Sampling) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "until": [],
            "max_gen_toks": sampling.max_new_tokens,
            "do_sample": not sampling.greedy,
            "temperature": sampling.temperature,
        }
        if not sampling.greedy:
            if sampling.top_p < 1:
                kwargs["top_p"] = sampling.top_p
            if sampling.top_k is not None:
                kwargs["top_k"] = sampling.top_k
            if not _is_transformers(self.lm):  # its generate() rejects unknown kwargs
                kwargs["seed"] = sampling.seed
        return kwargs

    def generate_until(self, contexts: list[Any], kwargs: dict[str, Any]) -> list[str]:
        from lm_eval.api.instance import Instance

        instances = [
            Instance("generate_until", doc={}, arguments=(c, copy.deepcopy(kwargs)), idx=0,
                     metadata=("taskmem-bench", k, 1))
            for k, c in enumerate(contexts)
        ]
        quiet = "disable_tqdm" in inspect.signature(self.lm.generate_until).parameters
        texts = self.lm.generate_until(instances, **({"disable_tqdm": True} if quiet else {}))
        if len(texts) != len(instances):
            raise RuntimeError(
                f"lm-eval model '{self.settings.lm_eval_model}' returned {len(texts)} "
                f"generations for {len(instances)} requests"
            )
        return list(texts)

    def describe(self) -> dict[str, Any]:
        from importlib.metadata import version

        return super().describe() | {
            "lm_eval_model": self.settings.lm_eval_model,
            "lm_eval_args": self.settings.lm_eval_args,
            "lm_eval_version": version("lm_eval"),
            "chat_template": self.chat,
        }


def task_folder() -> Path:
    """The lm-eval task YAMLs shipped with this package (``tasks/lm_eval``): what ``lm_eval``
    takes as ``--include_path`` (``taskmem-bench list lm-eval`` prints it)."""
    return Path(str(resources.files("taskmem_bench.tasks") / "lm_eval"))


def model_args(cls: type, settings: BackendSettings) -> dict[str, Any]:
    """The model-class arguments that ``settings`` supply (``lm_eval_args`` comes on top):
    ``model`` under the name the class takes it, and the forwarded settings it declares."""
    declared = _declared_parameters(cls)
    if "model" in declared:
        key = "model"  # API models: ``model`` names the served model (and wins over pretrained)
    elif "pretrained" in declared:
        key = "pretrained"
    else:
        raise ValueError(
            f"lm-eval model class {cls.__name__} takes neither pretrained= nor model=; "
            "the lm-eval backend cannot pass it --set model"
        )
    args: dict[str, Any] = {key: settings.model}
    for field, names in _FORWARDED.items():
        value = getattr(settings, field)
        name = next((n for n in names if n in declared), None)
        if value is not None and name is not None:
            args[name] = value
    return args


def _declared_parameters(cls: type) -> set[str]:
    """Parameter names that ``cls`` or a base class declares in ``__init__`` (not ``**kwargs``)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names |= {
                p.name for p in inspect.signature(init).parameters.values()
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
            }
    return names


def _is_transformers(lm: Any) -> bool:
    """lm-eval's HFLM family, without importing it (it needs accelerate)."""
    return any(
        k.__name__ == "HFLM" and k.__module__ == "lm_eval.models.huggingface"
        for k in type(lm).__mro__
    )


def _text(index: int, parts: Sequence[Any]) -> str:
    if not all(isinstance(p, TextPart) for p in parts):
        kinds = sorted({type(p).__name__ for p in parts if not isinstance(p, TextPart)})
        raise ValueError(
            f"request {index} carries {', '.join(kinds)}: the lm-eval backend is text-only; "
            "use backend=transformers, vllm or openai for images and video"
        )
    return "".join(p.text for p in parts)
