"""Knowledge distillation (Hinton, Vinyals and Dean, 2015): a small student learns the teacher's outputs.

    loss = alpha * T^2 * KL( softmax(t / T) || softmax(s / T) )  +  (1 - alpha) * CE(s, y)

t and s are the teacher's and the student's logits. A temperature T > 1 softens both distributions, so the
student also learns how the teacher ranks the wrong classes ("dark knowledge"); the T^2 keeps the soft
term's gradients on the scale of the hard one's as T changes. Unlabelled texts (label -1) add to the soft
term only.

The student here is usually the teacher with fewer layers (:func:`student_from_teacher`): DistilBERT
(Sanh et al., 2019) initialises from every other teacher layer, which starts the student close to the
teacher and trains much faster than from scratch.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from tuneforge.errors import TuneforgeError
from tuneforge.methods.params import transformer_layers
from tuneforge.models.precision import autocast
from tuneforge.training.batching import Encoded, batch_order, collate


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float,
                      alpha: float) -> torch.Tensor:
    """The loss above for logits of shape (B, C) and labels (B,), -1 where unlabelled; mean over the batch."""
    student, teacher = student.float(), teacher.float()
    t = temperature
    soft = F.kl_div(F.log_softmax(student / t, dim=-1), F.log_softmax(teacher / t, dim=-1), log_target=True,
                    reduction="batchmean")  # sum_c p_t (log p_t - log p_s), averaged over the batch
    labelled = labels >= 0
    hard = F.cross_entropy(student[labelled], labels[labelled]) if labelled.any() else student.sum() * 0
    return alpha * t * t * soft + (1 - alpha) * hard


@torch.inference_mode()
def teacher_logits(model: nn.Module, data: Encoded, *, batch_size: int, precision: str, device: torch.device,
                   pad_id: int, padding_side: str = "right") -> torch.Tensor:
    """Logits for every example of ``data``, shape (N, C), float32 on the CPU, in the order of ``data``."""
    model.eval()
    out: torch.Tensor | None = None
    for batch in batch_order(data.lengths(), batch_size, seed=0, shuffle=False, group_by_length=True):
        inputs = collate(data, batch, pad_id, padding_side)
        inputs.pop("labels")
        with autocast(precision, device):
            logits = model(**{k: v.to(device) for k, v in inputs.items()}).logits.float().cpu()
        if out is None:
            out = torch.zeros(len(data), logits.shape[-1])
        out[batch] = logits
    return out if out is not None else torch.zeros(0, 0)


class DistillLoss:
    """The loop's ``loss_fn``: the student's logits against the teacher's for the same examples.

    With ``cache`` (N, C) the teacher's logits are looked up by example index; otherwise the teacher runs on
    the batch (``teacher_data``: the same examples, tokenised by the teacher's tokenizer).
    """

    def __init__(self, temperature: float, alpha: float, cache: torch.Tensor | None = None,
                 teacher: nn.Module | None = None, teacher_data: Encoded | None = None, pad_id: int = 0,
                 padding_side: str = "right") -> None:
        self.temperature, self.alpha = temperature, alpha
        self.cache, self.teacher, self.teacher_data = cache, teacher, teacher_data
        self.pad_id, self.padding_side = pad_id, padding_side

    def teacher_logits(self, indices: list[int], device: torch.device) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[indices].to(device)
        inputs = collate(self.teacher_data, indices, self.pad_id, self.padding_side)
        inputs.pop("labels")
        with torch.no_grad():
            return self.teacher(**{k: v.to(device) for k, v in inputs.items()}).logits

    def __call__(self, model: nn.Module, inputs: dict[str, torch.Tensor], indices: list[int]) -> torch.Tensor:
        labels = inputs["labels"]
        logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
        return distillation_loss(logits, self.teacher_logits(indices, logits.device), labels, self.temperature,
                                 self.alpha)


def kept_layers(total: int, keep: int) -> list[int]:
    """``keep`` evenly spaced layer indices of ``total``, ending with the last (6 -> 3: 1, 3, 5)."""
    if keep >= total:
        raise TuneforgeError(f"distill.student.layers = {keep}, but the teacher has {total} layers; a student keeps "
                             f"fewer (1 to {total - 1}).")
    return [round((i + 1) * total / keep) - 1 for i in range(keep)]


def student_from_teacher(teacher: nn.Module, keep: int) -> tuple[nn.Module, list[int]]:
    """A copy of ``teacher`` (a plain transformers classifier) with ``keep`` of its layers; returns the indices."""
    student = copy.deepcopy(teacher)
    name, layers = transformer_layers(student)
    chosen = kept_layers(len(layers), keep)
    new = nn.ModuleList([layers[i] for i in chosen])
    for position, layer in enumerate(new):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):  # decoders index their key/value cache by it
                module.layer_idx = position
    parent_name, _, attr = name.rpartition(".")
    setattr(student.get_submodule(parent_name) if parent_name else student, attr, new)
    config = student.config
    config.num_hidden_layers = keep
    pruned = getattr(config, "pruned_heads", None)
    if pruned:  # a head-pruned teacher (tuneforge prune): its map is by teacher layer; renumber for the student
        pruned = {int(k): v for k, v in pruned.items()}
        config.pruned_heads = {str(position): pruned.get(i, []) for position, i in enumerate(chosen)}
    if isinstance(getattr(config, "layer_types", None), list):  # per-layer attention kinds (Llama-style)
        config.layer_types = [config.layer_types[i] for i in chosen]
    return student, chosen
