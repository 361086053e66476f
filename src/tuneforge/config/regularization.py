"""Config sections of the training tricks: adversarial training and dropout overrides (``train.adversarial``,
``train.dropout``). The scalar options (``label_smoothing``, ``rdrop_alpha``, ``ema_decay``) are plain fields of
``train:``. What each does and costs: docs/CRAFT.md."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tuneforge.config.base import StrictModel


class AdversarialConfig(StrictModel):
    method: Literal["none", "fgm", "pgd"] = Field(
        "none", description="fgm: one perturbation of the input embeddings along the gradient (Miyato et al. 2017); "
                            "pgd: `steps` projected steps (Madry et al. 2018). Each roughly doubles (fgm) or "
                            "multiplies by steps + 1 (pgd) the time of a training step.")
    epsilon: float = Field(1.0, gt=0, description="L2 radius of the perturbation of each example's embedded "
                                                  "sequence (all its tokens together).")
    steps: int = Field(3, ge=1, description="pgd: gradient ascent steps on the perturbation.")
    alpha: float | None = Field(None, gt=0, description="pgd: length of each step; default 2.5 * epsilon / steps "
                                                        "(Madry et al.).")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"method": value} if isinstance(value, str) else value  # `adversarial: fgm`

    @property
    def step_size(self) -> float:
        return self.alpha if self.alpha is not None else 2.5 * self.epsilon / self.steps


class DropoutConfig(StrictModel):
    hidden: float | None = Field(None, ge=0, lt=1, description="Dropout after embeddings, attention output and "
                                                             "feed-forward blocks; null keeps the model's own.")
    attention: float | None = Field(None, ge=0, lt=1, description="Dropout on attention probabilities; null keeps "
                                                                "the model's own.")
    classifier: float | None = Field(None, ge=0, lt=1, description="Dropout before the classification head; null "
                                                                 "keeps the model's own.")
