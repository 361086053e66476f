"""Write dataset splits as JSON lines, which :func:`~tuneforge.data.files.read_examples` reads back.

A run folder stores the exact examples it trained and was tested on, so a result can be audited
or reproduced without the original files or packages.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from tuneforge.data.records import DatasetSplits, Example
from tuneforge.errors import TuneforgeError

_CORE = ("text", "text_pair", "label")
EXPORT_FILES = ("train.jsonl", "validation.jsonl", "test.jsonl", "labels.json")


def check_export_folder(folder: Path, overwrite: bool = False) -> None:
    """Refuse, before anything is written, a folder that is a file (or lies under one) and, unless ``overwrite``,
    one that already holds files :func:`export_splits` would replace (the user's own data, or an earlier export)."""
    folder = Path(folder)
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == folder else f"lies under {parent}, which is a file"
            raise TuneforgeError(f"{folder} {where}; give a folder for train/validation/test.jsonl and labels.json, "
                                 "e.g. data/NAME.")
        if parent.exists():
            break
    existing = [name for name in EXPORT_FILES if (folder / name).exists()]
    if existing and not overwrite:
        raise TuneforgeError(f"{folder} already holds {', '.join(existing)}, which the export would replace. Give an "
                             "empty or new folder, or add --overwrite to replace them.")


def export_splits(splits: DatasetSplits, folder: Path) -> dict[str, Path]:
    """Write train.jsonl, validation.jsonl, test.jsonl and labels.json into ``folder``.

    Each line is ``{"text", "label", "text_pair" (only when set), meta fields...}``; a meta field
    named like a core field is written as ``meta_<name>`` so it cannot overwrite it. ``labels.json``
    holds ``{"name", "source", "labels" (index = class id), "sizes"}``. Files are written
    atomically, so a crash never leaves a half-written split behind. Returns the paths by split
    name, plus ``"labels"``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    sizes: dict[str, int] = {}
    for name in ("train", "validation", "test"):
        examples: list[Example] = getattr(splits, name)
        lines = (json.dumps(_record(example), ensure_ascii=False) + "\n" for example in examples)
        paths[name] = _write_atomic(folder / f"{name}.jsonl", "".join(lines))
        sizes[name] = len(examples)
    info = {
        "name": splits.name,
        "source": splits.source,
        "labels": list(splits.labels),
        "sizes": sizes,
    }
    paths["labels"] = _write_atomic(
        folder / "labels.json", json.dumps(info, ensure_ascii=False, indent=2) + "\n"
    )
    return paths


def _record(example: Example) -> dict:
    if hasattr(example, "to_record"):  # a tagged sentence (token classification) writes its own fields
        return example.to_record()
    record: dict[str, str | None] = {"text": example.text, "label": example.label}
    if example.text_pair is not None:
        record["text_pair"] = example.text_pair
    for key, value in example.meta.items():
        record[f"meta_{key}" if key in _CORE else key] = value
    return record


def _write_atomic(path: Path, content: str) -> Path:
    """Write a temporary file in the same folder, then rename it over ``path`` (atomic on POSIX)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(content)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it 0600: readable as a plain new file would be
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
