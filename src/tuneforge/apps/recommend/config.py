"""The recommender's config: ``tuneforge recommend train configs/recommend-demo.yaml key=value``."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tuneforge.config.base import StrictModel


class DataConfig(StrictModel):
    interactions: Path = Field(description="CSV of the click log, columns user,item,label,time (label 1 = click, "
                                           "0 = shown, not clicked; time an ISO date or a number).")
    items: Path = Field(description="CSV of the items, columns item,title,description,tags (tags separated by "
                                    "`;` or `,`; description and tags may be empty).")
    history_items: int = Field(10, ge=1, description="A user is described by the titles and tags of their last "
                                                     "N clicked items, most recent first.")
    history_max_length: int = Field(128, ge=8, description="Tokens of the user's history text.")
    item_max_length: int = Field(64, ge=8, description="Tokens of an item's text (title, tags, description).")


class SplitConfig(StrictModel):
    """Which interactions are the test: each user's last ones, or everything after a global time cut."""

    mode: Literal["last", "time"] = Field("last", description="last: each user's last `last_n` interactions are "
                                                              "the test; time: every interaction at or after `cut`.")
    last_n: int = Field(2, ge=1, description="mode last: interactions per user held out (users with no more than "
                                             "this many stay in train only).")
    cut: str | None = Field(None, description="mode time: the cut, an ISO date or a number like the time column "
                                              "(default: the time that leaves `test_fraction` of rows after it).")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="mode time without `cut`: share of rows in the test.")

    @field_validator("cut", mode="before")
    @classmethod
    def _cut_as_text(cls, value):  # YAML reads 2024-05-01 as a date and 1700000000 as a number
        return value.isoformat() if isinstance(value, date) else str(value) if isinstance(value, int | float) \
            else value


class LoopConfig(StrictModel):
    epochs: float = Field(1.0, gt=0, description="Passes over the training clicks.")
    batch_size: int = Field(32, ge=2, description="Clicks per step; the other clicks' items are the in-batch "
                                                  "negatives.")
    learning_rate: float = Field(3e-5, gt=0, description="AdamW learning rate (linear decay, no warm-up).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    temperature: float = Field(0.05, gt=0, description="Softmax temperature on cosine similarities.")
    logged_negatives: bool = Field(True, description="Add each click's user's logged non-clicks (label 0) as extra "
                                                     "negatives next to the in-batch ones.")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 autocast where the CPU "
                                                                           "runs it fast, else fp32.")
    seed: int = Field(0, description="Seeds shuffling and the model's dropout.")
    log_every: int = Field(10, ge=1, description="Steps between log.jsonl lines and bar updates.")
    threads: int | None = Field(None, ge=1, description="torch threads (default: torch's own choice).")


class RerankConfig(StrictModel):
    """Cross-encoder re-ranking of each user's top candidates from the two towers (docs/RECOMMEND.md)."""

    enabled: bool = Field(False, description="Train a cross-encoder after the two towers and re-score their top "
                                             "`top_k` items per user with it; metrics.json then reports both.")
    model: str | None = Field(None, description="Backbone of the cross-encoder: an alias (minilm) or a local Hugging "
                                                "Face encoder folder (default: the config's model, as it ships, not "
                                                "the trained towers); a one-logit head is added.")
    top_k: int = Field(20, ge=2, description="Candidates per user re-scored (the two towers' best, the user's "
                                             "train clicks left out); the items below keep the two towers' order.")
    negatives: int = Field(3, ge=1, description="Items the user did not click, sampled for each training click.")
    negative_source: Literal["logged", "random", "two_tower"] = Field(
        "logged", description="logged: the user's shown-not-clicked items in train, topped up at random from the "
                              "catalogue; random: catalogue items the user did not click; two_tower: the trained "
                              "towers' top_k for the click's history (hard negatives).")
    loss: Literal["listwise", "bce"] = Field("listwise", description="listwise: softmax cross-entropy of the click "
                                                                     "against its negatives; bce: each pair "
                                                                     "labelled 1 / 0.")
    epochs: float = Field(1.0, gt=0, description="Passes over the training clicks.")
    batch_size: int = Field(8, ge=1, description="Clicks per step (each with `negatives` negatives).")
    learning_rate: float = Field(1e-4, gt=0, description="AdamW learning rate (linear decay, no warm-up); on the "
                                                         "demo 3e-5 left the fresh head at chance for 55 steps.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    max_length: int = Field(128, ge=16, description="Tokens of one (history, item) pair; the longer text is cut "
                                                    "first.")
    seed: int = Field(0, description="Seeds negative sampling, shuffling, the head's initialisation and dropout.")


class RecommendConfig(StrictModel):
    """``tuneforge recommend train CONFIG``: a two-tower text recommender trained on a click log."""

    name: str = Field("recommend", min_length=1, description="Run name; the run folder is runs/<name>-<time>.")
    model: str = Field("minilm", description="Encoder of both towers (shared weights): an alias (minilm) or a "
                                             "local Hugging Face encoder folder.")
    data: DataConfig = Field(description="The click log and the items.")
    split: SplitConfig = Field(default_factory=SplitConfig, description="The time-based train/test split.")
    train: LoopConfig = Field(default_factory=LoopConfig, description="The training loop.")
    rerank: RerankConfig = Field(default_factory=RerankConfig, description="Optional cross-encoder re-ranking.")
    k: int = Field(10, ge=1, description="Cut-off of NDCG@k and recall@k.")
    output_dir: Path | None = Field(None, description="Run folder (default runs/<name>-<timestamp>).")

    @model_validator(mode="after")
    def _cut_only_in_time_mode(self) -> RecommendConfig:
        if self.split.cut is not None and self.split.mode != "time":
            raise ValueError("split.cut is set but split.mode is last; set split.mode=time to cut by time")
        return self
