"""Scoring label words on tiny random LMs, checked by hand against the model's raw logits.

The expected scores are computed here from scratch: one text at a time, no padding, the whole prompt and
word as one string, ``log_softmax`` of the raw logits at the positions that predict the word's tokens
(causal LM) or at the mask positions (masked LM).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_lms import tiny_causal_lm, tiny_mlm  # noqa: F401 (fixtures)

from tuneforge.data.records import Example
from tuneforge.errors import TuneforgeError
from tuneforge.prompting.config import PromptConfig
from tuneforge.prompting.scoring import PromptScorer, load_language_model

TEXTS = ["my flight was late again", "great crew thanks", "the gate", "awful seat and rude crew today very",
         "love it", "ticket question"]
CAUSAL = PromptConfig(template="Tweet: {text}\nSentiment: {answer}",
                      verbalizer={"negative": ["bad", "negative"], "neutral": "okay", "positive": ["good", "great"]})
MASKED = PromptConfig(template="{text}. it was {answer}.",
                      verbalizer={"negative": ["bad", "unhappy"], "neutral": "okay", "positive": "good"})


@pytest.fixture(scope="module")
def causal(tiny_causal_lm):  # noqa: F811
    return load_language_model(str(tiny_causal_lm))


@pytest.fixture(scope="module")
def masked(tiny_mlm):  # noqa: F811
    return load_language_model(str(tiny_mlm))


def examples(texts=TEXTS) -> list[Example]:
    return [Example(text=t) for t in texts]


def causal_by_hand(lm, prompt: str, word: str) -> list[float]:
    """log p of each token of " word" after ``prompt``: the whole string through the model once."""
    tok = lm.tokenizer
    head = tok(prompt)["input_ids"]  # with the BOS the tokenizer adds
    whole = tok(prompt + " " + word)["input_ids"]
    assert whole[:len(head)] == head
    with torch.no_grad():
        logprobs = torch.log_softmax(lm.model(torch.tensor([whole])).logits[0].float(), -1)
    return [logprobs[len(head) - 1 + j, t].item() for j, t in enumerate(whole[len(head):])]


def test_causal_word_scores_match_the_raw_logits(causal):
    scorer = PromptScorer(causal, CAUSAL, batch_size=64)
    for how, reduce in [("mean", np.mean), ("sum", np.sum), ("first", lambda x: x[0])]:
        scorer.prompt = CAUSAL.model_copy(update={"multi_token": how})
        got = scorer.word_scores(examples())
        for i, text in enumerate(TEXTS):
            for j, word in enumerate(scorer.verbalizer.flat):
                expected = reduce(causal_by_hand(causal, f"Tweet: {text}\nSentiment:", word))
                assert got[i, j].item() == pytest.approx(expected, abs=1e-5), (how, text, word)
    assert len(causal.tokenizer(" negative", add_special_tokens=False)["input_ids"]) > 1  # a multi-token word


def test_causal_label_scores_are_the_best_word_and_probabilities_sum_to_one(causal):
    scorer = PromptScorer(causal, CAUSAL)
    words = scorer.word_scores(examples())
    labels = scorer.log_scores(examples())
    assert torch.equal(labels[:, 0], torch.maximum(words[:, 0], words[:, 1]))
    assert torch.equal(labels[:, 1], words[:, 2])
    probs = scorer.predict_proba(examples())
    assert probs.shape == (len(TEXTS), 3)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(probs, torch.softmax(labels, -1).numpy(), atol=1e-6)


def test_left_padded_batches_score_as_one_text_at_a_time(causal, masked):
    for lm, prompt in [(causal, CAUSAL), (masked, MASKED)]:
        batched = PromptScorer(lm, prompt, batch_size=64).word_scores(examples())
        single = torch.cat([PromptScorer(lm, prompt, batch_size=1).word_scores(examples([t])) for t in TEXTS])
        torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)
    assert causal.tokenizer.padding_side == "left"


def test_masked_word_scores_match_the_raw_logits_with_one_mask_per_token(masked):
    scorer = PromptScorer(masked, MASKED)
    tok, model = masked.tokenizer, masked.model
    assert [tok.convert_ids_to_tokens(ids) for ids in scorer.word_ids] == [["bad"], ["un", "##happy"], ["okay"],
                                                                          ["good"]]
    got = scorer.word_scores(examples())
    by_hand = torch.zeros_like(got)
    for i, text in enumerate(TEXTS):
        for j, word_ids in enumerate(scorer.word_ids):
            ids = tok(f"{text}. it was " + "[MASK]" * len(word_ids) + ".")["input_ids"]
            masks = [p for p, t in enumerate(ids) if t == tok.mask_token_id]
            assert len(masks) == len(word_ids)
            with torch.no_grad():
                logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0], -1)
            by_hand[i, j] = np.mean([logprobs[p, t].item() for p, t in zip(masks, word_ids)])
    torch.testing.assert_close(got, by_hand, atol=1e-5, rtol=0)
    # classes: negative = best of "bad" and "unhappy"; neutral = "okay"; positive = "good"
    expected = torch.stack([torch.maximum(by_hand[:, 0], by_hand[:, 1]), by_hand[:, 2], by_hand[:, 3]], dim=1)
    torch.testing.assert_close(scorer.log_scores(examples()), expected, atol=1e-5, rtol=0)


def test_a_mask_token_inside_the_text_is_not_an_answer_slot(masked):
    scorer = PromptScorer(masked, MASKED)
    with_mask = scorer.word_scores(examples(["great [MASK] crew"]))
    without = scorer.word_scores(examples(["great   crew"]))
    torch.testing.assert_close(with_mask, without)


def test_long_texts_are_cut_to_max_length_keeping_the_template(masked, causal):
    long = " ".join(["late"] * 200)
    scorer = PromptScorer(masked, MASKED, max_length=32)
    rows = scorer._masked_rows(examples([long]))
    assert all(len(r.ids) <= 32 and len(r.masks) >= 1 for r in rows)
    assert masked.tokenizer.decode(rows[0].ids).endswith("it was [MASK]. [SEP]")
    prompt, space = PromptScorer(causal, CAUSAL, max_length=40).causal_prompts(examples([long]))[0]
    assert prompt.endswith("\nSentiment:") and space == " " and len(causal.tokenizer(prompt)["input_ids"]) <= 40


def test_a_mask_token_in_the_template_is_refused(masked):
    scorer = PromptScorer(masked, MASKED.model_copy(update={"template": "{text} [MASK] it was {answer}."}))
    with pytest.raises(TuneforgeError, match="holds the mask token"):
        scorer.word_scores(examples())


def test_a_chat_prompt_with_a_long_text_fits_max_length(causal):
    scorer = PromptScorer(causal, CAUSAL.model_copy(update={"chat": True}), max_length=48)
    prompt, _ = scorer.causal_prompts(examples([" ".join(["late"] * 200)]))[0]
    assert prompt.endswith("</s><|assistant|>") and len(causal.tokenizer(prompt)["input_ids"]) <= 48


def test_calibration_divides_by_the_content_free_probabilities(causal):
    plain = PromptScorer(causal, CAUSAL).predict_proba(examples())
    scorer = PromptScorer(causal, CAUSAL.model_copy(update={"calibrate": True}))
    calibrated = scorer.predict_proba(examples())
    expected = plain / scorer.content_free
    np.testing.assert_allclose(calibrated, expected / expected.sum(1, keepdims=True), atol=1e-5)
    assert scorer.describe()["content_free_probabilities"].keys() == {"negative", "neutral", "positive"}


def test_chat_puts_the_answer_in_the_assistant_turn(causal, masked):
    chat = CAUSAL.model_copy(update={"chat": True})
    prompt, space = PromptScorer(causal, chat).causal_prompts(examples(["love it"]))[0]
    assert (prompt, space) == ("<|user|>Tweet: love it\nSentiment:</s><|assistant|>", "")
    scores = PromptScorer(causal, chat).word_scores(examples())
    assert torch.isfinite(scores).all()
    with pytest.raises(TuneforgeError, match="prompt.chat = true"):
        PromptScorer(masked, MASKED.model_copy(update={"chat": True}))


def test_causal_lm_needs_the_answer_last(causal, masked):
    with pytest.raises(TuneforgeError, match="must come last") as info:
        PromptScorer(causal, MASKED)
    assert "Move {answer} to the end" in str(info.value)
    PromptScorer(masked, MASKED)  # a masked LM reads both ways: the answer may sit anywhere


def test_an_encoder_without_its_mlm_head_is_refused(tiny_bert):
    with pytest.raises(TuneforgeError) as info:
        load_language_model(str(tiny_bert))  # a base BertModel checkpoint, like the bundled minilm
    message = str(info.value)
    assert "no trained MLM head" in message and "cls.predictions" in message and "smollm2" in message
