# One entry point for set-up, the demo and the tests. Every target builds .venv from nothing
# when it is missing or older than pyproject.toml.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
# pip's local index mirrors warn about every package they do not hold; keep real errors visible.
QUIET_PIP := { grep -v 'is ignored: it is neither a file nor a directory' || true; }
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# CPU build that lies on local disk on the build machines; GPU users install a CUDA torch first.
TORCH_PIN ?= torch==2.13.0
SHARED ?= $(abspath ../shared)
export MTHCCAR_GRANULES ?= $(SHARED)/granules

.PHONY: venv demo test test-slow test-all lint bench models tables clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | $(QUIET_PIP)
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)" 2>&1 | $(QUIET_PIP)
	$(BIN)/python -m pip install --quiet -e ".[dev]" 2>&1 | $(QUIET_PIP)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mthccar demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy pipeline models flows

# Two pytest workers, each taking whole modules (their module fixtures are built once): the suite
# waits on child processes and servers so often that a serial run kept one core of two busy.
# Modules go out heaviest first (tests/conftest.py), not by their number of tests.
TEST_WORKERS ?= 2
test: $(STAMP) lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

test-all: $(STAMP) lint
	$(BIN)/python -m pytest -m "not gpu"

bench: $(STAMP)
	$(BIN)/python -m tests.bench.run_all

models: $(STAMP)
	$(BIN)/mthccar build-default-models --work build/default-models

tables: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[disort,surfaces]" 2>&1 | $(QUIET_PIP)
	$(BIN)/python -m models.training.simulate.build_tables all

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
