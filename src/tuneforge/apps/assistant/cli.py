"""``tuneforge assistant build | ask | eval | serve | demo`` (registered on the main CLI in one line)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from tuneforge.errors import TuneforgeError

assistant_app = typer.Typer(help="Customer-service assistant: hybrid retrieval over a knowledge base, routing to "
                                 "a generated reply or a person, chat service (docs/ASSISTANT.md).",
                            no_args_is_help=True)


def _check_config(config: Path, command: str) -> None:
    if "=" in str(config) and not config.exists():
        raise TuneforgeError(f'"{config}" looks like an override; the config file comes first: '
                             f"tuneforge assistant {command} CONFIG.yaml {config}")


@assistant_app.command("build")
def build(
    config: Annotated[Path, typer.Argument(help="Assistant config (YAML), e.g. configs/assistant-chatterbot.yaml; "
                                                "see `tuneforge config show assistant`.")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. finetune.enabled=true "
                                                                  "retrieval.dense=false.", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Index a knowledge base (BM25, dense vectors in FAISS; optionally fine-tune the encoder) into a folder."""
    from tuneforge.apps.assistant.build import build as build_recipe

    _check_config(config, "build")
    assistant = build_recipe(config, list(overrides or []), progress=not quiet)
    info = assistant.info
    typer.echo(f"indexed {info['entries']} entries ({info['answers']} answers; {info['heldout_queries']} held-out "
               f"queries) for {', '.join(assistant.retriever.modes)}; folder: {assistant.dir}")


@assistant_app.command("ask")
def ask(
    folder: Annotated[Path, typer.Argument(help="A folder written by `tuneforge assistant build`.")],
    question: Annotated[list[str], typer.Option("--question", "-q", help="A question (repeatable).")],
    no_runs: Annotated[bool, typer.Option("--no-runs", help="Leave the intent and generation runs out.")] = False,
) -> None:
    """Answer questions: one JSON line each with answer, route (kb, generated, human), reason, matched question,
    score and intent."""
    from tuneforge.apps.assistant.assistant import Assistant

    assistant = Assistant.load(folder, load_runs=not no_runs)
    sys.stdout.write("".join(json.dumps(assistant.ask(q), ensure_ascii=False) + "\n" for q in question))


@assistant_app.command("eval")
def evaluate(
    folder: Annotated[Path, typer.Argument(help="A folder written by `tuneforge assistant build`.")],
    output: Annotated[Optional[Path], typer.Option(help="Where to write the metrics (default FOLDER/eval.json).")
                      ] = None,
) -> None:
    """recall@1, recall@5 and MRR of BM25, dense and hybrid retrieval on the held-out (real) and synthetic queries."""
    from tuneforge.apps.assistant.assistant import Assistant
    from tuneforge.apps.assistant.report import eval_table
    from tuneforge.recipes.runfolder import write_json

    assistant = Assistant.load(folder, load_runs=False)
    metrics = assistant.evaluate()
    target = output or folder / "eval.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_json(target, metrics)
    typer.echo(eval_table(metrics, "fine-tuned" if metrics["fine_tuned"] else ""))
    typer.echo(f"wrote {target}", err=True)


@assistant_app.command("intents")
def intents(
    folder: Annotated[Path, typer.Argument(help="A folder written by `tuneforge assistant build`.")],
    output: Annotated[Path, typer.Argument(help="The JSONL file to write: {text: question, label: category}.")],
) -> None:
    """Training data for an intent run: the indexed questions labelled with their categories (then `tuneforge
    train CONFIG data.dataset=null data.train=OUTPUT`, and routing.intent_run=RUN_DIR)."""
    from tuneforge.apps.assistant.assistant import read_jsonl

    if not (folder / "kb.jsonl").exists():
        raise TuneforgeError(f"{folder} is not a built assistant (no kb.jsonl); build one with `tuneforge assistant "
                             "build CONFIG`.")
    rows = [{"text": e["question"], "label": e["category"]} for e in read_jsonl(folder / "kb.jsonl") if e["category"]]
    labels = sorted({r["label"] for r in rows})
    if len(labels) < 2:
        raise TuneforgeError(f"{folder}: the knowledge base has {len(labels)} category; an intent classifier needs "
                             "two or more (give entries a category field).")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    typer.echo(f"wrote {len(rows)} questions in {len(labels)} categories to {output}")


@assistant_app.command("serve")
def serve(
    folder: Annotated[Path, typer.Argument(help="A folder written by `tuneforge assistant build`.")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides of the serve: section, e.g. "
                                                                  "port=8021 limits.max_chars=500.",
                                                             show_default=False)] = None,
    host: Annotated[Optional[str], typer.Option(help="Address to listen on.")] = None,
    port: Annotated[Optional[int], typer.Option(help="TCP port.")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve without API keys (a warning is printed).")
                       ] = False,
) -> None:
    """Chat over HTTP: POST /v1/chat, a chat page at /, /healthz, /metrics; API keys from $TUNEFORGE_API_KEYS."""
    from tuneforge.apps.assistant.serve import serve as serve_recipe

    extra = [*(overrides or []), *([f"host={host}"] if host else []), *([f"port={port}"] if port is not None else [])]
    try:
        serve_recipe(folder, extra, no_auth=no_auth, announce=lambda text: typer.echo(text, err=True))
    except KeyboardInterrupt:
        typer.echo("interrupted before the server started.", err=True)
        sys.exit(130)


@assistant_app.command("demo")
def demo(
    language: Annotated[str, typer.Option(help="english or chinese (the chatterbot corpus' files).")] = "english",
    out: Annotated[Optional[Path], typer.Option(help="The folder to build (default runs/assistant-<language>-"
                                                     "<time>).")] = None,
    model: Annotated[str, typer.Option(help="Sentence encoder: an alias or a local folder.")] = "minilm",
    finetune: Annotated[bool, typer.Option(help="Fine-tune the encoder on the knowledge base's paraphrases.")
                        ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """The chatterbot corpus as a knowledge base: build, evaluate, and answer three sample questions."""
    from tuneforge.apps.assistant.demo import SAMPLES, demo as run_demo
    from tuneforge.apps.assistant.report import eval_table

    if language not in SAMPLES:
        raise TuneforgeError(f'--language "{language}": choose english or chinese.')
    out = out or Path("runs") / f"assistant-{language}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    assistant, metrics, answers = run_demo(out, language, model, finetune, progress=not quiet)
    typer.echo(eval_table(metrics, language))
    for reply in answers:
        typer.echo(f"Q: {reply['question']}\n   [{reply['route']}] {reply['answer'][:200]}\n   ({reply['reason']})")
    typer.echo(f"folder: {assistant.dir}; chat with it: tuneforge assistant serve {assistant.dir}")
