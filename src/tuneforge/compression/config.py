"""Typed configs of the compression recipes: ``tuneforge config show prune`` / ``distill``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tuneforge.config.base import StrictModel
from tuneforge.config.schema import TrainConfig


class PruneConfig(StrictModel):
    """Prune a finished run, then fine-tune it: ``tuneforge prune RUN_DIR OUT --heads 0.5``."""

    heads: float | None = Field(None, gt=0, lt=1, description="Fraction of all attention heads to remove, the "
                                                              "least important first (Michel et al., 2019).")
    magnitude: float | None = Field(None, gt=0, lt=1, description="Fraction of the transformer layers' linear "
                                                                  "weights to set to zero, smallest |w| first.")
    scope: Literal["global", "layer"] = Field("global", description="Magnitude pruning: one threshold over all "
                                                                    "those weights, or the same sparsity per matrix.")
    min_heads_per_layer: int = Field(1, ge=1, description="Head pruning never leaves a layer with fewer heads.")
    importance_samples: int = Field(512, ge=1, description="Training examples whose gradients score the heads.")
    finetune_epochs: float = Field(1, ge=0, description="Epochs of fine-tuning after pruning (0: none).")
    merge: bool = Field(False, description="Fold a lora / adalora / ia3 run into its base weights first; without "
                                           "it such runs are refused.")
    speed_samples: int = Field(512, ge=1, description="Test texts timed for texts/s (the same ones before and "
                                                      "after).")

    @model_validator(mode="after")
    def _one_kind(self) -> PruneConfig:
        if (self.heads is None) == (self.magnitude is None):
            raise ValueError("give exactly one of heads (a fraction of heads) or magnitude (a sparsity)")
        if self.heads is not None and self.scope != "global":  # it was silently ignored
            raise ValueError(f"scope {self.scope} applies to magnitude pruning; head pruning ranks all heads "
                             "together: remove --scope, or prune with --magnitude")
        return self


class StudentConfig(StrictModel):
    layers: int | None = Field(None, ge=1, description="Keep this many of the teacher's transformer layers, "
                                                       "evenly spaced and ending with its last (6 -> 3: layers "
                                                       "2, 4, 6); embeddings and head come from the teacher.")
    model: str | None = Field(None, description="Or any backbone (alias, folder, hub name), trained from its "
                                                "own weights with a new head.")

    @model_validator(mode="after")
    def _one_kind(self) -> StudentConfig:
        if (self.layers is None) == (self.model is None):
            raise ValueError("give exactly one of distill.student.layers (keep N teacher layers) or "
                             "distill.student.model (a backbone)")
        return self


class DistillSection(StrictModel):
    teacher: Path = Field(description="A finished run folder (any method) whose predictions the student learns.")
    student: StudentConfig = Field(description="The smaller model.")
    temperature: float = Field(2.0, gt=0, description="T in softmax(logits / T) for both models.")
    alpha: float = Field(0.5, ge=0, le=1, description="loss = alpha T^2 KL(teacher || student) + (1 - alpha) "
                                                      "cross-entropy (Hinton et al., 2015).")
    unlabelled: Path | None = Field(None, description="Extra texts (.txt one per line, or .jsonl/.csv/.tsv with "
                                                      "the text column) learned from the teacher alone.")
    teacher_logits: Literal["cache", "online"] = Field(
        "cache", description="cache: one teacher pass over the training texts before training (the teacher is in "
                             "eval mode, so its logits never change); online: a teacher forward every step.")
    speed_samples: int = Field(512, ge=1, description="Test texts timed for texts/s (teacher and student).")


class DistillConfig(TrainConfig):
    """Distil a finished run into a smaller student: ``tuneforge distill CONFIG.yaml``."""

    distill: DistillSection = Field(description="Teacher, student and the distillation loss.")

    @field_validator("model")
    @classmethod
    def _student_named_once(cls, value: str) -> str:  # runs only when the config sets model:
        raise ValueError("a distill config names its student in distill.student (layers: N, or model: NAME); "
                         "remove the top-level model: key")

    @field_validator("method")
    @classmethod
    def _full_only(cls, value):
        if value.name != "full":
            raise ValueError(f'distill trains every weight of the student (method: full), not "{value.name}"; '
                             "remove method:")
        return value

    def train_config(self) -> TrainConfig:
        """The config without ``distill:`` (what the student's run folder holds as config.yaml)."""
        return TrainConfig.model_validate(self.model_dump(exclude={"distill"}))
