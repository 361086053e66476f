"""The run folder: a self-describing record of one training run.

    runs/<name>-<timestamp>/
        config.yaml          resolved config (every default filled in)
        run.json             status (running / complete / failed), versions, backbone, precision
        labels.json          label names in class-id order
        metrics.json         train.* throughput, trainable parameters, validation.*, test.*
        log.jsonl            one line per logged step and per evaluation
        loss.png, confusion_matrix.png
        checkpoints/         resumable checkpoints (atomic)
        model/               weights (safetensors) + tokenizer + labels.json; written last, atomically
"""

from __future__ import annotations

import json
import platform
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tuneforge.errors import TuneforgeError
from tuneforge.training.checkpoint import write_atomic_text


def new_run_dir(name: str, output_dir: Path | None) -> Path:
    if output_dir is not None:
        return Path(output_dir)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{name}-{stamp}"


def file_above(path: Path) -> Path | None:
    """The nearest existing parent of ``path`` that is a file, not a folder (so nothing can be made inside it)."""
    return next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)


def check_new_folder(folder: Path, what: str) -> None:
    """``folder`` can be created (or is an empty folder) before any work: else an error that says why."""
    if folder.exists() and not folder.is_dir():
        raise TuneforgeError(f"{what} {folder} is a file, not a folder; nothing was written. Choose a new folder.")
    if folder.exists() and any(folder.iterdir()):
        raise TuneforgeError(f"{what} {folder}: the folder exists and is not empty; nothing was written. Choose a "
                             "new folder or remove this one.")
    if (blocker := file_above(folder)) is not None:
        raise TuneforgeError(f"{what} {folder}: {blocker} is a file, so no folder can be made inside it; nothing "
                             "was written. Choose a folder elsewhere.")


RESUMABLE = ("train", "pretrain")  # the commands with --resume


def recipe_of(record: dict) -> str:
    """The command that wrote a run, from its run.json: `tuneforge train` runs do not name their recipe."""
    return record.get("recipe") or "train"


def run_record(folder: Path) -> dict | None:
    """The run.json of a tuneforge run folder (config.yaml and run.json in it); None for any other folder."""
    if not (folder / "config.yaml").is_file():
        return None
    try:
        record = read_json(folder / "run.json")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def output_dir_in_use(folder: Path, command: str) -> str:
    """Why a new ``tuneforge COMMAND`` run cannot go into the non-empty ``folder``, and what to do. ``--resume``
    is offered only for an unfinished run of a command that resumes: for a folder of the user's own, a finished
    run or another recipe's run it cannot work."""
    what = f"output_dir {folder} already exists and is not empty"
    new = "a new output_dir (a new or empty folder)"
    record = run_record(folder)
    if record is None:
        return (f"{what}, and it is not a tuneforge run folder (no config.yaml and run.json in it), so there is no "
                f"run in it to resume; nothing was written to it. Choose {new}.")
    recipe = recipe_of(record)
    if (folder / "model").is_dir():
        return f"{what}: it holds a finished run (its model/ folder exists); nothing was written to it. Choose {new}."
    if recipe not in RESUMABLE:
        return (f"{what}: it holds a tuneforge {recipe} run, which --resume cannot continue; nothing was written "
                f"to it. Choose {new}.")
    return (f"{what}: it holds an unfinished run (status: {record.get('status', 'unknown')}). Continue it with "
            f"`tuneforge {recipe} --resume {folder}`, or choose {new}.")


def check_output_file(output: Path, flag: str = "--output") -> None:
    """Fail before any work when ``output`` cannot be written as a file (it is a folder, or sits inside a file)."""
    if output.is_dir():
        example = {"--png": "scores.png", "--html": "explanations.html"}.get(flag, "results.jsonl")
        raise TuneforgeError(f"{flag} {output} is a folder; give a file path inside it, such as {output / example}.")
    if (blocked := file_above(output)) is not None:
        raise TuneforgeError(f"{flag} {output}: {blocked} is a file, so it cannot hold a folder. Choose "
                             "another path.")


def write_output_lines(output: Path, lines: list[str]) -> None:
    """JSON lines into ``output``, whole or not at all: an existing file is replaced, never cut short."""
    output.parent.mkdir(parents=True, exist_ok=True)
    write_atomic_text(output, "\n".join(lines) + "\n")


def write_json(path: Path, data: Any) -> None:
    write_atomic_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def update_status(run_dir: Path, **fields: Any) -> dict:
    path = run_dir / "run.json"
    info = read_json(path) if path.exists() else {}
    info.update(fields)
    info["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json(path, info)
    return info


def environment() -> dict[str, str]:
    import peft
    import torch
    import transformers

    from tuneforge import __version__

    return {"tuneforge": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "python": platform.python_version(), "machine": platform.machine()}


def flatten(prefix: str, data: dict) -> dict[str, Any]:
    """``{"test": {"accuracy": 1}}`` -> ``{"test.accuracy": 1}`` (nested dicts of scalars only; the per-class
    and per-type tables stay one key each)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and key not in ("per_class", "per_type"):
            out.update(flatten(name, value))
        else:
            out[name] = value
    return out


def refuse_sections(cfg: Any, command: str, sections: tuple[str, ...] = ("prompt", "contrastive", "continual")
                    ) -> None:
    """Config sections a recipe does not carry out are an error, not silently ignored (all named at once)."""
    present = [name for name in sections if getattr(cfg, name, None) is not None]
    if present:
        raise TuneforgeError(f"{command} does not apply the config's {', '.join(f'{n}:' for n in present)} "
                             f"section(s) (only `tuneforge train` does); remove {'them' if len(present) > 1 else 'it'} "
                             "to run it on the plain classifier.")


def require_text_classification(task: str, where: str, command: str, fix: str) -> None:
    """Compression and lr-find measure and train a sequence classifier; other tasks are refused up front (their
    data files have no text/label columns, which would otherwise be the confusing first error)."""
    if task != "text-classification":
        raise TuneforgeError(f"{where}: task: {task}; {command} works on text classification only "
                             f"(task: text-classification). {fix}")
