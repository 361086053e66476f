"""A loaded token-classification run: ``tuneforge.load(run).predict(["江泽民在北京"])`` gives entity spans."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tuneforge.errors import TuneforgeError
from tuneforge.run import Run
from tuneforge.tasks.token_classification.encoding import encode_tokens
from tuneforge.tasks.token_classification.inference import entity_spans, predict_words, subword_probs
from tuneforge.tasks.token_classification.records import TokenExample
from tuneforge.tasks.token_classification.recipe import evaluate_split
from tuneforge.tasks.token_classification.words import from_text


class TokenRun(Run):
    """:class:`~tuneforge.run.Run` for ``task: token-classification``: ``labels`` are the BIO tags."""

    def _kwargs(self, batch_size: int) -> dict:
        return dict(batch_size=batch_size, precision=self.precision, device=self.device,
                    pad_id=self.tokenizer.pad_token_id or 0, padding_side=getattr(self.tokenizer, "padding_side",
                                                                                   "right"))

    def _examples(self, texts: Sequence[str] | Sequence[TokenExample]) -> list[TokenExample]:
        if isinstance(texts, str):
            raise TypeError("predict() takes a list of texts; wrap a single text as [text]")
        return [t if isinstance(t, TokenExample) else from_text(str(t)) for t in texts]

    def predict_tags(self, texts: Sequence[str] | Sequence[TokenExample], batch_size: int = 64
                     ) -> list[dict[str, Any]]:
        """Per text: ``{"words", "tags", "scores"}`` (words as split by :mod:`words`, or the example's own)."""
        examples = self._examples(texts)
        if not examples:
            return []
        encoded = encode_tokens(examples, self.tokenizer, self.labels, self.config.data.max_length)
        probs, _ = subword_probs(self.model, encoded, **self._kwargs(batch_size))
        return [{"words": list(e.words), "tags": tags, "scores": [round(s, 6) for s in scores]}
                for e, (tags, scores) in zip(examples, predict_words(examples, encoded, probs, self.labels))]

    def predict(self, texts: Sequence[str] | Sequence[TokenExample], text_pairs: Sequence[str] | None = None,
                batch_size: int = 64) -> list[dict[str, Any]]:
        """Per text: ``{"entities": [{"start", "end", "text", "type", "score"}]}``, offsets into the text as
        given (``text[start:end] == entity["text"]``)."""
        if text_pairs is not None:
            raise TuneforgeError("Token classification tags single texts; it takes no text pairs.")
        examples = self._examples(texts)
        tagged = self.predict_tags(examples, batch_size)
        return [{"entities": entity_spans(e, t["tags"], t["scores"])} for e, t in zip(examples, tagged)]

    def summary(self) -> str:
        m = self.metrics
        return (f"test entity F1 [bold]{m['test.f1']:.4f}[/] (precision {m['test.precision']:.4f}, recall "
                f"{m['test.recall']:.4f}, macro-F1 {m['test.macro_f1']:.4f}); {m['train.samples_per_second']:.1f} "
                f"sentences/s; run folder: [bold]{self.dir}[/]")

    def predict_proba(self, *args, **kwargs):
        raise TuneforgeError("This run tags tokens (task: token-classification): it has no per-text class "
                             "probabilities. Use predict() for entity spans or predict_tags() for word tags.")

    def evaluate(self, examples: Sequence[TokenExample], batch_size: int = 64) -> dict[str, Any]:
        """Entity precision/recall/F1 (micro, macro, per type), tag accuracy and loss on tagged sentences."""
        examples = list(examples)
        unknown = sorted({t for e in examples for t in e.tags or () if t not in self.labels})
        if unknown:
            raise TuneforgeError(f"Tags {unknown} were never seen in training; this run knows {self.labels}.")
        if any(e.tags is None for e in examples):
            raise TuneforgeError("evaluate() needs tagged sentences (tokens + tags, or text + entities).")
        encoded = encode_tokens(examples, self.tokenizer, self.labels, self.config.data.max_length)
        return evaluate_split(self.model, examples, encoded, self.labels, **self._kwargs(batch_size))

    def evaluate_file(self, path: str | Path, batch_size: int = 64) -> dict[str, Any]:
        """:meth:`evaluate` on a JSONL or CoNLL file (docs/NER.md)."""
        from tuneforge.tasks.token_classification.files import read_token_examples

        examples, _ = read_token_examples(path)
        return self.evaluate(examples, batch_size)

    def export(self, *args, **kwargs):
        raise TuneforgeError("Export (Hugging Face / ONNX with a parity check) supports text classification only "
                             f"so far. The run's model folder {self.dir / 'model'} is already a Hugging Face "
                             "(full) or peft / adapter folder.")

    def export_merged(self, folder):
        return self.export(folder)
