"""A run's plan pins the model files behind a policy or reader, without loading the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskmem_bench.backends.base import BackendSettings
from taskmem_bench.backends.identity import model_identity


def test_local_folder_is_pinned_by_its_definition_files_and_weight_sizes(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "qwen3"}')
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)
    settings = BackendSettings(model=str(tmp_path))
    first = model_identity(settings)
    assert set(first["files"]) == {"config.json", "tokenizer.json"}
    assert first["weights"] == {"model.safetensors": 10}
    (tmp_path / "config.json").write_text('{"model_type": "qwen3", "hidden_size": 8}')
    assert model_identity(settings)["files"] != first["files"]


def test_hub_name_records_the_cached_snapshot_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The layout is the Hugging Face cache's own (models--org--name/snapshots/<commit>)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--org--tiny"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    assert model_identity(BackendSettings(model="org/tiny"))["hub_revision"] == commit
    assert model_identity(BackendSettings(model="org/absent"))["hub_revision"] is None


def test_served_models_are_named_only() -> None:
    record = model_identity(BackendSettings(backend="openai", model="gpt-4o-2024-11-20"))
    assert record == {"backend": "openai", "model": "gpt-4o-2024-11-20"}


def test_a_lora_folder_is_pinned_too(tmp_path: Path) -> None:
    model, lora = tmp_path / "model", tmp_path / "lora"
    model.mkdir(), lora.mkdir()
    (model / "config.json").write_text("{}")
    (lora / "adapter_config.json").write_text('{"r": 8}')
    (lora / "adapter_model.safetensors").write_bytes(b"x" * 4)
    settings = BackendSettings(backend="vllm", model=str(model), lora_path=str(lora))
    first = model_identity(settings)["lora"]
    assert first["weights"] == {"adapter_model.safetensors": 4}
    (lora / "adapter_config.json").write_text('{"r": 16}')
    assert model_identity(settings)["lora"]["files"] != first["files"]


def test_a_packaged_adapter_is_pinned_like_a_local_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``package:`` lora_path resolves where the backends load it from, so it is hashed too."""
    package = tmp_path / "adapters_pkg"
    (package / "steer").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "steer" / "adapter_config.json").write_text('{"r": 8}')
    (package / "steer" / "adapter_model.safetensors").write_bytes(b"x" * 4)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    settings = BackendSettings(backend="vllm", model=str(model),
                               lora_path="package:adapters_pkg/steer")
    assert settings.adapter_folder == package / "steer"
    assert model_identity(settings)["lora"]["weights"] == {"adapter_model.safetensors": 4}
