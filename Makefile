# audioprune — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.audioprune-installed
# torch is pinned to the CPU wheel available on the build machines; an unpinned torch pulls CUDA wheels.
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast lint format reproduce bench clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev,sbert,cluster]"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the project (torch==2.13.0 first if no torch)

demo: $(STAMP) ## embedded default: tiny models, synthetic audio, selector x retention sweep, printed table
	$(BIN)/python scripts/demo.py

test: $(STAMP) ## the whole test suite (what CI runs), then ruff
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-fast: $(STAMP) ## unit tests only (skips tests marked slow)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP) ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

reproduce: $(STAMP) ## run the paper's table experiments (needs the real checkpoints and data) and write the tables
	$(BIN)/python scripts/reproduce.py

bench: $(STAMP) ## prefill benchmark at retention 1.0 vs 0.25 on a CPU-sized config
	$(BIN)/python scripts/bench_prefill.py

clean: ## remove caches and run outputs (keeps .venv)
	rm -rf .cache results/runs results/hydra results/multirun results/cache results/analysis .pytest_cache .ruff_cache
