# The two set-up commands of the README:
#   make run    create .venv if missing, install, start the service (API + one job worker) on
#               embedded defaults: SQLite and a SQLite broker under $LLMFT_HOME, port 8000
#   make test   create .venv if missing, install the dev extras, lint (ruff), run the tests
#   make demo   fine-tune the offline demo model from the command line, no service
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
LLMFT := $(VENV)/bin/llmft
export LLMFT_HOME ?= $(CURDIR)/var

.PHONY: run demo test test-fast lint install install-dev clean

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

# Validate our sample data, then fine-tune the offline demo model on it (a fresh run each time;
# the previous one is moved aside).
demo: install
	$(LLMFT) data validate data/sample/brokerage_support.jsonl
	$(LLMFT) data preview data/sample/brokerage_support.jsonl -n 1
	@if [ -d $(LLMFT_HOME)/runs/demo ]; then rm -rf $(LLMFT_HOME)/runs/demo.previous; \
		mv $(LLMFT_HOME)/runs/demo $(LLMFT_HOME)/runs/demo.previous; fi
	$(LLMFT) train --config config/demo.yaml --set output.output_dir=$(LLMFT_HOME)/runs/demo

test: install-dev lint
	$(PY) -m pytest

lint: install-dev
	$(VENV)/bin/ruff check llmft tests bench

test-fast: install-dev
	$(PY) -m pytest -m "not slow"

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
