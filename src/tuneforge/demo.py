"""``make demo``: LoRA on the airline customer-service tweets with the bundled MiniLM, end to end.

Trains configs/airline-lora.yaml (3,000 tweets, 3 epochs), then loads the run folder back the way a user
would and classifies a few new texts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

import tuneforge

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "airline-lora.yaml"
EXAMPLES = [
    "@united my flight was cancelled and nobody at the desk can tell me why",
    "@JetBlue thank you for the smooth flight and the friendly crew!",
    "@SouthwestAir what time does boarding start for flight 1234?",
    "@AmericanAir lost my bag again. third time this year.",
]


def main() -> int:
    console = Console()
    console.rule("tuneforge demo: LoRA on airline-sentiment with MiniLM")
    try:
        run = tuneforge.train(CONFIG)
    except tuneforge.TuneforgeError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    m = run.metrics
    console.print(f"test accuracy [bold]{m['test.accuracy']:.4f}[/]  macro-F1 [bold]{m['test.macro_f1']:.4f}[/]  "
                  f"({m['test.count']} test tweets)")
    console.print(f"training: {m['train.samples_per_second']:.1f} samples/s, {m['train.seconds']:.1f} s, "
                  f"trainable parameters {m['trainable_parameters']:,} ({m['trainable_percent']:.2f}%), "
                  f"precision {m['train.precision']}")
    loaded = tuneforge.load(run.dir)  # what a user does later, from the run folder alone
    table = Table("text", "label", "score")
    for text, pred in zip(EXAMPLES, loaded.predict(EXAMPLES)):
        table.add_row(text, pred["label"], f"{pred['scores'][pred['label']]:.3f}")
    console.print(table)
    console.print(f"run folder: [bold]{run.dir}[/] (metrics.json, loss.png, confusion_matrix.png, model/)")
    console.print(f"try: tuneforge predict {run.dir} --text \"@united where is my bag\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
