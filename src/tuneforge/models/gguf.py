"""Convert a GGUF checkpoint once into a cached Hugging Face folder.

Some backbones ship only as GGUF files (llama.cpp's format, here 4-bit Q4_1). transformers reads GGUF
by dequantising every tensor to fp32, which takes ~20 s on 2 cores for SmolLM2-135M and needs the
``gguf`` package; a plain safetensors folder loads in a few seconds. So the first use converts and
saves the result in the cache (see :func:`cache_root`); later uses load the folder.

The conversion is atomic: it writes into a hidden temporary folder next to the destination and
renames it into place only when complete, with a ``tuneforge.json`` marker written last. A crash
leaves no folder that looks complete, and two processes converting at once cannot corrupt it (a file
lock makes the second wait for the first; without locks, the first rename wins and the second discards
its own copy).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tuneforge.errors import TuneforgeError

MARKER = "tuneforge.json"  # written last: a folder without it is not a finished conversion


def cache_root() -> Path:
    """``$TUNEFORGE_CACHE``, else ``$XDG_CACHE_HOME/tuneforge``, else ``~/.cache/tuneforge``."""
    if os.environ.get("TUNEFORGE_CACHE"):
        return Path(os.environ["TUNEFORGE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "tuneforge"


def model_cache_dir(name: str) -> Path:
    """Where the converted folder of the packaged model ``name`` lives, e.g. ``.../models/smollm2-135m-instruct``."""
    return cache_root() / "models" / name


def is_converted(folder: Path, source: str | None = None) -> bool:
    """True if ``folder`` is a finished conversion (of ``source``, a ``pip-name==version``, when given)."""
    marker = folder / MARKER
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return source is None or info.get("source") == source


def convert_gguf(gguf_file: Path, dest: Path, *, title: str, source: str) -> Path:
    """``dest``, converted from ``gguf_file`` unless a finished conversion of ``source`` is already there.

    ``title`` names the model in the message printed while converting; ``source`` (``pip-name==version``)
    is recorded in the marker, so upgrading the package converts again.
    """
    if is_converted(dest, source):
        return dest
    _require_gguf()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _lock(dest.parent / f".{dest.name}.lock"):
        if is_converted(dest, source):  # another process finished while we waited for the lock
            return dest
        for stale in dest.parent.glob(f".{dest.name}.tmp-*"):  # left by a crash: we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        from rich.console import Console
        from rich.markup import escape

        console = Console(stderr=True)
        console.print(f"Converting {escape(title)} from GGUF to a Hugging Face folder, once (~20 s); cached in "
                      f"{escape(str(dest))}",
                      soft_wrap=True, highlight=False)
        started = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        try:
            _write_hf_folder(gguf_file, tmp)
            info = {"source": source, "gguf_file": gguf_file.name, "gguf_bytes": gguf_file.stat().st_size,
                    "converted": time.strftime("%Y-%m-%dT%H:%M:%S"), "transformers": _version("transformers")}
            (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
            _move_into_place(tmp, dest, source)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        console.print(f"Converted {escape(title)} in {time.perf_counter() - started:.0f} s.", highlight=False)
    return dest


def _write_hf_folder(gguf_file: Path, folder: Path) -> None:
    """Dequantise to fp32 and save model, generation config and tokenizer with ``save_pretrained``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    # The weights are plain fp32 now; without this, save_pretrained refuses (or records a GGUF
    # quantisation that the saved safetensors do not have).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    tokenizer.save_pretrained(folder)


def _move_into_place(tmp: Path, dest: Path, source: str) -> None:
    if dest.exists():  # an unfinished folder (copied by hand) or a conversion of another version
        old = dest.with_name(f".{dest.name}.tmp-old-{os.getpid()}")
        os.rename(dest, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(tmp, dest)
    except OSError:
        # Another process (on a file system without locks) renamed its finished copy first: use that one.
        if not is_converted(dest, source):
            raise
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` while converting (POSIX ``flock``; a no-op where that is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename alone keeps the cache consistent
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _require_gguf() -> None:
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise TuneforgeError("Reading a GGUF model needs the gguf package, which is not installed. Install it "
                             "with `pip install 'gguf>=0.10,<1'` (or reinstall tuneforge, which depends on it).")


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
