"""Export a finished run: ``tuneforge export RUN_DIR --merge OUT``.

``--merge`` folds the method into the base weights (LoRA's B A added to W, (IA)^3's vectors multiplied
in; full, freeze and bitfit models are plain already) and writes a Hugging Face folder that loads with
transformers alone: safetensors weights, config with the label names, tokenizer, ``labels.json`` and
``export.json`` (where it came from).
"""

from __future__ import annotations

import time
from pathlib import Path

from tuneforge.errors import TuneforgeError
from tuneforge.recipes.runfolder import write_json
from tuneforge.training.checkpoint import write_atomic_folder


def check_empty_target(folder: Path, flag: str) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise TuneforgeError(f"{flag} {folder}: the folder exists and is not empty; nothing was written. Choose a "
                             "new folder or remove this one.")


def export_merged(run, folder: Path) -> Path:
    """``run`` is a loaded :class:`~tuneforge.run.Run`; returns ``folder``."""
    from tuneforge import __version__
    from tuneforge.models.attention import restore_attention

    check_empty_target(folder, "--merge")
    merged = run.method.merge(run.model)
    restore_attention(merged)
    config = merged.config
    config.id2label = dict(enumerate(run.labels))
    config.label2id = {label: i for i, label in enumerate(run.labels)}

    def write(tmp: Path) -> None:
        merged.save_pretrained(tmp, safe_serialization=True)
        run.tokenizer.save_pretrained(tmp)
        write_json(tmp / "labels.json", run.labels)
        write_json(tmp / "export.json", {"source_run": str(run.dir.resolve()), "method": run.config.method.name,
                                         "merged": True, "model": run.config.model, "tuneforge": __version__,
                                         "exported": time.strftime("%Y-%m-%dT%H:%M:%S")})

    return write_atomic_folder(folder, write)
