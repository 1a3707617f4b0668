"""Readers answer questions from a memory snapshot, and from nothing else."""

from taskmem_bench.readers.base import (
    Reader,
    ReaderInput,
    ReaderOutput,
    available_readers,
    load_reader,
)

__all__ = ["Reader", "ReaderInput", "ReaderOutput", "available_readers", "load_reader"]
