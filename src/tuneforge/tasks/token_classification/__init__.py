"""Token classification (named-entity recognition): BIO tags per word, entity spans with character offsets.

The parts: ``records`` (a tagged sentence), ``words`` (splitting text into words), ``bio`` (tag checks and
spans), ``files`` (JSONL and CoNLL readers), ``encoding`` (word labels on subword tokens), ``metrics``
(seqeval entity scores), ``inference`` (predictions back to words and spans), ``recipe`` (training),
``run`` (a loaded run: predict spans, evaluate). See docs/NER.md.
"""
