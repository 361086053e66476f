"""``tuneforge eval RUN FILE`` and ``tuneforge generate RUN --prompt ...`` for generation runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from tuneforge.errors import TuneforgeError


def eval_command(run_dir: Path, file: Path, output: Path | None, out: Console, err: Console) -> None:
    """Read and check ``file`` first (a bad file fails fast, before the model loads), then score the run."""
    from tuneforge.config import TrainConfig, load_config
    from tuneforge.recipes.runfolder import write_json
    from tuneforge.run import load
    from tuneforge.tasks.generation.files import read_pairs

    data = load_config(TrainConfig, path=run_dir / "config.yaml").data
    pairs = read_pairs(file, prompt_column=data.prompt_column, response_column=data.response_column, run=run_dir)
    run = load(run_dir)
    result = run.evaluate(pairs)
    samples = result.pop("samples")
    metrics = {f"eval.{k}": v for k, v in result.items()} | {"eval.file": str(file)}
    target = output or run.dir / f"eval-{file.stem}.json"
    write_json(target, metrics)
    if samples:
        target.with_suffix(".samples.jsonl").write_text(
            "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples), encoding="utf-8")
    rouge = (f"  ROUGE-L [bold]{metrics['eval.rouge_l']:.4f}[/] ({metrics['eval.generations']} greedy generations)"
             if "eval.rouge_l" in metrics else "")
    out.print(f"perplexity [bold]{metrics['eval.perplexity']:.3f}[/] ({metrics['eval.pairs']} pairs, "
              f"{metrics['eval.answer_tokens']} answer tokens){rouge}")
    err.print(f"wrote {target}" + (f" and {target.with_suffix('.samples.jsonl')}" if samples else ""))


def read_prompts(path: Path, prompt_column: str, run_dir: Path) -> list[str]:
    """Prompts from a .txt file (one per line) or a .jsonl/.json/.csv/.tsv file (``prompt_column``, the column
    the run ``run_dir`` was trained on)."""
    from tuneforge.tasks.generation.files import read_pairs

    if not path.is_file():
        raise TuneforgeError(f"--input {path}: file not found (looked for {path.resolve()}).")
    if path.suffix == ".txt":
        from tuneforge.data.formats import read_text

        prompts = [line.strip() for line in read_text(path, f"--input {path}").splitlines() if line.strip()]
        if not prompts:
            raise TuneforgeError(f"--input {path}: no prompt in it (every line is empty). Put one prompt per line.")
        return prompts
    return [p.prompt for p in read_pairs(path, prompt_column=prompt_column, require_response=False, run=run_dir)]


def generate_command(run_dir: Path, prompts: list[str], input: Path | None, output: Path | None,
                     sampling: dict, batch_size: int, err: Console) -> None:
    """One JSON line per prompt, ``{"prompt", "response"}``, on stdout or into ``output``. ``sampling``: the
    arguments of :func:`~.generate.choose_sampling`, None where the option was not given."""
    from tuneforge.config import TrainConfig, load_config
    from tuneforge.recipes.runfolder import check_output_file, write_output_lines
    from tuneforge.run import check_run_folder, load
    from tuneforge.tasks import task_of_run
    from tuneforge.tasks.generation.generate import choose_sampling

    if not prompts and input is None:
        raise TuneforgeError("Give prompts with --prompt TEXT (repeatable) or a file with --input FILE.")
    empty = [i + 1 for i, p in enumerate(prompts) if not p.strip()]
    if empty:
        raise TuneforgeError(f"--prompt number {', '.join(map(str, empty))} is empty; give each prompt some text.")
    choose_sampling(**sampling, cli=True)  # bad or contradictory settings fail before the model loads
    if output is not None:
        check_output_file(output)
    check_run_folder(run_dir)
    if (run_dir / "config.yaml").is_file() and task_of_run(run_dir).name != "generation":
        raise TuneforgeError(f"{run_dir} is a {task_of_run(run_dir).name} run: it classifies, it does not "
                             f"generate. Use `tuneforge predict {run_dir} --text ...`.")
    if input is not None:
        column = load_config(TrainConfig, path=run_dir / "config.yaml").data.prompt_column \
            if (run_dir / "config.yaml").is_file() else "prompt"
        prompts = list(prompts) + read_prompts(input, column, run_dir)
    run = load(run_dir)
    answers = run.generate(prompts, batch_size=batch_size, **sampling)
    lines = [json.dumps({"prompt": p, "response": a}, ensure_ascii=False) for p, a in zip(prompts, answers)]
    if output is not None:
        write_output_lines(output, lines)
        err.print(f"wrote {len(lines)} answers to {output}")
    else:
        sys.stdout.write("\n".join(lines) + "\n")
