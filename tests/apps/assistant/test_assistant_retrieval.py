"""Retrieval on a tiny hand-built knowledge base (BM25, dense with a stand-in encoder, hybrid), and routing with
stub intent and generation runs: knowledge base answer, generated reply, or a person, and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from assistant_helpers import KB, StubClassifier, StubGenerator, make_retriever, write_kb

from tuneforge.apps.assistant.assistant import Assistant
from tuneforge.apps.assistant.config import AssistantConfig, RoutingConfig
from tuneforge.apps.assistant.kb import read_kb
from tuneforge.apps.assistant.retriever import Hit
from tuneforge.apps.assistant.routing import route
from tuneforge.errors import TuneforgeError

REWORDED = [("reset password", "pw-1"), ("track my order", "order-1"), ("refund please", "refund"),
            ("change the address for my delivery", "address"), ("which payment methods", "pay"),
            ("修改我的密码", "zh-pw"), ("退款怎么办", "zh-refund"), ("我的订单", "zh-order")]


@pytest.fixture(scope="module")
def entries(tmp_path_factory):
    return read_kb(write_kb(tmp_path_factory.mktemp("kb") / "kb.jsonl"))


def group_of(entries, entry_id):
    return next(e.group for e in entries if e.id == entry_id)


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_exact_questions_find_their_own_answer_first(entries, mode):
    retriever = make_retriever(entries)
    for e in entries:
        hits = retriever.search(e.question, k=3, mode=mode)
        assert entries[hits[0].index].group == e.group, (mode, e.question)


@pytest.mark.parametrize("settings", [{"bm25": True, "dense": False}, {"fusion": "rrf"},
                                      {"fusion": "mix", "dense_weight": 0.3}, {"cjk": "chars"}, {"index": "hnsw"}])
def test_lightly_reworded_questions_find_the_right_answer_first(entries, settings):
    retriever = make_retriever(entries, **settings)
    for query, wanted in REWORDED:
        hits = retriever.search(query, k=3)
        assert entries[hits[0].index].group == group_of(entries, wanted), (settings, query)


def test_hits_are_distinct_answers_and_modes_are_checked(entries):
    retriever = make_retriever(entries)
    hits = retriever.search("password order track reset", k=10)
    groups = [entries[h.index].group for h in hits]
    assert len(groups) == len(set(groups))
    assert retriever.search("How do I reset my password?", k=1)[0].similarity == pytest.approx(1.0)
    lexical_only = make_retriever(entries, dense=False)
    assert lexical_only.modes == ["bm25"]
    with pytest.raises(TuneforgeError, match="has: bm25"):
        lexical_only.search("password", mode="hybrid")
    assert lexical_only.search("nothing matches zebra") == []
    hit = lexical_only.search("reset my password")[0]
    assert hit.dense is None and hit.similarity == pytest.approx(1.0)  # every query token is in the question


def assistant_with(entries, classifier=None, generator=None, **routing) -> Assistant:
    cfg = AssistantConfig(kb={"path": "kb.jsonl"}, routing=routing)
    return Assistant(Path("unused"), cfg, entries, make_retriever(entries), classifier, generator)


def test_a_close_match_is_answered_from_the_knowledge_base(entries):
    reply = assistant_with(entries).ask("How do I reset my password?")
    assert reply["route"] == "kb" and reply["answer"] == KB[0]["answer"]
    assert reply["matched_question"] in ("How do I reset my password?", "I forgot my password")
    assert reply["score"] == pytest.approx(1.0) and reply["score_kind"] == "cosine" and reply["intent"] is None
    assert "cosine 1.00 >= 0.6" in reply["reason"]


def test_a_poor_match_goes_to_a_person_without_a_generation_run(entries):
    reply = assistant_with(entries, min_score=0.9).ask("zebra giraffe weather tomorrow")
    assert reply["route"] == "human" and reply["answer"] == RoutingConfig().handover_message
    assert "below 0.9" in reply["reason"] and "no generation run" in reply["reason"]


def test_a_poor_match_gets_a_generated_reply_with_a_generation_run(entries):
    generator = StubGenerator()
    reply = assistant_with(entries, generator=generator, min_score=0.9, max_new_tokens=7, do_sample=True,
                           seed=3).ask("zebra giraffe weather tomorrow")
    assert reply["route"] == "generated" and reply["answer"].startswith("generated reply")
    (prompts, kwargs), = generator.calls
    assert "Question: zebra giraffe weather tomorrow" in prompts[0]
    assert kwargs == {"max_new_tokens": 7, "temperature": 0.7, "top_p": 0.9, "do_sample": True, "seed": 3}
    assert "a generated reply" in reply["reason"]


def test_a_greedy_generated_reply_passes_no_sampling_settings(entries):
    """A generation run refuses temperature, top_p or seed next to do_sample=False (greedy would ignore them)."""
    generator = StubGenerator()
    assistant_with(entries, generator=generator, min_score=0.9, max_new_tokens=7).ask("zebra giraffe weather")
    (_, kwargs), = generator.calls
    assert kwargs == {"max_new_tokens": 7, "do_sample": False}


def test_intent_routing(entries):
    question = "How do I reset my password?"
    confident = StubClassifier("account", 0.9)
    reply = assistant_with(entries, confident).ask(question)
    assert reply["route"] == "kb" and reply["intent"] == {"label": "account", "confidence": 0.9}
    assert confident.seen == [question]
    unsure = assistant_with(entries, StubClassifier("account", 0.3), StubGenerator()).ask(question)
    assert unsure["route"] == "generated" and 'intent "account" confidence 0.30 is below 0.5' in unsure["reason"]
    complaint = assistant_with(entries, StubClassifier("complaint", 0.8), StubGenerator(),
                               human_intents=["complaint"]).ask(question)
    assert complaint["route"] == "human" and "always handed to a person" in complaint["reason"]
    unsure_complaint = assistant_with(entries, StubClassifier("complaint", 0.2), human_intents=["complaint"]
                                      ).ask(question)
    assert unsure_complaint["route"] == "human" and "confidence 0.20 is below" in unsure_complaint["reason"]


def test_the_threshold_is_inclusive(entries):
    cfg = RoutingConfig(min_score=0.5)
    at = route("q", [Hit(0, 1.0, 0.5, None, 0.5)], entries, cfg, None, None, "cosine")
    below = route("q", [Hit(0, 1.0, 0.4999, None, 0.4999)], entries, cfg, None, None, "cosine")
    assert (at["route"], below["route"]) == ("kb", "human")
    assert route("q", [], entries, cfg, None, None, "cosine")["reason"].startswith("nothing in the knowledge base")


def test_indexing_questions_with_their_answers(tmp_path):
    from tuneforge.apps.assistant import build_assistant

    def build(fields):
        return build_assistant({"kb": {"path": str(write_kb(tmp_path / "kb.jsonl"))},
                                "output_dir": str(tmp_path / fields), "eval": {"holdout": False},
                                "retrieval": {"dense": False, "fields": fields}}, progress=False)

    query = "bank transfers"  # words of an answer only
    assert build("question").search(query) == []
    hit = build("question_answer").search(query)[0]
    assert hit["id"] == "pay" and hit["similarity"] == pytest.approx(1.0)
