"""Adversarial training on the input embeddings: FGM and PGD.

FGM (Miyato, Dai & Goodfellow 2017, "Adversarial Training Methods for Semi-Supervised Text
Classification"): after the clean backward, with g the gradient of the loss with respect to the embedded
sequence e of an example,

    r_adv = epsilon * g / ||g||_2        (the norm over the example's whole (T, d) embedding)

and a second forward/backward on e + r_adv adds its gradient to the clean one; the embeddings are then
back to normal. PGD (Madry et al. 2018, "Towards Deep Learning Models Resistant to Adversarial Attacks")
takes K steps r <- Proj_{||r|| <= epsilon}(r + alpha * g / ||g||), g taken at e + r each time, and trains on
the last one.

The perturbation is added to the *output* of the word-embedding layer by a forward hook rather than to its
weight matrix (the popular "perturb embedding.weight" implementation): the paper perturbs the embedded
sequence, it works when the embedding matrix is frozen (LoRA, adapters, prompt tuning: every method), and
nothing has to be backed up and restored. Cost: FGM is two forward/backward passes per micro-batch, PGD K + 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from torch import nn

from tuneforge.config.regularization import AdversarialConfig
from tuneforge.training.distributed import unwrap


class EmbeddingPerturbation:
    """A forward hook on the input-embedding module: adds ``delta`` to its output, or keeps the output with its
    gradient (``capture``) so the clean backward gives d loss / d embeddings."""

    def __init__(self) -> None:
        self.delta: torch.Tensor | None = None
        self.capture = False
        self.output: torch.Tensor | None = None

    def __call__(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        if self.delta is not None:
            output = output + self.delta.to(output.dtype)
        if self.capture:
            if output.requires_grad:
                output.retain_grad()
            else:  # a frozen embedding matrix (LoRA...): make its output a leaf that collects a gradient
                output.requires_grad_(True)
            self.output = output
        return output


def input_embeddings(model: nn.Module) -> nn.Module:
    model = unwrap(model)  # DDP wraps the model under torchrun
    get_base = getattr(model, "get_base_model", None)  # peft wraps the transformers model
    base = get_base() if callable(get_base) else model
    return base.get_input_embeddings()


@contextmanager
def perturbation_hook(model: nn.Module) -> Iterator[EmbeddingPerturbation]:
    hook = EmbeddingPerturbation()
    handle = input_embeddings(model).register_forward_hook(hook)
    try:
        yield hook
    finally:
        handle.remove()


def _per_example_norm(x: torch.Tensor) -> torch.Tensor:
    """||x_i||_2 over all but the batch dimension, shaped to broadcast against x."""
    return x.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))


def normalized(g: torch.Tensor) -> torch.Tensor:
    return g / _per_example_norm(g)


def project(delta: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Scale each example's perturbation back onto the epsilon ball if it left it."""
    return delta * (epsilon / _per_example_norm(delta)).clamp(max=1.0)


def adversarial_backward(model: nn.Module, loss_of: Callable[[], torch.Tensor], weight: float,
                         cfg: AdversarialConfig, local: Callable[[], AbstractContextManager] = nullcontext
                         ) -> torch.Tensor:
    """Clean forward/backward, then FGM's or PGD's adversarial one; gradients of both accumulate in the
    parameters, each scaled by ``weight`` (the micro-batch's share of the optimizer step). Returns the clean
    loss. ``loss_of()`` runs the forward pass (under the caller's autocast) and returns the loss; PGD's ascent
    passes, which take no parameter gradient, run inside ``local()`` (DDP's no_sync under torchrun)."""
    with perturbation_hook(model) as hook:
        hook.capture = True
        loss = loss_of()
        (loss * weight).backward()
        hook.capture = False
        g = hook.output.grad if hook.output is not None else None
        if g is None:  # the loss does not depend on the embeddings (cannot happen for a classifier)
            return loss
        if cfg.method == "fgm":
            hook.delta = cfg.epsilon * normalized(g.detach().float())
        else:
            delta = project(cfg.step_size * normalized(g.detach().float()), cfg.epsilon)
            for _ in range(cfg.steps - 1):  # ascent steps: the gradient w.r.t. delta only, none into parameters
                delta.requires_grad_(True)
                hook.delta = delta
                with local():
                    ascent_loss = loss_of()
                (g,) = torch.autograd.grad(ascent_loss, delta)
                delta = project(delta.detach() + cfg.step_size * normalized(g.float()), cfg.epsilon)
            hook.delta = delta.detach()
        (loss_of() * weight).backward()  # the adversarial example's gradient joins the clean one
    return loss
