"""P-tuning (Liu et al., 2021, "GPT Understands, Too") through peft.

Like prompt tuning, p virtual-token embeddings are prepended to the embedded input, but they are the
output of a small prompt encoder over learned inputs e_1..e_p (a reparameterisation that trains
faster and more stably than free embeddings):

    mlp:   P = W_3 relu(W_2 relu(W_1 E'))                       E' (p, d), hidden size k
    lstm:  P = MLP(BiLSTM(E'))                                  a 2-layer bidirectional LSTM, then 2 linears
    h_0 = [P; E(x)]        (B, p + T, d),    attention mask [1_p; m]

The encoder and the task head train. peft prepends the prompt (the paper also interleaves it with a
text template). The saved peft adapter folder holds the encoder's output P, not the encoder: loading
needs no encoder and gives the same prompt. On a BERT-style encoder the pooler reads position 0, now
the first virtual token; keep ``data.max_length + num_virtual_tokens`` within the model's positions.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from torch import nn

from tuneforge.methods.base import MethodConfig, register
from tuneforge.methods.params import head_modules
from tuneforge.methods.peft_folder import PeftMethod
from tuneforge.methods.prompt import check_prompt_length
from tuneforge.models.backbones import Backbone


class PTuningConfig(MethodConfig):
    name: Literal["ptuning"] = "ptuning"
    recommended_learning_rate: ClassVar[float] = 1e-2
    num_virtual_tokens: int = Field(20, ge=1, description="How many virtual tokens are prepended (p).")
    encoder: Literal["mlp", "lstm"] = Field("mlp", description="Prompt encoder: a 3-layer MLP, or a 2-layer "
                                                               "bidirectional LSTM followed by a 2-layer MLP.")
    encoder_hidden_size: int = Field(128, ge=1, description="Hidden size of the prompt encoder (k).")


class PTuning(PeftMethod):
    config: PTuningConfig

    def apply(self, backbone: Backbone) -> nn.Module:
        import peft

        model = backbone.model
        cfg = self.config
        check_prompt_length(model, cfg.num_virtual_tokens)
        encoder = {"mlp": peft.PromptEncoderReparameterizationType.MLP,
                   "lstm": peft.PromptEncoderReparameterizationType.LSTM}[cfg.encoder]
        peft_config = peft.PromptEncoderConfig(
            task_type=peft.TaskType.SEQ_CLS, num_virtual_tokens=cfg.num_virtual_tokens,
            encoder_reparameterization_type=encoder, encoder_hidden_size=cfg.encoder_hidden_size,
            modules_to_save=head_modules(model, backbone.new_parameters))
        return peft.get_peft_model(model, peft_config)


register(PTuningConfig, PTuning, "virtual-token embeddings from a small prompt encoder (MLP or LSTM), and the head, "
                                 "through peft (Liu et al., 2021)")
