"""The training recipe's config schema: every field, its type, default and help text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from tuneforge.augment.config import AugmentConfig
from tuneforge.config.base import StrictModel
from tuneforge.continual.config import ContinualConfig
from tuneforge.config.regularization import AdversarialConfig, DropoutConfig
from tuneforge.errors import did_you_mean
from tuneforge.fewshot.config import ContrastiveConfig
from tuneforge.methods import registry
from tuneforge.prompting.config import PromptConfig
from tuneforge.tasks.generation.config import GenerationConfig
from tuneforge.tracking.config import TrackingConfig
from tuneforge.tune.config import SearchConfig


class DataConfig(StrictModel):
    dataset: str | None = Field(None, description="A built-in dataset (`tuneforge datasets list`); or give "
                                                  "train/validation/test files.")
    train: Path | None = Field(None, description="Training file (.jsonl, .json, .csv, .tsv).")
    validation: Path | None = Field(None, description="Validation file; default: split off the training file.")
    test: Path | None = Field(None, description="Test file; default: the validation data.")
    text_column: str = Field("text", description="Column / key holding the text.")
    text_pair_column: str | None = Field(None, description="Column holding a second text (pair tasks).")
    label_column: str = Field("label", description="Column / key holding the label.")
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="Share of the training file held out "
                                                                     "for validation when no file is given.")
    max_train_samples: int | None = Field(None, gt=0, description="Use a stratified sample of this many "
                                                                   "training examples.")
    max_eval_samples: int | None = Field(None, gt=0, description="Evaluate during training on a stratified "
                                                                  "sample of this many validation examples.")
    max_length: int = Field(128, ge=8, description="Truncate inputs to this many tokens.")
    prompt_column: str = Field("prompt", description="task: generation: column / key holding the prompt.")
    response_column: str = Field("response", description="task: generation: column / key holding the reference "
                                                         "answer.")

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.dataset is None and self.train is None:
            raise ValueError("give data.dataset (a built-in dataset) or data.train (a file)")
        if self.dataset is not None and self.train is not None:
            raise ValueError("give either data.dataset or data.train, not both (on the command line, switch from the "
                             "config's dataset to a file with data.dataset=null data.train=FILE, and back with "
                             "data.train=null data.dataset=NAME)")
        return self


class TrainLoopConfig(StrictModel):
    epochs: float = Field(3, gt=0, description="Passes over the training data (fractions allowed).")
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimizer steps (overrides epochs).")
    batch_size: int = Field(32, ge=1, description="Examples per forward pass (under torchrun: the global batch, "
                                                  "split evenly across the processes).")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Forward passes per optimizer step.")
    learning_rate: float = Field(2e-5, gt=0, description="Peak learning rate of AdamW.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not applied to biases and norms).")
    adam_betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
    adam_eps: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    scheduler: Literal["linear", "cosine", "constant"] = Field("linear", description="Decay after warmup.")
    warmup: float = Field(0.06, ge=0, description="Warmup: a fraction of all steps if < 1, else a step count.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Clip the gradient norm; null disables clipping.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 autocast where the hardware runs it fast (CPU with AMX or AVX-512 "
                            "BF16, CUDA with bf16), fp32 elsewhere.")
    fast_dropout: bool = Field(True, description="Dropout with a cheaper random mask (same keep probability "
                                                 "and scaling as nn.Dropout; ~3x faster on CPU).")
    reuse_memory: bool = Field(
        True, description="Keep freed memory in the process (glibc malloc thresholds) so the large buffers of "
                          "every step are reused, not mapped and page-faulted again (~10% faster full "
                          "fine-tuning on CPU; the process keeps its peak memory). Linux with glibc only.")
    first_token_shortcut: bool = Field(
        True, description="BERT-style classifiers read only [CLS]: run the last layer after its attention for that "
                          "token only (the same outputs; ~12% faster training and inference).")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Cross-entropy against (1 - s) one-hot + s "
                                                                 "uniform (Szegedy et al. 2016); 0 disables.")
    rdrop_alpha: float = Field(0.0, ge=0, description="R-Drop (Liang et al. 2021): two passes with different "
                                                      "dropout, + alpha * symmetric KL between them; 0 disables. "
                                                      "About doubles the step time.")
    adversarial: AdversarialConfig = Field(default_factory=AdversarialConfig, description="Adversarial training "
                                           "on the input embeddings (`adversarial: fgm` is short for method: fgm).")
    ema_decay: float | None = Field(None, gt=0, lt=1, description="Keep an exponential moving average of the "
                                                                  "trainable weights (e.g. 0.999); it is what is "
                                                                  "evaluated, early-stopped and saved. null: off.")
    dropout: DropoutConfig = Field(default_factory=DropoutConfig, description="Override the backbone's dropout "
                                                                              "probabilities.")
    group_by_length: bool = Field(True, description="Batch texts of similar length together (less padding).")
    eval_every: int | None = Field(None, gt=0, description="Evaluate every N optimizer steps; default: each epoch.")
    early_stopping_patience: int | None = Field(None, ge=1, description="Stop after N evaluations without "
                                                                       "improvement; best weights are restored.")
    metric: Literal["accuracy", "macro_f1", "loss"] = Field("macro_f1", description="Metric that picks the best "
                                                                                 "evaluation.")
    checkpoint_every: int | None = Field(None, gt=0, description="Write a resumable checkpoint every N steps.")
    keep_checkpoints: int = Field(1, ge=1, description="How many recent checkpoints to keep.")
    log_every: int = Field(10, ge=1, description="Write a log.jsonl line every N optimizer steps.")
    seed: int = Field(42, description="Seed for weights, dropout and data order.")
    device: str = Field("auto", description="auto (cuda if available, else cpu), cpu, cuda, cuda:1, ...")
    num_threads: int | None = Field(None, ge=1, description="CPU threads for torch (default: torch's choice).")
    gradient_checkpointing: bool = Field(False, description="Recompute each layer's activations in the backward "
                                                            "pass instead of keeping them: less memory for about "
                                                            "one more forward pass of time (large models, long "
                                                            "inputs; docs/DISTRIBUTED.md).")


def _method_union() -> Any:
    configs = tuple(spec.config for spec in registry().values())
    return Annotated[Union[configs], Field(discriminator="name")]  # noqa: UP007 (built at run time)


MethodUnion = _method_union()


class TrainConfig(StrictModel):
    """Fine-tune a classifier: ``tuneforge train CONFIG.yaml``."""

    name: str = Field("run", min_length=1, description="Run name; the run folder is runs/<name>-<timestamp>.")
    model: str = Field("minilm", description="Backbone: an alias (minilm, smollm2; docs/MODELS.md), a local "
                                                  "Hugging Face folder or a hub name.")
    task: Literal["text-classification", "token-classification", "generation"] = Field(
        "text-classification", description="text-classification: one label per text; token-classification: a BIO "
                                           "tag per word, named entities (docs/NER.md); generation: replies from a "
                                           "causal LM fine-tuned on prompt/response pairs (docs/GENERATION.md).")
    data: DataConfig = Field(description="Where the examples come from.")
    method: MethodUnion = Field(default_factory=lambda: registry()["full"].config(),  # type: ignore[valid-type]
                                description="Fine-tuning method and its options (`name:` picks it).")
    train: TrainLoopConfig = Field(default_factory=TrainLoopConfig, description="Optimisation settings.")
    prompt: PromptConfig | None = Field(None, description="A cloze prompt (template + verbalizer): `tuneforge "
                                                          "zeroshot` scores with it; `tuneforge train` trains "
                                                          "through it (PET); docs/PROMPTING.md.")
    search: SearchConfig | None = Field(None, description="Ranges for `tuneforge tune` (Optuna); `tuneforge "
                                                          "train` ignores it. docs/TRAINING.md.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="Also send metrics, config "
                                     "and artifacts to TensorBoard and/or MLflow (docs/TRAINING.md).")
    augment: AugmentConfig | None = Field(None, description="Add EDA-edited (and back-translated) copies of the "
                                                            "training examples; docs/FEWSHOT.md.")
    contrastive: ContrastiveConfig | None = Field(None, description="SetFit-style contrastive training of the "
                                                                    "encoder, then a head; docs/FEWSHOT.md.")
    output_dir: Path | None = Field(None, description="Run folder; default runs/<name>-<timestamp>.")
    continual: ContinualConfig | None = Field(None, description="Train this task after a finished run A without "
                                                                "forgetting A: start from its weights, with "
                                                                "rehearsal and/or EWC; docs/CONTINUAL.md.")
    generation: GenerationConfig | None = Field(None, description="task: generation: system prompt and scoring "
                                                                  "(ROUGE-L generations); docs/GENERATION.md.")

    @field_validator("method", mode="before")
    @classmethod
    def _method_by_name(cls, value: Any) -> Any:
        if isinstance(value, str):  # `method: lora` is short for `method: {name: lora}`
            value = {"name": value}
        if isinstance(value, dict):
            name = value.get("name")
            if name is None:
                raise ValueError(f"method needs a name: one of {', '.join(sorted(registry()))}")
            if name not in registry():
                raise ValueError(f'unknown method "{name}".{did_you_mean(str(name), registry())}')
        return value

    @model_validator(mode="after")
    def _one_recipe(self) -> TrainConfig:
        if self.prompt is not None and self.contrastive is not None:
            raise ValueError("prompt: (PET, training through a cloze template) and contrastive: (SetFit-style "
                             "training of a sentence encoder) are two different recipes; keep one of the two "
                             "sections")
        if self.continual is not None and (self.prompt is not None or self.contrastive is not None):
            raise ValueError("continual: continues a plain classifier run; it does not combine with prompt: (PET) "
                             "or contrastive:. Keep one of them")
        if self.generation is not None and self.task != "generation":
            raise ValueError(f"generation: applies to task: generation only (task is {self.task}); set task: "
                             "generation or remove the generation: section")
        return self
