"""Text augmentation for small training sets: EDA edits and a back-translation hook (docs/FEWSHOT.md)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from tuneforge.augment.config import AugmentConfig
from tuneforge.augment.eda import Synonyms, eda
from tuneforge.augment.hook import back_translate, load_translator
from tuneforge.data.records import Example


def augment_examples(examples: Sequence[Example], cfg: AugmentConfig, model_path: str, seed: int = 0,
                     synonyms: Synonyms | None = None) -> list[Example]:
    """The examples followed by their augmented copies (labels kept; ``meta["augmented"]`` says how).

    Copy ``c`` of each example uses ``cfg.operations[c % len(operations)]``; the random choices depend only on
    ``cfg.seed + seed`` and the input order. Copies identical to their source are dropped (a one-word text
    cannot be swapped). Text pairs keep their second text unedited.
    """
    examples = list(examples)
    if synonyms is None and cfg.copies and {"synonym", "insert"} & set(cfg.operations):
        from tuneforge.augment.synonyms import embedding_synonyms

        synonyms = embedding_synonyms(model_path, cfg.synonyms, cfg.min_similarity)
    rng = random.Random(cfg.seed + seed)
    out = list(examples)
    for example in examples:
        seen = {example.text}
        for c in range(cfg.copies):
            op = cfg.operations[c % len(cfg.operations)]
            text = eda(example.text, op, cfg.alpha, rng, synonyms or _NoSynonyms())
            if text not in seen:
                seen.add(text)
                out.append(replace(example, text=text, meta={**example.meta, "augmented": op}))
    if cfg.back_translate:
        translated = back_translate([e.text for e in examples], load_translator(cfg.back_translate),
                                    cfg.back_translate)
        out += [replace(e, text=t, meta={**e.meta, "augmented": "back_translate"})
                for e, t in zip(examples, translated) if t.strip() and t != e.text]
    return out


class _NoSynonyms:
    def get(self, word: str) -> list[str]:
        return []


__all__ = ["AugmentConfig", "augment_examples"]
