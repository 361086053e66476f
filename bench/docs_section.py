"""Write one benchmark's marked section of docs/BENCHMARKS.md (shared by the bench scripts)."""

from __future__ import annotations

import pathlib


def write_docs(path: pathlib.Path, section: str, markers: tuple[str, str]) -> None:
    """Replace the part of ``path`` between ``markers`` (start, end) with ``section``, which holds both
    markers; append it when the markers are not there yet; create the file if needed."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start, end = text.find(markers[0]), text.find(markers[1])
    if start != -1 and end > start:
        text = text[:start] + section.rstrip("\n") + text[end + len(markers[1]):]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")
