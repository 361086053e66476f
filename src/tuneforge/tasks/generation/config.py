"""The ``generation:`` section of a training config (``task: generation``)."""

from __future__ import annotations

from pydantic import Field

from tuneforge.config.base import StrictModel


class GenerationConfig(StrictModel):
    """The chat and how the run is scored (docs/GENERATION.md); the data columns are data.prompt_column and
    data.response_column."""

    system_prompt: str | None = Field(None, min_length=1, description="A system message put in front of every "
                                                                      "prompt (chat template), or above it (plain "
                                                                      "format); null: the template's default.")
    max_new_tokens: int = Field(64, ge=1, description="Longest generated answer when scoring ROUGE-L.")
    eval_generations: int = Field(100, ge=0, description="Generate answers for at most this many test pairs "
                                                         "(seeded sample; generation is slow): ROUGE-L is scored "
                                                         "on them. Perplexity uses every test pair. 0: no "
                                                         "generations.")
    evaluate_base: bool = Field(True, description="Also score the base model before fine-tuning (base.test.* "
                                                  "in metrics.json).")
    batch_size: int = Field(16, ge=1, description="Prompts per generate() call when scoring.")
