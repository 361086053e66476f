"""Generation end to end on a tiny random Llama: full, lora, prefix and prompt tuning through train -> metrics
(before and after) -> save -> load -> generate (greedy: deterministic, the same answers the recipe scored) ->
eval, from the Python API and the command line, and the command line's errors (exit 2, no traceback)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tuneforge
from tuneforge.errors import TuneforgeError

sys.path.insert(0, str(Path(__file__).parent))
from tiny_gen import TOPICS, build_tiny_lm, support_pairs, write_jsonl  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
# (learning rate, optimizer steps); the tiny random model learns the answers' fixed words within these
METHODS = {"full": (3e-3, 40), "lora": (5e-2, 40), "prefix": (1e-1, 40), "prompt": (3e-1, 40)}


@pytest.fixture()
def cli(monkeypatch, capsys):
    """``cli(*args) -> (exit code, stdout, stderr)`` through ``tuneforge.cli.main.main`` in this process."""
    from tuneforge.cli.main import main

    def invoke(*args):
        monkeypatch.setattr(sys, "argv", ["tuneforge", *map(str, args)])
        with pytest.raises(SystemExit) as info:
            main()
        captured = capsys.readouterr()
        return (0 if info.value.code is None else info.value.code), captured.out, captured.err

    return invoke


@pytest.fixture(scope="module")
def gen_data(tmp_path_factory) -> dict[str, Path]:
    """Pairs of two topics held out for test (unseen combinations of seen words)."""
    folder = tmp_path_factory.mktemp("gen-data")
    pairs = support_pairs()
    test_topics = set(TOPICS[-2:])
    test = [p for p in pairs if p["prompt"].split()[-2] in test_topics]
    train = [p for p in pairs if p not in test]
    return {"plain": build_tiny_lm(folder / "plain", chat=False), "chat": build_tiny_lm(folder / "chat", chat=True),
            "train": write_jsonl(folder / "train.jsonl", train), "test": write_jsonl(folder / "test.jsonl", test)}


def gen_config(data: dict[str, Path], method: str, output_dir: Path, model: str = "plain") -> dict:
    lr, steps = METHODS[method]
    method_cfg = {"name": method} | ({"num_virtual_tokens": 4} if method in ("prefix", "prompt") else {})
    return {"name": f"gen-{method}", "model": str(data[model]), "task": "generation",
            "data": {"train": str(data["train"]), "validation": str(data["test"]), "test": str(data["test"]),
                     "max_length": 48},
            "method": method_cfg, "generation": {"max_new_tokens": 12, "eval_generations": 5, "batch_size": 4},
            "train": {"max_steps": steps, "batch_size": 8, "learning_rate": lr, "precision": "fp32", "seed": 0,
                      "log_every": 10, "warmup": 0.0},
            "output_dir": str(output_dir)}


@pytest.fixture(scope="module")
def trained(gen_data, tmp_path_factory) -> dict[str, Path]:
    """One finished run per method (prefix on the chat-template model, the others on the plain one)."""
    runs = {}
    for method in METHODS:
        folder = tmp_path_factory.mktemp(f"run-{method}") / "run"
        model = "chat" if method in ("prefix", "lora") else "plain"
        tuneforge.train(gen_config(gen_data, method, folder, model), progress=False)
        runs[method] = folder
    return runs


@pytest.mark.parametrize("method", list(METHODS))
def test_training_lowers_answer_perplexity_and_writes_before_and_after_scores(trained, method):
    run = trained[method]
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["test.perplexity"] < 0.5 * metrics["base.test.perplexity"], metrics
    assert metrics["test.rouge_l"] > metrics["base.test.rouge_l"]
    assert metrics["test.generations"] == metrics["base.test.generations"] == 5
    assert metrics["test.pairs"] == 8 and metrics["test.answer_tokens"] == 8 * 10  # 9 words + end of turn
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(samples) == 5 and {"prompt", "reference", "generated", "base_generated", "rouge_l"} <= set(samples[0])
    chat = json.loads((run / "chat.json").read_text(encoding="utf-8"))
    assert chat["format"] == ("chat_template" if method in ("prefix", "lora") else "plain")
    assert json.loads((run / "run.json").read_text(encoding="utf-8"))["status"] == "complete"


@pytest.mark.parametrize("method", list(METHODS))
def test_loaded_run_generates_what_the_recipe_scored_deterministically(trained, method):
    run = tuneforge.load(trained[method])
    assert type(run).__name__ == "GenerationRun"
    samples = [json.loads(line) for line in (trained[method] / "samples.jsonl").read_text(encoding="utf-8")
               .splitlines()]
    prompts = [s["prompt"] for s in samples]
    answers = run.generate(prompts, max_new_tokens=12, batch_size=4)  # the batches the recipe used
    assert answers == [s["generated"] for s in samples]  # save -> load kept the model exactly
    assert run.generate(prompts[:1], max_new_tokens=12) == answers[:1]  # alone or in a left-padded batch
    assert run.generate([prompts[0], "how do i fix my email ? " * 3], max_new_tokens=12)[0] == answers[0]


def test_sampling_is_reproducible_for_a_seed(trained):
    run = tuneforge.load(trained["lora"])
    prompts = ["how do i reset my screen ?"] * 3
    first = run.generate(prompts, max_new_tokens=8, do_sample=True, temperature=1.5, seed=3)
    assert first == run.generate(prompts, max_new_tokens=8, do_sample=True, temperature=1.5, seed=3)
    with pytest.raises(TuneforgeError, match="temperature"):
        run.generate(prompts, do_sample=True, temperature=0)
    with pytest.raises(TypeError):
        run.generate("a single string")


def test_a_sampling_option_alone_samples_and_greedy_with_one_is_refused(trained):
    """temperature, top_p, top_k or seed without do_sample samples (they were ignored: greedy answers);
    next to an explicit do_sample=False they are a contradiction."""
    run = tuneforge.load(trained["lora"])
    prompts = ["how do i reset my screen ?"] * 3
    greedy = run.generate(prompts, max_new_tokens=8)  # three equal answers
    sampled = run.generate(prompts, max_new_tokens=8, temperature=1.5, seed=3)
    assert sampled == run.generate(prompts, max_new_tokens=8, do_sample=True, temperature=1.5, seed=3) != greedy
    seeded = run.generate(prompts, max_new_tokens=8, seed=0)
    assert seeded == run.generate(prompts, max_new_tokens=8, do_sample=True) != greedy
    with pytest.raises(TuneforgeError, match=r"temperature=1.5, seed=3: only used when sampling, but "
                                             r"do_sample=False asks for greedy decoding"):
        run.generate(prompts, do_sample=False, temperature=1.5, seed=3)
    with pytest.raises(TuneforgeError, match="temperature = 0"):  # sampling implied, so checked
        run.generate(prompts, temperature=0)


def test_evaluate_file_matches_the_recipes_test_scores(trained, gen_data, tmp_path):
    run = tuneforge.load(trained["prompt"])
    result = run.evaluate_file(gen_data["test"])
    assert result["perplexity"] == pytest.approx(run.metrics["test.perplexity"], rel=1e-4)
    assert result["rouge_l"] == pytest.approx(run.metrics["test.rouge_l"])
    with pytest.raises(TuneforgeError, match="generate"):
        run.predict(["x"])
    bad = write_jsonl(tmp_path / "questions.jsonl", [{"question": "a", "response": "b"}])
    with pytest.raises(TuneforgeError, match=re.escape(f'the run {run.dir} reads its prompts from the field "prompt"')):
        run.evaluate_file(bad)


def test_cli_generate_prints_one_json_line_per_prompt(cli, trained, tmp_path):
    code, out, err = cli("generate", trained["lora"], "--prompt", "how do i fix my screen ?", "-p",
                         "how do i check my battery ?", "--max-new-tokens", "6")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["prompt"] for line in lines] == ["how do i fix my screen ?", "how do i check my battery ?"]
    assert lines[0]["response"] == tuneforge.load(trained["lora"]).generate(["how do i fix my screen ?"],
                                                                             max_new_tokens=6)[0]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("how do i fix my screen ?\n\nhow do i reset my battery ?\n", encoding="utf-8")
    code, _, err = cli("generate", trained["lora"], "--input", prompts, "--sample", "--seed", "1", "--top-k", "5",
                       "--output", tmp_path / "out.jsonl")
    assert code == 0, err
    assert len((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()) == 2


def test_cli_generate_samples_when_given_a_sampling_option(cli, trained):
    """--temperature without --sample used to be ignored (greedy answers); now it samples, like --sample."""
    run, prompt = trained["lora"], "how do i fix my screen ?"
    answers = {}
    for name, extra in [("greedy", []), ("option", ["--temperature", "1.5"]),
                        ("sample", ["--sample", "--temperature", "1.5"])]:
        code, out, err = cli("generate", run, *["-p", prompt] * 3, "--max-new-tokens", "8", *extra)
        assert code == 0, err
        answers[name] = [json.loads(line)["response"] for line in out.splitlines()]
    assert answers["option"] == answers["sample"] != answers["greedy"]
    assert len(set(answers["greedy"])) == 1


def test_cli_eval_scores_a_generation_run(cli, trained, gen_data, tmp_path):
    code, out, err = cli("eval", trained["prefix"], gen_data["test"], "--output", tmp_path / "eval.json")
    assert code == 0, err
    assert "perplexity" in out and "ROUGE-L" in out
    metrics = json.loads((tmp_path / "eval.json").read_text(encoding="utf-8"))
    assert metrics["eval.perplexity"] == pytest.approx(json.loads((trained["prefix"] / "metrics.json").read_text(
        encoding="utf-8"))["test.perplexity"], rel=1e-4)
    assert (tmp_path / "eval.samples.jsonl").exists()


@pytest.mark.parametrize("case", ["no prompt", "empty prompt", "bad top-p", "bad top-k without --sample",
                                  "greedy with a sampling option", "missing response", "empty answer",
                                  "missing column", "blank prompt file", "latin-1 prompt file", "pretrain run",
                                  "output inside a file", "output is a folder"])
def test_cli_bad_input_exits_2_naming_file_line_and_field(case, cli, trained, tmp_path):
    run = trained["lora"]
    bad = tmp_path / "bad.jsonl"
    if case == "no prompt":
        args, expect = ["generate", run], "--prompt"
    elif case == "empty prompt":
        args, expect = ["generate", run, "--prompt", " "], "empty"
    elif case == "bad top-p":
        args, expect = ["generate", run, "-p", "hi", "--sample", "--top-p", "1.5"], "top_p = 1.5"
    elif case == "bad top-k without --sample":  # not checked (nor used) before: greedy ignored it
        args, expect = ["generate", run, "-p", "hi", "--top-k", "-1"], "top_k = -1"
    elif case == "greedy with a sampling option":  # --top-p ignored without a word, before
        args, expect = (["generate", run, "-p", "hi", "--greedy", "--top-p", "0.5"],
                        "--top-p 0.5: only used when sampling, but --greedy asks for greedy decoding, which would "
                        "ignore it. Drop --greedy to sample")
    elif case == "missing response":
        write_jsonl(bad, [{"prompt": "a", "response": "b"}, {"prompt": "only the question"}])
        args, expect = ["eval", run, bad], f'{bad} line 2: no field "response"'
    elif case == "empty answer":
        write_jsonl(bad, [{"prompt": "a", "response": "  "}])
        args, expect = ["eval", run, bad], f'{bad} line 1: empty response in field "response"'
    elif case == "blank prompt file":  # answered nothing, exit 0, before
        (tmp_path / "p.txt").write_text("\n  \n", encoding="utf-8")
        args, expect = ["generate", run, "--input", tmp_path / "p.txt"], "p.txt: no prompt in it"
    elif case == "latin-1 prompt file":  # a UnicodeDecodeError traceback, before
        (tmp_path / "p.txt").write_bytes("caf\xe9 ?\n".encode("latin-1"))
        args, expect = ["generate", run, "--input", tmp_path / "p.txt"], "p.txt line 1: not UTF-8 text"
    elif case == "output inside a file":  # a NotADirectoryError traceback after every answer was generated
        bad.write_text("mine\n", encoding="utf-8")
        args, expect = ["generate", run, "-p", "hi", "--output", bad / "answers.jsonl"], \
            f"--output {bad / 'answers.jsonl'}: {bad} is a file, so it cannot hold a folder"
    elif case == "output is a folder":  # an IsADirectoryError traceback after the work
        args, expect = ["generate", run, "-p", "hi", "--output", tmp_path], \
            f"--output {tmp_path} is a folder; give a file path inside it, such as {tmp_path / 'results.jsonl'}"
    elif case == "pretrain run":  # "... is a text-classification run: it classifies", before
        (tmp_path / "lm/model").mkdir(parents=True)
        (tmp_path / "lm/config.yaml").write_text("name: lm\nobjective: clm\n", encoding="utf-8")
        (tmp_path / "lm/run.json").write_text('{"recipe": "pretrain", "status": "complete"}', encoding="utf-8")
        args, expect = ["generate", tmp_path / "lm", "-p", "hi"], "is a pretraining run (tuneforge pretrain)"
    else:  # said: set data.prompt_column, which a finished run cannot change
        write_jsonl(bad, [{"question": "a", "response": "b"}])
        args, expect = ["eval", run, bad], (f'{bad} line 1: no field "prompt" (every record; they have: question, '
                                            'response); '
                                            f'the run {run} reads its prompts from the field "prompt": did you mean '
                                            '"question"? Rename it to "prompt" in the file.')
    code, _, err = cli(*args)
    assert code == 2 and expect in " ".join(err.split()) and "Traceback" not in err


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_cli_generate_input_without_the_runs_prompt_column_says_to_rename_it(suffix, cli, trained, tmp_path):
    """The fix named data.prompt_column, a training setting generate cannot change."""
    run, path = trained["lora"], tmp_path / f"prompts{suffix}"
    if suffix == ".csv":
        path.write_text("id,question\n1,how do i fix my screen ?\n", encoding="utf-8")
    else:
        write_jsonl(path, [{"id": 1, "question": "how do i fix my screen ?"}])
    code, out, err = cli("generate", run, "--input", path)
    message = " ".join(err.split())
    noun, owner = ("column", "the header has") if suffix == ".csv" else ("field", "every record; they have")
    assert code == 2 and out == "" and "Traceback" not in err
    assert (f'{path} line 1: no {noun} "prompt" ({owner}: id, question); the run {run} reads its prompts from the '
            f'{noun} "prompt": did you mean "question"? Rename it to "prompt" in the file.') in message
    assert "data.prompt_column" not in message


def test_cli_error_in_a_real_process_has_no_traceback(trained):
    result = subprocess.run([sys.executable, "-m", "tuneforge", "generate", str(trained["lora"]), "-p", "hi",
                             "--max-new-tokens", "0"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "max_new_tokens = 0" in result.stderr and "Traceback" not in result.stderr


def test_config_errors_for_generation(gen_data, tmp_path):
    base = gen_config(gen_data, "lora", tmp_path / "x")
    for change, expect in [({"method": {"name": "adapter"}}, "method adapter has not been checked"),
                           ({"train": {**base["train"], "metric": "accuracy"}}, "train.metric = accuracy"),
                           ({"data": {**base["data"], "text_column": "q"}}, "data.prompt_column"),
                           ({"task": "text-classification"}, "generation: applies to task: generation only")]:
        with pytest.raises(TuneforgeError, match=expect):
            tuneforge.train({**base, **change}, progress=False)
    assert not (tmp_path / "x").exists()
