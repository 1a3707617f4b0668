"""A reader for memories longer than its context: the entries most similar to the question.

When the rendered memory fits ``max_memory_tokens`` (``memory.count_tokens``), this is the paper
reader, prompt and all. Otherwise entries are ranked by cosine similarity between the question
(with its options) and each entry's text, ties to the earlier entry, and taken in that order,
at most ``top_k`` and skipping any that would overflow the budget; the kept entries are shown in
time order, under the same prompt. :meth:`RetrievalReader.select` gives the kept entries'
indices, so the selection can be recomputed from a row's memory snapshot and the config.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from taskmem_bench.memory import count_tokens
from taskmem_bench.readers.base import ReaderInput
from taskmem_bench.readers.cpu import phrase
from taskmem_bench.readers.paper import PaperReader, PaperReaderConfig


@dataclass(frozen=True)
class RetrievalReaderConfig(PaperReaderConfig):
    """``max_memory_tokens``: the memory the prompt may hold; ``top_k``: entries kept when it
    does not fit; ``embedder``: "hashing" or a local transformers model directory."""

    max_memory_tokens: int = 8000
    top_k: int = 32
    embedder: str = "hashing"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_memory_tokens < 1 or self.top_k < 1:
            raise ValueError(
                f"max_memory_tokens and top_k must be at least 1, got "
                f"{self.max_memory_tokens} and {self.top_k}"
            )


class Embedder(Protocol):
    def similarities(self, query: str, docs: Sequence[str]) -> np.ndarray:
        """Cosine similarity of ``query`` to each of ``docs``."""
        ...


@lru_cache(maxsize=1 << 16)
def _feature(term: str) -> int:
    """A fixed 64-bit id per term (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "little") >> 1


def _features(text: str) -> list[int]:
    """Content words (lowercased, stopwords dropped, plural -s stripped: the cpu reader's
    ``phrase``) and adjacent word pairs."""
    words = phrase(text)
    return [_feature(w) for w in words] + [_feature(f"{a} {b}") for a, b in zip(words, words[1:])]


class HashingEmbedder:
    """TF-IDF weighted bag of hashed words and word bigrams, in numpy.

    The default because it needs no model weights (it works offline, in CI, on any machine)
    and gives the same ranking everywhere. Term frequencies are sublinear (1 + log count); the
    IDF is computed over the entries being ranked, so words that every entry shares weigh little.
    """

    def similarities(self, query: str, docs: Sequence[str]) -> np.ndarray:
        feats = [_features(d) for d in docs]
        doc = np.repeat(np.arange(len(docs)), [len(f) for f in feats])
        pairs, counts = np.unique(
            np.stack([doc, np.fromiter((x for f in feats for x in f), np.int64, len(doc))], 1),
            axis=0,
            return_counts=True,
        )
        if not len(pairs):
            return np.zeros(len(docs))
        terms, df = np.unique(pairs[:, 1], return_counts=True)
        term = np.searchsorted(terms, pairs[:, 1])
        idf = np.log((1 + len(docs)) / (1 + df)) + 1
        weight = (1 + np.log(counts)) * idf[term]
        norm = np.sqrt(np.bincount(pairs[:, 0], weight**2, minlength=len(docs)))

        q_terms, q_counts = np.unique(np.array(_features(query), np.int64), return_counts=True)
        at = np.searchsorted(terms, q_terms)
        known = (at < len(terms)) & (terms[np.minimum(at, len(terms) - 1)] == q_terms)
        q_weight = np.zeros(len(terms))
        q_weight[at[known]] = (1 + np.log(q_counts[known])) * idf[at[known]]
        dot = np.bincount(pairs[:, 0], weight * q_weight[term], minlength=len(docs))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num(dot / (norm * np.linalg.norm(q_weight)))


class TransformersEmbedder:
    """Mean-pooled last hidden state of a local transformers model (``AutoModel``).

    Each text is embedded on its own (no padding, so a text's vector does not depend on its
    batch-mates) and cached, since a stream's questions see mostly the same entries.
    """

    max_tokens = 512

    def __init__(self, path: str, device: str = "auto") -> None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise ValueError(
                f"embedder must be 'hashing' or a local transformers model directory; "
                f"{path!r} is neither"
            )
        from transformers import AutoModel, AutoTokenizer

        from taskmem_bench.backends.hf import resolved_device

        device = resolved_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).to(device).eval()
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, text: str) -> np.ndarray:
        import torch

        if text not in self._cache:
            tokens = self.tokenizer(
                text or " ", return_tensors="pt", truncation=True, max_length=self.max_tokens
            ).to(self.model.device)
            with torch.inference_mode():
                hidden = self.model(**tokens).last_hidden_state[0]
            vector = hidden.float().mean(0).cpu().numpy()
            self._cache[text] = vector / max(float(np.linalg.norm(vector)), 1e-12)
        return self._cache[text]

    def similarities(self, query: str, docs: Sequence[str]) -> np.ndarray:
        if not docs:
            return np.zeros(0)
        return np.stack([self.embed(d) for d in docs]) @ self.embed(query)


def make_embedder(config: RetrievalReaderConfig) -> Embedder:
    if config.embedder == "hashing":
        return HashingEmbedder()
    return TransformersEmbedder(config.embedder, config.device)


class RetrievalReader(PaperReader):
    """The paper reader over the ``top_k`` most relevant entries when memory overflows."""

    name = "retrieval"
    version = "1"
    Config = RetrievalReaderConfig

    def __init__(self, config: RetrievalReaderConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self._embedder: Embedder | None = None

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:  # loaded on first use, not when the plan is built
            self._embedder = make_embedder(self.config)
        return self._embedder

    def select(self, task: ReaderInput) -> tuple[int, ...] | None:
        """Indices into ``task.memory.entries`` of the entries shown, in time order, or
        ``None`` when the whole memory fits."""
        memory = task.memory
        if count_tokens(memory.render()) <= self.config.max_memory_tokens:
            return None
        cost = [count_tokens(replace(memory, entries=(e,)).render()) for e in memory.entries]
        query = "\n".join((task.question, *task.options))
        scores = self.embedder.similarities(query, [e.text for e in memory.entries])
        kept: list[int] = []
        used = 0
        for i in sorted(range(len(cost)), key=lambda i: -scores[i]):  # stable: ties to earlier
            if len(kept) == self.config.top_k:
                break
            if used + cost[i] <= self.config.max_memory_tokens:
                kept.append(i)
                used += cost[i]
        entries = memory.entries
        return tuple(sorted(kept, key=lambda i: (entries[i].t_start, entries[i].t_end, i)))

    def shown(self, task: ReaderInput) -> ReaderInput:
        kept = self.select(task)
        if kept is None:
            return task
        entries = tuple(task.memory.entries[i] for i in kept)
        return replace(task, memory=replace(task.memory, entries=entries))
