# stageserve: `make demo` sets everything up and serves the demo model;
# `make test` runs the whole test suite (lint, type check, unit, integration, end to end);
# `make bench` benchmarks against `mlflow models serve` (on demand, ~15 minutes).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 3000
DEMO_DIR ?= demo-registry
# make demo RESET=1: start from a fresh demo registry; DEMO_ARGS: more `stageserve demo` flags.
RESET ?=
DEMO_ARGS ?=
BENCH_ARGS ?=

.PHONY: install demo test unit integration lint typecheck format clean bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: install
	$(VENV)/bin/stageserve demo --dir $(DEMO_DIR) --port $(PORT) \
		$(if $(filter 1 yes true,$(RESET)),--reset) $(DEMO_ARGS)

test: install lint typecheck
	$(PY) -m pytest -q --durations=15

unit: install
	$(PY) -m pytest -q tests/unit

integration: install
	$(PY) -m pytest -q tests/integration

bench: install
	$(PY) -m bench $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy's settings (which packages, how strict) are in pyproject.toml's [tool.mypy].
typecheck: install
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) $(DEMO_DIR) bench/.work .pytest_cache .ruff_cache .hypothesis *.egg-info
