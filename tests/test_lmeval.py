"""The lm-eval bridge: the ``lm-eval`` backend on a real tiny model, and the real ``lm_eval`` CLI
scoring a saved run with the same accuracy and the same answer per question as
``taskmem-bench report``."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from taskmem_bench.backends import (
    BackendSettings,
    ChatRequest,
    ImagePart,
    Message,
    Sampling,
    TextPart,
)
from taskmem_bench.backends.lmeval import LMEvalBackend, model_args, task_folder
from taskmem_bench.cli import main
from taskmem_bench.memorylog import MemoryLogError
from taskmem_bench.readers.paper import PaperReader

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
ANSWER_WORDS = (" answer", " A", " B", " C", " D", " E")


def _utils():
    """The task folder's utils.py, loaded by path as lm-eval loads it."""
    spec = importlib.util.spec_from_file_location("taskmem_lm_eval_utils", task_folder() / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def answering_model(tiny_text_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen3 with every output row zeroed but those of " answer", " A" .. " E" and the
    end of turn: its greedy replies ("answer C answer C ...") parse to letters that differ
    between questions, some right, some wrong, some abstentions, some unparsed, so equal
    parsed answers mean something. (The plain tiny model's word salad never parses.)"""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("answering") / "model"
    shutil.copytree(tiny_text_model, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    keep = [i for w in ANSWER_WORDS for i in tokenizer.encode(w, add_special_tokens=False)]
    keep.append(tokenizer.eos_token_id)
    with torch.no_grad():
        weight = model.get_output_embeddings().weight
        silenced = torch.ones(weight.shape[0], dtype=torch.bool)
        silenced[keep] = False
        weight[silenced] = 0
    model.save_pretrained(folder)
    return folder


def _ask(text: str, max_new_tokens: int = 12, **sampling: float) -> ChatRequest:
    return ChatRequest((Message.text("user", text),), Sampling(max_new_tokens=max_new_tokens, **sampling))


def test_backend_generates_in_request_order_greedily_and_refuses_images(tiny_text_model: Path) -> None:
    from taskmem_bench.backends.hf import TransformersBackend

    settings = BackendSettings(backend="lm-eval", model=str(tiny_text_model), lm_eval_args="batch_size=2")
    backend = LMEvalBackend(settings)
    assert backend.model_args == {"pretrained": str(tiny_text_model), "dtype": "auto", "device": "auto"}
    assert backend.chat and backend.describe()["lm_eval_model"] == "hf"
    # lengths differ (lm-eval sorts by length and batches by 2) and so do the decoding settings
    requests = [_ask("Where is the red cup?"), _ask("Who opened the door " * 6, 20), _ask("What?"), _ask("Why?", 20)]
    texts = [g.text for g in backend.generate(requests)]
    assert texts == [backend.generate([r])[0].text for r in requests]  # order kept, batch-free
    assert texts == [g.text for g in backend.generate(requests)]  # greedy: deterministic
    assert len(set(texts)) == len(texts)
    # the same model through the harness's own transformers backend says the same
    reference = TransformersBackend(BackendSettings(backend="transformers", model=str(tiny_text_model)))
    assert texts == [g.text for g in reference.generate(requests)]

    sampled = [_ask("Where is the red cup?", 8, temperature=1.0, seed=s) for s in (1, 1, 2)]
    first, again, other = (g.text for g in backend.generate(sampled))
    assert first == again != other

    image = ChatRequest((Message("user", (TextPart("What is this?"), ImagePart(np.zeros((8, 8, 3), np.uint8)))),))
    with pytest.raises(ValueError, match="request 1 carries ImagePart: the lm-eval backend is text-only"):
        backend.generate([requests[0], image])


def test_model_goes_in_as_each_lm_eval_model_takes_it() -> None:
    from lm_eval.api.registry import get_model

    settings = BackendSettings(backend="lm-eval", model="m", device="cpu", max_model_len=2048)
    assert model_args(get_model("hf"), settings) == {
        "pretrained": "m", "dtype": "auto", "device": "cpu", "max_length": 2048,
    }
    assert model_args(get_model("local-chat-completions"), settings) == {"model": "m", "max_length": 2048}
    with pytest.raises(ValueError, match="DummyLM takes neither pretrained= nor model="):
        model_args(get_model("dummy"), settings)


def test_list_lm_eval_prints_the_include_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "lm-eval"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert folder == task_folder() and {p.name for p in folder.glob("*.yaml")} == {"taskmem_memory_mc.yaml"}


def test_backend_over_an_lm_eval_api_model(tiny_text_model: Path) -> None:
    """``local-chat-completions`` against the loopback server serving the tiny model: the
    ``model=`` route and lm-eval's JSON chat prompts give the transformers backend's text."""
    pytest.importorskip("tenacity", reason="lm-eval's API models need lm-eval[api]")
    from taskmem_bench.backends.hf import TransformersBackend
    from taskmem_bench.testing.server import ChatServer

    local = TransformersBackend(BackendSettings(backend="transformers", model=str(tiny_text_model)))
    requests = [_ask("Where is the red cup?"), _ask("Who opened the door?", 20)]
    with ChatServer(local) as server:
        api = LMEvalBackend(BackendSettings(
            backend="lm-eval", model=str(tiny_text_model), lm_eval_model="local-chat-completions",
            lm_eval_args=f"base_url={server.url}/chat/completions",
        ))
        texts = [g.text for g in api.generate(requests)]
    assert api.model_args == {"model": str(tiny_text_model)}
    assert texts == [g.text for g in local.generate(requests)]


@pytest.fixture(scope="module")
def paper_run(mini_cache: Path, answering_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``taskmem-bench run --task mini --policy oracle --reader paper`` on the answering model
    through the transformers backend, first stream only; its (task, policy) folder."""
    out = tmp_path_factory.mktemp("paper-run")
    code = main([
        "run", "--task", "mini", "--policy", "oracle", "--reader", "paper", "--limit", "1",
        "--set", "reader.backend=transformers", "--set", f"reader.model={answering_model}",
        "--set", "reader.max_new_tokens=48", "--out", str(out),
    ])
    assert code == 0
    return out / "mini" / "oracle"


def test_documents_rebuild_each_snapshot_and_show_the_paper_prompt(paper_run: Path, tmp_path: Path) -> None:
    utils = _utils()
    docs = utils.load_run(str(paper_run), pretrained="ignored", version=1)[utils.SPLIT]
    rows = pl.read_parquet(paper_run / "rows.parquet")
    assert docs["question_id"] == rows["question_id"].to_list()
    reader = PaperReader(PaperReader.Config(backend="transformers", model="unused"))
    for doc in docs:
        task = utils.reader_input(doc)
        assert task.memory.digest == doc["memory_digest"]
        assert utils.doc_to_text(doc) == reader.messages(task)[0].content[0].text
    assert utils.reader_config(utils.finished_run(str(paper_run))).max_new_tokens == 48

    tampered = tmp_path / "tampered"
    shutil.copytree(paper_run, tampered)
    log = tampered / "memory" / "000000.jsonl"
    first, *rest = log.read_text().splitlines(keepends=True)
    entry = json.loads(first)
    log.write_text(json.dumps(entry | {"text": entry["text"] + " Not what was written."}) + "\n" + "".join(rest))
    with pytest.raises(MemoryLogError, match="memory digest or size does not match"):
        utils.load_run(str(tampered))
    with pytest.raises(ValueError, match="--metadata run_dir=RUN_DIR"):
        utils.load_run()
    with pytest.raises(FileNotFoundError, match="one task/policy folder of a finished run"):
        utils.load_run(str(paper_run.parent))


@pytest.mark.slow
def test_lm_eval_cli_scores_a_saved_run_as_taskmem_bench_report_does(
    paper_run: Path, answering_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["report", str(paper_run), "--format", "json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    rows = pl.read_parquet(paper_run / "rows.parquet").to_dicts()
    parsed = [r["parsed"] for r in rows]
    assert any(parsed) and None in parsed and len(set(parsed)) >= 3  # a telling comparison

    assert main(["list", "lm-eval"]) == 0
    include = capsys.readouterr().out.strip()
    out = tmp_path / "lm-eval"
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable, "-m", "lm_eval", "--model", "hf",
            "--model_args", f"pretrained={answering_model}", "--device", "cpu",
            "--apply_chat_template", "--include_path", include, "--tasks", "taskmem_memory_mc",
            "--metadata", f"run_dir={paper_run}", "--log_samples", "--output_path", str(out),
        ],
        capture_output=True, text=True, env={**os.environ, **OFFLINE}, timeout=600, check=False,
    )
    print(f"lm_eval CLI: {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, result.stderr[-3000:]

    (results_file,) = out.rglob("results_*.json")
    scores = json.loads(results_file.read_text())["results"]["taskmem_memory_mc"]
    assert scores["acc,answer"] == pytest.approx(report["acc"], abs=1e-12)
    assert scores["coverage,answer"] == pytest.approx(report["cov"], abs=1e-12)
    assert scores["same_as_run,answer"] == 1.0

    (samples_file,) = out.rglob("samples_taskmem_memory_mc_*.jsonl")
    samples = sorted((json.loads(line) for line in samples_file.read_text().splitlines()),
                     key=lambda s: s["doc_id"])
    assert [s["doc"]["question_id"] for s in samples] == [r["question_id"] for r in rows]
    from transformers import AutoTokenizer

    # the prompt lm-eval sent is the one the harness's transformers backend built
    tokenizer = AutoTokenizer.from_pretrained(answering_model)
    reader, utils = PaperReader(PaperReader.Config(backend="transformers", model="unused")), _utils()
    for sample, row in zip(samples, rows, strict=True):
        assert sample["filtered_resps"] == [row["parsed"] or ""]  # the parsed letter, shown
        assert sample["resps"] == [[row["raw_output"]]]  # the very same generated text
        chat = [{"role": m.role, "content": m.content[0].text}
                for m in reader.messages(utils.reader_input(sample["doc"]))]
        assert sample["arguments"]["gen_args_0"]["arg_0"] == tokenizer.apply_chat_template(
            chat, tokenize=False, add_generation_prompt=True
        )
        assert sample["arguments"]["gen_args_0"]["arg_1"] == {
            "until": [], "max_gen_toks": 48, "do_sample": False, "temperature": 0.0,
        }
