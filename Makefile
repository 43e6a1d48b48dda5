# audiencefit — every target creates .venv and installs the project when missing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
AF := $(VENV)/bin/audiencefit
STAMP := $(VENV)/.installed
DATA ?= audiencefit-data
DEMO_CREATORS ?= 1000
DEMO_SEED ?= 7
HOST ?= 127.0.0.1
PORT ?= 8000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export AUDIENCEFIT_DATA_DIR ?= $(DATA)

.PHONY: install models run notebook test lint typecheck unit bench bench-embed clean help

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	@# torch first, pinned, so that no dependency can pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[train,ray,dev,compiled-trees]'
	@touch $(STAMP)

# JupyterLab (the notebook extra) only where notebooks are opened: make test runs them through a kernel without it.
$(VENV)/.notebook: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[train,ray,dev,compiled-trees,notebook]'
	@touch $@

install: $(STAMP) $(VENV)/.notebook ## Create .venv, install the project with every extra and build the embedding artifacts (idempotent).
	$(AF) models build

models: $(STAMP) ## Build the embedding artifacts in $(DATA)/models (about a minute once; then only checked).
	$(AF) models build

run: $(STAMP) ## Embedding artifacts → demo world → features → index → train → promote → serve on $(HOST):$(PORT).
	$(AF) models build
	@test -f $(DATA)/demo/creators.parquet && echo "demo world already in $(DATA)/demo (make clean to rebuild)" || $(AF) demo-data --creators $(DEMO_CREATORS) --seed $(DEMO_SEED) --out $(DATA)/demo
	$(AF) validate $(DATA)/demo
	$(AF) features build --data $(DATA)/demo --out $(DATA)/features
	$(AF) index build --features $(DATA)/features
	$(AF) train --data $(DATA)/demo --features $(DATA)/features
	$(AF) promote || echo "make run: the current champion stays (see the reason above)"
	@test -s $(DATA)/demo-api-key || $(PY) -c "import secrets; print('demo-' + secrets.token_urlsafe(18))" > $(DATA)/demo-api-key
	@test -s $(DATA)/demo-admin-key || $(PY) -c "import secrets; print('admin-' + secrets.token_urlsafe(18))" > $(DATA)/demo-admin-key
	@echo "make run: admin key for /admin/reload: $$(cat $(DATA)/demo-admin-key)"
	@# The service runs in the background so that, once it is ready, the last line is the one to paste from
	@# (URL, key, a curl); Ctrl-C stops it. audiencefit.ready exits 1 if the service ends before it is ready.
	@AUDIENCEFIT_API_KEYS=$$(cat $(DATA)/demo-api-key) AUDIENCEFIT_ADMIN_API_KEYS=$$(cat $(DATA)/demo-admin-key) \
		$(AF) serve --features $(DATA)/features --model models:/audiencefit@champion --data $(DATA)/demo \
		--host $(HOST) --port $(PORT) & pid=$$!; \
	trap 'kill -TERM $$pid 2>/dev/null; wait $$pid' INT TERM; \
	$(PY) -m audiencefit.ready http://$(HOST):$(PORT) --key-file $(DATA)/demo-api-key --pid $$pid \
		|| { kill -TERM $$pid 2>/dev/null; wait $$pid; exit 1; }; \
	wait $$pid

notebook: $(VENV)/.notebook ## JupyterLab on notebooks/ (right-click a .py: Open With → Jupytext Notebook).
	$(VENV)/bin/jupyter lab notebooks/

lint: $(STAMP) ## ruff (lint + format check).
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP) ## mypy (strict).
	$(VENV)/bin/mypy audiencefit benchmarks

unit: $(STAMP) ## The default test suite only.
	$(VENV)/bin/pytest -q

test: lint typecheck unit ## Lint, type-check and run the whole default test suite.

bench: $(STAMP) ## Benchmarks (speed goals are checked here, not by timed tests).
	$(PY) -m benchmarks.run

bench-embed: $(STAMP) ## Embedding backends side by side with PyTorch fp32; ends with `speedup N.Nx`.
	$(PY) -m benchmarks.embed

clean: ## Remove generated data and caches (keeps .venv).
	rm -rf $(DATA) .pytest_cache .mypy_cache .ruff_cache
