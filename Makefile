# llmsim: `make demo` runs a default serving simulation; `make test` runs the test suite.
# Both create .venv and install on first use. Override PYTHON, or TORCH_SPEC / TORCH_PIP_ARGS to
# choose your PyTorch build (e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu").

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
# The suite runs on up to 4 worker processes (pytest-xdist; one per core where fewer): serial it
# took about 12 minutes on a 2-core machine, on 2 workers 3.5-7.5. PYTEST_ARGS= runs it serially.
PYTEST_ARGS ?= -n auto --maxprocesses 4
# Each benchmark smoke run is cut off after this long where GNU timeout exists (CI must not hang).
BENCH_TIMEOUT_S ?= 900
LIMIT := $(shell command -v timeout >/dev/null 2>&1 && echo timeout $(BENCH_TIMEOUT_S))

.PHONY: demo test install install-torch lint bench-smoke bench accuracy fit-profile golden \
	golden-record clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $@

# PyTorch first, so pip never resolves the executor extra to a multi-GB CUDA build.
$(VENV)/.torch: $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	@touch $@

install: $(VENV)/.installed

install-torch: $(VENV)/.torch $(VENV)/.installed

demo: install
	$(BIN)/llmsim simulate --config examples/simulate.yaml --out-dir out/demo

test: install-torch
	$(BIN)/python -m ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/python -m ruff check src tests benchmarks scripts

bench-smoke: install
	$(LIMIT) $(BIN)/python benchmarks/accuracy.py --smoke
	$(LIMIT) $(BIN)/python benchmarks/sim_speed.py --smoke
	$(LIMIT) $(BIN)/python benchmarks/offload_accuracy.py --smoke
	$(LIMIT) $(BIN)/python benchmarks/serving_accuracy.py --smoke
	$(LIMIT) $(BIN)/python benchmarks/disagg_accuracy.py
	$(LIMIT) $(BIN)/python benchmarks/disagg_accuracy.py --simulate --rows 6 --requests-per-client 2
	$(LIMIT) $(BIN)/python benchmarks/deepseek_day6.py
	$(LIMIT) $(BIN)/python benchmarks/speculative_published.py

accuracy: install
	$(BIN)/python benchmarks/accuracy.py

fit-profile: install
	$(BIN)/python scripts/fit_profile.py

# Every documented command's output against tests/golden/cli (scripts/golden.py): a refactor
# must leave them all unchanged; re-record only for a change meant to move an output.
golden: install
	$(BIN)/python scripts/golden.py check

golden-record: install
	$(BIN)/python scripts/golden.py record

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
