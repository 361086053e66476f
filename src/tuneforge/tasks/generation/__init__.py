"""Reply generation: supervised fine-tuning of a causal language model on (prompt, response) pairs.

The parts: ``records`` (a pair), ``config`` (the ``generation:`` section), ``files`` (JSONL/CSV readers),
``data`` (splits), ``chat`` (the chat template, answer-only labels, truncation), ``metrics`` (ROUGE-L,
perplexity), ``generate`` (batched decoding), ``recipe`` (training), ``run`` (a loaded run: generate,
evaluate), ``cli`` (``tuneforge generate``, ``tuneforge eval``). See docs/GENERATION.md.
"""
