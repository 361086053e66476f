"""Prompt tuning (Lester et al., 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning")
through peft.

A learned matrix P (p, d) of p "virtual token" embeddings is prepended to the embedded input,

    h_0 = [P; E(x)]        (B, p + T, d),    attention mask [1_p; m]

and only P (and the task head) train. P starts random, from the embeddings of randomly sampled
vocabulary tokens (vocab), or from the embeddings of a text (text: ``init_text``, repeated or cut to p
tokens). On a BERT-style encoder the pooler reads position 0, which is now the first virtual token.
Inputs grow by p tokens: keep ``data.max_length + num_virtual_tokens`` within the model's position
embeddings (512 for BERT and MiniLM). The run folder holds a peft adapter folder.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator
from torch import nn

from tuneforge.errors import TuneforgeError
from tuneforge.methods.base import MethodConfig, register
from tuneforge.methods.params import head_modules, peft_task_type
from tuneforge.methods.peft_folder import PeftMethod
from tuneforge.models.backbones import Backbone


class PromptConfig(MethodConfig):
    name: Literal["prompt"] = "prompt"
    recommended_learning_rate: ClassVar[float] = 3e-2
    num_virtual_tokens: int = Field(20, ge=1, description="How many learned embeddings are prepended (p).")
    init: Literal["random", "vocab", "text"] = Field(
        "random", description="Initial prompt: random vectors, embeddings of random vocabulary tokens, or the "
                              "embeddings of init_text.")
    init_text: str | None = Field(None, min_length=1, description="Text whose token embeddings start the prompt "
                                                                  "(init: text), e.g. 'Classify the sentiment:'.")

    @model_validator(mode="after")
    def _text_with_text_init(self) -> PromptConfig:
        if self.init == "text" and self.init_text is None:
            raise ValueError("init: text needs init_text, the text whose embeddings start the prompt")
        if self.init != "text" and self.init_text is not None:
            raise ValueError(f"init_text is used only with init: text (init is {self.init}); set init: text or "
                             "remove init_text")
        return self


def check_prompt_length(model: nn.Module, num_virtual_tokens: int) -> None:
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if limit is not None and num_virtual_tokens >= limit:
        raise TuneforgeError(f"method.num_virtual_tokens = {num_virtual_tokens} leaves no room for the text: the "
                             f"model has {limit} positions. Use fewer virtual tokens (20 is typical).")


class Prompt(PeftMethod):
    config: PromptConfig

    def apply(self, backbone: Backbone) -> nn.Module:
        import peft

        model = backbone.model
        cfg = self.config
        check_prompt_length(model, cfg.num_virtual_tokens)
        init = {"random": peft.PromptTuningInit.RANDOM, "vocab": peft.PromptTuningInit.SAMPLE_VOCAB,
                "text": peft.PromptTuningInit.TEXT}[cfg.init]
        peft_config = peft.PromptTuningConfig(
            task_type=peft_task_type(model), num_virtual_tokens=cfg.num_virtual_tokens, prompt_tuning_init=init,
            prompt_tuning_init_text=cfg.init_text, tokenizer_name_or_path=backbone.path if cfg.init == "text" else None,
            modules_to_save=head_modules(model, backbone.new_parameters))
        return peft.get_peft_model(model, peft_config)


register(PromptConfig, Prompt, "learned virtual-token embeddings prepended to the input, and the head, through "
                               "peft (Lester et al., 2021)")
