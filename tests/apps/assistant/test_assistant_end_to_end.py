"""End to end on the tiny random BERT (tests/conftest.py): build with encoder fine-tuning -> ask -> eval through
the real CLI; the folder explains itself; held-out queries never reach fine-tuning; bad input exits 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from assistant_helpers import write_kb

from tuneforge.apps.assistant import load_assistant
from tuneforge.apps.assistant.finetune import positive_pairs
from tuneforge.apps.assistant.kb import hold_out, read_kb
from tuneforge.cli.main import main

pytestmark = pytest.mark.usefixtures("one_thread")

BAG = "We are sorry your bag was lost; file a claim at the desk."
# in the tiny BERT's vocabulary (tests/conftest.py WORDS and FILLER)
TINY_KB = [
    {"questions": ["my bag was lost", "the bag is lost again", "lost bag today"], "answer": BAG, "category": "bags"},
    {"questions": ["boarding gate question", "the gate boarding schedule", "boarding at the gate today"],
     "answer": "Boarding starts at the gate 30 minutes before the flight.", "category": "flights"},
    {"questions": ["great crew thanks", "the crew was awesome", "friendly crew today"],
     "answer": "Thanks, we are happy you liked the crew!", "category": "praise"},
    {"question": "my seat was broken", "answer": "We will fix the seat.", "category": "complaints"},
    {"question": "the flight was delayed", "answer": "Delays are shown on the schedule page.", "category": "flights"},
    {"question": "ticket question", "answer": "Tickets can be changed online.", "category": "tickets"},
]


@pytest.fixture()
def cli(monkeypatch, capsys):
    """``cli(*args) -> (exit code, stdout, stderr)`` of ``tuneforge assistant ...`` through the real entry point."""

    def invoke(*args):
        monkeypatch.setattr(sys, "argv", ["tuneforge", "assistant", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = 0 if exc.code is None else exc.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def write_config(tmp_path, tiny_bert, **sections):
    config = {"name": "tiny", "kb": {"path": str(write_kb(tmp_path / "kb.jsonl", TINY_KB))},
              "retrieval": {"encoder": str(tiny_bert), "max_length": 16, "precision": "fp32"},
              "finetune": {"enabled": True, "epochs": 3, "batch_size": 4, "learning_rate": 1e-3},
              "eval": {"synthetic": 4}, **sections}
    path = tmp_path / "assistant.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_build_ask_eval_through_the_cli(cli, tmp_path, tiny_bert, monkeypatch):
    config = write_config(tmp_path, tiny_bert)
    folder = tmp_path / "bot"
    code, out, err = cli("build", config, f"output_dir={folder}", "--quiet")
    assert code == 0, err
    assert "indexed 9 entries (6 answers; 3 held-out queries) for bm25, dense, hybrid" in out
    for name in ("config.yaml", "kb.jsonl", "heldout.jsonl", "synthetic.jsonl", "index.json", "finetune_log.jsonl",
                 "bm25/params.index.json", "dense/vectors.safetensors", "dense/index.faiss",
                 "encoder/model.safetensors", "encoder/config.json"):
        assert (folder / name).exists(), name
    info = json.loads((folder / "index.json").read_text())
    assert info["fine_tuned"] and info["base_encoder"] == str(tiny_bert.resolve())
    assert info["finetune"]["steps"] > 0 and info["finetune"]["last_loss"] < info["finetune"]["first_loss"]
    assert len((folder / "synthetic.jsonl").read_text().splitlines()) == 4

    code, out, err = cli("ask", folder, "-q", "my bag was lost", "-q", "awful rude zebra")
    assert code == 0, err
    first, second = map(json.loads, out.splitlines())
    assert first["route"] == "kb" and first["answer"] == BAG and first["score_kind"] == "cosine"
    assert second["route"] in ("kb", "human") and second["reason"]

    code, out, err = cli("eval", folder)
    assert code == 0, err
    metrics = json.loads((folder / "eval.json").read_text())
    assert metrics["fine_tuned"] is True and metrics["heldout"]["queries"] == 3
    for part in ("heldout", "synthetic"):
        for mode in ("bm25", "dense", "hybrid"):
            m = metrics[part][mode]
            assert 0 <= m["recall@1"] <= m["recall@5"] <= 1 and 0 <= m["mrr"] <= 1
    assert metrics["heldout"]["bm25"]["recall@5"] == 1.0  # each held-out query shares words with its group
    assert "| heldout (3) | hybrid |" in out

    code, out, err = cli("intents", folder, tmp_path / "intents.jsonl")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "intents.jsonl").read_text().splitlines()]
    assert len(rows) == 9 and {r["label"] for r in rows} == {"bags", "flights", "praise", "complaints", "tickets"}

    monkeypatch.delenv("TUNEFORGE_API_KEYS", raising=False)
    code, _, err = cli("serve", folder, "port=0")
    assert code == 2 and "No API keys" in err and "Traceback" not in err


def test_the_fine_tuned_encoder_is_the_one_loaded(tmp_path, tiny_bert):
    from tuneforge.apps.assistant.build import build
    from tuneforge.apps.assistant.dense import load_encoder

    bot = build(write_config(tmp_path, tiny_bert), [f"output_dir={tmp_path / 'bot'}"], progress=False)
    texts = [e.question for e in bot.entries]
    base = load_encoder(str(tiny_bert)).encode(texts, 16)
    tuned = bot.retriever.dense.encoder.encode(texts, 16)
    again = load_assistant(tmp_path / "bot").retriever.dense.encoder.encode(texts, 16)
    assert (tuned - again).abs().max() < 1e-5
    assert (tuned - base).abs().max() > 1e-3
    assert abs(bot.retriever.dense.vectors - tuned.numpy()).max() < 1e-5


def test_fine_tuning_never_sees_held_out_queries(tmp_path):
    entries = read_kb(write_kb(tmp_path / "kb.jsonl", TINY_KB))
    indexed, held = hold_out(entries, seed=0)
    pairs = positive_pairs(indexed, with_answers=True, max_pairs_per_group=20, seed=0)
    seen = {a for a, _, _ in pairs} | {p for _, p, _ in pairs}
    assert held and not seen & {e.question for e in held}
    questions_only = positive_pairs(indexed, with_answers=False, max_pairs_per_group=20, seed=0)
    assert len(questions_only) == 3 * 2  # three groups of two indexed questions: both orders
    assert all(a != p for a, p, _ in questions_only)


def test_bad_input_exits_2_without_a_traceback(cli, tmp_path, tiny_bert):
    bad = tmp_path / "faq.csv"
    bad.write_text("question,answer\nwhere is my bag,\n", encoding="utf-8")
    config = write_config(tmp_path, tiny_bert)
    code, out, err = cli("build", config, f"kb.path={bad}", f"output_dir={tmp_path / 'x'}")
    assert code == 2 and "Traceback" not in err
    assert f'{bad} line 2: field "answer" is missing or empty' in " ".join(err.split())
    code, _, err = cli("build", config, "retrieval.fushion=mix")
    assert code == 2 and 'unknown key "retrieval.fushion"' in err and 'Did you mean "fusion"' in err
    code, _, err = cli("ask", tmp_path / "nowhere", "-q", "hi")
    assert code == 2 and "not a built assistant" in err
    assert not (tmp_path / "x").exists()  # the knowledge base is checked before anything is written


def test_config_show_lists_the_assistant_fields(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["tuneforge", "config", "show", "assistant"])
    try:
        main()
    except SystemExit as exc:
        assert not exc.code
    out = capsys.readouterr().out
    for section in ("kb:", "retrieval:", "finetune:", "routing:", "eval:", "serve:"):
        assert f"\n{section}" in out, section
    assert "  fusion: Literal['rrf', 'mix'] = 'rrf'" in out and "  min_score: float = 0.6" in out


def test_a_real_intent_run_trained_on_the_kb_categories_routes(cli, tmp_path, tiny_bert):
    """intents -> tuneforge train (tiny BERT) -> routing.intent_run: the run is loaded through tuneforge.load."""
    import tuneforge

    folder = tmp_path / "bot"
    assert cli("build", write_config(tmp_path, tiny_bert), f"output_dir={folder}", "retrieval.dense=false",
               "finetune.enabled=false", "--quiet")[0] == 0
    assert cli("intents", folder, tmp_path / "intents.jsonl")[0] == 0
    rows = (tmp_path / "intents.jsonl").read_text().splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join(rows * 4) + "\n")
    run = tuneforge.train({"name": "intents", "model": str(tiny_bert), "output_dir": str(tmp_path / "intent-run"),
                           "data": {"train": str(tmp_path / "train.jsonl"), "validation": str(tmp_path / "train.jsonl"),
                                    "max_length": 16},
                           "method": {"name": "full"},
                           "train": {"max_steps": 4, "batch_size": 8, "learning_rate": 5e-3, "precision": "fp32"}},
                          progress=False)
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    cfg["routing"].update(intent_run=str(run.dir), human_intents=list(run.labels), min_intent_confidence=0.0)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    reply = load_assistant(folder).ask("my bag was lost")
    assert reply["intent"]["label"] in run.labels and 0 < reply["intent"]["confidence"] <= 1
    assert reply["route"] == "human" and "is always handed to a person" in reply["reason"]


def test_a_real_generation_run_answers_what_the_knowledge_base_cannot(cli, tmp_path, tiny_bert):
    """tuneforge.train (task: generation, a tiny random Llama) -> routing.generation_run: a question far from every
    knowledge base entry is answered by that run, from Python and from `tuneforge assistant ask`."""
    import tuneforge

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tasks"))
    from tiny_gen import build_tiny_lm, support_pairs, write_jsonl

    pairs = support_pairs()  # "how do i fix my screen ?" -> "to fix the screen open settings then screen ."
    run = tuneforge.train({"name": "gen", "model": str(build_tiny_lm(tmp_path / "lm")), "task": "generation",
                           "data": {"train": str(write_jsonl(tmp_path / "pairs.jsonl", pairs)), "max_length": 48},
                           "method": {"name": "full"}, "generation": {"max_new_tokens": 12, "eval_generations": 2},
                           "train": {"max_steps": 40, "batch_size": 8, "learning_rate": 3e-3, "precision": "fp32",
                                     "warmup": 0.0},
                           "output_dir": str(tmp_path / "gen-run")}, progress=False)
    folder = tmp_path / "bot"
    build = [write_config(tmp_path, tiny_bert), f"output_dir={folder}", "retrieval.dense=false",
             "finetune.enabled=false", f"routing.generation_run={run.dir}", "routing.max_new_tokens=12", "--quiet"]
    code, _, err = cli("build", *build, "routing.prompt={question}")  # YAML reads {question} as a mapping
    assert code == 2 and "quote the text: routing.prompt=\"'{question}'\"" in " ".join(err.split())
    code, _, err = cli("build", *build, "routing.prompt='{question}'")  # the prompt is the question as trained
    assert code == 0, err
    question = "how do i fix my screen ?"  # shares only "my" with the knowledge base: coverage 1/6 < 0.6
    expected = tuneforge.load(run.dir).generate([question], max_new_tokens=12, do_sample=False)[0].strip()
    assert expected.startswith("to fix the screen open settings")  # the run learned its answers: not noise

    reply = load_assistant(folder).ask(question)
    assert reply["route"] == "generated" and reply["answer"] == expected
    assert "the best match's token coverage 0.17 is below 0.6" in reply["reason"]
    assert f"a generated reply from the generation run {run.dir}" in reply["reason"]
    assert load_assistant(folder).ask("my bag was lost")["route"] == "kb"  # a known question still is the KB's

    code, out, err = cli("ask", folder, "-q", question, "-q", "my bag was lost")
    assert code == 0, err
    generated, known = map(json.loads, out.splitlines())
    assert generated["route"] == "generated" and generated["answer"] == expected
    assert generated["reason"] == reply["reason"]
    assert known["route"] == "kb" and known["answer"] == BAG
    code, out, err = cli("ask", folder, "-q", question, "--no-runs")  # without the run: a person takes over
    assert code == 0 and json.loads(out)["route"] == "human"
    assert "no generation run is configured" in json.loads(out)["reason"]
