"""Tasks: what a model predicts and how it is trained, evaluated and loaded. The one place that dispatches
on ``task:``; recipes and :class:`~tuneforge.run.Run` ask :func:`get_task` instead of branching.

A task names its transformers head class and its peft task type, and gives the parts of the training
recipe that differ (reading the data, the fit/evaluate/save body) and the class a loaded run becomes.
Nothing heavy is imported here: the parts load when used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Task:
    name: str
    auto_class: str  # transformers AutoModelFor... that puts this task's head on a backbone
    peft_task_type: str  # peft.TaskType member: picks the PeftModel wrapper that passes labels right
    check_config: str  # "module:function" (TrainConfig) -> None: raises for options the task cannot use
    load_splits: str  # "module:function" (DataConfig, seed) -> DatasetSplits
    train_body: str  # "module:function" the training recipe's body after setup (recipes/train.py)
    run_class: str  # "module:Class" a loaded run becomes
    eval_command: str | None = None  # "module:function" for `tuneforge eval` (None: the classification one)
    load_backbone: str | None = None  # "module:function" (model path) -> Backbone (None: a classifier head)
    new_head: bool = True  # False: the pretrained model already predicts the task (an LM head); no head to train

    def part(self, which: str) -> Any:
        module, _, name = getattr(self, which).partition(":")
        return getattr(importlib.import_module(module), name)


TOKEN = "tuneforge.tasks.token_classification"
GEN = "tuneforge.tasks.generation"
TASKS: dict[str, Task] = {
    "text-classification": Task("text-classification", "AutoModelForSequenceClassification", "SEQ_CLS",
                                "tuneforge.tasks.text_classification:check_config",
                                "tuneforge.tasks.text_classification:load_splits", "tuneforge.recipes.train:_train",
                                "tuneforge.run:Run"),
    "token-classification": Task("token-classification", "AutoModelForTokenClassification", "TOKEN_CLS",
                                 f"{TOKEN}.recipe:check_config", f"{TOKEN}.data:load_splits",
                                 f"{TOKEN}.recipe:train_body", f"{TOKEN}.run:TokenRun", f"{TOKEN}.cli:eval_command"),
    "generation": Task("generation", "AutoModelForCausalLM", "CAUSAL_LM", f"{GEN}.recipe:check_config",
                       f"{GEN}.data:load_splits", f"{GEN}.recipe:train_body", f"{GEN}.run:GenerationRun",
                       f"{GEN}.cli:eval_command", f"{GEN}.recipe:load_causal_lm", new_head=False),
}


def get_task(name: str) -> Task:
    return TASKS[name]


def task_of_run(run_dir) -> Task:
    """The task of a run folder, from its config.yaml (no model loaded); text classification when the folder
    has none (the error for that comes from loading the run)."""
    from pathlib import Path

    import yaml

    path = Path(run_dir) / "config.yaml"
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        config = None
    name = config.get("task") if isinstance(config, dict) else None
    return TASKS.get(name, TASKS["text-classification"]) if isinstance(name, str) else TASKS["text-classification"]


def task_of_model(model: Any) -> Task:
    """The task of a transformers (or peft-wrapped) model, by its head class. A causal LM that classifies
    through a prompt (PET, prompting/pet.py, marked ``_tuneforge_prompt_classifier``) is a text classifier."""
    get = getattr(model, "get_base_model", None)
    base = get() if callable(get) else model
    name = type(base).__name__
    if name.endswith("ForTokenClassification"):
        return TASKS["token-classification"]
    if name.endswith("ForCausalLM") and not getattr(base, "_tuneforge_prompt_classifier", False):
        return TASKS["generation"]
    return TASKS["text-classification"]
