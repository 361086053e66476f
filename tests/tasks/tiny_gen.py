"""A tiny random Llama causal LM with a word-level tokenizer, and synthetic support pairs it can learn.

Word-level tokens make the label masks checkable by hand (one word, one id). The tokenizer adds ``<s>`` in
front (like Llama's); ``chat=True`` gives it a chat template with special ``<|user|>``/``<|assistant|>``
tokens and ``</s>`` ending each turn, ``chat=False`` none (the plain Question/Answer format).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>", "<|system|>"]
VERBS = ["reset", "fix", "update", "check"]
TOPICS = ["password", "email", "printer", "wifi", "account", "invoice", "screen", "battery"]
WORDS = ["how", "do", "i", "my", "to", "the", "open", "settings", "then", "Question", "Answer", ":", "?", "are",
         "you", "fine", "thanks", "be", "brief", "."] + VERBS + TOPICS
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def build_tokenizer(chat: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIALS + WORDS)}
    word_level = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    word_level.decoder = decoders.WordPiece()  # joins words with spaces
    word_level.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>", pad_token="<pad>",
                                        extra_special_tokens=["<|user|>", "<|assistant|>", "<|system|>"])
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_lm(folder: Path, chat: bool = False) -> Path:
    """hidden 32, 2 layers, 4 heads, 2 key/value heads (grouped-query attention), tied embeddings."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(chat)
    config = LlamaConfig(vocab_size=len(SPECIALS) + len(WORDS), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                         tie_word_embeddings=True, initializer_range=0.2)  # larger than 0.02: visible signals
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def support_pairs() -> list[dict]:
    """32 pairs: "how do i {verb} my {topic} ?" -> "to {verb} the {topic} open settings then {topic} ." """
    return [{"prompt": f"how do i {v} my {t} ?", "response": f"to {v} the {t} open settings then {t} ."}
            for v in VERBS for t in TOPICS]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
