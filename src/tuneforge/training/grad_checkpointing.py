"""Gradient (activation) checkpointing: ``train.gradient_checkpointing: true``.

Backpropagation keeps every layer's intermediate activations from the forward pass. With checkpointing
(Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost") each transformer layer keeps only its
input, and its forward pass runs a second time during the backward pass to rebuild the rest: activation
memory drops from about L x (everything inside a layer) to L x (one hidden state) + one layer's
intermediates, for about one more forward pass of compute (~+30% step time). It is worth it when
activations, not weights, fill the memory: long sequences, big batches, big models.

We switch on Hugging Face's per-layer checkpointing with the non-reentrant ``torch.utils.checkpoint``
(``use_reentrant=False``). That variant also gives gradients to parameters inside a layer whose input does
not require grad, which is the case with every method that freezes the embeddings (LoRA, adapters...): the
old reentrant variant needed ``enable_input_require_grads`` for that, and transformers still adds that hook
for models whose input is token ids. The RNG state is saved and restored around the recomputation, so
dropout draws the same masks and the gradients equal those without checkpointing
(tests/training/test_grad_checkpointing.py).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from tuneforge.errors import TuneforgeError

KWARGS = {"use_reentrant": False}


def transformers_model(model: nn.Module) -> nn.Module:
    get = getattr(model, "get_base_model", None)  # peft wraps the transformers model
    return get() if callable(get) else model


def enable_gradient_checkpointing(model: nn.Module) -> Callable[[], None]:
    """Switch checkpointing on for ``model`` (a transformers model, possibly wrapped by peft); returns the
    function that switches it off again."""
    base = transformers_model(model)
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise TuneforgeError(f"train.gradient_checkpointing: the model ({type(base).__name__}) does not support "
                             "gradient checkpointing: its transformers class does not mark its layers for it. Set "
                             "train.gradient_checkpointing=false, or lower train.batch_size or data.max_length "
                             "(with train.gradient_accumulation_steps to keep the batch) to save memory instead.")
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.2x names it so
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=dict(KWARGS))
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=dict(KWARGS))

    def disable() -> None:
        if hasattr(base, "activation_checkpointing_disable"):
            base.activation_checkpointing_disable()
        else:
            base.gradient_checkpointing_disable()
        if hasattr(base, "disable_input_require_grads"):
            base.disable_input_require_grads()  # the embedding-output hook transformers added (if it did)

    return disable
