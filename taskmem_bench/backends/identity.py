"""What a run records about the model behind a policy or reader, without loading it.

A model name alone does not pin a model: a local folder can be rebuilt and a hub name moves.
The plan therefore records, for a local folder, the sha256 of its small definition files (config,
tokenizer, chat template, processor configs) and the names and sizes of its weight files (the
same for a LoRA folder); for a
hub name found in the local Hugging Face cache, the cached snapshot's commit. Hashing the weights
themselves would read tens of gigabytes before every run, so sizes stand in for them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from taskmem_bench.backends.base import BackendSettings
from taskmem_bench.backends.packaged import is_packaged, resolve

DEFINITION_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "adapter_config.json",  # a LoRA folder
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def model_identity(settings: BackendSettings) -> dict[str, Any]:
    """``{"backend", "model", ...}`` plus whatever pins the model's files down."""
    record: dict[str, Any] = {"backend": settings.backend, "model": settings.model}
    if not settings.model or settings.backend == "openai":
        return record  # a served model is named by the server; nothing local to hash
    path = Path(resolve(settings.model)).expanduser()
    if is_packaged(settings.model):
        record |= _folder(path, weights_sha256=True)  # shipped, so small enough to hash
    elif path.is_dir():
        record |= _folder(path)
    else:
        record["hub_revision"] = _cached_hub_revision(settings.model)
    adapter = settings.adapter_folder
    if adapter is not None and adapter.is_dir():
        record["lora"] = _folder(adapter)
    return record


def _folder(path: Path, *, weights_sha256: bool = False) -> dict[str, Any]:
    weights = sorted(p for p in path.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
    return {
        "files": {
            name: hashlib.sha256((path / name).read_bytes()).hexdigest()
            for name in DEFINITION_FILES
            if (path / name).is_file()
        },
        "weights": {p.name: p.stat().st_size for p in weights},
        **({"weights_sha256": {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                               for p in weights}} if weights_sha256 else {}),
    }


def _cached_hub_revision(repo_id: str) -> str | None:
    """The commit of the locally cached snapshot of ``repo_id``, if any (no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a valid repo id
        return None
    if isinstance(found, str):
        return Path(found).parent.name  # .../snapshots/<commit>/config.json
    return None
