"""A loaded generation run: ``tuneforge.load(run_dir).generate(["How do I reset my password?"])``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tuneforge.errors import TuneforgeError
from tuneforge.run import Run
from tuneforge.tasks.generation.chat import ChatFormat, encode_prompts
from tuneforge.tasks.generation.config import GenerationConfig
from tuneforge.tasks.generation.generate import choose_sampling, decode, generate_ids
from tuneforge.tasks.generation.records import Pair


class GenerationRun(Run):
    """:class:`~tuneforge.run.Run` for ``task: generation``: answers prompts in the chat format it was trained in."""

    @property
    def chat(self) -> ChatFormat:
        if getattr(self, "_chat", None) is None:
            self._chat = ChatFormat(self.tokenizer, self.generation_config.system_prompt)
        return self._chat

    @property
    def generation_config(self) -> GenerationConfig:
        return self.config.generation or GenerationConfig()

    def generate(self, prompts: list[str], max_new_tokens: int = 128, temperature: float | None = None,
                 top_p: float | None = None, top_k: int | None = None, do_sample: bool | None = None,
                 seed: int | None = None, batch_size: int = 16) -> list[str]:
        """One answer per prompt, in order. Greedy by default (the most likely tokens: deterministic);
        ``do_sample=True``, or any of ``temperature`` (default 0.7), ``top_p`` (nucleus, 0.9), ``top_k`` (50) and
        ``seed`` (0), samples, reproducibly for a given seed. ``do_sample=False`` with a sampling option is an
        error (greedy decoding would ignore it); see :func:`~.generate.choose_sampling`."""
        if isinstance(prompts, str):
            raise TypeError("generate() takes a list of prompts; wrap a single prompt as [prompt]")
        prompts = [str(p) for p in prompts]
        empty = [i for i, p in enumerate(prompts) if not p.strip()]
        if empty:
            raise TuneforgeError(f"Prompt(s) {empty[:10]} are empty; give each prompt some text.")
        sampling = choose_sampling(max_new_tokens, do_sample, temperature=temperature, top_p=top_p, top_k=top_k,
                                   seed=seed)
        if not prompts:
            return []
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = generate_ids(self.model, encode_prompts(prompts, self.chat, self.config.data.max_length), sampling,
                           stop_ids=self.chat.stop_ids, pad_id=pad_id, batch_size=batch_size,
                           precision=self.precision, device=self.device)
        return decode(self.tokenizer, ids)

    def evaluate(self, pairs: Sequence[Pair], batch_size: int = 16, max_generations: int | None = None
                 ) -> dict[str, Any]:
        """Perplexity over every pair's answer and ROUGE-L of greedy answers (to at most ``max_generations``
        pairs, default the run's ``generation.eval_generations``); ``samples`` holds the generated answers."""
        from tuneforge.tasks.generation.recipe import score

        pairs = list(pairs)
        if not pairs:
            raise TuneforgeError("evaluate() got no pairs.")
        gen = self.generation_config
        if max_generations is not None:
            gen = gen.model_copy(update={"eval_generations": max_generations})
        metrics, samples = score(self.model, self.tokenizer, self.chat, pairs, gen,
                                 max_length=self.config.data.max_length, precision=self.precision, device=self.device,
                                 seed=self.config.train.seed, batch_size=batch_size)
        return {**metrics, "samples": samples}

    def evaluate_file(self, path: str | Path, batch_size: int = 16, max_generations: int | None = None
                      ) -> dict[str, Any]:
        """:meth:`evaluate` on a .jsonl/.json/.csv/.tsv file of pairs (the run's data.prompt_column and
        data.response_column)."""
        from tuneforge.tasks.generation.files import read_pairs

        d = self.config.data
        pairs = read_pairs(path, prompt_column=d.prompt_column, response_column=d.response_column, run=self.dir)
        return self.evaluate(pairs, batch_size, max_generations)

    def summary(self) -> str:
        m = self.metrics
        rouge = f", ROUGE-L [bold]{m['test.rouge_l']:.4f}[/]" if "test.rouge_l" in m else ""
        base = f" (base model {m['base.test.perplexity']:.2f}" + (
            f", {m['base.test.rouge_l']:.4f}" if "base.test.rouge_l" in m else "") + ")" \
            if "base.test.perplexity" in m else ""
        return (f"test perplexity [bold]{m['test.perplexity']:.2f}[/]{rouge}{base}; "
                f"{m['train.samples_per_second']:.1f} pairs/s; run folder: [bold]{self.dir}[/]")

    def predict(self, *args, **kwargs):
        raise TuneforgeError("This run generates text (task: generation): use generate(prompts) or `tuneforge "
                             "generate RUN_DIR --prompt TEXT`.")

    def predict_proba(self, *args, **kwargs):
        return self.predict()

    def explain(self, *args, **kwargs):
        raise TuneforgeError("explain() attributes class predictions; a generation run has none.")

    def export(self, *args, **kwargs):
        raise TuneforgeError("Export (Hugging Face / ONNX with a parity check) supports text classification only "
                             f"so far. The run's model folder {self.dir / 'model'} is already a Hugging Face "
                             "(full) or peft / prefix folder, with its tokenizer and chat template.")

    def export_merged(self, folder):
        return self.export(folder)
