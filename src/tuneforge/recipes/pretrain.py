"""The pretraining recipe: corpus, tokenizer, model, fit, evaluate, save. ``tuneforge pretrain CONFIG.yaml``.

    runs/<name>-<timestamp>/
        config.yaml, run.json, log.jsonl, loss.png, checkpoints/ (while running)
        metrics.json   held-out loss, perplexity and accuracy before and after, tokens/s, seconds, sizes
        model/         a Hugging Face folder (weights, config, fast tokenizer): `tuneforge train model=RUN/model`
                       (objective: electra: the discriminator, ElectraForPreTraining)
        generator/     objective: electra only: the generator (ElectraForMaskedLM), embeddings shared with model/
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from tuneforge.config import dump_config, load_config
from tuneforge.errors import TuneforgeError
from tuneforge.evaluation.plots import plot_loss
from tuneforge.models.attention import restore_attention, use_training_attention
from tuneforge.models.backbones import load_tokenizer, resolve_model
from tuneforge.pretraining.config import PretrainConfig
from tuneforge.pretraining.corpora import load_corpus, repeat_sources, split_heldout
from tuneforge.pretraining.data import LMData, clm_blocks, mlm_examples
from tuneforge.pretraining.embedding_init import warm_start_embeddings
from tuneforge.pretraining.electra import electra_loss_fn, evaluate_electra, new_electra
from tuneforge.pretraining.model import load_lm, new_model
from tuneforge.pretraining.objectives import clm_loss_fn, evaluate_lm, mlm_loss_fn
from tuneforge.pretraining.tokenizer import train_tokenizer
from tuneforge.pretraining.transfer import load_dictionary, random_like, transfer_model
from tuneforge.recipes.runfolder import environment, flatten, update_status, write_json
from tuneforge.recipes.train import open_run_dir, start_loop
from tuneforge.training.checkpoint import write_atomic_folder
from tuneforge.training.fast_dropout import use_fast_dropout
from tuneforge.training.loop import fit

console = Console(stderr=True)


def as_pretrain_config(config: PretrainConfig | dict | str | Path, overrides: list[str] | None = None
                       ) -> PretrainConfig:
    if isinstance(config, PretrainConfig):
        config = config.model_dump()
    if isinstance(config, dict):
        return load_config(PretrainConfig, data=config, overrides=overrides)
    return load_config(PretrainConfig, path=config, overrides=overrides)


def pretrain(config: PretrainConfig | dict | str | Path, overrides: list[str] | None = None, *,
             resume: str | Path | None = None, init_only: bool = False, progress: bool = True,
             _stop_after: int | None = None) -> Path:
    """Pretrain (or continue pretraining) a language model; return the run folder (its ``model/`` is a Hugging
    Face folder that ``tuneforge train`` takes as ``model:``).

    ``init_only`` writes the model as initialised, untrained (from scratch: random weights with the trained
    tokenizer): the baseline that shows what pretraining adds. ``resume`` continues an interrupted run.
    """
    cfg, run_dir = open_run_dir(PretrainConfig, lambda: as_pretrain_config(config, overrides), resume, overrides,
                                "pretrain")
    device, precision = start_loop(cfg.train)
    base = resolve_model(cfg.model) if cfg.model is not None else None  # a wrong path fails before the folder
    # a missing or malformed dictionary fails before the folder too (--init-only does not need it)
    dictionary = load_dictionary(cfg.transfer.dictionary) if cfg.transfer is not None and not init_only else None

    started = time.perf_counter()
    docs = load_corpus(cfg.corpus.sources, cfg.corpus.text_column)
    train_docs, held_docs = split_heldout(docs, cfg.corpus.heldout, cfg.corpus.max_documents)
    held_docs = held_docs[:cfg.corpus.max_heldout]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump_config(cfg.model_copy(update={"output_dir": run_dir})),
                                         encoding="utf-8")
    update_status(run_dir, status="running", name=cfg.name, recipe="pretrain",
                  started=time.strftime("%Y-%m-%dT%H:%M:%S"), precision=precision, device=str(device),
                  corpus={"sources": cfg.corpus.sources, "train_documents": len(train_docs),
                          "heldout_documents": len(held_docs)}, environment=environment())
    try:
        return _pretrain(cfg, run_dir, base, train_docs, held_docs, device, precision, resume is not None, init_only,
                         progress, _stop_after, started, dictionary)
    except BaseException as exc:
        update_status(run_dir, status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                      error=str(exc)[:2000])
        raise


def _pretrain(cfg: PretrainConfig, run_dir: Path, base: str | None, train_docs, held_docs, device, precision,
              resume: bool, init_only: bool, progress: bool, stop_after: int | None, started: float,
              dictionary: tuple[dict[str, list[str]], str] | None) -> Path:
    loop = cfg.train
    transfer_record: dict = {}
    if base is None or cfg.transfer is not None:
        # From scratch or with transfer: the tokenizer is trained on the training documents only (never on the
        # held-out slice), and saved in the run folder so that a resumed run uses the very same vocabulary.
        saved = run_dir / "tokenizer"
        if resume and saved.is_dir():
            tokenizer = load_tokenizer(str(saved))
        else:
            tokenizer = train_tokenizer([d.text for d in train_docs], cfg.tokenizer, [d.words for d in train_docs])
            write_atomic_folder(saved, tokenizer.save_pretrained)
    if base is None:
        electra = cfg.objective == "electra"
        model = new_electra(cfg, tokenizer) if electra else new_model(cfg, tokenizer)
        new_params = ["(all: from scratch)"]
        kind = "ELECTRA discriminator + generator" if electra else "Llama" if cfg.objective == "clm" else \
            "BERT" if cfg.architecture.norm == "post" else "RoBERTa-PreLayerNorm"
        source = f"a new {kind} (from scratch)"
    elif cfg.transfer is not None and init_only:
        # --init-only: the baseline, the source's architecture with random weights and the new vocabulary
        model = random_like(base, tokenizer)
        new_params = ["(all: random init)"]
        source = f"{base}'s architecture, randomly initialised, with a new vocabulary"
    elif cfg.transfer is not None:
        # also when resuming: the transfer is deterministic, and the checkpoint then overwrites what trains (with
        # freeze_layers the checkpoint holds only the trainable parameters; the frozen ones come from here)
        model, new_params, transfer_record = transfer_model(base, tokenizer, dictionary, cfg.transfer.senses,
                                                            cfg.train.seed)
        transfer_record = {"model": cfg.model, **transfer_record}  # as the config names it (an alias, say)
        rows = transfer_record["rows"]
        console.print(f"transfer: {len(tokenizer):,} token embeddings from {escape(base)} in "
                      f"{transfer_record['seconds']:.0f} s: {rows['dictionary']:,} by dictionary gloss, "
                      f"{rows['characters']:,} from their characters' glosses, {rows['source_pieces']:,} as "
                      f"the source spells them, {rows['special']:,} special, {rows['random']:,} random")
        source = f"{base} with a new vocabulary"
        if cfg.transfer.freeze_layers:
            # trainable: the token embeddings (tied to the output layer) and the MLM head, which is outside the
            # base model (BERT's cls., RoBERTa's lm_head., ...)
            body = {id(p) for p in model.base_model.parameters()}
            tokens = {id(p) for p in model.get_input_embeddings().parameters()}
            for param in model.parameters():
                param.requires_grad = id(param) in tokens or id(param) not in body
    else:
        tokenizer = load_tokenizer(base)
        model, new_params = load_lm(base, cfg.objective)
        source = base
    if cfg.objective in ("mlm", "electra") and tokenizer.mask_token_id is None:
        raise TuneforgeError(f"objective: {cfg.objective} needs a tokenizer with a mask token; {source} has none. Use "
                             "objective: clm for a decoder.")

    build = clm_blocks if cfg.objective == "clm" else mlm_examples
    # corpus.repeat: the tokenizer above saw each document once; the training data holds the copies.
    train_data: LMData = build(repeat_sources(train_docs, cfg.corpus.repeat), tokenizer, cfg.max_length)
    held_data: LMData = build(held_docs, tokenizer, cfg.max_length)
    # objective: electra: the discriminator's parameters (the encoder saved); the generator's own come on top.
    encoder = model.discriminator if cfg.objective == "electra" else model
    n_params = sum(p.numel() for p in encoder.parameters())
    extra_params = sum(p.numel() for p in model.parameters()) - n_params
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    trains = "" if n_trainable == n_params + extra_params else f" ({n_trainable:,} trained)"
    console.print(f"[bold]{escape(cfg.name)}[/]: {cfg.objective} on {escape(source)}, {n_params:,} parameters{trains}, "
                  f"vocabulary {len(tokenizer):,}; {len(train_data):,} training sequences "
                  f"({sum(train_data.encoded.lengths()):,} tokens), {len(held_data):,} held out; precision {precision}")
    whole_word = cfg.objective == "mlm" and cfg.masking.whole_word
    warm_start = {}
    if cfg.embedding_init is not None and not init_only and not resume:
        # the pretraining's first step (its time is in wall_seconds): distributional embeddings, then the MLM
        warm_start = warm_start_embeddings(model, train_data.encoded.input_ids, tokenizer, cfg.embedding_init.window,
                                           cfg.embedding_init.alpha, cfg.train.seed)
        console.print(f"embedding_init: {warm_start['rows']:,} token embeddings from co-occurrence statistics "
                      f"in {warm_start['seconds']:.0f} s")

    def evaluate() -> dict[str, float]:
        if cfg.objective == "electra":
            return evaluate_electra(model, held_data, tokenizer, precision=precision, device=device,
                                    batch_size=max(64, loop.batch_size), probability=cfg.masking.probability,
                                    weight=cfg.electra.discriminator_weight, seed=loop.seed)
        return evaluate_lm(model, held_data, tokenizer, cfg.objective, precision=precision, device=device,
                           batch_size=max(64, loop.batch_size), probability=cfg.masking.probability,
                           whole_word=whole_word, seed=loop.seed)

    model.to(device)
    before = evaluate()
    if before["tokens"] == 0:  # the scores would read loss 0, perplexity 1.0: a perfect model, on nothing
        scored = "next token" if cfg.objective == "clm" else "masked token"
        raise TuneforgeError(
            f"The held-out slice ({len(held_docs)} document(s), {sum(held_data.encoded.lengths())} tokens with the "
            f"special ones) gives no {scored} to score (masking.probability {cfg.masking.probability}), so its "
            f"loss, perplexity and accuracy would mean nothing. Hold out more text: raise corpus.heldout (now "
            f"{cfg.corpus.heldout}) or add documents to the corpus.")
    parts = [model.discriminator, model.generator] if cfg.objective == "electra" else [model]
    if loop.fast_dropout:
        for part in parts:
            use_training_attention(part)
            use_fast_dropout(part)
    state = None
    if not init_only:
        loss_fn = mlm_loss_fn(train_data, tokenizer, cfg.masking.probability, whole_word, cfg.cls_bag_weight) \
            if cfg.objective == "mlm" else clm_loss_fn if cfg.objective == "clm" else \
            electra_loss_fn(tokenizer, cfg.masking.probability, cfg.electra.discriminator_weight)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        result = fit(model, train_data.encoded, loop, run_dir=run_dir, precision=precision, device=device,
                     pad_id=pad_id, evaluate=evaluate, resume=resume, progress=progress, stop_after=stop_after,
                     loss_fn=loss_fn)
        state = result.state
    after = evaluate() if state is not None else before

    seconds = state.seconds if state else 0.0
    metrics = flatten("", {
        "objective": cfg.objective, "parameters": n_params, "trainable_parameters": n_trainable,
        "vocab_size": len(tokenizer),
        **({"generator_parameters": extra_params} if cfg.objective == "electra" else {}),
        "new_parameters": new_params[:20],
        "corpus": {"train_documents": len(train_docs), "train_sequences": len(train_data),
                   "train_tokens": sum(train_data.encoded.lengths()), "heldout_documents": len(held_docs),
                   "heldout_sequences": len(held_data)},
        "train": {"steps": state.step if state else 0, "seconds": seconds, "tokens": state.tokens if state else 0,
                  "tokens_per_second": state.tokens / max(seconds, 1e-9) if state else 0.0,
                  "samples_per_second": state.samples / max(seconds, 1e-9) if state else 0.0,
                  "precision": precision, "init_only": init_only},
        **({"embedding_init": warm_start} if warm_start else {}),
        **({"transfer": transfer_record} if transfer_record else {}),
        "before": before, "heldout": after,
        "wall_seconds": time.perf_counter() - started,
    })
    write_json(run_dir / "metrics.json", metrics)
    log_path = run_dir / "log.jsonl"
    records = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()] \
        if log_path.exists() else []
    plot_loss([r for r in records if r.get("type") == "train"], state.evals if state else [], run_dir / "loss.png",
              loop.metric)

    def writer(part):
        def write_model(folder: Path) -> None:
            restore_attention(part)
            part.to("cpu").save_pretrained(folder)
            tokenizer.save_pretrained(folder)
        return write_model

    write_atomic_folder(run_dir / "model", writer(encoder))
    if cfg.objective == "electra":
        write_atomic_folder(run_dir / "generator", writer(model.generator))
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    update_status(run_dir, status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    what = "next-token accuracy" if cfg.objective == "clm" else "masked-token accuracy"
    if cfg.objective == "electra":
        console.print(f"held-out replaced-token detection: accuracy {before['rtd_accuracy']:.4f} -> "
                      f"{after['rtd_accuracy']:.4f}, AUC {before['rtd_auc']:.4f} -> {after['rtd_auc']:.4f} "
                      f"(generator's {what} below)")
    console.print(f"held-out {what} {before['accuracy']:.4f} -> {after['accuracy']:.4f}, perplexity "
                  f"{before['perplexity']:.1f} -> {after['perplexity']:.1f}; {metrics['train.tokens_per_second']:.0f} "
                  f"tokens/s; model folder: {escape(str(run_dir / 'model'))}")
    return run_dir
