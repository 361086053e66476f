"""Per-token attributions of a classification run: integrated gradients on the input embeddings.

Integrated gradients (Sundararajan, Taly and Yan 2017, "Axiomatic Attribution for Deep Networks"): for the
input embeddings x, a baseline x' and the model's probability of the explained label f,

    IG_i(x) = (x_i - x'_i) * integral_0^1 df(x' + a (x - x'))/dx_i da      (Riemann sum over ``steps`` points)

summed over the hidden dimension of each token. Completeness: sum_i IG_i = f(x) - f(x') up to the error of the
integral, which Captum reports as the convergence delta; more steps make it smaller.

The baseline keeps the special tokens ([CLS], [SEP], BOS...) and puts the pad token's embedding at every other
position, so the special tokens get exactly zero and the scores say what the words themselves add.

Captum's ``LayerIntegratedGradients`` does the interpolation on the output of the word-embedding layer, found by
``get_input_embeddings()``. That layer exists under every method (full, freeze, bitfit; LoRA, IA3, AdaLoRA through
peft; our adapter and prefix modules; prompt tuning and P-tuning, whose virtual tokens are added after it), so
one code path explains them all: the virtual tokens of prompt methods are part of the model, not of the input,
and get no score.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tuneforge.errors import TuneforgeError, closest

METHOD = "integrated gradients (Captum LayerIntegratedGradients) on the word embeddings"


@dataclass
class Explanation:
    """Attributions of one text: a score per token toward ``target`` (the predicted label unless asked)."""

    text: str
    label: str  # predicted
    target: str  # the label the scores explain
    probability: float  # of target, for the text
    baseline_probability: float  # of target, with every word replaced by the pad token
    scores: list[float]  # per token, sum ~ probability - baseline_probability
    tokens: list[str]
    offsets: list[tuple[int, int]]  # character span of each token in text; (0, 0) for special tokens
    convergence_delta: float  # sum(scores) - (probability - baseline_probability)
    steps: int
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["offsets"] = [list(o) for o in self.offsets]
        out["method"] = METHOD
        return out


def explain_texts(run: Any, texts: list[str], *, target: str | None = None, steps: int = 50,
                  internal_batch_size: int = 16, progress: bool = False) -> list[Explanation]:
    """Integrated-gradients attributions for each text under a loaded :class:`~tuneforge.run.Run`."""
    from captum.attr import LayerIntegratedGradients

    task = getattr(run.config, "task", "text-classification")
    if task != "text-classification":
        raise TuneforgeError(f"{run.dir} is a {task} run; explain scores the words behind a text classifier's label "
                             "(task: text-classification), one label per text. For tags or generated text use "
                             "`tuneforge predict` / `tuneforge generate`.")
    if steps < 2:
        raise TuneforgeError(f"--steps {steps}: integrated gradients needs at least 2 steps (50 is usual).")
    if target is not None and target not in run.labels:
        close = closest(target, run.labels)
        raise TuneforgeError(f'--label "{target}" is not a label of this run.'
                             + (f' Did you mean "{close}"?' if close else "") + f" Labels: {', '.join(run.labels)}.")
    empty = [i + 1 for i, t in enumerate(texts) if not str(t).strip()]
    if not texts or empty:
        raise TuneforgeError(f"Text {empty[0] if empty else 1} is empty: give the text to explain with --text.")
    model, tokenizer = run.model, run.tokenizer
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is None:
        raise TuneforgeError(f"{type(model).__name__} has no input embedding layer (get_input_embeddings), so "
                             "integrated gradients cannot be applied to it.")
    baseline_id = next((i for i in (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id)
                        if i is not None), 0)
    was_training = model.training
    model.eval()  # no dropout: the path integral needs one fixed function

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor, target_id: int) -> torch.Tensor:
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        return torch.softmax(logits.float(), dim=-1)[:, target_id]  # (B,)

    out = []
    bar = Progress(TextColumn("[bold]explain"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True),
                   disable=not progress or len(texts) < 2)
    try:
        ig = LayerIntegratedGradients(forward, embeddings)
        bar.start()
        task = bar.add_task("explain", total=len(texts))
        for text in texts:
            if run.prompt_inputs is not None:  # a prompt: (PET) run reads the text inside its template, as predict does
                from tuneforge.data.records import Example

                text = run.prompt_inputs.render([Example(text=text)])[0].text
            enc = tokenizer(text, truncation=True, max_length=run.config.data.max_length,
                            return_offsets_mapping=tokenizer.is_fast, return_special_tokens_mask=True,
                            return_tensors="pt")
            ids = enc["input_ids"].to(run.device)  # (1, T)
            mask = torch.ones_like(ids)
            special = enc["special_tokens_mask"].bool().to(run.device)
            baseline = torch.where(special, ids, torch.full_like(ids, baseline_id))
            with torch.no_grad():
                probs = torch.softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)[0]
            predicted = int(probs.argmax())
            target_id = run.labels.index(target) if target is not None else predicted
            attributions, delta = ig.attribute(ids, baselines=baseline, additional_forward_args=(mask, target_id),
                                               n_steps=steps, internal_batch_size=internal_batch_size,
                                               return_convergence_delta=True)
            scores = attributions.sum(-1)[0].detach().float()  # (T,): summed over the hidden size
            with torch.no_grad():
                p_base = float(forward(baseline, mask, target_id)[0])
            out.append(Explanation(
                text=text, label=run.labels[predicted], target=run.labels[target_id],
                probability=float(probs[target_id]), baseline_probability=p_base, scores=scores.tolist(),
                tokens=tokenizer.convert_ids_to_tokens(ids[0].tolist()),
                offsets=[tuple(o) for o in enc["offset_mapping"][0].tolist()] if "offset_mapping" in enc
                else [(0, 0)] * ids.shape[1], convergence_delta=float(delta[0]),
                steps=steps, probabilities={name: float(p) for name, p in zip(run.labels, probs.tolist())}))
            bar.advance(task)
    finally:
        bar.stop()
        model.train(was_training)
    return out
