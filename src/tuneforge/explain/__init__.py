"""Why did a run predict that? Per-token attributions (integrated gradients): ``tuneforge explain RUN_DIR``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tuneforge.explain.attributions import Explanation, explain_texts


def explain(run: Any, texts: str | Sequence[str], *, label: str | None = None, steps: int = 50,
            html: str | Path | None = None, png: str | Path | None = None, progress: bool = False
            ) -> list[Explanation]:
    """Attributions of each text toward the predicted label (or ``label``) under a finished run.

    ``run`` is a run folder or a loaded :class:`~tuneforge.run.Run`. ``html`` writes a page with the texts
    highlighted, ``png`` a bar chart per text; ``progress`` shows a bar over the texts. Captum is imported only
    here. See docs/EXPLAIN.md."""
    from tuneforge.errors import TuneforgeError
    from tuneforge.run import Run

    if not isinstance(run, Run):
        if not isinstance(run, (str, Path)):
            raise TuneforgeError(f"explain() takes a run folder or a tuneforge Run, not a {type(run).__name__}.")
        run = Run.load(run, precision="fp32")
    texts = [texts] if isinstance(texts, str) else list(texts)
    explanations = explain_texts(run, texts, target=label, steps=steps, progress=progress)
    title = f"{run.config.name}: {run.config.method.name} on {run.config.model}"
    from tuneforge.explain.render import write_html, write_png

    for path, write in ((html, write_html), (png, write_png)):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            write(explanations, Path(path), title)
    return explanations


__all__ = ["Explanation", "explain"]
