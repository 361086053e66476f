"""Shared fixtures: a tiny random BERT (real architecture, random weights) and tiny labelled data.

Everything is built in a temporary folder in about a second, so the suite needs no model download.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tiny_fixtures import build_tiny_bert, make_examples, write_jsonl


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiny-data")
    return {"train": write_jsonl(folder / "train.jsonl", make_examples(96, seed=1)),
            "validation": write_jsonl(folder / "validation.jsonl", make_examples(24, seed=2)),
            "test": write_jsonl(folder / "test.jsonl", make_examples(30, seed=3))}


@pytest.fixture()
def tiny_config(tiny_bert, tiny_data, tmp_path) -> dict:
    """A complete training config on the tiny model and data (fp32 for exact comparisons)."""
    return {
        "name": "tiny",
        "model": str(tiny_bert),
        "data": {"train": str(tiny_data["train"]), "validation": str(tiny_data["validation"]),
                 "test": str(tiny_data["test"]), "max_length": 32},
        "method": {"name": "full"},
        "train": {"epochs": 2, "batch_size": 8, "learning_rate": 5e-3, "precision": "fp32", "seed": 0,
                  "log_every": 2},
        "output_dir": str(tmp_path / "run"),
    }


@pytest.fixture(scope="session")
def make_tiny_config(tiny_bert, tiny_data):
    """``tiny_config`` for a given output_dir, for module-scoped runs (which cannot use ``tmp_path``)."""

    def make(output_dir: Path) -> dict:
        return {
            "name": "tiny",
            "model": str(tiny_bert),
            "data": {"train": str(tiny_data["train"]), "validation": str(tiny_data["validation"]),
                     "test": str(tiny_data["test"]), "max_length": 32},
            "method": {"name": "full"},
            "train": {"epochs": 2, "batch_size": 8, "learning_rate": 5e-3, "precision": "fp32", "seed": 0,
                      "log_every": 2},
            "output_dir": str(output_dir),
        }

    return make


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run ~10x faster on one thread than on two when the machine is busy (the compression tests
    use it: ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
